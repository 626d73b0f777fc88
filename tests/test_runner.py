"""The runner: rejects, retries, seeds, resumption, stale-state wiping, Ray and kill -9."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config.runner import RunnerParams
from pipeline.engine.runner import Runner
from pipeline.engine.stage import Item, item_seed
from pipeline.engine.state import StageState
from tests.fixtures.toy_stages import CALL_LOG_ENV, SquareStage, items

REPO = Path(__file__).resolve().parents[1]


def recorded(out: Path) -> set[str]:
    """Items with a record in the stage's table (parts and compacted), whatever their status."""
    return set(StageState(out).load()) if (out / "_state").is_dir() else set()


def local(retries: int = 2) -> Runner:
    return Runner(RunnerParams(workers=0, retries=retries, progress=False, reports_dir=""), seed=7)


def test_outputs_rejects_and_stats(tmp_path: Path) -> None:
    work = items(5) + [Item("neg", {"value": -3}), Item("broken1", {"value": 2})]
    summary = local(retries=1).run(SquareStage(), work, tmp_path)
    manifest = pd.read_parquet(tmp_path / "manifest.parquet")
    rejects = pd.read_parquet(tmp_path / "rejects.parquet").set_index("item_id")
    assert sorted(manifest["item_id"]) == [f"i{k:03d}" for k in range(5)]
    assert (manifest["square"] == manifest["value"] ** 2).all()
    for item_id in manifest["item_id"]:
        assert (tmp_path / "out" / f"{item_id}.txt").read_text() == f"{int(item_id[1:]) ** 2}\n"
    assert rejects.loc["neg", "code"] == "negative_value" and rejects.loc["neg", "attempts"] == 1
    assert rejects.loc["broken1", "code"] == "stage_error"
    assert "ZeroDivisionError" in rejects.loc["broken1", "detail"]
    assert rejects.loc["broken1", "attempts"] == 2  # 1 try + 1 retry
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats == {**stats, "items": 7, "done": 5, "rejected": 2, "complete": True,
                     "reject_codes": {"negative_value": 1, "stage_error": 1}}
    assert summary.processed == 7


def test_retry_keeps_seed_and_succeeds(tmp_path: Path) -> None:
    local(retries=2).run(SquareStage(flaky_attempts=2), [Item("flaky-a", {"value": 3})], tmp_path)
    manifest = pd.read_parquet(tmp_path / "manifest.parquet")
    assert manifest["square"].tolist() == [9]
    assert manifest["seed"].tolist() == [item_seed(7, "square", "flaky-a")]
    assert StageState(tmp_path).load()["flaky-a"]["attempts"] == 3


def test_resume_skips_finished_and_retries_stage_errors(tmp_path: Path, monkeypatch) -> None:
    log = tmp_path / "calls.log"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    local(retries=0).run(SquareStage(), items(3) + [Item("broken2", {"value": 1}), Item("neg", {"value": -1})], tmp_path / "o")
    log.unlink()
    summary = local(retries=0).run(SquareStage(), items(5) + [Item("broken2", {"value": 1}), Item("neg", {"value": -1})], tmp_path / "o")
    # finished items and final rejects are not redone; stage errors and new items are
    assert sorted(log.read_text().split()) == ["broken2", "i003", "i004"]
    assert summary.skipped == 4
    assert len(pd.read_parquet(tmp_path / "o" / "manifest.parquet")) == 5


def test_changed_params_wipe_stale_outputs(tmp_path: Path) -> None:
    local().run(SquareStage(), items(3), tmp_path)
    assert (tmp_path / "out" / "i002.txt").exists()
    local().run(SquareStage(sleep_s=0.001), items(2), tmp_path)  # another fingerprint
    assert not (tmp_path / "out" / "i002.txt").exists()
    assert sorted(pd.read_parquet(tmp_path / "manifest.parquet")["item_id"]) == ["i000", "i001"]


def test_duplicate_ids_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="duplicate item ids"):
        local().run(SquareStage(), items(2) + items(1), tmp_path)


