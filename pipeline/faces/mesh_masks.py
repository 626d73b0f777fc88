"""Masks drawn from a face mesh: the face oval, optionally eroded (the classical swap's paste
region, the driving input of user test pairs without label maps).

Faces come from the shared, cached face mesh (pipeline/faces/identity.py `face_mesh`), so that
"no face found" means the same thing for CSIM, the motion distances and the paste baselines.
"""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.faces.identity import face_mesh
from pipeline.faces.mesh import Mesh, regions
from pipeline.faces.paste import erode


def polygon_mask(shape: tuple[int, int], points: np.ndarray) -> np.ndarray:
    """Inside of the polygon `points` (pixels) in a bool mask of `shape`."""
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
    """`oval_mask` of the largest face of an RGB uint8 image (the shared, cached face mesh),
    None when no face is found."""
    m = face_mesh(rgb)
    return None if m is None else oval_mask(m, erode_frac)
