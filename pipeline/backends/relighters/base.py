"""The relighter interface and the masking every backend shares.

A backend returns whole relit images; the stage composites them into the original through a
mask that is feathered *inwards*, so pixels outside the face-and-hair mask keep their exact
values whatever the backend does (a diffusion model changes every pixel of its crop).
"""
from __future__ import annotations

import abc
from typing import ClassVar, Sequence

import numpy as np

from pipeline.labels import LABEL_IDS
from pipeline.backends.relighters.envmaps import EnvLight
from pipeline.engine.worker_state import WorkerLocal


class Relighter(WorkerLocal, abc.ABC):
    """Image + mask + lightings -> one relit image per lighting."""

    name: ClassVar[str] = "relighter"

    def setup(self) -> None:
        """Load models (once per worker, after the relighter was shipped there)."""

    @abc.abstractmethod
    def relight(self, image: np.ndarray, mask: np.ndarray, lights: Sequence[EnvLight], *, seed: int = 0) -> list[np.ndarray]:
        """`image`: (H, W, 3) uint8 RGB; `mask`: (H, W) bool, the pixels that may change.
        Returns one (H, W, 3) uint8 RGB image per light; pixels outside `mask` are ignored (the
        caller composites). Raises `pipeline.engine.stage.Reject` for a face the backend cannot handle."""


def region_mask(labels: np.ndarray, regions: Sequence[str]) -> np.ndarray:
    """Bool mask of the pixels whose canonical label is one of `regions`."""
    ids = np.array([LABEL_IDS[r] for r in regions], dtype=labels.dtype)
    return np.isin(labels, ids)
