"""Offline captions from what can be measured on the face and its light.

The dense face mesh (pipeline/faces/mesh.py) gives expression (smile, mouth open, eye opening,
brow raise), head pose and gaze; the pixels of the face oval give brightness, contrast, side
light and colour temperature. Each measure becomes a phrase when it passes a threshold (docs/DATA.md
lists them); the phrases are worded and ordered by the item's seed, from several synonyms and
sentence shapes, so captions read like varied descriptions rather than one template, and the
same image always gets the same caption. A face the mesh cannot find is refused (`no_face`).
"""
from __future__ import annotations

from typing import Any, Sequence

import cv2
import numpy as np

from pipeline.captioners.base import Caption, Captioner
from pipeline.faces import mesh as fm
from pipeline.stage import Reject

# Thresholds on the mesh measures (ratios of the interocular distance; neutral faces of the
# test portraits: smile -0.01, mouth_open 0.00, eye_open 0.27, brow_raise 0.18).
SMILE = 0.035            # mouth corners above the lip centre line
MOUTH_PARTED = 0.06      # inner-lip gap
MOUTH_WIDE = 0.25
FROWN = -0.035
EYES_CLOSED, EYES_NARROW, EYES_WIDE = 0.10, 0.19, 0.42
BROWS_UP, BROWS_DOWN = 0.26, 0.12
YAW_SLIGHT, YAW_TURNED = 8.0, 25.0   # degrees
PITCH, ROLL = 10.0, 8.0
GAZE = 0.35
SIDE_LIGHT = 0.12        # brightness difference of the face halves over their mean
DIM, BRIGHT = 0.33, 0.70  # mean L* of the face (0..1)
WARM, COOL = 24.0, 10.0  # mean b* of the face skin (yellow-blue axis, 0 = neutral grey)
FLAT, CONTRASTY = 0.07, 0.20  # std of L* over the face


def measure(rgb: np.ndarray, mesh: fm.Mesh) -> dict[str, float]:
    """Every attribute the captions use, rounded for the manifest."""
    expr = fm.expression(mesh)
    yaw, pitch, roll = fm.head_pose(mesh)
    gx, gy = fm.gaze(mesh)
    mask = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(mesh.xy[list(fm.regions()["face_oval"])]).astype(np.int32)], 1)
    mask = mask.astype(bool)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB).astype(np.float32)
    lum = lab[..., 0] / 255.0
    nose_x = mesh.xy[fm.NOSE_TIP, 0]
    xx = np.arange(rgb.shape[1])[None, :]
    left, right = mask & (xx < nose_x), mask & (xx >= nose_x)
    mean_l = float(lum[mask].mean())
    side = (float(lum[right].mean()) - float(lum[left].mean())) / max(mean_l, 1e-3) if left.any() and right.any() else 0.0
    values = {
        "smile": expr.smile, "mouth_open": expr.mouth_open, "eye_open": (expr.eye_open_r + expr.eye_open_l) / 2,
        "brow_raise": expr.brow_raise, "yaw": yaw, "pitch": pitch, "roll": roll, "gaze_x": gx, "gaze_y": gy,
        "brightness": mean_l, "contrast": float(lum[mask].std()), "side_light": side,
        "warmth": float(lab[..., 2][mask].mean() - 128.0),
    }
    return {k: round(float(v), 4) for k, v in values.items()}


def _side(value: float) -> str:
    """Image-right is the subject's left (mesh.py conventions)."""
    return "left" if value > 0 else "right"


