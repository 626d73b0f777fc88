"""The driving library's motion programs: at least 200 named expression and pose changes.

Paper 3.2 / B.2: 200 manually chosen neutral-to-expressive driving videos covering expressions
("smile with mouth open", "make a sad face", ...) and head motions ("look left", "tilt your
head upward"), with subtle smiles deliberately oversampled. Here each program is an expression
crossed with a head motion; subtle smiles get `subtle_smile_weight` when drivers are drawn.
The list and its order are fixed, so driver ids (d000, d001, ...) are stable.
"""
from __future__ import annotations

import dataclasses

from pipeline.backends.animators.motion import Controls

EXPRESSIONS: tuple[tuple[str, Controls], ...] = (
    ("subtle smile", Controls(smile=0.25)),
    ("gentle smile", Controls(smile=0.45)),
    ("smile", Controls(smile=0.75)),
    ("big smile", Controls(smile=1.0)),
    ("smile with mouth open", Controls(smile=0.8, mouth_open=0.5)),
    ("laugh", Controls(smile=1.0, mouth_open=0.9, blink_r=0.85, blink_l=0.85)),
    ("slightly open mouth", Controls(mouth_open=0.35)),
    ("open mouth", Controls(mouth_open=0.8)),
    ("surprise", Controls(mouth_open=0.9, brows_up=1.0)),
    ("raise brows", Controls(brows_up=1.0)),
    ("sad face", Controls(frown=1.0, brows_down=0.5, brows_inner_up=0.6)),
    ("frown", Controls(frown=0.8, brows_down=1.0, brows_in=0.5)),
    ("angry face", Controls(frown=0.2, brows_down=1.0, brows_in=1.0)),
    ("pout", Controls(pucker=0.8)),
    ("blink", Controls(blink_r=1.0, blink_l=1.0)),
    ("wink left", Controls(blink_l=1.0, smile=0.3)),
    ("wink right", Controls(blink_r=1.0, smile=0.3)),
    ("squint", Controls(blink_r=0.7, blink_l=0.7)),
    ("neutral", Controls()),
)
POSES: tuple[tuple[str, dict[str, float]], ...] = (
    ("", {}),
    ("look left", {"yaw": -15.0}),
    ("look right", {"yaw": 15.0}),
    ("look slightly left", {"yaw": -7.0}),
    ("look slightly right", {"yaw": 7.0}),
    ("tilt head upward", {"pitch": 10.0}),
    ("look down", {"pitch": -10.0}),
    ("tilt head left", {"roll": -10.0}),
    ("tilt head right", {"roll": 10.0}),
    ("look up and left", {"yaw": -10.0, "pitch": 8.0}),
    ("look down and right", {"yaw": 10.0, "pitch": -8.0}),
)


@dataclasses.dataclass(frozen=True)
class Program:
    label: str
    controls: Controls
    subtle_smile: bool


def programs() -> list[Program]:
    """Every expression x head motion, except a still neutral face (no motion at all)."""
    out = []
    for name, expr in EXPRESSIONS:
        for pose_name, pose in POSES:
            if name == "neutral" and not pose_name:
                continue
            label = name if not pose_name else (pose_name if name == "neutral" else f"{name}, {pose_name}")
            subtle = "smile" in name and 0 < expr.smile <= 0.45
            out.append(Program(label, dataclasses.replace(expr, **pose), subtle))
    return out
