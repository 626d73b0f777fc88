"""The offline animator: the driver's motion, measured on the face mesh and retargeted onto the
neutral face, applied as a piecewise-affine warp (no learned weights; the face mesh ships in
mediapipe 0.10.21).

Paper B.2 animates each neutral face with LivePortrait; this backend keeps its contract
(relative motion from the driver's first to its last frame, the rest of the image untouched)
with classical means: `pipeline/backends/animators/motion.py` measures and retargets, and
`pipeline/backends/animators/warp.py` moves the pixels and paints what a warp cannot invent (an opened
mouth's cavity and teeth, a closed eye's lashes).
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from pipeline.backends.animators import motion as mo
from pipeline.backends.animators.base import AnimatedImage, Animator
from pipeline.backends.animators.warp import paint_lashes, paint_mouth, warp
from pipeline.config.animate import AnimateParams
from pipeline.faces import mesh as fm
from pipeline.rejection import Reject


def _key(image: np.ndarray) -> str:
    return hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=12).hexdigest()


class MeshAnimator(Animator):
    """Neutral face + driver (first, last) -> the neutral face with the driver's motion."""

    name = "mesh"
    worker_local = ("_motions",)

    def __init__(self, ring_scale: float = 1.6, driver_cache: int = 512, blink_ratio: float = 0.75) -> None:
        """`blink_ratio`: a driver eye whose opening falls below this share of its first frame's
        is a blink (or wink) and closes the neutral face's eye fully; above it the lids move as
        measured (a laugh's or a squint's narrowed eyes stay narrowed, not shut)."""
        self.ring_scale, self.driver_cache, self.blink_ratio = ring_scale, driver_cache, blink_ratio
        self.detector = fm.FaceMeshDetector(max_faces=1)
        self._motions: dict[str, mo.Motion] = {}

    def mesh(self, rgb: np.ndarray, what: str) -> fm.Mesh:
        found = self.detector.detect_one(rgb)
        if found is None:
            raise Reject("no_face" if what == "neutral" else "driver_no_face", f"no face mesh in the {what} image")
        return found

    def driver_motion(self, first: np.ndarray, last: np.ndarray) -> mo.Motion:
        """Measured once per driver clip (the same 200 clips drive every face)."""
        key = _key(first) + _key(last)
        if key not in self._motions:
            if len(self._motions) >= self.driver_cache:
                self._motions.pop(next(iter(self._motions)))
            self._motions[key] = mo.measure(self.mesh(first, "driver first frame"), self.mesh(last, "driver last frame"))
        return self._motions[key]

    def animate(self, neutral: np.ndarray, driver_first: np.ndarray, driver_last: np.ndarray, *,
                seed: int = 0) -> AnimatedImage:
        return self.apply(neutral, self.mesh(neutral, "neutral"), self.driver_motion(driver_first, driver_last))

    def animate_batch(self, neutral: np.ndarray, drivers: Sequence[tuple[np.ndarray, np.ndarray]], *,
                      seeds: Sequence[int], programs: Sequence[mo.Controls | None] | None = None) -> list[AnimatedImage]:
        """A library driver's own program is applied as written, on the neutral face's geometry:
        measuring it back off the rendered clip loses what the face mesh under-reads on the
        template (a full blink behind glasses read as 0.70 of an open eye; #31). A user's clip
        (program None) is measured."""
        base = self.mesh(neutral, "neutral")  # once per neutral face
        programs = list(programs) if programs is not None else [None] * len(drivers)
        return [self.apply(neutral, base, mo.program_motion(base, program) if program is not None
                           else self.driver_motion(first, last)) for (first, last), program in zip(drivers, programs)]

    def apply(self, neutral: np.ndarray, base: fm.Mesh, motion: mo.Motion) -> AnimatedImage:
        """Warp `neutral` (whose mesh is `base`) by `motion`, then paint mouth and eyes."""
        if motion.exact:  # a program's lids are as written: only a shut eye gets lashes
            closing = tuple(side for side, r in zip(("r", "l"), motion.eye_ratio) if r <= 0.1)
        else:
            closing = tuple(side for side, r in zip(("r", "l"), motion.eye_ratio) if r < self.blink_ratio)
        if closing and not motion.exact:  # replace the measured lid motion by a full closure of those eyes
            front = fm.frontalized(base)
            lids = mo.closing_offsets(front, closing)
            moving = np.abs(lids).sum(1) > 0
            offsets = motion.offsets.copy()
            offsets[moving] = lids[moving]
            motion = mo.Motion(motion.rotation, offsets, motion.eye_ratio)
        target = mo.apply(base, motion)
        # the warp is driven by the 468 surface points: the 10 iris points sit inside the eye
        # opening and would pin a closing lid in place
        image, moved = warp(neutral, base.xy[:468], target[:468, :2], self.ring_scale)
        after = fm.Mesh(target, base.width, base.height)
        before_x, after_x = fm.expression(base), fm.expression(after)
        iod = base.interocular
        # a closed mouth that opens needs a cavity; an already open one (teeth showing) is
        # stretched by the warp, which keeps its own teeth
        if before_x.mouth_open < 0.05 and after_x.mouth_open > 0.06:
            image = paint_mouth(image, target[:, :2], after_x.mouth_open, iod)
        if closing:  # the open eyes' pixels went where the head's motion took them, lids aside
            image = paint_lashes(image, target[:, :2], iod, closing, opened_eyes(base, motion))
        return AnimatedImage(image, {"motion_magnitude": motion.magnitude, "moved_fraction": float(moved.mean())})


def opened_eyes(base: fm.Mesh, motion: mo.Motion) -> np.ndarray:
    """Where the warp put the source's open eyes: the landmarks (478, 2) under the same head
    rotation and expression with the eye loops' own offsets (the lids) left out. Painting the
    source's eye positions instead missed a turned or nodding head's eyes (#24: a blink at a
    20-degree nod read open)."""
    reg = fm.regions()
    still = motion.offsets.copy()
    still[list(reg["r_eye"]) + list(reg["l_eye"])] = 0.0
    return mo.apply(base, mo.Motion(motion.rotation, still))[:, :2]


def render_program(template: np.ndarray, controls: mo.Controls, frames: int, animator: MeshAnimator | None = None,
                   template_mesh: fm.Mesh | None = None) -> list[np.ndarray]:
    """A driving clip: the template face moving from rest (frame 0) to the program's full
    controls (last frame), eased in and out."""
    animator = animator or MeshAnimator()
    base = template_mesh or animator.mesh(template, "neutral")
    out = []
    for t in np.linspace(0.0, 1.0, frames):
        ease = 0.5 - 0.5 * np.cos(np.pi * t)
        motion = mo.program_motion(base, controls.scaled(float(ease)))
        out.append(template.copy() if ease == 0 else animator.apply(template, base, motion).image)
    return out


def from_params(params: AnimateParams) -> MeshAnimator:
    """The animator `animate.backend: mesh` names (pipeline/backends/animators/factory.py); it takes no
    settings from the `animate` params section."""
    return MeshAnimator()
