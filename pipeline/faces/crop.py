"""Cutting the square face crop out of a frame, padding where it leaves the frame."""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.faces.geometry import SquareCrop

_BORDERS = {"reflect": cv2.BORDER_REFLECT_101, "replicate": cv2.BORDER_REPLICATE, "constant": cv2.BORDER_CONSTANT}


def extract_crop(rgb: np.ndarray, crop: SquareCrop, out_size: int, pad_mode: str) -> np.ndarray:
    """The crop resized to out_size x out_size (`resize_square`). Pixels outside the frame come
    from `pad_mode`."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = crop.box
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x1 - w), max(0, y1 - h)
    if left or top or right or bottom:
        # reflect needs the border to be smaller than the image; fall back to replicate beyond
        border = _BORDERS[pad_mode]
        if border == cv2.BORDER_REFLECT_101 and (max(left, right) >= w or max(top, bottom) >= h):
            border = cv2.BORDER_REPLICATE
        rgb = cv2.copyMakeBorder(rgb, top, bottom, left, right, border, value=(0, 0, 0))
        x0, x1, y0, y1 = x0 + left, x1 + left, y0 + top, y1 + top
    return resize_square(rgb[y0:y1, x0:x1], out_size)


def resize_square(rgb: np.ndarray, size: int) -> np.ndarray:
    """THE resize rule of the project (training's): area averaging when shrinking (no aliasing),
    bicubic when enlarging; a no-op at the right size. Ingest's crop, the trainer's tensors,
    `PiQPerfectPipeline`'s inputs and the photo tool's way in and out of the model all use it,
    so the model sees at inference exactly the pixels it saw in training."""
    h, w = rgb.shape[:2]
    if h == size and w == size:
        return rgb
    interp = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_CUBIC
    return cv2.resize(rgb, (size, size), interpolation=interp)


def crop_matrix(crop: SquareCrop, out_size: int) -> np.ndarray:
    """2x3 affine taking frame pixels to `extract_crop`'s output pixels (pixel centres mapped
    as cv2.resize maps them); its inverse pastes a crop back (pipeline/faces/paste.py)."""
    s = out_size / float(crop.size)
    return np.array([[s, 0.0, 0.5 * s - 0.5 - s * crop.x0], [0.0, s, 0.5 * s - 0.5 - s * crop.y0]], np.float64)


def sharpness(rgb: np.ndarray, box: tuple[float, float, float, float], size: int = 256) -> float:
    """Variance of the Laplacian of the face box resized to size x size: comparable across
    face sizes, higher is sharper."""
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    x0, y0, x1, y1 = max(0, x0), max(0, y0), min(w, x1), min(h, y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return 0.0
    gray = cv2.cvtColor(rgb[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)
    gray = cv2.resize(gray, (size, size), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())
