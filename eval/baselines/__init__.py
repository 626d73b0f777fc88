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
from typing import Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

from eval.data import Triplet
from pipeline.registry import Registry


class Unavailable(RuntimeError):
    """A method that cannot run here (its weights are absent); the message is the reason."""


@runtime_checkable
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
            warnings.warn(f"{self.name}: pair {t.pair_id} failed: {err}", stacklevel=2)
            return None


BASELINES: Registry[Method] = Registry("evaluate method", Method, {
    "source": "eval.baselines.paste:source_unchanged",
    "paste": "eval.baselines.paste:hard_paste",
    "poisson": "eval.baselines.paste:poisson_paste",
    "classical": "eval.baselines.classical:from_params",
    "ipadapter": "eval.baselines.ipadapter:IPAdapterBaseline",
    "liveportrait": "eval.baselines.liveportrait:LivePortraitBaseline",
    "piq": "eval.baselines.piq:PiQMethod",
})
METHODS = BASELINES.names()


def build_method(name: str, params) -> Method:
    """The method called `name`, configured from the `evaluate` params section. Raises
    `Unavailable` when its weights are absent."""
    return BASELINES.build(name, params)
