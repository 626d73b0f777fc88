"""Methods compared in the report (paper tables 1, 3, 4), one file per method.

A method maps a batch of triplets to outputs of the source's size: `run(batch) ->
list[np.ndarray | None]`, None where it could not produce an output (no face found to align);
the evaluator then scores the source in its place and counts a method failure. A method whose
weights are absent raises `Unavailable` from its constructor; the report lists it with the
reason instead of numbers. A method with a `settings` attribute (e.g. ("ID",)) runs only on
data sets of those settings and is listed as not applicable on the others.
"""
from __future__ import annotations

import warnings
from typing import Callable, Protocol, Sequence

import cv2
import numpy as np

from eval.data import Triplet


class Unavailable(RuntimeError):
    """A method that cannot run here (its weights are absent); the message is the reason."""


class Method(Protocol):
    name: str

    def run(self, batch: Sequence[Triplet]) -> list[np.ndarray | None]: ...


class PerPair:
    """A method that works one pair at a time (the classical baselines)."""

    name = "per_pair"

    def apply(self, t: Triplet) -> np.ndarray | None:
        raise NotImplementedError

    def run(self, batch: Sequence[Triplet]) -> list[np.ndarray | None]:
        return [self._safe(t) for t in batch]

    def _safe(self, t: Triplet) -> np.ndarray | None:
        """One bad pair (a degenerate alignment, an OpenCV error) is a method failure of that
        pair, not the end of the evaluation."""
        try:
            return self.apply(t)
        except (cv2.error, ValueError, np.linalg.LinAlgError) as err:
            warnings.warn(f"{self.name}: pair {t.pair_id} failed: {err}")
            return None


def _ipadapter(params) -> Method:
    from eval.baselines.ipadapter import IPAdapterBaseline

    return IPAdapterBaseline(params)


def _piq(params) -> Method:
    from eval.baselines.piq import PiQMethod

    return PiQMethod(params)


def _liveportrait(params) -> Method:
    from eval.baselines.liveportrait import LivePortraitBaseline

    return LivePortraitBaseline(params)


def build_method(name: str, params) -> Method:
    """The method called `name`, configured from the `evaluate` params section. Raises
    `Unavailable` when its weights are absent."""
    from eval.baselines import classical, paste

    factories: dict[str, Callable[[], Method]] = {
        "source": lambda: paste.SourceUnchanged(),
        "paste": lambda: paste.AlignedPaste(blend="none", landmarks=params.align_landmarks),
        "poisson": lambda: paste.AlignedPaste(blend="poisson", landmarks=params.align_landmarks),
        "classical": lambda: classical.Classical(landmarks=params.align_landmarks),
        "ipadapter": lambda: _ipadapter(params),
        "piq": lambda: _piq(params),
        "liveportrait": lambda: _liveportrait(params),
    }
    if name not in factories:
        raise ValueError(f"unknown method {name!r}; known: {sorted(factories)}")
    return factories[name]()


METHODS = ("source", "paste", "poisson", "classical", "ipadapter", "liveportrait", "piq")
