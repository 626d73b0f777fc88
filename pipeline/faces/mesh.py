"""Dense face mesh (mediapipe 0.10.21, whose FaceMesh and iris models ship in the wheel) and
the measurements the offline backends share: head pose, expression and gaze.

Why one module: the offline animator (warps over the mesh), the offline annotators (captions
from measured attributes, label-map polygons, normals for relighting) and the evaluation's
pose / expression / gaze distances all read the same 478 landmarks; measuring them in one place
keeps "a smile" or "looking left" meaning the same thing in the data set and in its metrics.

Conventions (image coordinates, y down; "left"/"right" are the *subject's* unless said "image"):
- `Mesh.points` is (478, 3) in pixels: x, y, and z = mediapipe's depth scaled like x (larger z
  is farther from the camera).
- yaw > 0: the nose turns towards image right (the subject looks to their left).
  pitch > 0: the nose turns up. roll > 0: the face rotates clockwise on screen (the image-right
  eye lower than the image-left eye). All in degrees; 0, 0, 0 is a frontal, upright face.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
from typing import Sequence

import numpy as np

from pipeline.quiet import native_stderr_filtered
from pipeline.engine.worker_state import WorkerLocal

N_POINTS = 478  # 468 face points + 2 x 5 iris points (refine_landmarks=True)

# Single landmarks (mediapipe face mesh topology; R = subject's right = image left).
NOSE_TIP = 1
FOREHEAD = 10
CHIN = 152
R_EYE_OUTER, R_EYE_INNER, R_EYE_TOP, R_EYE_BOTTOM = 33, 133, 159, 145
L_EYE_INNER, L_EYE_OUTER, L_EYE_TOP, L_EYE_BOTTOM = 362, 263, 386, 374
MOUTH_R, MOUTH_L = 61, 291  # mouth corners (subject's right = image left)
LIP_UPPER_INNER, LIP_LOWER_INNER = 13, 14
LIP_UPPER_OUTER, LIP_LOWER_OUTER = 0, 17
R_BROW_MID, L_BROW_MID = 105, 334
R_IRIS_CENTER, L_IRIS_CENTER = 468, 473


def _loop(edges: Sequence[tuple[int, int]]) -> tuple[int, ...]:
    """Order the edges of a closed mediapipe contour into one polygon (vertex loop)."""
    nxt: dict[int, list[int]] = {}
    for a, b in edges:
        nxt.setdefault(a, []).append(b)
        nxt.setdefault(b, []).append(a)
    start = min(nxt)
    loop, prev, cur = [start], None, start
    while True:
        options = [n for n in nxt[cur] if n != prev]
        if not options:
            break
        step = options[0]
        if step == start:
            break
        if step in loop:
            break
        loop.append(step)
        prev, cur = cur, step
    return tuple(loop)


@functools.lru_cache(maxsize=1)
def regions() -> dict[str, tuple[int, ...]]:
    """Landmark index sets of named regions, from mediapipe's own connection tables.
    Closed contours (face_oval, eyes, iris) are ordered loops usable as polygons; the others
    are unordered index sets (use their convex hull)."""
    from mediapipe.python.solutions import face_mesh_connections as c

    def points(edges) -> tuple[int, ...]:
        return tuple(sorted({i for e in edges for i in e}))

    lips = points(c.FACEMESH_LIPS)
    return {
        "face_oval": _loop(c.FACEMESH_FACE_OVAL),
        "r_eye": _loop(c.FACEMESH_RIGHT_EYE),
        "l_eye": _loop(c.FACEMESH_LEFT_EYE),
        "r_brow": points(c.FACEMESH_RIGHT_EYEBROW),
        "l_brow": points(c.FACEMESH_LEFT_EYEBROW),
        "r_iris": _loop(c.FACEMESH_RIGHT_IRIS),
        "l_iris": _loop(c.FACEMESH_LEFT_IRIS),
        "nose": points(c.FACEMESH_NOSE),
        "lips": lips,
        "tesselation": points(c.FACEMESH_TESSELATION),
    }


@functools.lru_cache(maxsize=1)
def lip_loops() -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(outer, inner) lip contours as ordered loops. mediapipe's FACEMESH_LIPS holds both
    rings; they are split by connectivity."""
    from mediapipe.python.solutions import face_mesh_connections as c

    edges = list(c.FACEMESH_LIPS)
    adj: dict[int, set[int]] = {}
    for a, b in edges:
        adj.setdefault(a, set()).add(b)
        adj.setdefault(b, set()).add(a)
    rings: list[set[int]] = []
    seen: set[int] = set()
    for v in adj:
        if v in seen:
            continue
        ring, stack = set(), [v]
        while stack:
            u = stack.pop()
            if u in ring:
                continue
            ring.add(u)
            stack.extend(adj[u] - ring)
        seen |= ring
        rings.append(ring)
    loops = [_loop([e for e in edges if e[0] in r]) for r in rings]
    outer, inner = sorted(loops, key=lambda lp: -len(lp)) if len(loops) == 2 else (loops[0], loops[0])
    if LIP_UPPER_OUTER not in outer:  # make sure "outer" holds the outer lip points
        outer, inner = inner, outer
    return outer, inner


