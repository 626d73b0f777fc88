"""The face-parser interface: RGB images in, label maps of canonical ids (pipeline/labels.py) out."""
from __future__ import annotations

import abc
from typing import ClassVar, Sequence

import numpy as np

from pipeline.rejection import Reject
from pipeline.engine.worker_state import WorkerLocal


class FaceParser(WorkerLocal, abc.ABC):
    """Batched: a model backend runs one forward per batch; an offline one loops."""

    name: ClassVar[str] = "parser"

    def setup(self) -> None:
        """Load models (once per worker, after the parser was shipped there)."""

    @abc.abstractmethod
    def parse(self, images: Sequence[np.ndarray]) -> list[np.ndarray | Reject]:
        """`images`: RGB uint8 (H, W, 3) each. Returns per image a uint8 (H, W) map of canonical
        label ids at the image's own size, or the Reject for a face the backend cannot handle."""
