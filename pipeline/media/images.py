"""The one image reader and encoder of the project: files and bytes <-> RGB uint8 arrays.

Every stage, the release reader and the evaluation read and write images through these
functions, so channel order (OpenCV is BGR, everything else here is RGB), label-map handling
(one 8-bit channel, never colour-converted) and error messages are the same everywhere.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from pipeline.rejection import Reject


class ImageError(ValueError):
    """Bytes that are not a decodable image; the message names what they were."""


def decode(data: bytes, what: str = "image") -> np.ndarray:
    """RGB uint8 for a JPEG/PNG photo; (H, W) uint8 for a label map (`what` ending in seg.png)."""
    flags = cv2.IMREAD_UNCHANGED if what.endswith("seg.png") else cv2.IMREAD_COLOR
    img = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    if img is None:
        raise ImageError(f"undecodable {what}")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB) if img.ndim == 3 else img


def read_rgb(path: str | Path) -> np.ndarray:
    """RGB uint8 of an image file, or Reject `unreadable_image` naming the file."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise Reject("unreadable_image", f"{path} is missing or not an image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """JPEG bytes of an RGB uint8 image."""
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def encode_png(array: np.ndarray) -> bytes:
    """PNG bytes of a label map (H, W) or an RGB image (H, W, 3), lossless."""
    img = cv2.cvtColor(array, cv2.COLOR_RGB2BGR) if array.ndim == 3 and array.shape[2] == 3 else array
    ok, buf = cv2.imencode(".png", img)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()
