"""`dvc repro` ingests the embedded sample as samples/expected.csv says; a second run does nothing.

Runs on a copy of the working tree (a fresh git repo) so the checkout's own data/ is untouched.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pandas as pd
import pytest

from tests.fixtures.dvc_copy import sh

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ingested(clone) -> str:
    """`dvc repro ingest` on the fresh copy, first of all (whatever order the tests run in)."""
    root, env = clone
    return sh(["dvc", "repro", "ingest"], root, env)


@pytest.fixture(scope="module")
def repro(clone, ingested) -> str:
    """The whole `dvc repro` on the same copy, once, after the ingest alone."""
    root, env = clone
    return sh(["dvc", "repro"], root, env)


@pytest.mark.slow
@pytest.mark.timeout(3600)  # two `dvc repro ingest`, each allowed 1500 s by `sh`
def test_repro_ingests_the_sample_then_does_nothing(clone, ingested) -> None:
    root, env = clone
    first = ingested
    assert "Running stage 'ingest'" in first
    out = root / "data" / "ingest"
    expected = pd.read_csv(root / "samples" / "expected.csv", dtype=str)
    rejects = pd.read_parquet(out / "rejects.parquet").set_index("item_id")["code"].to_dict()
    manifest = pd.read_parquet(out / "manifest.parquet")
    for row in expected.itertuples():
        item = row.video_id if isinstance(row.video_id, str) and row.video_id else f"file:{row.file}"
        if row.expected == "accept":
            assert item in set(manifest["item_id"]), f"{item} ({row.file}) should yield faces; got {rejects.get(item)}"
        else:
            assert rejects.get(item) == row.expected, f"{item} ({row.file}): {rejects.get(item)} != {row.expected}"
    assert sorted(p.relative_to(out).as_posix() for p in (out / "faces").iterdir()) == sorted(manifest["path"])
    for path in manifest["path"]:
        assert cv2.imread(str(out / path)).shape == (1024, 1024, 3)
    stats = json.loads((root / "reports" / "ingest_stats.json").read_text())
    assert stats["complete"] and stats["rows"] == len(manifest)

    second = sh(["dvc", "repro", "ingest"], root, env)
    assert "Running stage" not in second, second
    assert "didn't change" in second or "up to date" in second.lower(), second


@pytest.mark.slow
@pytest.mark.timeout(3600)  # two `dvc repro` (the first ~14 min on 2 cores), each allowed 1500 s by `sh`
def test_full_repro_on_the_sample_then_nothing_to_do(clone, repro) -> None:
    """The whole pipeline on the embedded sample: ingest -> drivers -> animate -> caption /
    segment / relight -> shard (verified) -> train -> sample -> evaluate; a second run does
    nothing. (The same copy as the ingest test: the `repro` fixture runs after `ingested`.)"""
    root, env = clone
    assert "Running stage 'drivers'" in repro and "Running stage 'ingest'" not in repro, repro
    data = root / "data"
    faces = pd.read_parquet(data / "ingest" / "manifest.parquet")
    animate = pd.read_parquet(data / "animate" / "manifest.parquet")
    assert len(animate) == 21 * len(faces) and (animate.groupby("face_id").size() == 21).all()
    for face in faces["face_id"]:
        assert (data / "animate" / "sets" / face / "contact.jpg").is_file()
    assert len(pd.read_parquet(data / "drivers" / "manifest.parquet")) >= 200
    assert len(pd.read_parquet(data / "caption" / "manifest.parquet")) == len(animate)
    assert len(pd.read_parquet(data / "segment" / "manifest.parquet")) == len(animate)
    assert len(pd.read_parquet(data / "relight" / "manifest.parquet")) == 5 * len(animate)
    shards = data / "shards"
    assert (shards / "README.md").is_file() and json.loads((shards / "stats.json").read_text())["complete"]
    released = sum(json.loads((shards / s / "index.json").read_text())["n_samples"] if (shards / s / "index.json").is_file()
                   else 0 for s in ("train", "test_id", "test_ood"))
    assert released == len(faces)
    metrics = json.loads((root / "reports" / "eval" / "metrics.json").read_text())
    assert metrics and (root / "reports" / "eval" / "tables.md").is_file()
    assert (root / "models" / "piq" / "model_index.json").is_file()
    second = sh(["dvc", "repro"], root, env)
    assert "Running stage" not in second, second


def out_hashes(lock_file: Path) -> dict[str, dict[str, str]]:
    import yaml

    lock = yaml.safe_load(lock_file.read_text())["stages"]
    return {stage: {o["path"]: o.get("md5") for o in entry.get("outs", [])} for stage, entry in lock.items()}


LOSS_RTOL = 0.02  # the sample model's loss per logged step, across CPUs (docs/INSTALL.md, "What may differ across machines")


def loss_curve(path: Path) -> dict[int, float]:
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:] if line.strip()]
    return {int(step): float(loss) for step, loss in rows}


@pytest.mark.slow
@pytest.mark.timeout(3600)  # the full `dvc repro` when this test is the first to need it
def test_a_fresh_repro_writes_the_committed_release(clone, repro) -> None:
    """After the full repro (the `repro` fixture, same copy): on any CPU, the release means what
    the committed one means (pipeline/release/digest.py: the same clips accepted and refused
    with the same codes, the same sets, images, drivers and splits, captions and label maps
    equal, images within 1 level) and the sample model's loss curve is within LOSS_RTOL; where
    the platform recorded beside dvc.lock (dvc.platform.json: CPU SIMD features, Python,
    installed packages) is this one, every stage's outs hash as the committed dvc.lock says and
    no committed file changed: nothing run-varying (timings, hosts, absolute paths, completion
    or hash order) inside a DVC out or a committed report. (A change of code or params without a
    fresh `dvc repro` and commit of dvc.lock, the digest and `piq platform --write` fails here,
    by design.)"""
    from pipeline.commands.platform_record import PLATFORM_FILE, differences, fingerprint
    from pipeline.release.digest import compare

    root, env = clone
    committed_digest = REPO / "reports" / "release_digest.json"
    assert committed_digest.is_file(), "no committed reports/release_digest.json: run `dvc repro` and commit it with dvc.lock"
    problems = compare(json.loads(committed_digest.read_text()), json.loads((root / "reports" / "release_digest.json").read_text()))
    assert not problems, "the fresh release means something else:\n" + "\n".join(problems[:40])
    committed_loss, made_loss = loss_curve(REPO / "reports" / "train" / "loss.tsv"), loss_curve(root / "reports" / "train" / "loss.tsv")
    assert committed_loss.keys() == made_loss.keys()
    off = {k: (committed_loss[k], made_loss[k]) for k in committed_loss
           if abs(made_loss[k] - committed_loss[k]) > LOSS_RTOL * abs(committed_loss[k])}
    assert not off, f"loss steps beyond {LOSS_RTOL:.0%} of the committed curve: {off}"
    status = [line[3:] for line in sh(["git", "status", "--porcelain"], root, env).splitlines()]
    platform = differences(json.loads((REPO / PLATFORM_FILE).read_text()) if (REPO / PLATFORM_FILE).is_file() else None,
                           fingerprint(REPO))
    if platform:  # another CPU or install: bytes may differ (README); only reports and dvc.lock may change
        changed = [path for path in status if path != "dvc.lock" and not path.startswith("reports/")]
        assert not changed, "a fresh dvc repro changed committed files:\n" + "\n".join(changed)
        print("dvc.lock compared by meaning only; the platform differs:", "; ".join(platform))
        return
    committed, made = out_hashes(REPO / "dvc.lock"), out_hashes(root / "dvc.lock")
    differ = {stage: (committed.get(stage), made.get(stage)) for stage in set(committed) | set(made)
              if committed.get(stage) != made.get(stage)}
    assert not differ, f"outs that differ from the committed dvc.lock on the platform that wrote it: {differ}"
    status = [path for path in status if path != "dvc.lock"]
    assert not status, "a fresh dvc repro changed committed files:\n" + "\n".join(status)
    assert json.loads((root / "reports" / "ingest" / "timing.json").read_text())["seconds"] > 0  # timings: ignored files
