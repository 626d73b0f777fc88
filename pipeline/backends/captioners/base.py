"""The captioner interface: RGB images (and per-image seeds) in, one caption each out."""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, ClassVar, Sequence

import numpy as np

from pipeline.rejection import Reject
from pipeline.engine.worker_state import WorkerLocal


@dataclasses.dataclass(frozen=True)
class Caption:
    """A caption and what was measured to write it (empty for a model backend)."""

    text: str
    attributes: dict[str, Any] = dataclasses.field(default_factory=dict)


class Captioner(WorkerLocal, abc.ABC):
    """Batched: a model backend generates for a whole batch at once; an offline one loops."""

    name: ClassVar[str] = "captioner"

    def setup(self) -> None:
        """Load models (once per worker, after the captioner was shipped there)."""

    @abc.abstractmethod
    def caption(self, images: Sequence[np.ndarray], seeds: Sequence[int]) -> list[Caption | Reject]:
        """`images`: RGB uint8 (H, W, 3); `seeds`: the items' seeds (offline phrasing is drawn
        from them, so a caption is the same on every run). One Caption or Reject per image."""
