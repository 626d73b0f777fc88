"""`piq relight`: K relit variants of every animated image, face and hair only (paper 4.1, A.1).

One item per image of `data/animate` (`<face_id>-<image>`). The image's label map from
`data/segment` gives the pixels that may change (`relight.regions`, face and hair by default);
each variant gets its own environment map (a user's .hdr/.exr files or procedural maps) with a
random rotation from the item's seed, the backend relights, and the result is composited back
through the mask feathered inwards, so every pixel outside the mask keeps its value. `r0`, the
image itself, is not written again. The manifest records each variant's map, rotation, dominant
light direction and colour temperature; `preview.jpg` shows one face's r0..rK side by side.
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

from pipeline.engine.annotate import default_workers, gpu_resources
from pipeline.media.images import encode_jpeg, read_rgb
from pipeline.config.relight import RelightParams
from pipeline.config.params import load_params
from pipeline.rejection import Reject
from pipeline.backends.relighters import build_relighter
from pipeline.faces.paste import composite, feather
from pipeline.backends.relighters.base import Relighter, region_mask
from pipeline.backends.relighters.envmaps import draw_lights, list_envmaps
from pipeline.engine.runner import Runner, end_main
from pipeline.engine.stage import Item, ItemContext, Output, Stage


def list_items(params: RelightParams) -> list[Item]:
    """One item per row of the animate manifest."""
    manifest = Path(params.animate_dir) / "manifest.parquet"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: run `piq animate` first (relight.animate_dir)")
    rows = pd.read_parquet(manifest, columns=["face_id", "image", "path"])
    items = []
    for row in rows.itertuples(index=False):
        items.append(Item(f"{row.face_id}-{row.image}", {
            "face_id": row.face_id, "image": row.image, "path": str(Path(params.animate_dir) / row.path),
            "labels": str(Path(params.segment_dir) / "sets" / row.face_id / f"{row.image}.seg.png"),
        }))
    return items


def read_labels(path: str, shape: tuple[int, int]) -> np.ndarray:
    """The image's label map, resized (nearest) to the image if the segmenter worked at another size."""
    labels = cv2.imread(path, cv2.IMREAD_UNCHANGED) if Path(path).is_file() else None
    if labels is None:
        raise Reject("no_label_map", f"{path} is missing or unreadable (run `piq segment`)")
    if labels.ndim != 2:
        raise Reject("no_label_map", f"{path} has {labels.shape[2]} channels, not a one-channel label map")
    if labels.shape != shape:
        labels = cv2.resize(labels, shape[::-1], interpolation=cv2.INTER_NEAREST)
    return labels