@dataclasses.dataclass(frozen=True)
class Mesh:
    """478 landmarks of one face in pixel units of the image it was found in."""

    points: np.ndarray  # (478, 3) float64: x, y, z (z scaled like x; larger = farther)
    width: int
    height: int

    @property
    def xy(self) -> np.ndarray:
        return self.points[:, :2]

    @property
    def box(self) -> tuple[float, float, float, float]:
        """Tight box of the face mesh (x0, y0, x1, y1)."""
        xy = self.points[:468, :2]
        return float(xy[:, 0].min()), float(xy[:, 1].min()), float(xy[:, 0].max()), float(xy[:, 1].max())

    @property
    def interocular(self) -> float:
        """Distance between the outer eye corners (pixels, 3D): the unit of every ratio."""
        return float(np.linalg.norm(self.points[L_EYE_OUTER] - self.points[R_EYE_OUTER]))

    def five_points(self) -> np.ndarray:
        """MTCNN-order five landmarks (image-left eye, image-right eye, nose, image-left mouth
        corner, image-right mouth corner), (5, 2): lets mesh and MTCNN code share geometry."""
        p = self.points
        r_eye = p[[R_EYE_OUTER, R_EYE_INNER]].mean(0)
        l_eye = p[[L_EYE_OUTER, L_EYE_INNER]].mean(0)
        return np.stack([r_eye, l_eye, p[NOSE_TIP], p[MOUTH_R], p[MOUTH_L]])[:, :2]


def _denormals_flushed() -> bool:
    """Whether this thread flushes denormal floats to zero (x86 FTZ/DAZ), read off a float32
    product: numpy computes in this thread, under its floating-point flags."""
    tiny = np.array([1e-39], np.float32)
    return bool((tiny * np.float32(1.0))[0] == 0.0)


@contextlib.contextmanager
def ieee_denormals():
    """mediapipe's TFLite kernels find no face when denormals are flushed, which the CPU trainer
    turns on for speed (`torch.set_flush_denormal`, train/loop.py) for the whole thread. Turn it
    off around mediapipe (its worker threads inherit the flag when the graph starts) and back."""
    flushed = _denormals_flushed()
    if flushed:
        import torch

        torch.set_flush_denormal(False)
    try:
        yield
    finally:
        if flushed:
            torch.set_flush_denormal(True)


