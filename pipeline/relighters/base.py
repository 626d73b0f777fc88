"""The relighter interface and the masking every backend shares.

A backend returns whole relit images; the stage composites them into the original through a
mask that is feathered *inwards*, so pixels outside the face-and-hair mask keep their exact
values whatever the backend does (a diffusion model changes every pixel of its crop).
"""
from __future__ import annotations

import abc
from typing import ClassVar, Sequence

import cv2
import numpy as np

from pipeline.labels import LABEL_IDS
from pipeline.relighters.envmaps import EnvLight
from pipeline.worker_state import WorkerLocal


class Relighter(WorkerLocal, abc.ABC):
    """Image + mask + lightings -> one relit image per lighting."""

    name: ClassVar[str] = "relighter"

    def setup(self) -> None:
        """Load models (once per worker, after the relighter was shipped there)."""

    @abc.abstractmethod
    def relight(self, image: np.ndarray, mask: np.ndarray, lights: Sequence[EnvLight], *, seed: int = 0) -> list[np.ndarray]:
        """`image`: (H, W, 3) uint8 RGB; `mask`: (H, W) bool, the pixels that may change.
        Returns one (H, W, 3) uint8 RGB image per light; pixels outside `mask` are ignored (the
        caller composites). Raises `pipeline.stage.Reject` for a face the backend cannot handle."""


def region_mask(labels: np.ndarray, regions: Sequence[str]) -> np.ndarray:
    """Bool mask of the pixels whose canonical label is one of `regions`."""
    ids = np.array([LABEL_IDS[r] for r in regions], dtype=labels.dtype)
    return np.isin(labels, ids)


def feather(mask: np.ndarray, px: float) -> np.ndarray:
    """Float alpha in [0, 1]: 0 everywhere outside `mask`, rising smoothly to 1 within `px`
    pixels inside its edge (a smoothstep of the distance to the nearest outside pixel)."""
    if px <= 0:
        return mask.astype(np.float32)
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)
    t = np.clip(dist / px, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def composite(image: np.ndarray, relit: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`relit` inside the mask, `image` outside; exactly `image` wherever alpha is 0."""
    out = image.copy()
    ys, xs = np.nonzero(alpha > 0)
    if len(ys) == 0:
        return out
    box = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    a = alpha[box][..., None]
    blend = np.rint(image[box].astype(np.float32) * (1 - a) + relit[box].astype(np.float32) * a).astype(np.uint8)
    out[box] = np.where(a > 0, blend, image[box])
    return out
