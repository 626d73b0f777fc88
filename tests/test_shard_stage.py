"""The `shard` stage: identity-disjoint stable splits, refused sets with reasons, byte-identical
reruns, resumption after a half-written shard, the index and the dataset card."""
from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import cv2
import pandas as pd
import pyarrow.compute as pc
import pytest

from pipeline.config.runner import RunnerParams
from pipeline.release.reader import resolve_shards
from pipeline.engine.state import StageState
from pipeline.release.shards import finished_shards
from pipeline.release.splits import assign_split
from stages.shard import build_release
from tests.fixtures.portraits import make_fake_ingest
from tests.fixtures.release import make_upstream, shard_params

RUN = RunnerParams(workers=0, progress=False, reports_dir="")


def test_split_is_a_stable_seeded_hash_of_the_participant() -> None:
    ids = [f"p{k:05d}" for k in range(4000)]
    splits = {p: assign_split(p, 2, 0, 0.1, 0.05) for p in ids}
    shares = {s: sum(v == s for v in splits.values()) / len(ids) for s in ("train", "test_id", "test_ood")}
    assert abs(shares["test_ood"] - 0.05) < 0.015 and abs(shares["test_id"] - 0.1) < 0.02
    more = {p: assign_split(p, 2, 0, 0.1, 0.05) for p in ids + [f"q{k}" for k in range(500)]}
    assert all(more[p] == s for p, s in splits.items()), "adding identities moves none"
    assert sum(assign_split(p, 2, 1, 0.1, 0.05) != s for p, s in splits.items()) > 100, "the seed matters"
    ood = [p for p, s in splits.items() if s == "test_ood"]
    assert {assign_split(p, 1, 0, 0.1, 0.05) for p in ood} == {"test_id"}, "one clip: held in test_id, never train"


@pytest.fixture(scope="module")
def people(tmp_path_factory) -> tuple[Path, Path]:
    """An ingest of 8 participants with two clips each (16 sets) and its upstream outputs."""
    root = tmp_path_factory.mktemp("people")
    base = make_fake_ingest(root / "base", size=48)
    faces = pd.read_parquet(base / "manifest.parquet")
    ingest = root / "ingest"
    (ingest / "faces").mkdir(parents=True)
    rows = []
    for p in range(8):
        for clip in range(2):
            src = faces.iloc[(p + clip) % len(faces)].to_dict()
            video = f"v{p:02d}{clip}"
            face_id = f"{video}-f000000"
            shutil.copyfile(base / src["path"], ingest / "faces" / f"{face_id}.jpg")
            rows.append({**src, "item_id": video, "face_id": face_id, "video_id": video, "participant_id": f"p{p:03d}",
                         "path": f"faces/{face_id}.jpg"})
    pd.DataFrame(rows).to_parquet(ingest / "manifest.parquet", index=False)
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    make_upstream(root, ingest, n_expressive=2, n_relit=1, size=32)
    return root, ingest


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_splits_never_share_an_identity_and_reruns_are_byte_identical(people, tmp_path: Path) -> None:
    root, ingest = people
    p = shard_params(root, ingest, out_dir=str(tmp_path / "a"), test_id_fraction=0.3, test_ood_fraction=0.3,
                     target_shard_bytes=60_000)
    stats = build_release(p, RUN, seed=0)
    assert stats["complete"] and sum(s["sets"] for s in stats["splits"].values()) == 16
    owners = {}
    for split in ("train", "test_id", "test_ood"):
        index = json.loads((tmp_path / "a" / split / "index.json").read_text())
        assert index["n_samples"] == sum(e["samples"] for e in index["shards"])
        for entry in index["shards"]:
            tar = tmp_path / "a" / split / entry["name"]
            assert tar.stat().st_size == entry["bytes"] and _sha(tar) == entry["sha256"]
            assert entry["bytes"] <= 60_000 or entry["samples"] == 1, "the size target splits shards"
        for person in pd.read_parquet(tmp_path / "a" / split / "sets.parquet")["participant_id"].unique():
            owners.setdefault(person, set()).add(split)
    assert all(len(s) == 1 for s in owners.values()), f"an identity in two splits: {owners}"
    assert {s for v in owners.values() for s in v} == {"train", "test_id", "test_ood"}
    ood = pd.read_parquet(tmp_path / "a" / "test_ood" / "sets.parquet")
    assert (ood.groupby("participant_id")["video_id"].nunique() >= 2).all(), "OOD identities have two clips"
    # the same inputs into another folder: the same bytes
    build_release(shard_params(root, ingest, out_dir=str(tmp_path / "b"), test_id_fraction=0.3, test_ood_fraction=0.3,
                               target_shard_bytes=60_000), RUN, seed=0)
    tars_a = sorted((tmp_path / "a").glob("*/*.tar"))
    assert [_sha(t) for t in tars_a] == [_sha(tmp_path / "b" / t.parent.name / t.name) for t in tars_a]
    assert (tmp_path / "a" / "train" / "index.json").read_bytes() == (tmp_path / "b" / "train" / "index.json").read_bytes()


