"""The simplest baselines: the source unchanged, and the driving face pasted into the source
after a similarity alignment, hard-edged or Poisson-blended (OpenCV seamlessClone).

Alignment is the classical swap's (pipeline/faces/classical_swap.py `align_faces`): the driving
face's landmarks mapped onto the source's (`five`: the MTCNN-order five points, `mesh`: all 468
face-mesh points); the pasted region is the driving face oval, eroded a little so no background
of the driving image comes along.
"""
from __future__ import annotations

import numpy as np

from eval.baselines import PerPair
from eval.data import Triplet
from pipeline.faces.classical_swap import align_faces
from pipeline.faces.mesh import Mesh
from pipeline.faces.paste import poisson


class SourceUnchanged(PerPair):
    name = "source"

    def apply(self, t: Triplet) -> np.ndarray:
        return t.source.copy()


def aligned_driving(t: Triplet, landmarks: str) -> tuple[np.ndarray, np.ndarray, Mesh] | None:
    """`align_faces` of a triplet's source and driving image."""
    return align_faces(t.source, t.driving, landmarks)


class AlignedPaste(PerPair):
    def __init__(self, blend: str = "none", landmarks: str = "mesh") -> None:
        if blend not in ("none", "poisson"):
            raise ValueError(f"blend {blend!r}: expected 'none' or 'poisson'")
        self.blend, self.landmarks = blend, landmarks
        self.name = "paste" if blend == "none" else "poisson"

    def apply(self, t: Triplet) -> np.ndarray | None:
        got = aligned_driving(t, self.landmarks)
        if got is None:
            return None
        warped, mask, _ = got
        if not mask.any():
            return None
        if self.blend == "none":
            out = t.source.copy()
            out[mask] = warped[mask]
            return out
        return poisson(warped, t.source, mask)


# builders the evaluation's registry names (eval/baselines/__init__.py), from the `evaluate` params

def source_unchanged(params) -> SourceUnchanged:
    return SourceUnchanged()


def hard_paste(params) -> AlignedPaste:
    return AlignedPaste(blend="none", landmarks=params.align_landmarks)


def poisson_paste(params) -> AlignedPaste:
    return AlignedPaste(blend="poisson", landmarks=params.align_landmarks)
