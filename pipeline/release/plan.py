"""The release plan: the upstream manifests joined into one record per identity set, refusals
with their reason codes (docs/DATA.md), every participant's split and the shards to write.

Made in the main process without decoding an image (file sizes give exact tar sizes), so a
release can be planned, digested and compared before a byte is written; `piq shard`
(stages/shard.py) then writes each planned shard as one runner item.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.release.card import EXPRESSION, POSE
from pipeline.config.shard import ShardParams
from pipeline.labels import LABEL_NAMES
from pipeline.release.removals import read_ledger
from pipeline.release.shards import shard_name
from pipeline.release.splits import SPLITS, split_all
from pipeline.engine.stage import Item
from pipeline.rejection import Reject

UPSTREAM = ("ingest", "animate", "caption", "segment", "relight")
TAR_BLOCK, TAR_RECORD = 512, 10240  # a member is a header block + its data padded to blocks; a tar ends on a record
IMAGE_COLUMNS = ("kind", "driving_video", "driver_label", "motion_magnitude", *POSE, *EXPRESSION)


def _member_bytes(size: int) -> int:
    return TAR_BLOCK + -(-size // TAR_BLOCK) * TAR_BLOCK


def _tar_size(members_bytes: int) -> int:
    """Exact size of a tar holding members of `members_bytes` (two zero blocks, record padding)."""
    return -(-(members_bytes + 2 * TAR_BLOCK) // TAR_RECORD) * TAR_RECORD


def _clean(value: Any) -> Any:
    """A manifest cell as plain JSON data: numpy scalars unwrapped, NaN -> None, JSON text parsed."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if value is pd.NA or value is None:
        return None
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _read_manifest(root: Path, stage: str) -> pd.DataFrame:
    if not (root / "stats.json").exists() or not json.loads((root / "stats.json").read_text()).get("complete"):
        raise FileNotFoundError(f"{root} is not a complete `{stage}` output (no stats.json marked complete): "
                                f"run `dvc repro {stage}` first")
    return pd.read_parquet(root / "manifest.parquet")


def file_problem(path: Path) -> str:
    """'' when the file exists and looks whole (JPEG/PNG start and end markers), else why not."""
    if not path.is_file():
        return f"{path.name} does not exist"
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(max(0, size - 12))
        tail = fh.read()
    if path.suffix == ".png":
        ok = head == b"\x89PNG\r\n\x1a\n" and tail.endswith(b"IEND\xaeB`\x82")
    else:
        ok = head[:2] == b"\xff\xd8" and tail.rstrip(b"\x00").endswith(b"\xff\xd9")
    return "" if ok else f"{path.name} is truncated or not a {path.suffix[1:].upper()} file"