@dataclasses.dataclass
class RelightStage(Stage):
    params: RelightParams
    name: ClassVar[str] = "relight"
    worker_local: ClassVar[tuple[str, ...]] = ("_relighter",)
    manifest_columns: ClassVar[dict[str, str]] = {
        "face_id": "string", "image": "string", "variant": "string", "path": "string", "envmap": "string",
        "rotation_deg": "float64", "light_dir": "object", "color_temp_k": "float64", "exposure": "float64",
        "backend": "string",
    }

    def __post_init__(self) -> None:
        self._relighter: Relighter | None = None
        self._envmaps = list_envmaps(self.params.envmap_dir)

    @property
    def resources(self) -> dict[str, float]:
        """What one Ray actor asks for: a GPU share for a model backend on a GPU."""
        p = self.params
        return gpu_resources(p.backend == "neural_gaffer", p.device, p.num_gpus)

    def fingerprint(self) -> dict[str, Any]:
        maps = [[p.name, p.stat().st_size] for p in self._envmaps]
        return {**super().fingerprint(), "envmaps": maps}

    def setup(self) -> None:
        if self._relighter is None:
            self._relighter = build_relighter(self.params)
            self._relighter.setup()

    @property
    def relighter(self) -> Relighter:
        self.setup()
        return self._relighter

    def process(self, item: Item, ctx: ItemContext) -> Output:
        p, d = self.params, item.data
        image = read_rgb(d["path"])
        mask = region_mask(read_labels(d["labels"], image.shape[:2]), p.regions)
        if mask.mean() < p.min_mask_fraction:
            raise Reject("no_face_mask", f"face and hair cover {mask.mean():.2%} of the image, "
                                         f"below relight.min_mask_fraction {p.min_mask_fraction:.2%}")
        rng = np.random.default_rng(ctx.seed)
        lights = draw_lights(p.variants, rng, files=self._envmaps, kinds=p.procedural_kinds,
                             rotation_deg=p.rotation_deg, exposure=p.exposure, height=p.envmap_width // 2)
        relit = self.relighter.relight(image, mask, lights, seed=int(rng.integers(2**62)))
        alpha = feather(mask, p.feather_px * max(image.shape[:2]) / 1024)
        out = Output()
        for k, (light, new) in enumerate(zip(lights, relit), start=1):
            final = composite(image, new, alpha)
            rel = f"sets/{d['face_id']}/{d['image']}.r{k}.jpg"
            out.files[rel] = encode_jpeg(final, p.jpeg_quality)
            out.rows.append({
                "face_id": d["face_id"], "image": d["image"], "variant": f"r{k}", "path": rel, "envmap": light.name,
                "rotation_deg": light.rotation_deg, "light_dir": json.dumps(light.light_dir),
                "color_temp_k": light.color_temp_k, "exposure": light.exposure, "backend": self.relighter.name,
            })
        return out


def write_preview(params: RelightParams, tile: int = 256) -> Path | None:
    """`preview.jpg`: the first relit image's r0..rK side by side, each captioned with its map."""
    manifest = Path(params.out_dir) / "manifest.parquet"
    if not manifest.is_file():
        return None
    rows = pd.read_parquet(manifest)
    if rows.empty:
        return None
    first = rows.iloc[0]
    rows = rows[(rows.face_id == first.face_id) & (rows.image == first.image)].sort_values("variant")
    animate = pd.read_parquet(Path(params.animate_dir) / "manifest.parquet")
    src = animate[(animate.face_id == first.face_id) & (animate.image == first.image)].iloc[0]
    paths = [(Path(params.animate_dir) / src.path, "r0 original")]
    paths += [(Path(params.out_dir) / r.path, f"{r.variant} {r.envmap.split('(')[0]} {r.rotation_deg:+.0f}deg") for r in rows.itertuples()]
    tiles = []
    for path, text in paths:
        img = cv2.resize(cv2.imread(str(path)), (tile, tile), interpolation=cv2.INTER_AREA)
        band = np.full((22, tile, 3), 255, np.uint8)
        cv2.putText(band, text[:34], (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(np.concatenate([img, band], axis=0))
    out = Path(params.out_dir) / "preview.jpg"
    cv2.imwrite(str(out), np.concatenate(tiles, axis=1), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return out


def run(params: RelightParams, runner_params, seed: int):
    stage = RelightStage(params)
    summary = Runner(runner_params, seed).run(stage, list_items(params), params.out_dir)
    if params.preview:
        write_preview(params)
    return summary


def main(args: argparse.Namespace) -> int:
    all_params = load_params(args.params)
    p = all_params.relight
    workers = args.workers if args.workers is not None else default_workers(
        p.workers, p.backend == "sh", p.device, p.num_gpus, all_params.runner.workers)
    runner_params = dataclasses.replace(all_params.runner, workers=workers)
    summary = run(p, runner_params, all_params.seed)
    stats = summary.stats
    return end_main(stats, f"relight ({p.backend}): {stats['items']} images, {stats['done']} relit ({stats['rows']} "
                           f"variants), {stats['rejected']} refused {stats['reject_codes']}, {summary.skipped} already "
                           f"done -> {p.out_dir}", args.report)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None, help="Ray actors (0 = no Ray); default: relight.workers")
    parser.add_argument("--report", default="reports/relight_stats.json", help="where to copy stats.json (stats without timings)")
