"""The classical baseline: the classical face swap of pipeline/faces/classical_swap.py (Bitouk
et al. 2008 in spirit: align, Lab colour and low-frequency lighting transfer) blended with a
feathered alpha, as their boundary blending, through the project's one paste-back
(pipeline/faces/paste.py).
"""
from __future__ import annotations

import numpy as np

from eval.baselines import PerPair
from eval.baselines.paste import aligned_driving
from eval.data import Triplet
from pipeline.faces.classical_swap import transfer_appearance
from pipeline.faces.paste import composite, feather


class Classical(PerPair):
    name = "classical"

    def __init__(self, landmarks: str = "mesh") -> None:
        self.landmarks = landmarks

    def apply(self, t: Triplet) -> np.ndarray | None:
        got = aligned_driving(t, self.landmarks)
        if got is None:
            return None
        warped, mask, ms = got
        if mask.sum() < 16:
            return None
        fg = transfer_appearance(warped, t.source, mask, ms)
        return composite(t.source, fg, feather(mask, ms.interocular * 0.25))


def from_params(params) -> Classical:
    """The baseline `classical` of the evaluation's registry (eval/baselines/__init__.py)."""
    return Classical(landmarks=params.align_landmarks)
