"""Test photos for the photo tool, built from the two public-domain portraits that pip packages
ship (scikit-image's astronaut, matplotlib's Grace Hopper): nothing big is committed."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import yaml
from matplotlib import cbook
from PIL import Image
from skimage import data

REPO = Path(__file__).resolve().parents[1]


def astronaut() -> np.ndarray:
    return data.astronaut()


def hopper(height: int = 512) -> np.ndarray:
    g = np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    return cv2.resize(g, (round(g.shape[1] * height / g.shape[0]), height), interpolation=cv2.INTER_AREA)


def group_photo() -> np.ndarray:
    """Astronaut (left) and Grace Hopper (right) side by side on a grey wall: face 0 and face 1."""
    a, g = astronaut(), hopper()
    canvas = np.full((600, 20 + a.shape[1] + g.shape[1] + 20, 3), 190, np.uint8)
    canvas[40 : 40 + a.shape[0], 10 : 10 + a.shape[1]] = a
    canvas[44 : 44 + g.shape[0], 30 + a.shape[1] : 30 + a.shape[1] + g.shape[1]] = g
    return canvas


def astronaut_reference() -> np.ndarray:
    """Another "photo" of the astronaut: mirrored, smaller, warmer and brighter."""
    a = cv2.resize(np.ascontiguousarray(astronaut()[:, ::-1]), (420, 420), interpolation=cv2.INTER_AREA).astype(np.float32)
    a = a * np.array([1.08, 1.0, 0.9]) + 12
    return np.clip(a, 0, 255).astype(np.uint8)


def save_jpeg(path: Path, rgb: np.ndarray, **kw) -> Path:
    Image.fromarray(rgb).save(path, "JPEG", quality=95, **kw)
    return path


def params_file(root: Path, **replace: object) -> Path:
    """The repository's params.yaml with `replace` keys overridden, written under root."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["replace"].update(replace)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    return path
