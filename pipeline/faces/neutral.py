"""Is this face at rest? The neutral-expression check of ingest's candidate frames.

The paper (B.2) wants "a person facing the camera with a neutral expression" and keeps frames
by head angles alone; the clip's metadata category is its only word on the expression. Real
crowdsourced clips are mostly people talking: by the face mesh most of their frames have the
mouth open (0.06-0.15 of the interocular distance; a closed mouth is ~0.00), and a talking
source makes every animated variant start from an open mouth. So every accepted frame is also
measured on the dense face mesh (`pipeline.faces.mesh.expression`, the measures the animator,
the captioner and the photo tool share): mouth closed, no smile or downturn, both eyes open,
brows neither raised nor lowered. Thresholds live in params (`ingest.neutral_*`).

The mesh runs on the frame's face box grown by `MESH_BOX_SCALE` and resized to `MESH_SIZE`
px: the same face MTCNN found, at a size where the mesh is accurate and fast, whatever the
frame's resolution.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from pipeline.faces import mesh as fm
from pipeline.faces.crop import extract_crop
from pipeline.faces.geometry import square_crop

MESH_BOX_SCALE = 1.6
MESH_SIZE = 384
FAILS = ("no_mesh", "mouth_open", "smile", "frown", "eyes_closed", "brows_raised", "brows_lowered")


@dataclasses.dataclass(frozen=True)
class NeutralLimits:
    """Interocular-distance ratios (eye openings: lid gap over eye width)."""

    max_mouth_open: float = 0.04
    max_smile: float = 0.03
    min_smile: float = -0.04
    min_eye_open: float = 0.17
    brow_range: tuple[float, float] = (0.12, 0.28)


@dataclasses.dataclass(frozen=True)
class Neutrality:
    """The measures of one face, why it is not neutral ("" when it is), and its distance from
    rest: the root sum of squares of each measure's share of its allowance (0 = perfectly at
    rest, <= ~2 for a neutral face); ranking prefers the smallest."""

    mouth_open: float
    smile: float
    eye_open_r: float
    eye_open_l: float
    brow_raise: float
    fail: str
    distance: float

    @property
    def ok(self) -> bool:
        return not self.fail

    def columns(self) -> dict[str, float]:
        """Manifest columns (rounded)."""
        return {"mouth_open": round(self.mouth_open, 4), "smile": round(self.smile, 4),
                "eye_open": round(min(self.eye_open_r, self.eye_open_l), 4), "brow_raise": round(self.brow_raise, 4),
                "neutral_distance": round(self.distance, 4)}


def limits_of(params) -> NeutralLimits:
    """The thresholds of an `IngestParams` (its `neutral_*` keys)."""
    return NeutralLimits(params.neutral_max_mouth_open, params.neutral_max_smile, params.neutral_min_smile,
                         params.neutral_min_eye_open, tuple(params.neutral_brow_range))


NO_MESH = Neutrality(np.nan, np.nan, np.nan, np.nan, np.nan, "no_mesh", np.inf)


def judge_expression(e: fm.Expression, limits: NeutralLimits) -> Neutrality:
    """Neutrality of measured expression `e` under `limits`."""
    eye = min(e.eye_open_r, e.eye_open_l)
    lo, hi = limits.brow_range
    fail = ""
    if e.mouth_open > limits.max_mouth_open:
        fail = "mouth_open"
    elif e.smile > limits.max_smile:
        fail = "smile"
    elif e.smile < limits.min_smile:
        fail = "frown"
    elif eye < limits.min_eye_open:
        fail = "eyes_closed"
    elif e.brow_raise > hi:
        fail = "brows_raised"
    elif e.brow_raise < lo:
        fail = "brows_lowered"
    shares = (
        max(e.mouth_open, 0.0) / limits.max_mouth_open,
        e.smile / limits.max_smile if e.smile > 0 else e.smile / limits.min_smile,
        limits.min_eye_open / max(eye, 1e-6),
        abs(e.brow_raise - (lo + hi) / 2) / ((hi - lo) / 2),
    )
    distance = float(np.sqrt(np.sum(np.square(shares))))
    return Neutrality(e.mouth_open, e.smile, e.eye_open_r, e.eye_open_l, e.brow_raise, fail, distance)


def neutrality(detector: fm.FaceMeshDetector, rgb: np.ndarray, box: tuple[float, float, float, float],
               limits: NeutralLimits) -> Neutrality:
    """Neutrality of the face in `box` (frame pixels) of frame `rgb`; `no_mesh` when the face
    mesh finds no face there."""
    crop = extract_crop(rgb, square_crop(box, MESH_BOX_SCALE), MESH_SIZE, "replicate")
    found = detector.detect_one(crop)
    return NO_MESH if found is None else judge_expression(fm.expression(found), limits)
