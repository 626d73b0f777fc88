"""What each motion program's label must do to a face, as measured changes on the face mesh.

A variant labelled "big smile" is only a big smile if its mouth corners rose and widened; one
labelled "surprise" only if the mouth opened round and the brows rose. Each expression of
`pipeline/backends/animators/programs.py` has a signature here: conditions on the change of the face
mesh's measures (`pipeline.faces.mesh.measures`, interocular ratios; eye openings as the ratio
after / before) from the neutral source to the animated image, both measured on the images.
The animate stage records every variant's verdict (`label_ok`, `label_misses`), the label
agreement benchmark (bench/label_agreement.py) counts them, and the captioner's expression words
are checked against the same labels.
"""
from __future__ import annotations

import operator
from typing import Callable, Mapping

Condition = tuple[str, str, float]  # (measure, "<" or ">", threshold)

_OPS: dict[str, Callable[[float, float], bool]] = {"<": operator.lt, ">": operator.gt}

# Thresholds (interocular ratios unless an eye ratio). Chosen from the motions' own sizes: a
# program at full strength moves the corners ~0.05-0.09 and the brows ~0.05-0.10; run-to-run
# noise of the measures on a re-detected 1024 px face is ~0.005.
LIFT, WIDEN, OPEN, BROW, NO_LIFT = 0.012, 0.02, 0.06, 0.02, 0.01

_SMILE: tuple[Condition, ...] = (("corner_lift", ">", LIFT), ("mouth_width", ">", WIDEN))
_SUBTLE: tuple[Condition, ...] = (("corner_lift", ">", LIFT / 2), ("mouth_width", ">", WIDEN / 2))
_CLOSED_MOUTH: tuple[Condition, ...] = (("mouth_open", "<", 0.04),)
_CORNERS_DOWN: tuple[Condition, ...] = (("corner_lift", "<", -LIFT),)

SIGNATURES: dict[str, tuple[Condition, ...]] = {
    "subtle smile": _SUBTLE + _CLOSED_MOUTH,
    "gentle smile": _SMILE + _CLOSED_MOUTH,
    "smile": _SMILE + _CLOSED_MOUTH,
    "big smile": _SMILE + (("corner_lift", ">", 2 * LIFT),) + _CLOSED_MOUTH,
    "smile with mouth open": _SMILE + (("mouth_open", ">", OPEN),),
    "laugh": _SMILE + (("mouth_open", ">", OPEN), ("eye_ratio_r", "<", 0.85), ("eye_ratio_l", "<", 0.85)),
    "slightly open mouth": (("mouth_open", ">", OPEN / 2), ("corner_lift", "<", NO_LIFT)),
    "open mouth": (("mouth_open", ">", OPEN), ("corner_lift", "<", NO_LIFT), ("brow_raise", "<", BROW)),
    "surprise": (("mouth_open", ">", OPEN), ("mouth_width", "<", WIDEN / 2), ("corner_lift", "<", NO_LIFT),
                 ("brow_raise", ">", BROW)),
    "raise brows": (("brow_raise", ">", BROW), ("mouth_open", "<", 0.04)),
    "sad face": _CORNERS_DOWN + (("brow_raise", "<", -BROW / 2),),
    "frown": _CORNERS_DOWN + (("brow_raise", "<", -BROW),),
    "angry face": (("brow_raise", "<", -BROW), ("brow_gap", "<", -0.01)),
    "pout": (("mouth_width", "<", -WIDEN),),
    "blink": (("eye_ratio_r", "<", 0.5), ("eye_ratio_l", "<", 0.5)),
    "wink left": (("eye_ratio_l", "<", 0.5), ("eye_ratio_r", ">", 0.75)),
    "wink right": (("eye_ratio_r", "<", 0.5), ("eye_ratio_l", ">", 0.75)),
    "squint": (("eye_ratio_r", "<", 0.9), ("eye_ratio_l", "<", 0.9), ("eye_ratio_r", ">", 0.3), ("eye_ratio_l", ">", 0.3)),
    "neutral": (("mouth_open", "<", 0.03), ("mouth_open", ">", -0.03), ("corner_lift", "<", NO_LIFT),
                ("corner_lift", ">", -NO_LIFT)),
}


def expression_of(label: str) -> str | None:
    """The expression part of a program label: "big smile, look left" -> "big smile"; a pose
    alone ("look left") is the neutral expression with a head motion; None for a label that
    names neither (a user's driving clip called "hello"): nothing to check."""
    from pipeline.backends.animators.programs import POSES

    name = label.split(",")[0].strip()
    if name in SIGNATURES:
        return name
    return "neutral" if name in {pose for pose, _ in POSES if pose} else None


def change(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """after - before for every shared measure, plus each eye's opening as after / before."""
    out = {k: float(after[k]) - float(before[k]) for k in before if k in after}
    for side in ("r", "l"):
        out[f"eye_ratio_{side}"] = float(after[f"eye_open_{side}"]) / max(float(before[f"eye_open_{side}"]), 1e-6)
    return out


def misses(label: str, delta: Mapping[str, float]) -> list[str]:
    """The conditions of `label`'s signature that `delta` (see `change`) fails, as text; empty
    when the variant shows its label."""
    out = []
    expression = expression_of(label)
    for measure, op, threshold in SIGNATURES.get(expression, ()) if expression else ():
        value = delta[measure]
        if not _OPS[op](value, threshold):
            out.append(f"{measure} {value:+.3f} not {op} {threshold:+.3f}")
    return out


def verdict(label: str, before: Mapping[str, float], after: Mapping[str, float] | None) -> tuple[bool | None, str]:
    """(shows its label?, what it misses) of a variant: None when the label has no signature,
    False with "no face mesh" when the variant's face cannot be measured."""
    if expression_of(label) is None:
        return None, ""
    if after is None:
        return False, "no face mesh"
    miss = misses(label, change(before, after))
    return not miss, "; ".join(miss)
