"""Face motion on the mediapipe mesh: measured between two frames, or written as a program.

A `Motion` is what the offline animator transfers from a driving clip to a neutral face:
a head rotation (the driver's rotation from its first to its last frame, in camera axes) and
per-landmark expression offsets in the head's own frame, in interocular units (pose and face
size removed by `pipeline.faces.mesh.frontalized`). Because both parts are normalised, a motion
measured on one face applies to any other face: this is the retargeting.

Motion programs (`Controls`) are the driving library's source: named, parameterised expression
and pose changes (smile, open mouth, blink, raise brows, look left, ...) turned into the same
`Motion` by moving landmark groups of the template's mesh. Rendering a program on the template
face gives a driving clip, which the animator then measures like any user clip.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from scipy.spatial.transform import Rotation

from pipeline.faces import mesh as fm


def rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    """Camera-frame rotation for the pose conventions of pipeline/faces/mesh.py (degrees):
    yaw > 0 turns the nose towards image right, pitch > 0 up, roll > 0 clockwise on screen."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, -np.sin(y)], [0, 1, 0], [np.sin(y), 0, np.cos(y)]])  # x towards -z
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ ry @ rx


@dataclasses.dataclass(frozen=True)
class Motion:
    """Head rotation (3x3, camera frame) and expression offsets (478, 3) in head-frame
    interocular units."""

    rotation: np.ndarray
    offsets: np.ndarray
    eye_ratio: tuple[float, float] = (1.0, 1.0)  # (right, left) eye opening, last frame / first frame
    exact: bool = False  # a program's own motion (lids as written), not one measured off a clip

    @property
    def magnitude(self) -> float:
        """One number for the manifest: rotation angle in degrees / 10 plus the RMS landmark
        offset in interocular units x 10 (a 10-degree turn and a 0.1 IOD mouth opening weigh
        about the same)."""
        angle = np.degrees(np.arccos(np.clip((np.trace(self.rotation) - 1) / 2, -1, 1)))
        return float(angle / 10 + 10 * np.sqrt((self.offsets ** 2).sum(1).mean()))

    def vector(self) -> np.ndarray:
        """A short descriptor (pose change + expression offsets of key landmarks) for picking
        mutually dissimilar drivers."""
        keys = [fm.MOUTH_R, fm.MOUTH_L, fm.LIP_UPPER_INNER, fm.LIP_LOWER_INNER, fm.R_EYE_TOP, fm.L_EYE_TOP,
                fm.R_BROW_MID, fm.L_BROW_MID, fm.CHIN]
        pose = np.degrees(Rotation.from_matrix(self.rotation).as_rotvec()) / 20.0  # 20 degrees ~ 1
        return np.concatenate([pose, 5 * self.offsets[keys, :2].ravel()])


def measure(first: fm.Mesh, last: fm.Mesh) -> Motion:
    """The motion from a driver's first frame to its last: relative, as LivePortrait's
    relative mode, so the driver's own face shape and pose cancel out."""
    rot = fm.head_rotation(last) @ fm.head_rotation(first).T
    a, b = fm.expression(first), fm.expression(last)
    ratio = (b.eye_open_r / max(a.eye_open_r, 1e-6), b.eye_open_l / max(a.eye_open_l, 1e-6))
    return Motion(rot, fm.frontalized(last) - fm.frontalized(first), ratio)


def apply(neutral: fm.Mesh, motion: Motion) -> np.ndarray:
    """Target landmark positions (478, 3) in the neutral image's pixels: the expression offsets
    added in the neutral head's frame and scaled by its interocular distance, then the head
    rotated about the mesh centroid."""
    rot_n = fm.head_rotation(neutral)
    pts = neutral.points
    expressed = pts + (motion.offsets * neutral.interocular) @ rot_n.T
    centre = pts[:468].mean(0)
    # the centroid of the face surface lies in front of the neck's pivot: rotate about a point
    # half an interocular distance behind it, so a nod moves the chin more than the brow
    pivot = centre + rot_n[:, 2] * 0.5 * neutral.interocular
    return (expressed - pivot) @ motion.rotation.T + pivot


# --- programs ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Controls:
    """A motion program's knobs. Expression knobs are 0..1 (1 = a strong, still natural
    expression); pose in degrees."""

    smile: float = 0.0
    mouth_open: float = 0.0
    frown: float = 0.0          # mouth corners down
    pucker: float = 0.0         # lips narrowed
    blink_r: float = 0.0
    blink_l: float = 0.0
    eyes_wide: float = 0.0
    brows_up: float = 0.0
    brows_down: float = 0.0
    brows_inner_up: float = 0.0  # sadness
    brows_in: float = 0.0        # brows drawn together (anger, a frown)
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0

    def scaled(self, t: float) -> "Controls":
        return Controls(**{k: v * t for k, v in dataclasses.asdict(self).items()})