def phrases(a: dict[str, float]) -> dict[str, list[list[str]]]:
    """For each part of the caption, the ideas that apply, each as a list of synonymous wordings."""
    out: dict[str, list[list[str]]] = {"expression": [], "head": [], "eyes": [], "light": []}
    smile, mouth = a["smile"], a["mouth_open"]
    if smile > SMILE and mouth > MOUTH_PARTED:
        out["expression"].append(["a broad smile that shows the teeth", "a wide, open-mouthed smile",
                                  "a big toothy smile", "a bright smile with the teeth visible"])
    elif smile > SMILE:
        out["expression"].append(["a gentle closed-mouth smile", "a soft smile with closed lips",
                                  "a slight, pleasant smile", "a subtle smile"])
    elif mouth > MOUTH_WIDE:
        out["expression"].append(["a wide-open mouth", "the mouth open wide, as if in surprise or mid-shout",
                                  "a gaping mouth"])
    elif mouth > MOUTH_PARTED:
        out["expression"].append(["slightly parted lips", "the lips a little apart", "a half-open mouth"])
    elif smile < FROWN:
        out["expression"].append(["the corners of the mouth turned down", "a downturned, displeased mouth",
                                  "a faint frown"])
    else:
        out["expression"].append(["a neutral, relaxed expression", "a calm, composed expression",
                                  "a serious, neutral look", "closed lips and a relaxed face"])
    if a["brow_raise"] > BROWS_UP:
        out["expression"].append(["raised eyebrows", "eyebrows lifted high", "arched, raised brows"])
    elif a["brow_raise"] < BROWS_DOWN:
        out["expression"].append(["lowered, knitted brows", "furrowed eyebrows", "brows drawn down"])

    eye = a["eye_open"]
    if eye < EYES_CLOSED:
        out["eyes"].append(["the eyes are closed", "both eyes are shut", "the eyelids are closed"])
    elif eye < EYES_NARROW:
        out["eyes"].append(["the eyes are narrowed", "the eyes are half closed, squinting slightly",
                            "the eyes are squinting"])
    elif eye > EYES_WIDE:
        out["eyes"].append(["the eyes are wide open", "the eyes are wide and alert", "the eyes are opened wide"])
    if eye >= EYES_CLOSED:
        gx, gy = a["gaze_x"], a["gaze_y"]
        if abs(gx) > GAZE:
            out["eyes"].append([f"the gaze is directed to the person's {_side(gx)}",
                                f"the eyes glance towards their {_side(gx)}", f"the eyes look off to their {_side(gx)}"])
        elif gy > GAZE:
            out["eyes"].append(["the eyes look downwards", "the gaze is lowered", "the eyes are cast down"])
        elif gy < -GAZE:
            out["eyes"].append(["the eyes look upwards", "the gaze is raised", "the eyes are turned up"])
        elif abs(a["yaw"]) < YAW_SLIGHT:
            out["eyes"].append(["the eyes look straight into the camera", "the eyes make contact with the viewer",
                                "the gaze meets the camera"])

    yaw, pitch, roll = a["yaw"], a["pitch"], a["roll"]
    if abs(yaw) >= YAW_TURNED:
        out["head"].append([f"the head is turned well to their {_side(yaw)}", f"the face is seen in three-quarter view, turned to their {_side(yaw)}"])
    elif abs(yaw) >= YAW_SLIGHT:
        out["head"].append([f"the head is turned slightly to their {_side(yaw)}", f"the face is angled a little to their {_side(yaw)}"])
    else:
        out["head"].append(["the head faces the camera", "the face is seen from the front", "the face is turned towards the viewer"])
    if pitch > PITCH:
        out["head"].append(["the chin is raised", "the head is tilted back slightly", "the face is tipped upwards"])
    elif pitch < -PITCH:
        out["head"].append(["the chin is lowered", "the head is bowed slightly", "the face is tipped downwards"])
    if abs(roll) > ROLL:
        # roll > 0: clockwise on screen, the head leans towards the subject's left shoulder
        out["head"].append([f"the head is tilted towards their {_side(roll)} shoulder", f"the head leans to their {_side(roll)}"])

    if abs(a["side_light"]) > SIDE_LIGHT:
        lit = "right" if a["side_light"] > 0 else "left"
        dark = "left" if lit == "right" else "right"
        out["light"].append([f"light falling from the image {lit} that leaves the {dark} side of the face in shadow",
                             f"directional side lighting from the {lit} of the frame", f"light from the {lit} and a shadowed {dark} side of the face"])
    else:
        out["light"].append(["soft, even lighting on the face", "even light with gentle shadows", "diffuse, even light"])
    if a["brightness"] < DIM:
        out["light"].append(["a dim, low-key exposure", "a dark, moody exposure", "low light"])
    elif a["brightness"] > BRIGHT:
        out["light"].append(["a bright, high-key exposure", "a bright exposure", "a light, airy exposure"])
    if a["warmth"] > WARM:
        out["light"].append(["warm, golden colour tones", "a warm colour temperature", "warm, yellowish light"])
    elif a["warmth"] < COOL:
        out["light"].append(["cool, bluish colour tones", "a cool colour temperature", "cold, blue-tinted light"])
    if a["contrast"] > CONTRASTY:
        out["light"].append(["high contrast", "strong contrast between light and shadow"])
    elif a["contrast"] < FLAT:
        out["light"].append(["low, flat contrast", "a soft, low-contrast look"])
    return out


OPENERS = (
    "A close-up photograph of a person with {expr}",
    "A realistic head-and-shoulders portrait of someone with {expr}",
    "This real-world photo shows a face with {expr}",
    "Close-up portrait: a person wearing {expr}",
    "A natural photograph of a person's face, showing {expr}",
    "In this image, a person is seen with {expr}",
)
HEAD = ("In terms of pose, {x}.", "As for the pose, {x}.", "{X}.")
EYES = ("{X}.", "Also, {x}.", "Meanwhile, {x}.")
LIGHT = ("The style is photographic, with {x}.", "Lighting and style: {x}.", "The picture has {x}.", "{X}.")


def _join(parts: list[str], rng: np.random.Generator) -> str:
    if len(parts) == 1:
        return parts[0]
    last = rng.choice([" and ", ", and "])
    return ", ".join(parts[:-1]) + last + parts[-1]


def compose(attrs: dict[str, float], seed: int) -> str:
    """The caption for `attrs`, worded by `seed`."""
    rng = np.random.default_rng(seed)
    ideas = phrases(attrs)

    def pick(group: str) -> list[str]:
        return [str(rng.choice(options)) for options in ideas[group]]

    sentences = [str(rng.choice(OPENERS)).format(expr=_join(pick("expression"), rng)) + "."]
    rest = []
    for group, shapes in (("head", HEAD), ("eyes", EYES), ("light", LIGHT)):
        words = pick(group)
        if words:
            text = _join(words, rng)
            shape = str(rng.choice(shapes))
            rest.append(shape.format(x=text, X=text[0].upper() + text[1:]))
    order = rng.permutation(len(rest))
    return " ".join(sentences + [rest[i] for i in order])


class AttributeCaptioner(Captioner):
    name = "attributes"
    worker_local = ("_mesh",)

    def __init__(self, params: Any = None) -> None:
        self.params = params
        self._mesh: fm.FaceMeshDetector | None = None

    def setup(self) -> None:
        if self._mesh is None:
            self._mesh = fm.FaceMeshDetector(max_faces=1)

    def caption(self, images: Sequence[np.ndarray], seeds: Sequence[int]) -> list[Caption | Reject]:
        self.setup()
        out: list[Caption | Reject] = []
        for rgb, seed in zip(images, seeds):
            mesh = self._mesh.detect_one(rgb)
            if mesh is None:
                out.append(Reject("no_face", "the face mesh finds no face"))
                continue
            attrs = measure(rgb, mesh)
            out.append(Caption(compose(attrs, seed), attrs))
        return out
