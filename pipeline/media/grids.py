"""Image grids a person opens to judge results: rows of equal cells under a title bar.

Training's validation grids and evaluation's pair grids are the same picture, so they are
drawn here once.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


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
