"""What stays in front of the new face: glasses, hats (and hair) where the face parser marks
them (pipeline/backends/parsers, labels by name), and hands where mediapipe 0.10.21's bundled hand model
(palm detection + hand landmarks, shipped in the wheel) finds them."""
from __future__ import annotations

import functools
from pipeline.quiet import native_stderr_filtered

import cv2
import numpy as np

from pipeline.faces.mesh import ieee_denormals
from pipeline.labels import LABEL_IDS


def label_occluders(labels: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """Bool mask of the parser labels named (canonical names, pipeline/labels.py)."""
    return np.isin(labels, [LABEL_IDS[n] for n in names])


@functools.lru_cache(maxsize=1)
def _hands():
    from mediapipe.python.solutions import hands

    return hands.Hands(static_image_mode=True, max_num_hands=4, min_detection_confidence=0.5)


def hand_mask(rgb: np.ndarray, dilate_px: int) -> np.ndarray:
    """Bool mask of every hand found: the convex hull of its 21 landmarks grown by `dilate_px`
    (the landmarks sit on the joints; the hull grown covers the fingers' width)."""
    h, w = rgb.shape[:2]
    with native_stderr_filtered(), ieee_denormals():
        result = _hands().process(np.ascontiguousarray(rgb))
    mask = np.zeros((h, w), np.uint8)
    for hand in result.multi_hand_landmarks or []:
        pts = np.array([(lm.x * w, lm.y * h) for lm in hand.landmark], np.float32)
        cv2.fillConvexPoly(mask, cv2.convexHull(np.round(pts).astype(np.int32)), 1)
    if dilate_px > 0 and mask.any():
        mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (dilate_px, dilate_px)))
    return mask.astype(bool)
