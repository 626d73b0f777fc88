"""Validation grids a person can open: source | driving | model output | target, one row a pair.

The output column is a one-step estimate of the clean target (x0 from the predicted noise at
timestep `t`), labelled as such: cheap enough to write every few hundred steps, and it shows
whether the model uses the driving face. Full 50-step samples come from `piq sample`.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch

from train.model import PiQModel

COLUMNS = ("source", "driving", "x0 estimate t={t}", "target")


def to_uint8(images: torch.Tensor) -> np.ndarray:
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


def write_grid(path: Path, columns: list[np.ndarray], titles: list[str], cell: int = 128) -> None:
    """Rows of images (one array (B, H, W, 3) per column) with a title bar."""
    rows = []
    for b in range(columns[0].shape[0]):
        rows.append(np.hstack([cv2.resize(col[b], (cell, cell), interpolation=cv2.INTER_NEAREST) for col in columns]))
    header = np.full((22, cell * len(columns), 3), 255, np.uint8)
    for i, title in enumerate(titles):
        cv2.putText(header, title, (4 + i * cell, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(np.vstack([header] + rows), cv2.COLOR_RGB2BGR))


def validation_grid(model: PiQModel, batch: dict, path: Path, t: int = 500) -> None:
    was_training = model.unet.training
    model.unet.eval()
    try:
        out = model.x0_estimate(batch, t)
    finally:
        model.unet.train(was_training)
    cols = [to_uint8(batch["source"]), to_uint8(batch["driving"]), to_uint8(out), to_uint8(batch["target"])]
    write_grid(path, cols, [c.format(t=t) for c in COLUMNS])
