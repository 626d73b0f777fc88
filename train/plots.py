"""Validation grids a person can open: source | driving | model output | target, one row a pair.

The output column is a one-step estimate of the clean target (x0 from the predicted noise at
timestep `t`), labelled as such: cheap enough to write every few hundred steps, and it shows
whether the model uses the driving face. Full 50-step samples come from `piq sample`.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pipeline.media.grids import write_grid
from train.model import PiQModel

COLUMNS = ("source", "driving", "x0 estimate t={t}", "target")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def validation_grid(model: PiQModel, batch: dict, path: Path, t: int = 500) -> None:
    was_training = model.unet.training
    model.unet.eval()
    try:
        out = model.x0_estimate(batch, t)
    finally:
        model.unet.train(was_training)
    cols = [to_uint8(batch["source"]), to_uint8(batch["driving"]), to_uint8(out), to_uint8(batch["target"])]
    write_grid(path, cols, [c.format(t=t) for c in COLUMNS])
