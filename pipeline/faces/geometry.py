"""Frontal-face angles, the square crop of paper B.2 (see docs/DATA.md for our reading) and the
one similarity fit of two landmark sets (ArcFace's alignment, the classical swap's).

Landmarks are MTCNN's five points in image pixels, in this order: left eye, right eye, nose,
left mouth corner, right mouth corner ("left" = image left).
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

LEFT_EYE, RIGHT_EYE, NOSE, LEFT_MOUTH, RIGHT_MOUTH = range(5)


@dataclasses.dataclass(frozen=True)
class FrontalAngles:
    """Degrees. eye_nose / mouth_nose: |difference of the triangle's base angles|;
    vertical: angle of nose->eye-midpoint against the image vertical (signed)."""

    eye_nose: float
    mouth_nose: float
    vertical: float

    def worst(self) -> float:
        return max(self.eye_nose, self.mouth_nose, abs(self.vertical))


def _angle_at(apex: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    """Interior angle at `apex` between apex->a and apex->b, in degrees."""
    u, v = a - apex, b - apex
    denom = float(np.linalg.norm(u) * np.linalg.norm(v))
    if denom == 0.0:
        return 0.0
    return math.degrees(math.acos(float(np.clip(np.dot(u, v) / denom, -1.0, 1.0))))


def _base_angle_difference(left: np.ndarray, right: np.ndarray, nose: np.ndarray) -> float:
    return abs(_angle_at(left, right, nose) - _angle_at(right, left, nose))


def frontal_angles(landmarks: np.ndarray) -> FrontalAngles:
    """The three angles of the frontal filter for one face's (5, 2) landmarks."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    nose = pts[NOSE]
    eye_mid = (pts[LEFT_EYE] + pts[RIGHT_EYE]) / 2.0
    up = eye_mid - nose  # image y grows downwards: a level head has up = (0, -h)
    vertical = math.degrees(math.atan2(up[0], -up[1]))
    return FrontalAngles(
        eye_nose=_base_angle_difference(pts[LEFT_EYE], pts[RIGHT_EYE], nose),
        mouth_nose=_base_angle_difference(pts[LEFT_MOUTH], pts[RIGHT_MOUTH], nose),
        vertical=vertical,
    )


def frontal_reject_code(angles: FrontalAngles, max_eye: float, max_mouth: float, max_vertical: float) -> str | None:
    """None if the face passes; else `not_frontal` (yaw) or `head_tilt` (roll)."""
    if angles.eye_nose > max_eye or angles.mouth_nose > max_mouth:
        return "not_frontal"
    if abs(angles.vertical) > max_vertical:
        return "head_tilt"
    return None


@dataclasses.dataclass(frozen=True)
class SquareCrop:
    """A square crop in source pixels: [x0, y0, x1, y1), may extend beyond the frame."""

    x0: int
    y0: int
    size: int

    @property
    def box(self) -> tuple[int, int, int, int]:
        return (self.x0, self.y0, self.x0 + self.size, self.y0 + self.size)

    def pad_fraction(self, width: int, height: int) -> float:
        """Share of the crop's area that lies outside a width x height frame."""
        ix = max(0, min(self.x0 + self.size, width) - max(self.x0, 0))
        iy = max(0, min(self.y0 + self.size, height) - max(self.y0, 0))
        return 1.0 - (ix * iy) / float(self.size * self.size)


def square_crop(bbox: tuple[float, float, float, float], scale: float) -> SquareCrop:
    """Square of side scale * max(box w, box h) centred on the box midpoint (paper B.2)."""
    x0, y0, x1, y1 = bbox
    side = max(1, int(round(scale * max(x1 - x0, y1 - y0))))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return SquareCrop(int(round(cx - side / 2.0)), int(round(cy - side / 2.0)), side)


def similarity(src: np.ndarray, dst: np.ndarray, robust: bool = False) -> np.ndarray:
    """2x3 similarity (rotation, uniform scale, translation) taking `src` points to `dst`.

    Least squares (Umeyama), as insightface's `norm_crop` estimates it (float32): the ArcFace
    alignment. `robust`: OpenCV's least-median-of-squares fit (float64), which discounts the
    points that moved most (the classical swap aligns all 468 face-mesh points of two
    expressions). ValueError where no fit is found (degenerate landmarks)."""
    if robust:
        m, _ = cv2.estimateAffinePartial2D(np.asarray(src, np.float32), np.asarray(dst, np.float32), method=cv2.LMEDS)
        if m is None:
            raise ValueError("similarity alignment failed")
        return m
    from skimage.transform import SimilarityTransform

    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    if hasattr(SimilarityTransform, "from_estimate"):  # scikit-image >= 0.26 (estimate() is deprecated there)
        tform = SimilarityTransform.from_estimate(src, dst)
        fitted = bool(tform)
    else:
        tform = SimilarityTransform()
        fitted = tform.estimate(src, dst)
    if not fitted or not np.isfinite(tform.params).all():
        raise ValueError("could not fit the similarity (degenerate landmarks)")
    return tform.params[:2].astype(np.float32)
