"""`piq drivers`: the driving-video library (paper 3.2, B.2: 200 driving videos).

Items: every motion program of `pipeline/backends/animators/programs.py` (ids d000.., rendered by the
offline animator on a public-domain template face, matplotlib's Grace Hopper) and every clip of
`drivers.clips_dir` (ids after the programs'). Both kinds end as mp4 clips measured the same
way: the motion from the first frame to the last on the face mesh. A user clip is read by the
one video reader (pipeline/media/video.py: upright, any common codec); one that is too short, loses
the face, shows several faces, or whose head rolls or turns beyond `max_roll_deg` /
`max_yaw_deg` (at a checked frame, or from the first frame to the last) is refused with that
reason.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np

from pipeline.backends.animators import motion as mo
from pipeline.backends.animators.mesh_animator import MeshAnimator, render_program
from pipeline.backends.animators.programs import programs
from pipeline.config.animate import DriversParams
from pipeline.faces import mesh as fm
from pipeline.config.params import load_params
from pipeline.rejection import Reject
from pipeline.engine.runner import Runner, end_main
from pipeline.engine.stage import Item, ItemContext, Output, Stage
from pipeline.media.video import Clip

CLIP_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")


def template_face(size: int) -> np.ndarray:
    """The template: Grace Hopper's portrait (public domain, ships with matplotlib), cropped
    around the face like an ingest crop. A neutral, closed-mouth face, so that an opening mouth
    or a smile measures as the full motion of its program (an open-mouthed template would
    understate "open mouth")."""
    from matplotlib import cbook

    bgr = cv2.imread(str(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    face = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)[40:500, 20:480]
    return cv2.resize(np.ascontiguousarray(face), (size, size), interpolation=cv2.INTER_AREA)


def list_items(params: DriversParams) -> list[Item]:
    unknown = sorted(set(params.programs) - {p.label for p in programs()})
    if unknown:
        raise ValueError(f"drivers.programs: unknown label(s) {unknown} (pipeline/backends/animators/programs.py)")
    items = [Item(f"d{i:03d}", {"kind": "program", "index": i}) for i, prog in enumerate(programs())
             if not params.programs or prog.label in params.programs]
    if params.clips_dir:
        clips = sorted(p for p in Path(params.clips_dir).iterdir() if p.suffix.lower() in CLIP_SUFFIXES)
        items += [Item(f"d{len(programs()) + k:03d}", {"kind": "clip", "path": str(p)}) for k, p in enumerate(clips)]
    return items


def encode_mp4(frames: list[np.ndarray], fps: int) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        h, w = frames[0].shape[:2]
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        for f in frames:
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
        writer.release()
        return path.read_bytes()


def motion_columns(motion: mo.Motion, first: fm.Mesh, last: fm.Mesh) -> dict[str, Any]:
    a, b = fm.head_pose(first), fm.head_pose(last)
    ea, eb = fm.expression(first).as_dict(), fm.expression(last).as_dict()
    return {"d_yaw": b[0] - a[0], "d_pitch": b[1] - a[1], "d_roll": b[2] - a[2],
            **{f"d_{k}": eb[k] - ea[k] for k in ("mouth_open", "mouth_width", "smile", "eye_open_r", "eye_open_l", "brow_raise")},
            "motion_magnitude": motion.magnitude, "vector": json.dumps(np.round(motion.vector(), 4).tolist())}


@dataclasses.dataclass
class DriversStage(Stage):
    params: DriversParams
    name: ClassVar[str] = "drivers"
    worker_local: ClassVar[tuple[str, ...]] = ("_animator", "_template", "_checker")
    manifest_columns: ClassVar[dict[str, str]] = {
        "driver_id": "string", "label": "string", "source": "string", "path": "string", "n_frames": "int64",
        "weight": "float64", "motion_magnitude": "float64", "vector": "string",
    }

    def __post_init__(self) -> None:
        self._animator: MeshAnimator | None = None
        self._template: tuple[np.ndarray, fm.Mesh] | None = None
        self._checker: fm.FaceMeshDetector | None = None  # user-clip checks: up to two faces

    def setup(self) -> None:
        if self._animator is None:
            self._animator = MeshAnimator()
            face = template_face(self.params.size)
            self._template = (face, self._animator.mesh(face, "neutral"))

    def process(self, item: Item, ctx: ItemContext) -> Output:
        self.setup()
        p = self.params
        if item.data["kind"] == "program":
            program = programs()[item.data["index"]]
            face, base = self._template
            frames = render_program(face, program.controls, p.frames, self._animator, base)
            label, source, weight = program.label, "program", p.subtle_smile_weight if program.subtle_smile else 1.0
            clip, n_frames = encode_mp4(frames, p.fps), len(frames)
        else:
            path = Path(item.data["path"])
            frames, n_frames = self.check_clip(path)
            label, source, weight = path.stem.replace("_", " "), "clip", 1.0
            clip = path.read_bytes()
        first = self._animator.mesh(frames[0], "driver first frame")
        last = self._animator.mesh(frames[-1], "driver last frame")
        motion = mo.measure(first, last)
        if source == "clip":
            self.check_motion(first, last, Path(item.data["path"]))
        rel = f"clips/{item.id}.mp4" if source == "program" else f"clips/{item.id}{Path(item.data['path']).suffix.lower()}"
        row = {"driver_id": item.id, "label": label, "source": source, "path": rel, "n_frames": n_frames,
               "weight": weight, **motion_columns(motion, first, last)}
        return Output(rows=[row], files={rel: clip})

    def check_clip(self, path: Path) -> tuple[list[np.ndarray], int]:
        """Quality checks of a user clip (paper B.2 chose its 200 by hand; here they are rules):
        `check_frames` frames spread over the clip (first and last among them), read upright by
        the one video reader, each with one face whose pose is within the limits. Returns those
        frames and the clip's frame count."""
        p = self.params
        with Clip(path) as clip:
            n = clip.info.frames
            if n < p.min_frames:
                raise Reject("too_short", f"{path.name}: {n} frames, fewer than drivers.min_frames {p.min_frames}")
            picks = np.unique(np.linspace(0, n - 1, p.check_frames).round().astype(int)).tolist()
            frames = {f.index: f.rgb for f in clip.read(picks)}
        if len(frames) < len(picks):
            missing = sorted(set(picks) - set(frames))
            raise Reject("unreadable_video", f"{path.name}: frames {missing} do not decode")
        if self._checker is None:
            self._checker = fm.FaceMeshDetector(max_faces=2)
        for i in picks:
            faces = self._checker.detect(frames[i])
            if not faces:
                raise Reject("face_lost", f"{path.name}: no face in frame {i}")
            if len(faces) > 1:
                raise Reject("several_faces", f"{path.name}: {len(faces)} faces in frame {i}")
            yaw, _, roll = fm.head_pose(faces[0])
            self._check_pose(yaw, roll, f"{path.name}: frame {i}")
        return [frames[i] for i in picks], n

    def check_motion(self, first: fm.Mesh, last: fm.Mesh, path: Path) -> None:
        """The head's turn and roll from the first frame to the last (what the driver transfers)."""
        (y0, _, r0), (y1, _, r1) = fm.head_pose(first), fm.head_pose(last)
        self._check_pose(y1 - y0, r1 - r0, f"{path.name}: from the first frame to the last")

    def _check_pose(self, yaw: float, roll: float, where: str) -> None:
        p = self.params
        if abs(roll) > p.max_roll_deg:
            raise Reject("face_rolled", f"{where} the head rolls {roll:.1f} deg, beyond drivers.max_roll_deg "
                         f"{p.max_roll_deg:g} (a sideways clip, or a tilt no driver should pass on)")
        if abs(yaw) > p.max_yaw_deg:
            raise Reject("face_turned", f"{where} the head turns {yaw:.1f} deg, beyond drivers.max_yaw_deg {p.max_yaw_deg:g}")


def run(params: DriversParams, runner_params, seed: int):
    return Runner(runner_params, seed).run(DriversStage(params), list_items(params), params.out_dir)


def main(args: argparse.Namespace) -> int:
    all_params = load_params(args.params)
    summary = run(all_params.drivers, all_params.runner, all_params.seed)
    s = summary.stats
    return end_main(s, f"drivers: {s['items']} clips, {s['done']} kept, {s['rejected']} refused {s['reject_codes']}, "
                       f"{summary.skipped} already done -> {all_params.drivers.out_dir}")