def _lip_arcs(loop: tuple[int, ...], front: np.ndarray, upper_mark: int) -> tuple[list[int], list[int]]:
    """Split a lip loop at its two corners (leftmost and rightmost points) into the upper arc
    (the one holding `upper_mark`) and the lower arc. By topology, not by height: on a closed
    mouth the upper and lower inner lips lie at the same height."""
    order = list(loop)
    a, b = sorted((int(np.argmin(front[order, 0])), int(np.argmax(front[order, 0]))))
    arc1, arc2 = order[a : b + 1], order[b:] + order[: a + 1]
    corners = {order[a], order[b]}
    upper, lower = (arc1, arc2) if upper_mark in arc1 else (arc2, arc1)
    return [i for i in upper if i not in corners], [i for i in lower if i not in corners]


def landmark_weights(front: np.ndarray) -> dict[str, np.ndarray]:
    """Per-landmark weights (478,) of the regions a program moves, from the frontalized
    template geometry (head frame: x to image right, y down, interocular = 1; origin between
    the outer eye corners). Smooth falloffs keep the warp free of tears."""
    x, y = front[:, 0], front[:, 1]
    reg = fm.regions()
    mouth_c = (front[fm.MOUTH_R] + front[fm.MOUTH_L]) / 2
    mouth_w = abs(front[fm.MOUTH_L, 0] - front[fm.MOUTH_R, 0])
    chin_y = front[fm.CHIN, 1]
    w: dict[str, np.ndarray] = {}
    # jaw: everything below the mouth line, more towards the chin (opening the mouth drops it)
    below = np.clip((y - mouth_c[1]) / max(chin_y - mouth_c[1], 1e-6), 0, 1)
    upper_lip_inner = np.zeros(len(front))
    outer, inner = fm.lip_loops()
    upper_inner, lower_inner = _lip_arcs(inner, front, fm.LIP_UPPER_INNER)
    _, lower_outer = _lip_arcs(outer, front, fm.LIP_UPPER_OUTER)
    jaw = np.clip(below * 1.15, 0, 1) * np.exp(-((x - mouth_c[0]) / 0.9) ** 2)
    jaw[lower_inner] = 1.0
    jaw[lower_outer] = np.maximum(jaw[lower_outer], 0.95)
    w["jaw"] = jaw
    upper_lip_inner[upper_inner] = 1.0
    w["upper_lip"] = upper_lip_inner
    # mouth corners with a falloff over the cheeks
    for side, idx in (("corner_r", fm.MOUTH_R), ("corner_l", fm.MOUTH_L)):
        d = np.linalg.norm(front[:, :2] - front[idx, :2], axis=1)
        w[side] = np.exp(-(d / (0.28 * max(mouth_w, 0.3))) ** 2)
    # lips, for pucker: pull towards the mouth centre
    lips = np.zeros(len(front))
    lips[list(reg["lips"])] = 1.0
    w["lips"] = lips
    # upper lids: the upper half of each eye loop; `lid_*_close` is each upper-lid point's
    # vertical distance down to the lower lid below it, so a blink of 1 lays the lid on the lower
    # lid (no fold: no point crosses another) and the lid skin covers the iris, for the eye and
    # for the face mesh that measures it (#31: a lid lowered part way and painted over read open)
    for side, loop, top, bottom in (("lid_r", reg["r_eye"], fm.R_EYE_TOP, fm.R_EYE_BOTTOM),
                                    ("lid_l", reg["l_eye"], fm.L_EYE_TOP, fm.L_EYE_BOTTOM)):
        eye = front[list(loop)]
        cx, cy = eye[:, 0].mean(), eye[:, 1].mean()
        half_w = (eye[:, 0].max() - eye[:, 0].min()) / 2
        lower = sorted((front[i, 0], front[i, 1]) for i in loop if front[i, 1] >= cy)
        lid, close = np.zeros(len(front)), np.zeros(len(front))
        for i in loop:
            if front[i, 1] < cy:
                lid[i] = np.clip(1 - ((front[i, 0] - cx) / max(half_w, 1e-6)) ** 2, 0, 1) ** 0.5
                below = np.interp(front[i, 0], [p[0] for p in lower], [p[1] for p in lower])
                close[i] = max(below - front[i, 1], 0.0)
        w[side] = lid
        w[side + "_close"] = close
        w[side + "_gap"] = np.array([front[bottom, 1] - front[top, 1]])
    # brows, with the forehead above them and the skin down to the upper lid on a smooth
    # falloff: moving the brow points alone tore the skin between them (#31: jagged brows that
    # the face mesh did not follow)
    for side, ids, top in (("brow_r", reg["r_brow"], fm.R_EYE_TOP), ("brow_l", reg["l_brow"], fm.L_EYE_TOP)):
        pts = front[list(ids), :2]
        brow_y, lid_y = pts[:, 1].mean(), front[top, 1]
        dist = np.linalg.norm(front[:, None, :2] - pts[None], axis=2).min(1)
        near = np.exp(-(dist / np.where(y < brow_y, 0.25, 0.16)) ** 2)  # the forehead follows further up
        gate = np.clip((lid_y - 0.03 - y) / max(lid_y - 0.03 - brow_y, 1e-6), 0, 1)  # 1 at the brow, 0 at the lid
        b = near * gate
        b[list(reg["r_eye"]) + list(reg["l_eye"])] = 0.0
        b[list(ids)] = 1.0
        w[side] = b
    inner_brow = np.zeros(len(front))
    brows = w["brow_r"] + w["brow_l"]
    for ids in (reg["r_brow"], reg["l_brow"]):
        pts = front[list(ids)]
        inner_x = pts[np.argmin(abs(pts[:, 0] - 0.5 * (front[fm.R_EYE_OUTER, 0] + front[fm.L_EYE_OUTER, 0])))][0]
        inner_brow = np.maximum(inner_brow, brows * np.exp(-((x - inner_x) / 0.16) ** 2))
    w["brow_inner"] = inner_brow
    # the mouth and the skin around it, for a pout: lips and cheeks drawn towards the centre
    w["mouth_area"] = np.exp(-((x - mouth_c[0]) / (0.9 * max(mouth_w, 0.3))) ** 2 - ((y - mouth_c[1]) / 0.28) ** 2)
    w["mouth_centre"] = mouth_c
    return w


