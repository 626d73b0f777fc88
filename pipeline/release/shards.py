"""WebDataset shards in the release schema (docs/DATA.md): one sample per identity set.

Writing goes through `webdataset.TarWriter` with fixed member metadata (mtime 0, owner
`piq`, mode 0644, fields in sorted order), so the same samples always give byte-identical
tars. A shard is the unit of completion: its tar is written under a temporary name and renamed
into place, then its `.stats.json`; a tar without stats is unfinished and is rewritten, a
finished shard is never rewritten. Readers only see finished shards.

Reading: `decode_sample` decodes every image of a set at once (verification, small tools);
`LazySetSample` decodes an image the first time it is asked for, so a training pair pays for
the four images it uses, not for the 147 of a paper-size set. `tar_offsets` lists where each
member's bytes lie in a tar by reading its headers only, which is what lets the browser open a
1 GB shard without reading it.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import re
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import webdataset as wds

from pipeline.media import images

_FIELD = re.compile(r"^(meta\.json|i\d{2}\.jpg|i\d{2}\.txt|i\d{2}\.seg\.png|i\d{2}\.r\d\.jpg)$")
TAR_OWNER = "piq"  # fixed owner/group/mtime: the tar's bytes depend on its samples alone


class ShardError(ValueError):
    """A sample or shard that does not fit the release schema."""


def shard_name(split: str, index: int) -> str:
    return f"{split}-{index:06d}"


def finished_shards(shard_dir: str | Path) -> list[Path]:
    """Tars whose stats file exists, in name order."""
    shard_dir = Path(shard_dir)
    return sorted(p for p in shard_dir.glob("*.tar") if p.with_suffix(".stats.json").exists())


def check_sample(key: str, fields: Mapping[str, bytes]) -> None:
    if not key or "." in key or "/" in key:
        raise ShardError(f"sample key {key!r} must be non-empty and hold no '.' or '/'")
    if "meta.json" not in fields:
        raise ShardError(f"sample {key}: no meta.json")
    bad = [f for f in fields if not _FIELD.match(f)]
    if bad:
        raise ShardError(f"sample {key}: fields outside the schema: {bad}")


def tar_bytes(samples: Sequence[tuple[str, Mapping[str, bytes]]]) -> bytes:
    """The tar of `samples` (in the given order) as bytes, written by webdataset's TarWriter.
    Every sample must have the same fields."""
    if not samples:
        raise ShardError("a shard needs at least one sample")
    field_set = sorted(samples[0][1])
    for key, fields in samples:
        check_sample(key, fields)
        if sorted(fields) != field_set:
            raise ShardError(f"sample {key} has fields {sorted(fields)}, the shard has {field_set}")
    buf = io.BytesIO()
    # mtime an int: a float one makes tarfile add a PAX header to every member
    with wds.TarWriter(buf, encoder=False, user=TAR_OWNER, group=TAR_OWNER, mode=0o644, mtime=0) as sink:
        for key, fields in samples:
            sink.write({"__key__": key, **fields})
    return buf.getvalue()


def shard_stats(name: str, samples: Sequence[tuple[str, Mapping[str, bytes]]], data: bytes) -> dict[str, Any]:
    return {"shard": name, "samples": len(samples), "keys": [k for k, _ in samples], "fields": sorted(samples[0][1]),
            "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def sample_digest(fields: Mapping[str, bytes]) -> str:
    """sha256 over (field name, bytes) in field order: the index keeps one per sample, so
    `verify` names the sample a flipped byte is in."""
    digest = hashlib.sha256()
    for field in sorted(fields):
        digest.update(field.encode() + b"\0" + fields[field])
    return digest.hexdigest()


@dataclasses.dataclass
class SetSample:
    """A decoded identity set. Images are RGB uint8 (H, W, 3); label maps uint8 (H, W)."""

    key: str
    meta: dict[str, Any]
    images: Mapping[str, np.ndarray]  # "i00" -> image
    labels: Mapping[str, np.ndarray]  # "i00" -> label map
    relit: Mapping[str, Sequence[np.ndarray]]  # "i00" -> [r1, r2, ...]

    @property
    def indices(self) -> list[str]:
        return sorted(self.images)

    def caption(self, index: str) -> str:
        return next(img["caption"] for img in self.meta["images"] if img["index"] == index)

    def driving_video(self, index: str) -> str | None:
        return next(img.get("driving_video") for img in self.meta["images"] if img["index"] == index)


def decode_image(data: bytes, what: str = "image") -> np.ndarray:
    """RGB uint8 for a JPEG/PNG photo, uint8 (H, W) for a label map (`.seg.png`)."""
    try:
        return images.decode(data, what)
    except images.ImageError as err:
        raise ShardError(str(err)) from err


def _parse_field(field: str) -> tuple[str, str]:
    """'i03.jpg' -> ('i03', 'image'); 'i03.seg.png' -> ('i03', 'seg'); 'i03.r2.jpg' -> ('i03', 'r2');
    'i03.txt' -> ('i03', 'caption')."""
    parts = field.split(".")
    if len(parts) == 2:
        return parts[0], "caption" if parts[1] == "txt" else "image"
    return parts[0], "seg" if parts[1] == "seg" else parts[1]


class _LazyImages(Mapping):
    """index -> decoded array, decoded on first access and kept."""

    def __init__(self, fields: Mapping[str, bytes], names: dict[str, str]) -> None:
        self._fields, self._names, self._cache = fields, names, {}

    def __getitem__(self, index: str) -> np.ndarray:
        if index not in self._cache:
            name = self._names[index]
            self._cache[index] = decode_image(self._fields[name], name)
        return self._cache[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _LazyVariants(Sequence):
    """The relit variants of one image, each decoded when indexed."""

    def __init__(self, fields: Mapping[str, bytes], names: list[str]) -> None:
        self._images = _LazyImages(fields, {n: n for n in names})
        self._names = names

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self._images[n] for n in self._names[i]]
        return self._images[self._names[i]]

    def __len__(self) -> int:
        return len(self._names)


class LazySetSample(SetSample):
    """A `SetSample` over the raw bytes of a sample: `images[...]`, `labels[...]` and
    `relit[...][k]` decode one image on first access. `fields` keeps the raw bytes."""

    def __init__(self, key: str, fields: Mapping[str, bytes]) -> None:
        images: dict[str, str] = {}
        labels: dict[str, str] = {}
        relit: dict[str, list[str]] = {}
        for field in sorted(fields):
            if field == "meta.json":
                continue
            index, kind = _parse_field(field)
            if kind == "image":
                images[index] = field
            elif kind == "seg":
                labels[index] = field
            elif kind == "caption":
                continue  # the same text as meta.json's caption (`SetSample.caption`)
            else:
                relit.setdefault(index, []).append(field)
        self.fields = fields
        super().__init__(key, json.loads(fields["meta.json"]), _LazyImages(fields, images), _LazyImages(fields, labels),
                         {i: _LazyVariants(fields, names) for i, names in relit.items()})


def decode_sample(key: str, fields: Mapping[str, bytes]) -> SetSample:
    """Every image, label map and relit variant of a set, decoded now."""
    lazy = LazySetSample(key, fields)
    return SetSample(key, lazy.meta, {i: lazy.images[i] for i in lazy.images}, {i: lazy.labels[i] for i in lazy.labels},
                     {i: list(v) for i, v in lazy.relit.items()})


def iter_raw_samples(path: Path) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, {field: bytes}) of one local tar, in file order."""
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


def tar_offsets(path: Path) -> dict[str, dict[str, tuple[int, int]]]:
    """{key: {field: (data offset, size)}} of a local tar, from its headers alone (tarfile
    seeks over the data), so listing a 1 GB shard reads a few hundred KB."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            if member.isfile():
                key, _, field = member.name.partition(".")
                out.setdefault(key, {})[field] = (member.offset_data, member.size)
    return out


def read_range(path: Path, offset: int, size: int) -> bytes:
    with open(path, "rb") as fh:
        fh.seek(offset)
        return fh.read(size)