class FaceMeshDetector(WorkerLocal):
    """mediapipe FaceMesh in static-image mode with iris refinement. Lazily built, so it can be
    constructed on a driver and shipped to a Ray worker before the model loads."""

    worker_local = ("_model",)

    def __init__(self, max_faces: int = 2, min_confidence: float = 0.5) -> None:
        self.max_faces = max_faces
        self.min_confidence = min_confidence
        self._model = None

    def _get(self):
        if self._model is None:
            from mediapipe.python.solutions import face_mesh

            self._model = face_mesh.FaceMesh(
                static_image_mode=True, refine_landmarks=True, max_num_faces=self.max_faces,
                min_detection_confidence=self.min_confidence,
            )
        return self._model

    def detect(self, rgb: np.ndarray) -> list[Mesh]:
        """Every face mesh in an RGB uint8 image, largest face first."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image, got shape {rgb.shape} dtype {rgb.dtype}")
        h, w = rgb.shape[:2]
        with native_stderr_filtered(), ieee_denormals():
            result = self._get().process(np.ascontiguousarray(rgb))
        meshes = []
        for face in result.multi_face_landmarks or []:
            pts = np.array([(lm.x * w, lm.y * h, lm.z * w) for lm in face.landmark], dtype=np.float64)
            meshes.append(Mesh(pts, w, h))
        meshes.sort(key=lambda m: -(m.box[2] - m.box[0]) * (m.box[3] - m.box[1]))
        return meshes

    def detect_one(self, rgb: np.ndarray) -> Mesh | None:
        meshes = self.detect(rgb)
        return meshes[0] if meshes else None


# --- head pose -------------------------------------------------------------------------------

def head_rotation(mesh: Mesh) -> np.ndarray:
    """3x3 rotation whose columns are the head's axes in camera coordinates: x towards the
    image-right eye, y down the face, z into the head (away from the camera). Identity for a
    frontal upright face. The forward axis is the normal of the plane fitted to the face oval
    (robust to expression: the oval barely moves when the mouth opens); x is the eye-corner
    line projected into that plane."""
    p = mesh.points
    oval = p[list(regions()["face_oval"])]
    centred = oval - oval.mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    z = vt[2] / np.linalg.norm(vt[2])
    if z[2] < 0:  # point into the head, away from the camera
        z = -z
    ex = p[L_EYE_OUTER] - p[R_EYE_OUTER]
    x = ex - ex.dot(z) * z
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return np.stack([x, y, z], axis=1)


# The face-oval plane leans back on an upright face (the forehead points recede): measured on
# the two public-domain portraits that pip packages ship (astronaut -9.4 deg, Grace Hopper
# -5.7 deg, both looking at the camera), so this offset makes an upright face read ~0 pitch.
PITCH_OFFSET_DEG = 7.5


def head_pose(mesh: Mesh) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees, conventions in the module docstring."""
    rot = head_rotation(mesh)
    forward = -rot[:, 2]  # from the head towards the camera side: the nose direction
    yaw = np.degrees(np.arctan2(forward[0], -forward[2]))
    pitch = np.degrees(np.arctan2(-forward[1], np.hypot(forward[0], forward[2]))) + PITCH_OFFSET_DEG
    x = rot[:, 0]
    roll = np.degrees(np.arctan2(x[1], x[0]))
    return float(yaw), float(pitch), float(roll)


def frontalized(mesh: Mesh) -> np.ndarray:
    """Landmarks in the head's own frame, centred on the eye midpoint and divided by the
    interocular distance: pose and scale removed, expression kept. (478, 3)."""
    rot = head_rotation(mesh)
    p = mesh.points
    origin = (p[L_EYE_OUTER] + p[R_EYE_OUTER]) / 2
    return (p - origin) @ rot / mesh.interocular


# --- expression and gaze ---------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Expression:
    """Pose-normalised expression measures (ratios of the interocular distance unless said).

    mouth_open: inner-lip gap. mouth_width: corner-to-corner distance. smile: how far the
    mouth corners sit above the lip centre line (positive = corners up), plus, for an open
    mouth, how much wider than a relaxed mouth it is (`smile_of`). eye_open_r / _l: lid gap
    over eye width (eye aspect ratio), each eye. eyes_open: both eyes' opening weighted by how
    much of each eye the camera sees (`visible_eyes_open`: a head turned 40 degrees is judged
    by its near eye). brow_raise: brow-to-eye distance, both sides.
    """

    mouth_open: float
    mouth_width: float
    smile: float
    eye_open_r: float
    eye_open_l: float
    brow_raise: float
    eyes_open: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