def program_offsets(front: np.ndarray, c: Controls) -> np.ndarray:
    """Expression offsets (478, 3) of a program on a face whose frontalized mesh is `front`."""
    w = landmark_weights(front)
    off = np.zeros_like(front)
    down = np.array([0.0, 1.0, 0.0])
    # mouth opening: the jaw drops, the upper inner lip lifts a little
    off += c.mouth_open * 0.18 * w["jaw"][:, None] * down
    off -= c.mouth_open * 0.04 * w["upper_lip"][:, None] * down
    # smile: corners out and up; frown: corners down. An opening jaw drags the corners down with
    # it: a smile holds them up against it (the zygomatic pull), and without a smile they move in,
    # so an open mouth is round ("O") rather than a grin (#31: measured on real faces)
    for side, sign in (("corner_r", -1.0), ("corner_l", 1.0)):
        hold = 0.10 * c.mouth_open * min(c.smile, 1.0)
        narrow = 0.12 * c.mouth_open * max(0.0, 1.0 - 2.0 * c.smile)
        off += w[side][:, None] * np.array([sign * (0.16 * c.smile - narrow), -0.12 * c.smile - hold + 0.07 * c.frown, 0.0])
    # pucker: lips towards the mouth centre, forwards
    centre = w["mouth_centre"]
    off += c.pucker * 0.45 * w["mouth_area"][:, None] * np.array([1.0, 0.2, 0.0]) * (centre - front)
    off += c.pucker * 0.15 * w["lips"][:, None] * np.array([1.0, 0.3, 0.0]) * (centre - front)
    # lids: close by the eye's own opening; wide: lift the lids
    for side, amount in (("lid_r", c.blink_r), ("lid_l", c.blink_l)):
        off[:, 1] += 0.98 * amount * w[side + "_close"] - c.eyes_wide * 0.04 * w[side]
    brows = w["brow_r"] + w["brow_l"]
    off -= brows[:, None] * down * (0.13 * c.brows_up + 0.06 * c.eyes_wide - 0.10 * c.brows_down)
    off -= w["brow_inner"][:, None] * down * 0.07 * c.brows_inner_up
    # brows drawn together (corrugator): the inner ends move towards the midline
    mid_x = 0.5 * (front[fm.R_EYE_OUTER, 0] + front[fm.L_EYE_OUTER, 0])
    off[:, 0] -= w["brow_inner"] * 0.10 * c.brows_in * np.sign(front[:, 0] - mid_x)
    return off


def program_motion(template: fm.Mesh, c: Controls) -> Motion:
    """A program's exact motion on a face (its offsets built on that face's own geometry)."""
    return Motion(rotation(c.yaw, c.pitch, c.roll), program_offsets(fm.frontalized(template), c),
                  (1.0 - c.blink_r, 1.0 - c.blink_l), exact=True)


def closing_offsets(front: np.ndarray, sides: tuple[str, ...]) -> np.ndarray:
    """Lid offsets that close the given eyes ("r", "l") of a face (see `program_offsets`): a
    measured driver's blink is re-applied at full strength, since landmark trackers under-read a
    closed lid and a transferred half-blink looks like a squint."""
    c = Controls(blink_r=1.0 if "r" in sides else 0.0, blink_l=1.0 if "l" in sides else 0.0)
    return program_offsets(front, c)