def test_a_set_missing_a_part_is_refused_with_its_reason(people, tmp_path: Path) -> None:
    root, ingest = people
    work = tmp_path / "up"
    for stage in ("animate", "caption", "segment", "relight"):
        shutil.copytree(root / stage, work / stage)
    (work / "relight" / "sets" / "v000-f000000" / "i01.r1.jpg").unlink()
    segment = pd.read_parquet(work / "segment" / "manifest.parquet")
    segment = segment[~((segment["face_id"] == "v011-f000000") & (segment["image"] == "i02"))]
    segment.to_parquet(work / "segment" / "manifest.parquet", index=False)
    caption = pd.read_parquet(work / "caption" / "manifest.parquet")
    caption.loc[(caption["face_id"] == "v020-f000000") & (caption["image"] == "i00"), "caption"] = ""
    caption.to_parquet(work / "caption" / "manifest.parquet", index=False)
    relight = pd.read_parquet(work / "relight" / "manifest.parquet")
    relight = relight[~((relight["face_id"] == "v041-f000000") & (relight["image"] == "i01"))]
    relight.to_parquet(work / "relight" / "manifest.parquet", index=False)
    animate = pd.read_parquet(work / "animate" / "manifest.parquet")
    animate = animate[~((animate["face_id"] == "v050-f000000") & (animate["image"] == "i02"))]
    animate.to_parquet(work / "animate" / "manifest.parquet", index=False)
    jpg = work / "animate" / "sets" / "v031-f000000" / "i02.jpg"
    jpg.write_bytes(jpg.read_bytes()[:200])
    stats = build_release(shard_params(work, ingest, test_id_fraction=0.0, test_ood_fraction=0.0), RUN, seed=0)
    rejects = pd.read_parquet(work / "shards" / "rejects.parquet").set_index("item_id")
    assert rejects.loc["v000-f000000", "code"] == "unreadable_file" and "i01.r1.jpg" in rejects.loc["v000-f000000", "detail"]
    assert rejects.loc["v011-f000000", "code"] == "missing_label_map"
    assert rejects.loc["v020-f000000", "code"] == "missing_caption"
    assert rejects.loc["v031-f000000", "code"] == "unreadable_file" and "truncated" in rejects.loc["v031-f000000", "detail"]
    assert rejects.loc["v041-f000000", "code"] == "missing_relit"
    assert rejects.loc["v050-f000000", "code"] == "missing_image" and "i02" in rejects.loc["v050-f000000", "detail"]
    assert stats["sets_refused"] == {"missing_caption": 1, "missing_image": 1, "missing_label_map": 1, "missing_relit": 1,
                                     "unreadable_file": 2}
    released = {k for ref in resolve_shards(work / "shards" / "train") for k in ref.keys}
    assert len(released) == 10 and not released & set(rejects.index)
    card = (work / "shards" / "README.md").read_text()
    assert "| missing_label_map | 1 |" in card and "| unreadable_file | 2 |" in card


