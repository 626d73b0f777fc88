"""`best_take` section: `piq best-take` (facereplace/best_take.py), choosing each person's best
face across a burst (paper section 1: Google Best Take, Oppo AI Perfect Shot, Huawei AI Best
Expression) and replacing it into the base frame through `replace`'s method and paste-back.

Identity thresholds, crop, paste-back and output quality are `replace`'s keys: a best-take
replacement is a `piq replace` whose reference is another shot of the burst.
"""
from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class ScoreWeights:
    """How much each measure counts in a face's score (each measure is scored 0..1 first)."""

    eyes_open: float = 3.0     # a blink ruins a shot: weighted highest
    smile: float = 1.0
    gaze: float = 1.0          # irises centred in the eye openings: looking at the camera
    sharpness: float = 0.5     # relative to the sharpest face of that person in the burst
    frontal: float = 1.0       # head yaw / pitch towards the camera

    def validate(self) -> None:
        values = dataclasses.astuple(self)
        if min(values) < 0 or sum(values) <= 0:
            raise ValueError("best_take.weights must be >= 0 and not all 0")


@dataclasses.dataclass(frozen=True)
class BestTakeParams:
    method: Literal["classical", "piq"] = "classical"  # the replace method (replace.method's choices)
    weights: ScoreWeights = ScoreWeights()
    # eyes and smile score relative to the person's best in the burst, but never against less than:
    eyes_open_full: float = 0.22       # eye opening / eye width (Face.eyes_open: open ~0.25-0.37, shut < 0.13)
    smile_full: float = 0.10           # mouth-corner lift per interocular (Face.smile: neutral ~0, smiling ~0.08-0.11)
    gaze_limit: float = 0.6            # iris offset in the eye opening that scores 0 (0 = centred)
    frontal_limit_deg: float = 25.0    # max(|yaw|, |pitch|) that scores 0
    min_gain: float = 0.05             # a face is replaced only if the chosen one scores this much higher
    max_shift: float = 1.0             # one person across the burst: face centres within this x the face size
    contact_tile: int = 160            # contact sheet: face thumbnail side (px)
    candidates: int = 3                # faces offered per person (the best by score): the sheet, the plan file, the app
    region: Literal["auto", "face", "eyes", "mouth", "upper", "lower"] = "auto"  # auto: from what the pick fixes

    def validate(self) -> None:
        if min(self.eyes_open_full, self.smile_full, self.gaze_limit, self.frontal_limit_deg, self.max_shift) <= 0:
            raise ValueError("best_take.eyes_open_full, smile_full, gaze_limit, frontal_limit_deg and max_shift must be > 0")
        if not 0 <= self.min_gain < 1:
            raise ValueError("best_take.min_gain must be within [0, 1)")
        if self.candidates < 1:
            raise ValueError("best_take.candidates must be >= 1")
        if not 48 <= self.contact_tile <= 1024:
            raise ValueError("best_take.contact_tile must be within [48, 1024] px")
