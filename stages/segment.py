"""`piq segment`: a face-parsing label map for every animated image (paper 4.1).

One item per image of `data/animate` (`<face_id>-<image>`). The parser named by
`segment.backend` (the paper's SegFormer, or the offline dense-mesh parser) gives a one-channel
8-bit map of canonical ids (pipeline/labels.py), written as `sets/<face_id>/<image>.seg.png` at
the image's size, so training can compose inner face, hair and neck and erode them later. Model
backends get `segment.batch_size` images per call from the runner. `preview.jpg` overlays one
face's maps on its images.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from pipeline.engine.annotate import ImageBatchStage, add_annotation_arguments, annotation_main, preview_images, run_annotation
from pipeline.media.images import encode_png
from pipeline.config.segment import SegmentParams
from pipeline.labels import LABEL_NAMES
from pipeline.backends.parsers import build_parser
from pipeline.rejection import Reject
from pipeline.engine.stage import Item, ItemContext, Output

# Overlay colours of the preview, one per canonical id (background black = untouched).
PALETTE = np.array([
    [0, 0, 0], [204, 153, 102], [255, 128, 0], [128, 128, 255], [0, 200, 255], [0, 120, 255],
    [150, 80, 0], [100, 60, 0], [255, 200, 150], [255, 170, 120], [255, 0, 0], [220, 20, 120],
    [255, 60, 160], [120, 60, 20], [80, 80, 80], [255, 255, 0], [200, 200, 0], [255, 220, 180], [60, 60, 160],
], np.uint8)


@dataclasses.dataclass
class SegmentStage(ImageBatchStage):
    params: SegmentParams
    name: ClassVar[str] = "segment"
    manifest_columns: ClassVar[dict[str, str]] = {
        "face_id": "string", "image": "string", "path": "string", "label_counts": "string", "backend": "string",
    }

    offline_backend: ClassVar[str] = "mesh"

    def build(self):
        return build_parser(self.params)

    def annotate(self, images: list[np.ndarray], items: list[Item], ctxs: list[ItemContext]) -> list[Output | Reject]:
        return [labels if isinstance(labels, Reject) else self._output(item, labels)
                for item, labels in zip(items, self.backend.parse(images))]

    def _output(self, item: Item, labels: np.ndarray) -> Output:
        d = item.data
        rel = f"sets/{d['face_id']}/{d['image']}.seg.png"
        ids, counts = np.unique(labels, return_counts=True)
        row = {"face_id": d["face_id"], "image": d["image"], "path": rel,
               "label_counts": json.dumps({LABEL_NAMES[i]: int(c) for i, c in zip(ids, counts)}),
               "backend": self.backend.name}
        return Output(rows=[row], files={rel: encode_png(labels.astype(np.uint8))})


def overlay(rgb: np.ndarray, labels: np.ndarray, alpha: float = 0.55) -> np.ndarray:
    """The image with each labelled pixel tinted by its label's colour."""
    tint = PALETTE[labels]
    out = rgb.astype(np.float32)
    mask = labels > 0
    out[mask] = out[mask] * (1 - alpha) + tint[mask] * alpha
    return out.astype(np.uint8)


def write_preview(params: SegmentParams, tile: int = 256, max_images: int = 6) -> Path | None:
    """`preview.jpg`: the first face's images (top) and their label overlays (bottom), with a legend."""
    shown = preview_images(params, max_images)
    if not shown:
        return None
    top, bottom = [], []
    present: set[int] = set()
    for row, rgb in shown:
        labels = cv2.imread(str(Path(params.out_dir) / row["path"]), cv2.IMREAD_UNCHANGED)
        present |= set(np.unique(labels).tolist())
        top.append(cv2.resize(rgb, (tile, tile), interpolation=cv2.INTER_AREA))
        bottom.append(cv2.resize(overlay(rgb, labels), (tile, tile), interpolation=cv2.INTER_AREA))
    grid = np.concatenate([np.concatenate(top, 1), np.concatenate(bottom, 1)], 0)
    legend = np.full((24, grid.shape[1], 3), 255, np.uint8)
    x = 4
    for i in sorted(present - {0}):
        cv2.rectangle(legend, (x, 6), (x + 12, 18), PALETTE[i].tolist(), -1)
        cv2.putText(legend, LABEL_NAMES[i], (x + 15, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        x += 20 + 8 * len(LABEL_NAMES[i])
    out = Path(params.out_dir) / "preview.jpg"
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate([grid, legend], 0), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return out


def run(params: SegmentParams, runner_params, seed: int):
    return run_annotation(SegmentStage(params), runner_params, seed, write_preview)


def main(args: argparse.Namespace) -> int:
    return annotation_main(args, "segment", SegmentStage, write_preview, "label maps")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_annotation_arguments(parser, "segment")
