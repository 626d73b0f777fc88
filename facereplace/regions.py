"""Partial replacement (issue 26, item 1): which part of the face is replaced, as the face
open tools offer it (FaceFusion's area masks) and as Best Take needs it (a blink: the eyes
only; a smile: the mouth or the lower face).

The region is cut from the source crop's face-parser labels (mapped by name, pipeline/labels.py)
and intersected with the paste mask (`replace.paste_mask`: the inner face minus occluders), so
glasses, hair, hats and hands stay in front, and paste-back's erosion and inward feather still
apply: pixels outside the region stay bit-identical.

- `eyes`: both eyes and brows, grown by `grow` of the crop's side (the lids and the skin
  around them, so the seam falls on smooth skin);
- `mouth`: the lips and the mouth's inside, grown the same way;
- `upper` / `lower`: the inner face above / below a line across the face between the eyes and
  the mouth (`split` of the way from the eyes' centre to the mouth's, across the face's own
  vertical: a tilted head splits along its tilt).

A region the parser cannot find is refused with the reason (eyes hidden by sunglasses: the
parser labels glasses where the eyes are).
"""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.labels import LABEL_IDS
from pipeline.rejection import Reject

REGIONS = ("face", "eyes", "mouth", "upper", "lower")
EYES = ("l_eye", "r_eye", "l_brow", "r_brow")
MOUTH = ("mouth", "u_lip", "l_lip")
MIN_FRACTION = 2e-4  # of the crop's pixels: a part smaller than this is not found (~200 px at 1024 px)


def _labelled(labels: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    return np.isin(labels, [LABEL_IDS[n] for n in names])


def _centre(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


def _grow(mask: np.ndarray, px: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    return cv2.dilate(mask.astype(np.uint8), k) > 0


def _need(labels: np.ndarray, names: tuple[str, ...], what: str, region: str, who: str) -> np.ndarray:
    found = _labelled(labels, names)
    if found.sum() < MIN_FRACTION * labels.size:
        hidden = _labelled(labels, ("eye_g",)).sum() if what == "eyes" else 0
        why = " (glasses cover them)" if hidden > MIN_FRACTION * labels.size else ""
        raise Reject("region_not_found", f"{who}: --region {region} needs the {what}, and the face parser "
                                         f"finds none{why}; choose another region or --region face")
    return found


def region_mask(labels: np.ndarray, region: str, who: str = "PHOTO", grow: float = 0.06,
                split: float = 0.6) -> np.ndarray | None:
    """Bool mask of `region` in the crop of `labels` (None for the whole face: no limit)."""
    if region not in REGIONS:
        raise ValueError(f"region {region!r}: expected one of {REGIONS}")
    if region == "face":
        return None
    px = max(1, int(round(grow * labels.shape[0])))
    if region == "eyes":
        return _grow(_need(labels, EYES[:2], "eyes", region, who) | _labelled(labels, EYES[2:]), px)
    if region == "mouth":
        return _grow(_need(labels, MOUTH, "mouth", region, who), px)
    eyes = _centre(_need(labels, EYES[:2], "eyes", region, who))
    mouth = _centre(_need(labels, MOUTH, "mouth", region, who))
    down = mouth - eyes
    length = float(np.linalg.norm(down))
    ys, xs = np.mgrid[: labels.shape[0], : labels.shape[1]]
    along = ((xs - eyes[0]) * down[0] + (ys - eyes[1]) * down[1]) / max(length, 1e-6)
    below = along >= split * length
    return ~below if region == "upper" else below


def region_for_fix(measure: str) -> str:
    """The region a best take replaces to fix one measure (a blink: the eyes; a smile: the
    lower face; anything else: the whole face)."""
    return {"eyes_open": "eyes", "gaze": "eyes", "smile": "lower"}.get(measure, "face")
