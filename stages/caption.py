"""`piq caption`: a detailed caption for every animated image (paper 3.2, B.3).

One item per image of `data/animate` (`<face_id>-<image>`). The captioner named by
`caption.backend` (the paper's LLaVA-1.5 with its instruction, or the offline captioner that
describes what it measures) writes one caption per image; the manifest keeps the offline
backend's measures beside it. Model backends get `caption.batch_size` images per call from the
runner. `preview.jpg` shows one face's images with their captions underneath.
"""
from __future__ import annotations

import argparse
import dataclasses
import textwrap
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np

from pipeline.engine.annotate import ImageBatchStage, add_annotation_arguments, annotation_main, preview_images, run_annotation
from pipeline.backends.captioners import Caption, build_captioner
from pipeline.config.caption import CaptionParams
from pipeline.rejection import Reject
from pipeline.engine.stage import Item, ItemContext, Output

# Measured attributes the offline backend adds to the manifest (NaN for a model backend).
ATTRIBUTES = ("smile", "mouth_open", "eye_open", "brow_raise", "yaw", "pitch", "roll", "gaze_x", "gaze_y",
              "brightness", "contrast", "side_light", "warmth")


@dataclasses.dataclass
class CaptionStage(ImageBatchStage):
    params: CaptionParams
    name: ClassVar[str] = "caption"
    manifest_columns: ClassVar[dict[str, str]] = {
        "face_id": "string", "image": "string", "caption": "string", "backend": "string", "expression": "string",
        **{a: "float64" for a in ATTRIBUTES},
    }

    offline_backend: ClassVar[str] = "attributes"

    def build(self):
        return build_captioner(self.params)

    def annotate(self, images: list[np.ndarray], items: list[Item], ctxs: list[ItemContext]) -> list[Output | Reject]:
        seeds = [c.seed for c in ctxs]
        if self.backend.name == "attributes":  # words for the change from the set's neutral face (#31)
            refs = [None if it.data["image"] == "i00" else str(Path(it.data["file"]).parent / "i00.jpg") for it in items]
            captions = self.backend.caption(images, seeds, refs)
        else:
            captions = self.backend.caption(images, seeds)
        return [c if isinstance(c, Reject) else self._output(item, c) for item, c in zip(items, captions)]

    def _output(self, item: Item, caption: Caption) -> Output:
        row = {"face_id": item.data["face_id"], "image": item.data["image"], "caption": caption.text,
               "backend": self.backend.name, "expression": caption.attributes.get("expression")}
        row.update({a: caption.attributes.get(a, float("nan")) for a in ATTRIBUTES})
        return Output(rows=[row])


def write_preview(params: CaptionParams, tile: int = 256, max_images: int = 4, width: int = 38) -> Path | None:
    """`preview.jpg`: the first face's images side by side, each caption wrapped underneath."""
    shown = preview_images(params, max_images)
    if not shown:
        return None
    wrapped = [textwrap.wrap(f"{row['image']}: {row['caption']}", width) for row, _ in shown]
    lines = max(len(w) for w in wrapped)
    columns = []
    for (_, rgb), text in zip(shown, wrapped):
        img = cv2.resize(rgb, (tile, tile), interpolation=cv2.INTER_AREA)
        band = np.full((14 * lines + 8, tile, 3), 255, np.uint8)
        for k, line in enumerate(text):
            cv2.putText(band, line, (4, 14 + 14 * k), cv2.FONT_HERSHEY_SIMPLEX, 0.36, (0, 0, 0), 1, cv2.LINE_AA)
        columns.append(np.concatenate([img, band], 0))
        columns.append(np.full((columns[-1].shape[0], 4, 3), 255, np.uint8))
    out = Path(params.out_dir) / "preview.jpg"
    cv2.imwrite(str(out), cv2.cvtColor(np.concatenate(columns[:-1], 1), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    return out


def run(params: CaptionParams, runner_params, seed: int):
    return run_annotation(CaptionStage(params), runner_params, seed, write_preview)


def main(args: argparse.Namespace) -> int:
    return annotation_main(args, "caption", CaptionStage, write_preview, "captions")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_annotation_arguments(parser, "caption")
