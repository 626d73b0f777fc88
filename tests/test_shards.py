"""Release shards: schema checks, atomic completion, resumption, and the dev-shards stand-ins."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.labels import INNER_FACE, LABEL_IDS
from pipeline.shards import ShardError, decode_sample, finished_shards, iter_raw_samples, write_shard, write_shards


def fields(n: int = 1) -> dict[str, bytes]:
    return {"meta.json": json.dumps({"images": []}).encode(), **{f"i{k:02d}.jpg": b"x" for k in range(n)}}


def test_keys_and_fields_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ShardError, match="no '.'"):
        write_shard(tmp_path / "a.tar", [("v1.f2", fields())])
    with pytest.raises(ShardError, match="the shard has"):
        write_shard(tmp_path / "a.tar", [("v1", fields(1)), ("v2", fields(2))])
    with pytest.raises(ShardError, match="outside the schema"):
        write_shard(tmp_path / "a.tar", [("v1", {**fields(), "notes.txt": b""})])
    assert not list(tmp_path.iterdir())


def test_stats_mark_completion_and_finished_shards_are_kept(tmp_path: Path) -> None:
    samples = [(f"s{k}", fields()) for k in range(5)]
    stats = write_shards(iter(samples), tmp_path, "train", 2)
    assert [s["samples"] for s in stats] == [2, 2, 1]
    assert [p.name for p in finished_shards(tmp_path)] == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    # an unfinished shard (tar without stats) is rewritten; a finished one is not touched
    (tmp_path / "train-000001.stats.json").unlink()
    (tmp_path / "train-000001.tar").write_bytes(b"half-written")
    before = (tmp_path / "train-000000.tar").stat().st_mtime_ns
    write_shards(iter(samples), tmp_path, "train", 2)
    assert (tmp_path / "train-000000.tar").stat().st_mtime_ns == before
    assert [k for k, _ in iter_raw_samples(tmp_path / "train-000001.tar")] == ["s2", "s3"]


def test_dev_shards_follow_the_release_schema(tiny_shards: Path) -> None:
    shards = finished_shards(tiny_shards)
    assert len(shards) == 3
    for shard in shards:
        (key, raw), = list(iter_raw_samples(shard))
        assert "." not in key
        assert sorted(raw) == sorted(["meta.json"] + [f"i{i:02d}.{ext}" for i in range(3) for ext in ("jpg", "seg.png", "r1.jpg", "r2.jpg")])
        sample = decode_sample(key, raw)
        assert sample.meta["n_expressive"] == 2 and sample.meta["backends"]["relight"] == "lambert-ellipsoid"
        for index in sample.indices:
            img, labels = sample.images[index], sample.labels[index]
            assert img.shape == (64, 64, 3) and labels.shape == (64, 64)
            inner = np.isin(labels, [LABEL_IDS[n] for n in INNER_FACE])
            assert 0.05 < inner.mean() < 0.6, "the coarse label map covers the face, not the frame"
            assert all(np.abs(r.astype(int) - img.astype(int)).mean() > 2 for r in sample.relit[index]), "relit differs"
            assert sample.caption(index).startswith("a photo of a person")
        assert not np.array_equal(sample.images["i00"], sample.images["i01"]), "re-posed stand-ins differ"