# smile_of: a relaxed mouth is about this wide (interoculars; the portraits and corpus faces
# measure 0.59-0.70 at rest); an open mouth counts as a smile by how much wider it is
RELAXED_MOUTH_WIDTH = 0.70
OPEN_MOUTH = 0.10            # inner-lip gap at which the width term counts in full
WIDTH_WEIGHT = 0.5


def smile_of(corner_lift: float, mouth_open: float, mouth_width: float) -> float:
    """The smile measure: the corners' lift over the lip centre line, which a closed smile
    shows, plus, as the mouth opens, half its widening beyond a relaxed mouth. Why both: on an
    open mouth the corners lie on the opening's horizontal axis, so their lift over its centre
    is ~0 whatever the expression (a broad open-mouth laugh measured -0.0002, issue 24); a laugh
    pulls the corners wide, speaking does not."""
    gate = min(1.0, max(0.0, mouth_open / OPEN_MOUTH))
    return float(corner_lift + WIDTH_WEIGHT * gate * max(0.0, mouth_width - RELAXED_MOUTH_WIDTH))


def visible_eyes_open(mesh: Mesh, eye_open_r: float, eye_open_l: float) -> float:
    """Both eyes' opening, each weighted by the fourth power of its width on the image (over
    the wider one's): equal weights for a frontal face; under a head turn the far eye, seen
    foreshortened and measured badly (the mesh guesses its lids), counts little."""
    p = mesh.points
    w_r = float(np.linalg.norm(p[R_EYE_OUTER, :2] - p[R_EYE_INNER, :2]))
    w_l = float(np.linalg.norm(p[L_EYE_OUTER, :2] - p[L_EYE_INNER, :2]))
    top = max(w_r, w_l, 1e-6)
    a, b = (w_r / top) ** 4, (w_l / top) ** 4
    return float((a * eye_open_r + b * eye_open_l) / (a + b))


def expression(mesh: Mesh) -> Expression:
    f = frontalized(mesh)
    corners_y = (f[MOUTH_R, 1] + f[MOUTH_L, 1]) / 2
    lip_centre_y = (f[LIP_UPPER_INNER, 1] + f[LIP_LOWER_INNER, 1]) / 2
    eye_w_r = np.linalg.norm(f[R_EYE_OUTER, :2] - f[R_EYE_INNER, :2])
    eye_w_l = np.linalg.norm(f[L_EYE_OUTER, :2] - f[L_EYE_INNER, :2])
    brow_r = f[R_EYE_TOP, 1] - f[R_BROW_MID, 1]
    brow_l = f[L_EYE_TOP, 1] - f[L_BROW_MID, 1]
    mouth_open = float(f[LIP_LOWER_INNER, 1] - f[LIP_UPPER_INNER, 1])
    mouth_width = float(np.linalg.norm(f[MOUTH_L, :2] - f[MOUTH_R, :2]))
    eye_r = float((f[R_EYE_BOTTOM, 1] - f[R_EYE_TOP, 1]) / max(eye_w_r, 1e-6))
    eye_l = float((f[L_EYE_BOTTOM, 1] - f[L_EYE_TOP, 1]) / max(eye_w_l, 1e-6))
    return Expression(
        mouth_open=mouth_open,
        mouth_width=mouth_width,
        smile=smile_of(float(lip_centre_y - corners_y), mouth_open, mouth_width),
        eye_open_r=eye_r,
        eye_open_l=eye_l,
        brow_raise=float((brow_r + brow_l) / 2),
        eyes_open=visible_eyes_open(mesh, eye_r, eye_l),
    )