def test_half_written_shard_is_never_complete_and_is_rewritten(people, tmp_path: Path) -> None:
    root, ingest = people
    p = shard_params(root, ingest, out_dir=str(tmp_path / "r"), test_id_fraction=0.0, test_ood_fraction=0.0,
                     max_sets_per_shard=4)
    build_release(p, RUN, seed=0)
    split = tmp_path / "r" / "train"
    tar = split / "train-000001.tar"
    good = tar.read_bytes()
    # what kill -9 leaves mid-shard: a tar without its stats file or runner record
    tar.write_bytes(good[: len(good) // 2])
    tar.with_suffix(".stats.json").unlink()
    state = StageState(tmp_path / "r")
    table = state.table()
    state.compact_table(table.filter(pc.not_equal(table["item_id"], "train-000001")))
    (tmp_path / "r" / "stats.json").unlink()
    assert tar not in finished_shards(split)
    stamp = (split / "train-000000.tar").stat().st_mtime_ns
    stats = build_release(p, RUN, seed=0)
    assert stats["complete"] and tar.read_bytes() == good
    assert (split / "train-000000.tar").stat().st_mtime_ns == stamp, "finished shards are not rewritten"


def test_card_counts_and_pictures(people, tmp_path: Path) -> None:
    root, ingest = people
    out = tmp_path / "c"
    build_release(shard_params(root, ingest, out_dir=str(out), test_id_fraction=0.0, test_ood_fraction=0.0), RUN, seed=0)
    card = (out / "README.md").read_text()
    # 16 sets of 3 images: 48 images, 48 label maps, 48 relit, 16 x 3 x 2 = 96 ordered pairs
    assert "| train | 8 | 16 | 48 | 48 | 48 | 96 |" in card
    assert "| public domain | 16 |" in card and "| relight | standin-lambert | 16 |" in card
    for picture in ("pose.png", "expression.png"):
        img = cv2.imread(str(out / picture))
        assert img is not None and img.shape[1] > 600 and img.std() > 5, f"{picture} is a drawn histogram"
        assert f"]({picture})" in card


def test_shard_benchmark_runs_small() -> None:
    """bench/shards.py end to end on a tiny input (not timed: the figures are the script's job)."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "bench/shards.py", "--sets", "2", "--size", "64", "--n-expressive", "1",
                           "--n-relit", "1", "--batches", "1", "--batch", "2", "--resolution", "32", "--big-gb", "0.005"],
                          cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[1:]] == ["write", "read", "train stream (32 px, batch 2)", "browse open"]
    assert "plain copy" in lines[1] and "2 workers" in lines[3]


KILLED_WRITER = """
import sys, time
from pathlib import Path
from pipeline.engine.outdir import OutDir
from pipeline.config.runner import RunnerParams
from stages.shard import build_release
from tests.fixtures.release import shard_params

real = OutDir.write_bytes

def dying(self, rel, data):
    if rel.endswith("train-000001.tar"):  # write half of it under the temporary name, then hang
        path = Path(self.path(rel))
        tmp = path.with_name(f".{path.name}.tmp-0")
        tmp.write_bytes(data[: len(data) // 2])
        print("HALF", flush=True)
        time.sleep(120)
    real(self, rel, data)

OutDir.write_bytes = dying
root, ingest, out = sys.argv[1:4]
p = shard_params(Path(root), Path(ingest), out_dir=out, test_id_fraction=0.0, test_ood_fraction=0.0, max_sets_per_shard=4)
build_release(p, RunnerParams(workers=0, progress=False), 0)
"""


def test_kill_9_while_writing_a_shard_leaves_nothing_that_looks_complete(people, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys

    root, ingest = people
    out = tmp_path / "k"
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(root), str(ingest), str(out)], cwd=repo,
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(repo)})
    assert proc.stdout.readline().strip() == "HALF"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    split = out / "train"
    assert (split / ".train-000001.tar.tmp-0").exists() and not (split / "train-000001.tar").exists()
    assert not (out / "stats.json").exists() and not (split / "index.json").exists()
    assert [p.name for p in finished_shards(split)] == ["train-000000.tar"]
    p = shard_params(root, ingest, out_dir=str(out), test_id_fraction=0.0, test_ood_fraction=0.0, max_sets_per_shard=4)
    stats = build_release(p, RUN, seed=0)
    assert stats["complete"] and not list(split.glob(".*tmp*"))
    clean = tmp_path / "clean"
    build_release(shard_params(root, ingest, out_dir=str(clean), test_id_fraction=0.0, test_ood_fraction=0.0,
                               max_sets_per_shard=4), RUN, seed=0)
    assert [_sha(t) for t in sorted(split.glob("*.tar"))] == [_sha(t) for t in sorted((clean / "train").glob("*.tar"))]
