"""The inner-face cut the model's driving input is made of (paper 3.1 / 4.1): the inner face
(+ hair, + neck) of a label map, eroded. Training draws the choices (pipeline/faces/driving_image.py); the
photo tool fixes them (facereplace/replace.py: no augmentation at replace time).
"""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.labels import INNER_FACE, LABEL_IDS

PAPER_SIZE = 1024  # erosion sizes in params are given at the paper's image size


def inner_face_mask(labels: np.ndarray, erosion_px: int, hair: bool = False, neck: bool = False) -> np.ndarray:
    """The inner face (+ hair, + neck) of a label map, eroded by `erosion_px` given at the
    paper's 1024 px (scaled to the map's size). Training draws the choices (`face_mask`); the
    photo tool fixes them (no augmentation at replace time)."""
    names = set(INNER_FACE) | ({"hair"} if hair else set()) | ({"neck"} if neck else set())
    mask = np.isin(labels, [LABEL_IDS[n] for n in names]).astype(np.uint8)
    k = int(round(erosion_px * labels.shape[0] / PAPER_SIZE))
    if k > 0:
        mask = cv2.erode(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k)))
    return mask.astype(bool)
