"""Removal on request (issue 27 item 3): `piq release remove` takes a person or a clip out of a
built release, rewrites only the shards that held them, keeps indexes, checksums and the card
true, records the request in the ledger that ingest and shard read, resumes when interrupted,
refuses an unknown id and does nothing for someone already gone."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.config.runner import RunnerParams
from pipeline.release.removals import read_ledger, withhold
from pipeline.release.shards import iter_raw_samples
from pipeline.engine.stage import Item
from pipeline.release.verify import verify
from stages.shard import build_release as build
from tests.fixtures.portraits import make_fake_ingest
from tests.fixtures.release import build_release, shard_params

REPO = Path(__file__).resolve().parents[1]
GONE = "phopper"  # one clip (v0001), sharing its shard with one of pastronaut's two clips


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """Three sets of two people in train, two sets per shard; params.yaml pointing at them."""
    root = tmp_path_factory.mktemp("remove")
    ingest = make_fake_ingest(root / "ingest", size=48)
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    build_release(root, ingest, n_expressive=2, n_relit=1, size=32, max_sets_per_shard=2, test_id_fraction=0.0,
                  test_ood_fraction=0.0)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["shard"].update(out_dir="shards", ingest_dir="ingest")
    params["ingest"]["metadata_csv"] = "metadata.csv"
    params["removals"] = "removals.csv"
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


@pytest.fixture
def work(built: Path, tmp_path: Path) -> Path:
    dest = tmp_path / "w"
    shutil.copytree(built, dest)
    return dest


def piq(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["piq", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def tars(release: Path) -> dict[str, str]:
    return {p.relative_to(release).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(release.glob("*/*.tar"))}


def people(release: Path) -> set[str]:
    """Participants in any tar, index, sets.parquet or the card of a release."""
    found = set()
    for tar in release.glob("*/*.tar"):
        found |= {json.loads(f["meta.json"])["participant_id"] for _, f in iter_raw_samples(tar)}
    for split in release.glob("*/sets.parquet"):
        found |= set(pd.read_parquet(split)["participant_id"])
    card = (release / "README.md").read_text()
    return found | {p for p in ("pastronaut", "phopper") if f"| {p} |" in card}


@pytest.mark.slow
def test_remove_a_participant_rewrites_only_their_shard_and_rebuilds_keep_them_out(work: Path) -> None:
    release = work / "shards"
    before = tars(release)
    done = piq("release", "remove", "--participant", GONE, "--reason", "asked by e-mail", cwd=work)
    assert done.returncode == 0, done.stderr
    after = tars(release)
    rewritten = sorted(k for k in before if after.get(k) != before[k])
    assert rewritten == ["train/train-000000.tar"] and f"rewritten: {', '.join(rewritten)}" in done.stdout
    assert all(after[k] == before[k] for k in before if k not in rewritten), "every other shard byte-identical"
    assert people(release) == {"pastronaut"}
    assert verify(work / "shards")[0] == []
    index = json.loads((release / "train" / "index.json").read_text())
    assert index["n_samples"] == 2 and "| train | 1 | 2 | 6 |" in (release / "README.md").read_text()
    ledger = read_ledger(work / "removals.csv")
    assert [(e.kind, e.id, e.reason) for e in ledger.entries] == [("participant", GONE, "asked by e-mail")]
    again = piq("release", "remove", "--participant", GONE, "--reason", "twice", cwd=work)
    assert again.returncode == 0 and "nothing to do" in again.stdout and tars(release) == after
    assert len(read_ledger(work / "removals.csv").entries) == 1
    p = shard_params(work, work / "ingest", out_dir=str(work / "rebuilt"), max_sets_per_shard=2, test_id_fraction=0.0,
                     test_ood_fraction=0.0)
    stats = build(p, RunnerParams(workers=0, progress=False, reports_dir=""), seed=0, removals=work / "removals.csv")
    assert people(work / "rebuilt") == {"pastronaut"} and stats["sets_withheld"] == 1


@pytest.mark.slow
def test_remove_by_video_and_refuse_an_unknown_id(work: Path) -> None:
    release = work / "shards"
    before = tars(release)
    unknown = piq("release", "remove", "--participant", "p9999", "--reason", "x", cwd=work)
    assert unknown.returncode == 2 and "unknown participant 'p9999'" in unknown.stderr and "Traceback" not in unknown.stderr
    assert tars(release) == before and not (work / "removals.csv").exists()
    done = piq("release", "remove", "--video", "v0002", "--reason", "clip uploaded without consent", cwd=work)
    assert done.returncode == 0, done.stderr
    remaining = {json.loads(f["meta.json"])["video_id"] for t in release.glob("*/*.tar") for _, f in iter_raw_samples(t)}
    assert remaining == {"v0000", "v0001"} and verify(work / "shards")[0] == []
    assert "train/train-000001.tar" not in tars(release), "a shard left with no set is deleted"


@pytest.mark.slow
def test_an_interrupted_removal_never_indexes_a_missing_sample_and_resumes(work: Path, built: Path, monkeypatch) -> None:
    import pipeline.release.remove as rr

    clean = work.parent / "clean"
    shutil.copytree(built, clean)
    assert piq("release", "remove", "--participant", GONE, "--reason", "r", cwd=clean).returncode == 0
    real = rr.atomic_write_json

    def killed_after_index(path, obj):
        real(path, obj)
        if Path(path).name == "index.json":
            raise KeyboardInterrupt("killed")

    monkeypatch.setattr(rr, "atomic_write_json", killed_after_index)
    monkeypatch.chdir(work)
    with pytest.raises(KeyboardInterrupt):
        rr.main(rr_args(GONE))
    release = work / "shards"
    assert (release / rr.JOURNAL).is_file()
    for entry in json.loads((release / "train" / "index.json").read_text())["shards"]:
        held = {k for k, _ in iter_raw_samples(release / "train" / entry["name"])}
        assert set(entry["keys"]) <= held, "the index names only samples its shard holds"
    monkeypatch.undo()
    resumed = piq("release", "remove", "--resume", cwd=work)
    assert resumed.returncode == 0 and "finished an interrupted removal" in resumed.stdout
    assert tars(release) == tars(clean / "shards") and not (release / rr.JOURNAL).exists()
    assert verify(work / "shards")[0] == []


def rr_args(participant: str):
    import argparse

    import pipeline.release.remove as rr

    parser = argparse.ArgumentParser()
    parser.add_argument("--params", default="params.yaml")
    rr.add_arguments(parser)
    return parser.parse_args(["remove", "--participant", participant, "--reason", "r"])


def test_ingest_withholds_the_ledgers_clips(tmp_path: Path) -> None:
    ledger = tmp_path / "removals.csv"
    ledger.write_text("kind,id,reason,requested\nparticipant,p0001,asked,2026-12-07\nvideo,v0004,no consent,2026-12-07\n")
    meta = pd.read_csv(REPO / "samples" / "metadata.csv", dtype=str, keep_default_na=False)
    items = [Item(r["video_id"], {"row": r}) for r in meta.to_dict("records")] + [Item("file:x.mp4", {"row": None})]
    kept = withhold(items, ledger)
    gone = {i.id for i in items} - {i.id for i in kept}
    assert gone == set(meta[(meta.participant_id == "p0001") | (meta.video_id == "v0004")]["video_id"])
    assert "file:x.mp4" in {i.id for i in kept} and withhold(items, tmp_path / "none.csv") == items