@dataclasses.dataclass
class ReleasePlan:
    """Every set (record or refusal), the split of each participant, the shards to write."""

    sets: dict[str, dict[str, Any]]  # set_id -> {"split", "files": [[field, path]], "meta", "bytes"}
    refused: dict[str, tuple[str, str]]  # set_id -> (code, detail)
    shards: dict[str, list[str]]  # "train-000000" -> set ids, in file order
    n_images: int
    n_relit: int
    empty: dict[str, str] = dataclasses.field(default_factory=dict)  # split -> why it has no set
    withheld: int = 0  # sets of people / clips in the removal ledger, left out

    def items(self) -> list[Item]:
        items = [Item(name, {"split": name.rsplit("-", 1)[0], "sets": [self.sets[s] for s in ids]})
                 for name, ids in self.shards.items()]
        items += [Item(set_id, {"reject": list(reason)}) for set_id, reason in sorted(self.refused.items())]
        return items

    def digest(self) -> str:
        blob = json.dumps({"shards": self.shards, "sets": self.sets}, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()


def _mode(values: list[int]) -> int:
    counts = Counter(values)
    return max(counts, key=lambda v: (counts[v], v)) if counts else 0


def plan_release(p: ShardParams, removals: str | Path | None = None) -> ReleasePlan:
    roots = {s: Path(getattr(p, f"{s}_dir")) for s in UPSTREAM}
    frames = {s: _read_manifest(roots[s], s) for s in UPSTREAM}
    ingest = {r["face_id"]: r for r in frames["ingest"].to_dict("records")}
    animate = frames["animate"].sort_values(["face_id", "image"])
    captions = {(r["face_id"], r["image"]): r for r in frames["caption"].to_dict("records")}
    segments = {(r["face_id"], r["image"]): r for r in frames["segment"].to_dict("records")}
    relit: dict[tuple[str, str], dict[str, dict]] = {}
    for r in frames["relight"].to_dict("records"):
        relit.setdefault((r["face_id"], r["image"]), {})[r["variant"]] = r
    by_face = {face: g.to_dict("records") for face, g in animate.groupby("face_id", sort=True)}
    ledger = read_ledger(removals)
    withheld = {f for f in by_face if f in ingest and ledger.excludes(ingest[f].get("participant_id"), ingest[f].get("video_id"))}
    by_face = {f: rows for f, rows in by_face.items() if f not in withheld}
    n_images = _mode([len(rows) for rows in by_face.values()])
    n_relit = _mode([len(v) for v in relit.values()])
    sets: dict[str, dict[str, Any]] = {}
    refused: dict[str, tuple[str, str]] = {}
    for face, rows in by_face.items():
        try:
            sets[face] = _set_record(face, rows, ingest, captions, segments, relit, roots, n_images, n_relit)
        except Reject as rej:
            refused[face] = (rej.code, rej.detail)
    videos: dict[str, set[str]] = {}
    for rec in sets.values():
        videos.setdefault(rec["meta"]["participant_id"], set()).add(rec["meta"]["video_id"])
    split_of, empty = split_all(videos, p.split_seed, p.test_id_fraction, p.test_ood_fraction, p.ood_min_videos,
                                p.hold_out_min_identities)
    for rec in sets.values():
        rec["meta"]["split"] = rec["split"] = split_of[rec["meta"]["participant_id"]]
        rec["bytes"] += _member_bytes(len(json.dumps(rec["meta"], indent=1, sort_keys=True).encode()))
    return ReleasePlan(sets, refused, _pack(sets, p), n_images, n_relit, empty, len(withheld))


def _pack(sets: dict[str, dict[str, Any]], p: ShardParams) -> dict[str, list[str]]:
    """Shards of at most `target_shard_bytes` per split (exact: tar sizes are computed from the
    file sizes; a single larger set gets a shard of its own); sets in a seeded hash order, so a
    shard mixes identities and the order does not depend on how the manifests were sorted."""
    shards: dict[str, list[str]] = {}
    for split in SPLITS:
        ids = sorted((s for s, r in sets.items() if r["split"] == split),
                     key=lambda s: hashlib.blake2b(f"{p.split_seed}/order/{s}".encode(), digest_size=8).digest())
        current: list[str] = []
        size = 0
        for set_id in ids:
            full = current and (_tar_size(size + sets[set_id]["bytes"]) > p.target_shard_bytes
                                or (p.max_sets_per_shard and len(current) >= p.max_sets_per_shard))
            if full:
                shards[shard_name(split, sum(n.startswith(f"{split}-") for n in shards))] = current
                current, size = [], 0
            current.append(set_id)
            size += sets[set_id]["bytes"]
        if current:
            shards[shard_name(split, sum(n.startswith(f"{split}-") for n in shards))] = current
    return shards


def _set_record(face: str, rows: list[dict], ingest: dict, captions: dict, segments: dict, relit: dict,
                roots: dict[str, Path], n_images: int, n_relit: int) -> dict[str, Any]:
    """The files and meta.json of one set, or `Reject` naming what is missing."""
    if face not in ingest:
        raise Reject("missing_ingest_row", f"{face} is in data/animate but not in the ingest manifest")
    src = {k: _clean(v) for k, v in ingest[face].items()}
    indices = [r["image"] for r in rows]
    expected = [f"i{k:02d}" for k in range(n_images)]
    if len(indices) < n_images or sorted(indices) != expected[: len(indices)]:
        missing = sorted(set(expected) - set(indices))
        raise Reject("missing_image", f"{face}: {len(indices)} of {n_images} images; missing {missing[:5]}")
    if len(indices) > n_images:
        raise Reject("inconsistent_set", f"{face}: {len(indices)} images where the release has {n_images}")
    files: list[list[str]] = []
    texts: list[list[str]] = []  # [field, text]: each image's caption as its own member (`iNN.txt`)
    images, backends = [], {s: set() for s in ("animate", "caption", "segment", "relight")}
    for row in rows:
        index = row["image"]
        cap = captions.get((face, index))
        if cap is None or not str(cap.get("caption") or "").strip():
            raise Reject("missing_caption", f"{face}/{index}: no caption")
        seg = segments.get((face, index))
        if seg is None:
            raise Reject("missing_label_map", f"{face}/{index}: no label map")
        variants = relit.get((face, index), {})
        wanted = [f"r{k}" for k in range(1, n_relit + 1)]
        if sorted(variants) != wanted:
            raise Reject("missing_relit", f"{face}/{index}: relit variants {sorted(variants)}, the release has {wanted}")
        parts = [(f"{index}.jpg", roots["animate"] / row["path"]), (f"{index}.seg.png", roots["segment"] / seg["path"])]
        parts += [(f"{index}.{v}.jpg", roots["relight"] / variants[v]["path"]) for v in wanted]
        for field, path in parts:
            problem = file_problem(path)
            if problem:
                raise Reject("unreadable_file", f"{face}/{field}: {problem}")
            files.append([field, str(path)])
        texts.append([f"{index}.txt", str(cap["caption"])])
        for stage, r in (("animate", row), ("caption", cap), ("segment", seg), *(("relight", variants[v]) for v in wanted)):
            backends[stage].add(str(r.get("backend")))
        images.append({
            "index": index, **{c: _clean(row.get(c)) for c in IMAGE_COLUMNS}, "caption": str(cap["caption"]),
            "label_counts": _label_counts(_clean(seg.get("label_counts"))),
            "relit": [{"variant": v, **{c: _clean(variants[v].get(c)) for c in ("envmap", "rotation_deg", "light_dir", "color_temp_k")}}
                      for v in wanted],
        })
    meta = {
        "set_id": face, "participant_id": src["participant_id"], "video_id": src["video_id"], "frame": src.get("frame"),
        "category": src.get("category"), "n_expressive": n_images - 1, "n_relit": n_relit,
        "labels": {str(i): n for i, n in enumerate(LABEL_NAMES)}, "label_names": list(LABEL_NAMES), "images": images,
        "source": {k: src.get(k) for k in ("bbox", "landmarks", "landmarks_crop", "crop_box")},
        "license": src.get("license") or None, "consent": src.get("consent") or None,
        "backends": {s: ",".join(sorted(b)) for s, b in backends.items()},
    }
    size = sum(_member_bytes(Path(path).stat().st_size) for _, path in files)  # + meta.json, once the split is known
    size += sum(_member_bytes(len(text.encode())) for _, text in texts)
    return {"set_id": face, "files": files, "texts": texts, "meta": meta, "bytes": size, "split": ""}


def _label_counts(counts: Any) -> dict[str, int]:
    """Pixels per canonical label, every label named (0 where absent): the same keys in every
    image, so a reader that infers a schema (Hugging Face `datasets`) sees one struct."""
    counts = counts if isinstance(counts, dict) else {}
    return {name: int(counts.get(name, 0)) for name in LABEL_NAMES}
