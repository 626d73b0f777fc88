"""The driving image of paper 3.1 / 4.1: the target's inner face, distorted (made the same way
for training, train/data.py, and for the test sets, eval/data.py).

mask = inner face (+ hair, + neck at random) from the label map (pipeline/faces/inner_face.py),
eroded by a kernel drawn from [0, 30] px; pixels from one of the six lighting variants; then colour jitter, grayscale,
horizontal flip and an affine transform. Zero outside the mask. All randomness comes from the
`numpy.random.Generator` passed in, so a sample is a pure function of its seed.
"""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.config.data import DataParams
from pipeline.faces.inner_face import inner_face_mask


def face_mask(labels: np.ndarray, p: DataParams, rng: np.random.Generator) -> np.ndarray:
    """The training mask: hair and neck at random, erosion drawn from `p.erosion_px`."""
    hair = bool(rng.random() < p.hair_prob)
    neck = bool(rng.random() < p.neck_prob)
    return inner_face_mask(labels, int(rng.integers(p.erosion_px[0], p.erosion_px[1] + 1)), hair, neck)


def color_jitter(rgb: np.ndarray, p: DataParams, rng: np.random.Generator) -> np.ndarray:
    img = rgb.astype(np.float32) / 255.0
    img *= 1 + rng.uniform(-p.brightness, p.brightness)
    mean = img.mean()
    img = (img - mean) * (1 + rng.uniform(-p.contrast, p.contrast)) + mean
    gray = img @ np.array([0.299, 0.587, 0.114], np.float32)
    img = (img - gray[..., None]) * (1 + rng.uniform(-p.saturation, p.saturation)) + gray[..., None]
    hsv = cv2.cvtColor(np.clip(img, 0, 1), cv2.COLOR_RGB2HSV)
    hsv[..., 0] = (hsv[..., 0] + 360 * rng.uniform(-p.hue, p.hue)) % 360
    return (cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB) * 255).clip(0, 255).astype(np.uint8)


def augment(rgb: np.ndarray, p: DataParams, rng: np.random.Generator) -> np.ndarray:
    """Colour jitter, grayscale, flip and affine on an already masked image (black stays black
    under the geometric ops; jitter runs first, so the background is still zero after it)."""
    if rng.random() < p.jitter_prob:
        rgb = color_jitter(rgb, p, rng)
    if rng.random() < p.grayscale_prob:
        rgb = np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    if rng.random() < p.flip_prob:
        rgb = np.ascontiguousarray(rgb[:, ::-1])
    if rng.random() < p.affine_prob:
        h, w = rgb.shape[:2]
        m = cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-p.rotate_deg, p.rotate_deg), rng.uniform(*p.scale))
        m[:, 2] += rng.uniform(-p.translate, p.translate, 2) * (w, h)
        rgb = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderValue=(0, 0, 0))
    return rgb


def driving_image(target: np.ndarray, variants: list[np.ndarray], labels: np.ndarray, p: DataParams,
                  rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """(driving RGB uint8, lighting variant used: 0 = original)."""
    if not p.inner_face:  # ablation: the whole target, which the paper says collapses to copying
        return target.copy(), 0
    variant = int(rng.integers(0, len(variants) + 1)) if p.relight else 0
    pixels = target if variant == 0 else variants[variant - 1]
    driving = pixels * face_mask(labels, p, rng)[..., None]
    if p.augment:
        driving = augment(driving, p, rng)
    return driving, variant
