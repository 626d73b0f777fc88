"""Face geometry the metrics and baselines share: one cached face mesh, masks, alignment.

Everything goes through pipeline/faces/mesh.py so that "no face found" means the same thing
for CSIM, the motion distances and the paste baselines.
"""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.faces.identity import face_mesh
from pipeline.faces.mesh import Mesh, regions
from pipeline.faces.paste import erode


def mesh(rgb: np.ndarray) -> Mesh | None:
    """The largest face of an RGB uint8 image (cached by content, shared with the identity
    encoders: pipeline/faces/identity.py)."""
    return face_mesh(rgb)


def polygon_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(points).astype(np.int32)], 1)
    return mask.astype(bool)


def oval_mask(m: Mesh, erode_frac: float = 0.0) -> np.ndarray:
    """Inside of the face oval (forehead to chin, cheek to cheek), optionally eroded by a
    fraction of the interocular distance."""
    mask = polygon_mask((m.height, m.width), m.xy[list(regions()["face_oval"])])
    k = int(round(erode_frac * m.interocular * 2))
    return erode(mask, k)


def face_mask(rgb: np.ndarray, erode_frac: float = 0.0) -> np.ndarray | None:
    m = mesh(rgb)
    return None if m is None else oval_mask(m, erode_frac)


def similarity(src_pts: np.ndarray, dst_pts: np.ndarray) -> np.ndarray:
    """2x3 similarity transform (rotation, uniform scale, translation) taking src to dst,
    least squares (Umeyama), so 5-point or full-mesh alignment use the same code."""
    m, _ = cv2.estimateAffinePartial2D(np.asarray(src_pts, np.float32), np.asarray(dst_pts, np.float32), method=cv2.LMEDS)
    if m is None:
        raise ValueError("similarity alignment failed")
    return m
