"""The simplest baselines: the source unchanged, and the driving face pasted into the source
after a similarity alignment, hard-edged or Poisson-blended (OpenCV seamlessClone).

Alignment maps the driving face's landmarks onto the source's: `five` uses the MTCNN-order
five points, `mesh` all 468 face-mesh points (least squares, so it averages expression
differences out). The pasted region is the driving face oval, eroded a little so no background
of the driving image comes along, and clipped to the source's own face oval's bounding region.
"""
from __future__ import annotations

import cv2
import numpy as np

from eval import faces
from eval.baselines import PerPair
from eval.data import Triplet
from pipeline.faces.mesh import Mesh
from pipeline.faces.paste import poisson

ERODE = 0.08  # of the interocular distance: keeps the driving background out of the paste


class SourceUnchanged(PerPair):
    name = "source"

    def apply(self, t: Triplet) -> np.ndarray:
        return t.source.copy()


def landmark_set(m: Mesh, kind: str) -> np.ndarray:
    if kind == "five":
        return m.five_points()
    if kind == "mesh":
        return m.xy[:468]
    raise ValueError(f"align_landmarks {kind!r}: expected 'five' or 'mesh'")


def align_faces(source: np.ndarray, driving: np.ndarray, landmarks: str) -> tuple[np.ndarray, np.ndarray, Mesh] | None:
    """(driving warped into the source frame, warped inner-face mask (bool), source mesh), or
    None when either face is not found. Shared with the photo tool's classical method."""
    ms, md = faces.mesh(source), faces.mesh(driving)
    if ms is None or md is None:
        return None
    h, w = source.shape[:2]
    m = faces.similarity(landmark_set(md, landmarks), landmark_set(ms, landmarks))
    warped = cv2.warpAffine(driving, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = faces.oval_mask(md, ERODE).astype(np.uint8)
    mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
    return warped, mask, ms


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