@pytest.mark.slow
def test_ray_matches_local(tmp_path: Path) -> None:
    work = items(6) + [Item("neg", {"value": -2}), Item("flaky-b", {"value": 4})]
    local().run(SquareStage(flaky_attempts=1), work, tmp_path / "local")
    Runner(RunnerParams(workers=2, retries=2, progress=False), seed=7).run(SquareStage(flaky_attempts=1), work, tmp_path / "ray")
    cols = ["item_id", "value", "square", "seed"]
    a = pd.read_parquet(tmp_path / "local" / "manifest.parquet")[cols].sort_values("item_id").reset_index(drop=True)
    b = pd.read_parquet(tmp_path / "ray" / "manifest.parquet")[cols].sort_values("item_id").reset_index(drop=True)
    pd.testing.assert_frame_equal(a, b)
    assert pd.read_parquet(tmp_path / "ray" / "rejects.parquet")["code"].tolist() == ["negative_value"]


DRIVER = textwrap.dedent(
    """
    import sys
    from pipeline.config.runner import RunnerParams
    from pipeline.engine.runner import Runner
    from tests.fixtures.toy_stages import SquareStage, items
    Runner(RunnerParams(workers=2, progress=False), seed=7).run(SquareStage(sleep_s=0.25), items(40), sys.argv[1])
    """
)


@pytest.mark.slow
def test_kill_9_then_resume_loses_nothing_and_redoes_nothing(tmp_path: Path) -> None:
    out, first_log, second_log = tmp_path / "out", tmp_path / "first.log", tmp_path / "second.log"
    env = {**os.environ, CALL_LOG_ENV: str(first_log), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(out)], cwd=REPO, env=env, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(recorded(out)) < 8:
        assert proc.poll() is None, "driver ended before it could be killed"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the driver (and its local Ray processes)
    proc.wait()
    finished_first = recorded(out)
    assert 8 <= len(finished_first) < 40, "the kill must land in the middle of the stage"
    assert not (out / "stats.json").exists(), "a killed run must not look complete"

    env[CALL_LOG_ENV] = str(second_log)
    subprocess.run([sys.executable, "-c", DRIVER, str(out)], cwd=REPO, env=env, check=True, timeout=300)
    redone = set(second_log.read_text().split())
    assert not redone & finished_first, f"finished items were redone: {sorted(redone & finished_first)}"
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(manifest["item_id"]) == [f"i{k:03d}" for k in range(40)]
    for k in range(40):
        assert (out / "out" / f"i{k:03d}.txt").read_text() == f"{k * k}\n"
    assert json.loads((out / "stats.json").read_text())["complete"] is True


def tree_digest(root: Path) -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_outs_are_byte_identical_whatever_the_task_size_and_folder(tmp_path: Path) -> None:
    """Nothing run-varying inside a stage's out_dir: two runs in two folders, with other task
    sizes and retries, give the same files byte for byte (records table, manifest, rejects,
    stats included); the wall-clock figures are in the timing report outside."""
    work = items(7) + [Item("neg", {"value": -1}), Item("broken3", {"value": 1}), Item("flaky-c", {"value": 2})]
    reports = tmp_path / "reports"
    for name, per_task in (("a", 1), ("b", 4)):
        params = RunnerParams(workers=0, retries=2, progress=False, items_per_task=per_task, reports_dir=str(reports))
        Runner(params, seed=7).run(SquareStage(flaky_attempts=1), work, tmp_path / name / "deep" / "out")
    a, b = tree_digest(tmp_path / "a" / "deep" / "out"), tree_digest(tmp_path / "b" / "deep" / "out")
    assert a == b
    assert {"_state/records.parquet", "manifest.parquet", "rejects.parquet", "stats.json"} <= set(a)
    assert not (tmp_path / "a" / "deep" / "out" / "_state" / "parts").exists(), "parts are compacted away"
    timing = json.loads((reports / "square" / "timing.json").read_text())
    assert timing["processed"] == 10 and timing["seconds"] > 0 and timing["items_per_node"] == {"local": 10}
