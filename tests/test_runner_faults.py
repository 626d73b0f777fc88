"""Bad conditions around a stage: a full disk, an out_dir that cannot be written, an fsspec URL
out_dir, a record table cut short or damaged by a crash, duplicate records. Each is a clear
error or a redo of the affected items, never a lost or duplicated item."""
from __future__ import annotations

import errno
import json

import pandas as pd
import pytest

from pipeline.config.runner import RunnerParams
from pipeline.engine.outdir import OutDir, OutDirError
from pipeline.engine.runner import Runner
from pipeline.engine.state import PARTS_DIR, RECORDS_TABLE, StageState
from tests.fixtures.toy_stages import CALL_LOG_ENV, SquareStage, items


def local(**kw) -> Runner:
    return Runner(RunnerParams(workers=0, progress=False, reports_dir="", **kw), seed=7)


def check_complete(out, n: int) -> None:
    """Every item exactly once in the manifest, with its file."""
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(manifest["item_id"]) == [f"i{k:03d}" for k in range(n)]
    for k in range(n):
        assert (out / "out" / f"i{k:03d}.txt").read_text() == f"{k * k}\n"
    assert json.loads((out / "stats.json").read_text())["complete"] is True


def test_full_disk_stops_the_run_with_a_clear_error_and_loses_nothing(tmp_path, monkeypatch) -> None:
    real, writes = OutDir.write_bytes, []

    def filling(self, rel, data):
        if rel.startswith("out/"):
            writes.append(rel)
            if len(writes) > 5:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, rel, data)

    monkeypatch.setattr(OutDir, "write_bytes", filling)
    with pytest.raises(OutDirError, match=r"out_dir .*: cannot write out/i005.txt: No space left on device"):
        local(items_per_task=2).run(SquareStage(), items(10), tmp_path)
    finished = set(StageState(tmp_path).load())
    assert finished == {"i000", "i001", "i002", "i003"}, "tasks recorded before the disk filled are kept"
    assert not (tmp_path / "stats.json").exists()
    monkeypatch.setattr(OutDir, "write_bytes", real)  # space freed
    log = tmp_path / "calls.log"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    summary = local().run(SquareStage(), items(10), tmp_path)
    assert summary.skipped == 4 and sorted(log.read_text().split()) == [f"i{k:03d}" for k in range(4, 10)]
    check_complete(tmp_path, 10)


def test_out_dir_that_cannot_be_written_fails_before_any_work(tmp_path, monkeypatch) -> None:
    log = tmp_path / "calls.log"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(OutDirError, match="a-file/out"):
        local().run(SquareStage(), items(3), blocker / "out")
    with pytest.raises(OutDirError, match="nosuchproto://x"):
        local().run(SquareStage(), items(3), "nosuchproto://x")
    assert not log.exists(), "no item may run when its outputs cannot be kept"


def test_fsspec_url_out_dir(monkeypatch) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    url = "memory://piq-test/square"
    try:
        summary = local(items_per_task=2).run(SquareStage(), items(5), url)
        assert summary.processed == 5 and summary.stats["complete"]
        assert fs.cat_file("/piq-test/square/out/i004.txt") == b"16\n"
        with fs.open("/piq-test/square/manifest.parquet", "rb") as fh:
            assert sorted(pd.read_parquet(fh)["item_id"]) == [f"i{k:03d}" for k in range(5)]
        assert not fs.exists("/piq-test/square/_state/parts"), "parts are compacted at the end"
        assert local().run(SquareStage(), items(5), url).processed == 0
    finally:
        fs.rm("/piq-test", recursive=True)


def _crash_state(out, records: list[dict], text: str) -> None:
    """What a crash leaves: no compacted table or tables, one part file with `text`."""
    for name in (RECORDS_TABLE, "_state/consolidated.json", "stats.json", "manifest.parquet"):
        (out / name).unlink(missing_ok=True)
    (out / PARTS_DIR).mkdir(parents=True, exist_ok=True)
    (out / PARTS_DIR / "w1-000000.jsonl").write_text(text)


def test_record_part_cut_short_redoes_only_the_unreadable_items(tmp_path, monkeypatch) -> None:
    local().run(SquareStage(), items(6), tmp_path)
    records = StageState(tmp_path).load()
    lines = [json.dumps(records[f"i{k:03d}"]) for k in range(3)]
    _crash_state(tmp_path, records, "\n".join(lines)[:-20])  # the third line cut short
    log = tmp_path / "calls.log"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    with pytest.warns(UserWarning, match="1 line\\(s\\) cut short"):
        summary = local().run(SquareStage(), items(6), tmp_path)
    assert sorted(log.read_text().split()) == ["i002", "i003", "i004", "i005"]
    assert summary.skipped == 2
    check_complete(tmp_path, 6)


def test_damaged_compacted_table_redoes_its_items(tmp_path, monkeypatch) -> None:
    local().run(SquareStage(), items(4), tmp_path)
    table = tmp_path / RECORDS_TABLE
    table.write_bytes(table.read_bytes()[:50])
    (tmp_path / "_state" / "consolidated.json").unlink()
    with pytest.warns(UserWarning, match="records.parquet is unreadable"):
        summary = local().run(SquareStage(), items(4), tmp_path)
    assert summary.processed == 4
    check_complete(tmp_path, 4)


def test_duplicate_records_count_once(tmp_path) -> None:
    """A worker that recorded its task and then died is retried elsewhere: two records, one item."""
    local().run(SquareStage(), items(3), tmp_path)
    records = StageState(tmp_path).load()
    text = "".join(json.dumps(records[k]) + "\n" for k in ("i000", "i001", "i001", "i002"))
    _crash_state(tmp_path, records, text)
    (tmp_path / PARTS_DIR / "w2-000000.jsonl").write_text(json.dumps(records["i002"]) + "\n")
    summary = local().run(SquareStage(), items(3), tmp_path)
    assert summary.processed == 0
    check_complete(tmp_path, 3)