def gaze(mesh: Mesh) -> tuple[float, float]:
    """Iris position inside the eye opening, both eyes averaged, in the head frame: (gx, gy)
    in [-1, 1] roughly; gx > 0 = towards image right, gy > 0 = down. 0, 0 = looking along the
    head's forward axis."""
    f = frontalized(mesh)
    out = []
    for outer, inner, top, bottom, iris in (
        (R_EYE_OUTER, R_EYE_INNER, R_EYE_TOP, R_EYE_BOTTOM, R_IRIS_CENTER),
        (L_EYE_INNER, L_EYE_OUTER, L_EYE_TOP, L_EYE_BOTTOM, L_IRIS_CENTER),
    ):
        x0, x1 = f[outer, 0], f[inner, 0]
        cx, half_w = (x0 + x1) / 2, max(abs(x1 - x0) / 2, 1e-6)
        cy, half_h = (f[top, 1] + f[bottom, 1]) / 2, max(abs(f[bottom, 1] - f[top, 1]) / 2, 1e-6)
        out.append(((f[iris, 0] - cx) / half_w, (f[iris, 1] - cy) / max(half_h, 0.25 * half_w)))
    g = np.mean(out, axis=0)
    return float(g[0]), float(g[1])


# --- expression shape: measures added for the dataset's label signatures (#31) ----------------
# Added beside `expression` (whose formulas the photo tool owns) rather than inside it: these
# read what `smile` and `brow_raise` cannot separate. `smile` is the corners' height over the
# lip centre line, so a jaw that drops the lower lip raises it as much as a smile does; the
# corners' own height in the head frame does not move with the jaw. `brow_raise` averages both
# brows' heights, so knitted brows (drawn together) need their own distance.

R_BROW_INNER, L_BROW_INNER = 55, 285  # inner (nose-side) ends of the lower brow contours


@dataclasses.dataclass(frozen=True)
class ExpressionShape:
    """Interocular ratios in the head frame (pose and face size removed).

    corner_lift: height of the mouth corners relative to the eye line (negative: they sit below
    it; larger = higher). brow_gap: horizontal distance between the brows' inner ends (smaller =
    drawn together). brow_inner: height of the inner brow ends above the eye line. mouth_round:
    inner-lip gap over corner-to-corner width (an "O" is round, a grin is flat). corner_curve:
    height of the corners above the upper inner lip's centre (a smile curves the mouth up; a
    dropped jaw leaves the upper lip and the corners about where they were, unlike `smile`, which
    reads from the lip centre line and so rises when the lower lip drops).
    """

    corner_lift: float
    brow_gap: float
    brow_inner: float
    mouth_round: float
    corner_curve: float

    def as_dict(self) -> dict[str, float]:
        return dataclasses.asdict(self)


def expression_shape(mesh: Mesh) -> ExpressionShape:
    f = frontalized(mesh)
    width = float(np.linalg.norm(f[MOUTH_L, :2] - f[MOUTH_R, :2]))
    gap = float(f[LIP_LOWER_INNER, 1] - f[LIP_UPPER_INNER, 1])
    return ExpressionShape(
        corner_lift=float(-(f[MOUTH_R, 1] + f[MOUTH_L, 1]) / 2),
        brow_gap=float(abs(f[L_BROW_INNER, 0] - f[R_BROW_INNER, 0])),
        brow_inner=float(-(f[R_BROW_INNER, 1] + f[L_BROW_INNER, 1]) / 2),
        mouth_round=max(gap, 0.0) / max(width, 1e-6),
        corner_curve=float(f[LIP_UPPER_INNER, 1] - (f[MOUTH_R, 1] + f[MOUTH_L, 1]) / 2),
    )


def measures(mesh: Mesh) -> dict[str, float]:
    """Every expression measure of a face, one flat dict: `expression` and `expression_shape`."""
    return {**expression(mesh).as_dict(), **expression_shape(mesh).as_dict()}
