"""`piq shard`: the released WebDataset shards, split by identity, with an index and a card.

Reads the manifests of ingest, animate, caption, segment and relight (docs/DATA.md). The plan
(main process, no image decoding) joins them into one record per identity set, refuses a set
that misses a required part (reason codes in docs/DATA.md), assigns every participant to
train / test_id / test_ood (pipeline/release/splits.py), orders each split's sets by a seeded hash
and packs them into shards of about `target_shard_bytes`. Each shard is then one runner item:
a pure function that reads its sets' files and returns the tar (webdataset's TarWriter, fixed
member metadata: byte-identical for the same inputs) and its stats; the runner writes the tar
under a temporary name, renames it, then the stats, then its record. Refused sets are items
too (they raise their `Reject`), so they land in rejects.parquet with their reason.

After the shards: per split `index.json` (names, keys, counts, bytes, sha256) and
`sets.parquet` (one row per image: pose, expression, captions; for the card and the browser),
the dataset card `README.md` with its histograms, and `stats.json` last.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pipeline.release.card import EXPRESSION, POSE, write_card
from pipeline.config.runner import RunnerParams
from pipeline.config.shard import ShardParams
from pipeline.labels import LABEL_NAMES
from pipeline.engine.manifest import write_frame
from pipeline.config.params import load_params
from pipeline.release.removals import read_ledger
from pipeline.engine.runner import Runner
from pipeline.release.shards import sample_digest, shard_name, shard_stats, tar_bytes
from pipeline.release.splits import SPLITS, split_all
from pipeline.engine.stage import Item, ItemContext, Output, Reject, Stage
from pipeline.engine.state import atomic_write_bytes, atomic_write_json

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


@dataclasses.dataclass
class ShardStage(Stage):
    """One shard -> its tar and stats (bytes). Refused sets raise their reason."""

    params: ShardParams
    plan_digest: str = ""  # in the fingerprint: changed inputs rebuild the shards
    name: ClassVar[str] = "shard"
    manifest_columns: ClassVar[dict[str, str]] = {"shard": "string", "split": "string", "set_ids": "object",
                                                  "n_samples": "int64", "bytes": "int64", "sha256": "string"}

    def process(self, item: Item, ctx: ItemContext) -> Output:
        if "reject" in item.data:
            raise Reject(*item.data["reject"])
        samples = []
        for rec in item.data["sets"]:
            fields = {field: Path(path).read_bytes() for field, path in rec["files"]}
            fields.update({field: text.encode() for field, text in rec.get("texts", [])})
            fields["meta.json"] = json.dumps(rec["meta"], indent=1, sort_keys=True).encode()
            samples.append((rec["set_id"], fields))
        data = tar_bytes(samples)
        stats = {**shard_stats(f"{item.id}.tar", samples, data), "split": item.data["split"],
                 "sample_sha256": {key: sample_digest(fields) for key, fields in samples}}
        split = item.data["split"]
        files = {f"{split}/{item.id}.tar": data,
                 f"{split}/{item.id}.stats.json": json.dumps(stats, indent=1, sort_keys=True).encode()}
        row = {"shard": item.id, "split": split, "set_ids": stats["keys"], "n_samples": len(samples),
               "bytes": len(data), "sha256": stats["sha256"]}
        return Output(rows=[row], files=files)


def write_indexes(out: Path, plan: ReleasePlan) -> dict[str, dict[str, Any]]:
    """`<split>/index.json` and `<split>/sets.parquet` of the shards that were written."""
    summary = {}
    for split in SPLITS:
        folder = out / split
        folder.mkdir(parents=True, exist_ok=True)
        entries, rows = [], []
        for name in (n for n in plan.shards if n.startswith(f"{split}-")):
            stats_path = folder / f"{name}.stats.json"
            if not stats_path.exists():
                continue
            st = json.loads(stats_path.read_text())
            entries.append({k: st[k] for k in ("samples", "bytes", "sha256", "keys", "sample_sha256")} | {"name": st["shard"]})
            for key in st["keys"]:
                meta = plan.sets[key]["meta"]
                for img in meta["images"]:
                    rows.append({"set_id": key, "shard": st["shard"], "split": split, "participant_id": meta["participant_id"],
                                 "video_id": meta["video_id"], "image": img["index"], "caption": img["caption"],
                                 **{c: img.get(c) for c in IMAGE_COLUMNS}})
        index = {"split": split, "n_shards": len(entries), "n_samples": sum(e["samples"] for e in entries),
                 "bytes": sum(e["bytes"] for e in entries), "shards": entries}
        if not entries:
            index["empty"] = plan.empty.get(split) or "no set was released in this split"
        atomic_write_json(folder / "index.json", index)
        frame = pd.DataFrame(rows, columns=["set_id", "shard", "split", "participant_id", "video_id", "image", "caption",
                                            *IMAGE_COLUMNS])
        tmp = folder / ".sets.parquet.tmp"
        write_frame(frame, tmp)
        atomic_write_bytes(folder / "sets.parquet", tmp.read_bytes())
        tmp.unlink()
        summary[split] = {"shards": index["n_shards"], "sets": index["n_samples"], "bytes": index["bytes"]}
    return summary


def _index_keys(folder: Path) -> list[str]:
    index = folder / "index.json"
    return [k for e in json.loads(index.read_text())["shards"] for k in e["keys"]] if index.is_file() else []


def build_release(p: ShardParams, runner: RunnerParams, seed: int, removals: str | Path | None = None) -> dict[str, Any]:
    """Plan, write the shards (resumably), then the indexes, the card and stats.json last."""
    out = Path(p.out_dir)
    plan = plan_release(p, removals)
    for split, why in plan.empty.items():  # said before the long part, so a user can stop and change the rule
        print(f"shard: {split} will be empty: {why}", file=sys.stderr, flush=True)
    for tmp in out.glob("*/.*.tmp-*"):  # what a killed writer left under a temporary name
        tmp.unlink()
    summary = Runner(runner, seed).run(ShardStage(p, plan.digest()), plan.items(), out)
    (out / "stats.json").unlink(missing_ok=True)  # complete only once the index and card exist
    for split in SPLITS:  # tars that an earlier plan wrote and this one does not name
        for stale in sorted((out / split).glob("*.tar")) if (out / split).is_dir() else []:
            if stale.stem not in plan.shards:
                stale.unlink()
                stale.with_suffix(".stats.json").unlink(missing_ok=True)
    splits = write_indexes(out, plan)
    released = {k for split in SPLITS for k in _index_keys(out / split)}
    write_card(out, [plan.sets[k]["meta"] for k in sorted(released)], splits, pd.read_parquet(out / "rejects.parquet"),
               plan.empty, len(read_ledger(removals).entries))
    stats = {**summary.stats, "splits": splits, "images_per_set": plan.n_images, "relit_per_image": plan.n_relit,
             "sets_refused": dict(sorted(Counter(c for c, _ in plan.refused.values()).items())),
             "sets_withheld": plan.withheld, "removals_in_ledger": len(read_ledger(removals).entries), "empty_splits": dict(sorted(plan.empty.items()))}
    atomic_write_json(out / "stats.json", stats)
    return stats


def main(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    stats = build_release(params.shard, params.runner, params.seed, params.removals)
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(params.shard.out_dir) / "stats.json", report)
    per_split = ", ".join(f"{k} {v['sets']} sets / {v['shards']} shards" for k, v in stats["splits"].items())
    print(f"shard: {per_split}; sets refused: {stats['sets_refused']} -> {params.shard.out_dir}")
    return 0 if stats["complete"] else 1


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", default="reports/shard_stats.json", help="where to copy stats.json (stats without timings)")
