"""The animator interface shared by every backend.

LivePortrait with relative motion makes a frame from the driver's first frame and that frame
alone, and the paper keeps only the last frame of each animation: so an animator takes the
neutral face and the driver's first and last frames, never the whole clip.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar, Sequence

import numpy as np

from pipeline.engine.worker_state import WorkerLocal

if TYPE_CHECKING:
    from pipeline.backends.animators.motion import Controls


@dataclasses.dataclass
class AnimatedImage:
    """One expressive variant: an RGB uint8 image of the neutral face's size, and what the
    backend measured or decided (e.g. motion magnitude), recorded in the stage's manifest."""

    image: np.ndarray
    info: dict[str, Any] = dataclasses.field(default_factory=dict)


class Animator(WorkerLocal, abc.ABC):
    """Neutral face + (driver first frame, driver last frame) -> the animated last frame."""

    name: ClassVar[str] = "animator"

    def setup(self) -> None:
        """Load weights or models (once per worker, after the animator was shipped there)."""

    @abc.abstractmethod
    def animate(self, neutral: np.ndarray, driver_first: np.ndarray, driver_last: np.ndarray, *,
                seed: int = 0) -> AnimatedImage:
        """`neutral`: (H, W, 3) uint8 RGB (1024 px in the pipeline); driver frames: RGB uint8 of
        any size. Raises `pipeline.engine.stage.Reject` for a face the backend cannot handle."""

    def animate_batch(self, neutral: np.ndarray, drivers: Sequence[tuple[np.ndarray, np.ndarray]], *,
                      seeds: Sequence[int], programs: Sequence["Controls | None"] | None = None) -> list[AnimatedImage]:
        """All drivers of one neutral face. Backends that batch on a GPU override this (the
        neutral face's appearance features are computed once). `programs`: the motion program
        behind each driver clip where it is one of the library's (None for a user's clip); a
        backend that reads motion off the frames (LivePortrait) ignores it."""
        return [self.animate(neutral, first, last, seed=s) for (first, last), s in zip(drivers, seeds)]
