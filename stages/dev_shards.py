"""`piq dev-shards`: release-schema shards from the ingest faces, with classical stand-ins.

Until the learned stages (animate, segment, relight, caption) land, this fills the released
schema of docs/DATA.md so the trainer, the sampler and the shard browser can run end to end.
One item per neutral face: its set (the neutral + `n_expressive` re-posed stand-ins, label
maps, `n_relit` relit variants of each, captions, meta.json) is made by the runner, resumably;
finished sets are then packed into shards, a shard at a time, stats written last.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pandas as pd

from pipeline.config.dev_shards import DevShardsParams
from pipeline.faces.standins import Light, Repose, label_map
from pipeline.labels import LABEL_NAMES
from pipeline.params import load_params
from pipeline.runner import Runner
from pipeline.shards import write_shards
from pipeline.stage import Item, ItemContext, Output, Reject, Stage

BACKENDS = {"animate": "landmark-warp+similarity", "segment": "landmark-ellipses",
            "relight": "lambert-ellipsoid", "caption": "applied-attributes"}


def _jpg(rgb: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _png(labels: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", labels)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


@dataclasses.dataclass
class DevSetStage(Stage):
    """One neutral face -> the files of its identity set, under `sets/<set_id>/`."""

    params: DevShardsParams
    name: ClassVar[str] = "dev_shards"
    code_modules: ClassVar[tuple[str, ...]] = ("pipeline.faces.standins",)
    manifest_columns: ClassVar[dict[str, str]] = {"set_id": "string", "participant_id": "string", "n_images": "int64"}

    def process(self, item: Item, ctx: ItemContext) -> Output:
        p, row = self.params, item.data
        bgr = cv2.imread(row["image_path"])
        if bgr is None:
            raise Reject("unreadable_image", f"cannot read {row['image_path']}")
        rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (p.image_size, p.image_size), interpolation=cv2.INTER_AREA)
        lms = np.array(json.loads(row["landmarks_crop"]), float) * (p.image_size / bgr.shape[1])
        rng = np.random.default_rng(ctx.seed)
        neutral_labels = label_map(rgb.shape[:2], lms)
        images = [("i00", rgb, neutral_labels, None, "a photo of a person looking at the camera with a neutral expression, head upright")]
        for k in range(1, p.n_expressive + 1):
            repose = Repose.draw(rng, p.max_rotate_deg, p.max_shift)
            img, labels, _ = repose.apply(rgb, neutral_labels, lms)
            images.append((f"i{k:02d}", img, labels, f"d{int(rng.integers(0, 200)):03d}", repose.caption()))
        out = Output()
        prefix = f"sets/{item.id}/"
        meta_images = []
        for index, img, labels, driving, caption in images:
            out.files[f"{prefix}{index}.jpg"] = _jpg(img, p.jpeg_quality)
            out.files[f"{prefix}{index}.seg.png"] = _png(labels)
            relit = []
            for r in range(1, p.n_relit + 1):
                light = Light.draw(rng)
                out.files[f"{prefix}{index}.r{r}.jpg"] = _jpg(light.apply(img, labels), p.jpeg_quality)
                relit.append({"variant": f"r{r}", "envmap": light.name})
            meta_images.append({"index": index, "kind": "neutral" if index == "i00" else "expressive",
                                "driving_video": driving, "caption": caption, "relit": relit})
        meta = {
            "set_id": item.id, "participant_id": row["participant_id"], "video_id": row["video_id"],
            "frame": int(row["frame"]), "category": row["category"], "n_expressive": p.n_expressive,
            "n_relit": p.n_relit, "labels": {str(i): n for i, n in enumerate(LABEL_NAMES)}, "images": meta_images,
            "source": {k: json.loads(row[k]) for k in ("bbox", "landmarks", "crop_box")}, "backends": BACKENDS,
        }
        out.files[f"{prefix}meta.json"] = json.dumps(meta, indent=1).encode()
        out.rows.append({"set_id": item.id, "participant_id": row["participant_id"], "n_images": len(images)})
        return out


def list_items(params: DevShardsParams) -> list[Item]:
    ingest = Path(params.ingest_dir)
    manifest = pd.read_parquet(ingest / "manifest.parquet")
    items = []
    for row in manifest.sort_values("face_id").to_dict("records"):
        data = {k: (v if not isinstance(v, (np.integer, np.floating)) else v.item()) for k, v in row.items()}
        data["image_path"] = str(ingest / row["path"])
        items.append(Item(row["face_id"], data))
    return items


def iter_set_samples(sets_dir: Path, set_ids: list[str]) -> Any:
    """(key, fields) of finished sets in the given order."""
    for set_id in set_ids:
        folder = sets_dir / set_id
        yield set_id, {f.name: f.read_bytes() for f in sorted(folder.iterdir()) if not f.name.startswith(".")}


def main(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    p = params.dev_shards
    items = list_items(p)
    summary = Runner(params.runner, params.seed).run(DevSetStage(p), items, p.out_dir)
    done = sorted(pd.read_parquet(Path(p.out_dir) / "manifest.parquet")["set_id"])
    shards = write_shards(iter_set_samples(Path(p.out_dir) / "sets", done), p.shard_dir, p.split, p.sets_per_shard)
    print(f"dev-shards: {len(done)} sets ({summary.stats['rejected']} refused) -> {len(shards)} shards in {p.shard_dir}")
    return 0 if summary.stats["complete"] else 1
