"""Release shards: schema checks, deterministic tars written by webdataset, the release schema, lazy decoding."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from pipeline.labels import INNER_FACE, LABEL_IDS
from pipeline.release.shards import LazySetSample, ShardError, decode_sample, finished_shards, iter_raw_samples, tar_bytes


def fields(n: int = 1) -> dict[str, bytes]:
    return {"meta.json": json.dumps({"images": []}).encode(), **{f"i{k:02d}.jpg": b"x" for k in range(n)}}


def test_keys_and_fields_are_checked() -> None:
    with pytest.raises(ShardError, match="no '.'"):
        tar_bytes([("v1.f2", fields())])
    with pytest.raises(ShardError, match="the shard has"):
        tar_bytes([("v1", fields(1)), ("v2", fields(2))])
    with pytest.raises(ShardError, match="outside the schema"):
        tar_bytes([("v1", {**fields(), "notes.txt": b""})])
    with pytest.raises(ShardError, match="at least one"):
        tar_bytes([])


def test_tars_are_written_by_webdataset_and_byte_identical() -> None:
    samples = [(f"s{k}", {"meta.json": b"{}", "i00.jpg": bytes([k]) * 100}) for k in range(3)]
    first, again = tar_bytes(samples), tar_bytes([(k, dict(f)) for k, f in samples])
    assert first == again
    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["s0.i00.jpg", "s0.meta.json", "s1.i00.jpg", "s1.meta.json", "s2.i00.jpg", "s2.meta.json"]
    assert {(m.mtime, m.uname, m.gname, m.mode) for m in members} == {(0, "piq", "piq", 0o644)}


def test_release_follows_the_schema(tiny_shards: Path) -> None:
    shards = finished_shards(tiny_shards)
    assert len(shards) == 3
    for shard in shards:
        (key, raw), = list(iter_raw_samples(shard))
        assert "." not in key
        assert sorted(raw) == sorted(["meta.json"] + [f"i{i:02d}.{ext}" for i in range(3)
                                                      for ext in ("jpg", "txt", "seg.png", "r1.jpg", "r2.jpg")])
        sample = decode_sample(key, raw)
        meta = sample.meta
        assert meta["set_id"] == key and meta["n_expressive"] == 2 and meta["n_relit"] == 2 and meta["split"] == "train"
        assert meta["backends"] == {"animate": "standin-warp", "caption": "standin-attributes",
                                    "segment": "standin-ellipses", "relight": "standin-lambert"}
        assert meta["license"] == "public domain" and meta["consent"].startswith("not required")
        assert [img["index"] for img in meta["images"]] == ["i00", "i01", "i02"]
        assert meta["images"][0]["kind"] == "neutral" and meta["images"][0]["driving_video"] is None
        assert meta["images"][1]["driving_video"].startswith("d") and len(meta["images"][1]["relit"]) == 2
        assert len(meta["source"]["landmarks"]) == 5
        for index in sample.indices:
            img, labels = sample.images[index], sample.labels[index]
            assert img.shape == (64, 64, 3) and labels.shape == (64, 64)
            inner = np.isin(labels, [LABEL_IDS[n] for n in INNER_FACE])
            assert 0.05 < inner.mean() < 0.6, "the label map covers the face, not the frame"
            assert all(np.abs(r.astype(int) - img.astype(int)).mean() > 2 for r in sample.relit[index]), "relit differs"
            assert sample.caption(index).startswith("a photo of a person")
        assert not np.array_equal(sample.images["i00"], sample.images["i01"]), "expressive images differ"


def test_lazy_sample_decodes_only_what_is_asked(tiny_shards: Path, monkeypatch) -> None:
    import pipeline.release.shards as shards_module

    key, raw = next(iter_raw_samples(finished_shards(tiny_shards)[0]))
    eager = decode_sample(key, raw)
    calls = []
    real = shards_module.decode_image
    monkeypatch.setattr(shards_module, "decode_image", lambda data, what="image": calls.append(what) or real(data, what))
    lazy = LazySetSample(key, raw)
    assert lazy.indices == ["i00", "i01", "i02"] and calls == []
    assert np.array_equal(lazy.images["i01"], eager.images["i01"]) and np.array_equal(lazy.labels["i01"], eager.labels["i01"])
    assert len(lazy.relit["i01"]) == 2 and np.array_equal(lazy.relit["i01"][1], eager.relit["i01"][1])
    assert calls == ["i01.jpg", "i01.seg.png", "i01.r2.jpg"]
