"""WebDataset shards in the release schema (docs/DATA.md): one sample per identity set.

A shard is the unit of completion: its tar is written under a temporary name and renamed into
place, then its `.stats.json` is written; a tar without stats is unfinished and is rewritten,
a finished shard is never rewritten. Readers only see finished shards.
"""
from __future__ import annotations

import dataclasses
import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any, Iterable, Iterator

import cv2
import numpy as np

from pipeline.state import atomic_write_json

_FIELD = re.compile(r"^(meta\.json|i\d{2}\.jpg|i\d{2}\.seg\.png|i\d{2}\.r\d\.jpg)$")


class ShardError(ValueError):
    """A sample or shard that does not fit the release schema."""


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}"


def finished_shards(shard_dir: str | Path) -> list[Path]:
    """Tars whose stats file exists, in name order."""
    shard_dir = Path(shard_dir)
    return sorted(p for p in shard_dir.glob("*.tar") if p.with_suffix(".stats.json").exists())


def check_sample(key: str, fields: dict[str, bytes]) -> None:
    if not key or "." in key or "/" in key:
        raise ShardError(f"sample key {key!r} must be non-empty and hold no '.' or '/'")
    if "meta.json" not in fields:
        raise ShardError(f"sample {key}: no meta.json")
    bad = [f for f in fields if not _FIELD.match(f)]
    if bad:
        raise ShardError(f"sample {key}: fields outside the schema: {bad}")


def write_shard(path: Path, samples: list[tuple[str, dict[str, bytes]]]) -> dict[str, Any]:
    """Write one finished shard (tar, then stats). Every sample must have the same fields."""
    if not samples:
        raise ShardError(f"{path.name}: no samples")
    field_set = sorted(samples[0][1])
    for key, fields in samples:
        check_sample(key, fields)
        if sorted(fields) != field_set:
            raise ShardError(f"{path.name}: sample {key} has fields {sorted(fields)}, the shard has {field_set}")
    tmp = path.with_name(f".{path.name}.tmp")
    with tarfile.open(tmp, "w") as tar:
        for key, fields in samples:
            for field in field_set:
                data = fields[field]
                info = tarfile.TarInfo(f"{key}.{field}")
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))
    tmp.replace(path)
    stats = {"shard": path.name, "samples": len(samples), "keys": [k for k, _ in samples],
             "fields": field_set, "bytes": path.stat().st_size}
    atomic_write_json(path.with_suffix(".stats.json"), stats)
    return stats


def write_shards(samples: Iterable[tuple[str, dict[str, bytes]]], shard_dir: str | Path, split: str,
                 per_shard: int) -> list[dict[str, Any]]:
    """Pack samples into `<split>-NNNNNN.tar`, skipping shards that are already finished.
    The sample order must be deterministic so a rerun rebuilds the same shards."""
    shard_dir = Path(shard_dir)
    shard_dir.mkdir(parents=True, exist_ok=True)
    batch: list[tuple[str, dict[str, bytes]]] = []
    stats: list[dict[str, Any]] = []
    index = 0

    def flush() -> None:
        nonlocal index, batch
        path = shard_dir / f"{shard_name(split, index)}.tar"
        stats_path = path.with_suffix(".stats.json")
        if stats_path.exists():
            stats.append(json.loads(stats_path.read_text()))
        else:
            stats.append(write_shard(path, batch))
        index, batch = index + 1, []

    for sample in samples:
        batch.append(sample)
        if len(batch) == per_shard:
            flush()
    if batch:
        flush()
    return stats


@dataclasses.dataclass
class SetSample:
    """A decoded identity set. Images are RGB uint8 (H, W, 3); label maps uint8 (H, W)."""

    key: str
    meta: dict[str, Any]
    images: dict[str, np.ndarray]  # "i00" -> image
    labels: dict[str, np.ndarray]  # "i00" -> label map
    relit: dict[str, list[np.ndarray]]  # "i00" -> [r1, r2, ...]

    @property
    def indices(self) -> list[str]:
        return sorted(self.images)

    def caption(self, index: str) -> str:
        return next(img["caption"] for img in self.meta["images"] if img["index"] == index)

    def driving_video(self, index: str) -> str | None:
        return next(img.get("driving_video") for img in self.meta["images"] if img["index"] == index)


def _decode_image(data: bytes, flags: int) -> np.ndarray:
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise ShardError("undecodable image in shard")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def decode_sample(key: str, fields: dict[str, bytes]) -> SetSample:
    images, labels, relit = {}, {}, {}
    for field in sorted(fields):
        parts = field.split(".")
        if field == "meta.json":
            continue
        if len(parts) == 2:
            images[parts[0]] = _decode_image(fields[field], cv2.IMREAD_COLOR)
        elif parts[1] == "seg":
            labels[parts[0]] = _decode_image(fields[field], cv2.IMREAD_UNCHANGED)
        else:
            relit.setdefault(parts[0], []).append(_decode_image(fields[field], cv2.IMREAD_COLOR))
    return SetSample(key, json.loads(fields["meta.json"]), images, labels, relit)


def iter_raw_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) of one tar, in file order."""
    current, fields = None, {}
    with tarfile.open(path) as tar:
        for member in tar:
            if not member.isfile():
                continue
            key, _, field = member.name.partition(".")
            if key != current and current is not None:
                yield current, fields
                fields = {}
            current = key
            fields[field] = tar.extractfile(member).read()
    if current is not None:
        yield current, fields


def read_keys(path: Path) -> list[str]:
    """Sample keys of a finished shard, from its stats file (no decoding)."""
    return json.loads(path.with_suffix(".stats.json").read_text())["keys"]
