"""A release's per-split index: `<split>/index.json` (shards, keys, counts, bytes, sha256) and
`<split>/sets.parquet` (one row per image: pose, expression, captions; for the card and the
browser), written from the shards' stats once they exist.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.engine.manifest import write_frame
from pipeline.release.splits import SPLITS
from pipeline.engine.outdir import atomic_write_bytes, atomic_write_json

from pipeline.release.plan import IMAGE_COLUMNS, ReleasePlan


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


def index_keys(folder: Path) -> list[str]:
    index = folder / "index.json"
    return [k for e in json.loads(index.read_text())["shards"] for k in e["keys"]] if index.is_file() else []
