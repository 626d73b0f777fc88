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

from pipeline.backends.animators import signatures as sig
from pipeline.backends.animators.signatures import change
from pipeline.backends.captioners.base import Caption, Captioner
from pipeline.faces import mesh as fm
from pipeline.rejection import Reject

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


# The expression words come from one classification of the face mesh's measures (the same
# measures and names as the animator's label signatures, pipeline/backends/animators/signatures.py), so
# an open mouth is not worded as a smile, a laugh not as a smile, a wink not as a blink.
CURVE_SMILE = 0.035      # corners above the upper inner lip (corner_curve): a smile curves the mouth up
WIDE_SMILE = 0.68        # mouth width: a closed smile also widens the mouth
ROUND = 0.30             # inner-lip gap over width: an open "O"
KNIT = 0.30              # inner brow ends closer than this: drawn together
WINK_GAP = 0.12          # an eye this much less open than the other (and closed) is a wink
DOWN_CURVE = -0.03       # corners below the upper inner lip: downturned
# relative to the set's neutral face: an eye under this share of its neutral opening is shut (the face
# mesh reads a painted closed lid at 0.07-0.6 of the open eye on real faces, a squint at 0.7-0.9);
# a pout narrows the mouth by this much of the interocular distance (a sad mouth <= 0.05)
EYE_SHUT, POUT_NARROW = 0.6, 0.06

EXPRESSIONS = ("laugh", "open smile", "smile", "surprise", "open mouth", "parted lips", "pout", "angry", "sad",
               "raised brows", "wink", "blink", "squint", "neutral")
# The caption expressions that agree with each motion program's expression (driver labels).
CAPTION_FOR_LABEL: dict[str, tuple[str, ...]] = {
    "subtle smile": ("smile",), "gentle smile": ("smile",), "smile": ("smile",), "big smile": ("smile",),
    "smile with mouth open": ("open smile", "laugh"), "laugh": ("laugh",),
    "slightly open mouth": ("parted lips", "open mouth"), "open mouth": ("open mouth",), "surprise": ("surprise",),
    "raise brows": ("raised brows", "surprise"), "sad face": ("sad",), "frown": ("sad", "angry"),
    "angry face": ("angry",), "pout": ("pout",), "blink": ("blink",),
    "wink left": ("wink",), "wink right": ("wink",), "squint": ("squint",), "neutral": ("neutral",),
}


def expression_label(m: dict[str, float], ref: dict[str, float] | None = None) -> str:
    """One expression from the measures of one image (`pipeline.faces.mesh.measures`). With
    `ref`, the measures of the same person's neutral face (the set's i00), the change from it
    decides, with the thresholds of the animator's label signatures: a face's own resting mouth
    width or brow height is not an expression. Without it, or when nothing changed from it (a
    source that is not at rest: ingest's `neutral_filter: flag`), absolute thresholds."""
    if ref is not None:
        relative = _relative_label(m, change(ref, m))
        if relative != "neutral":
            return relative  # otherwise the face is as its source: say what the source shows
    right, left = m["eye_open_r"], m["eye_open_l"]
    closed_r, closed_l = right < EYES_CLOSED, left < EYES_CLOSED
    # a wide mouth that is not round is a grin; a round one is an "O", whatever its width
    smiling = m["corner_curve"] > CURVE_SMILE or (m["mouth_width"] > WIDE_SMILE and m["mouth_round"] < ROUND)
    opened = m["mouth_open"] > MOUTH_PARTED
    if closed_r != closed_l and abs(right - left) > WINK_GAP:
        return "wink"
    if smiling and opened:
        return "laugh" if max(right, left) < EYES_NARROW + 0.04 else "open smile"
    if smiling:
        return "smile"
    if closed_r and closed_l:
        return "blink"
    if opened and m["mouth_round"] > ROUND and m["brow_raise"] > BROWS_UP:
        return "surprise"
    if m["mouth_open"] > MOUTH_WIDE or (opened and m["mouth_round"] > ROUND):
        return "open mouth"
    if opened:
        return "parted lips"
    if m["brow_gap"] < KNIT and m["brow_raise"] < BROWS_DOWN + 0.03:
        return "angry"
    if m["corner_curve"] < DOWN_CURVE:
        return "sad"
    if m["brow_raise"] > BROWS_UP:
        return "raised brows"
    if max(right, left) < EYES_NARROW:
        return "squint"
    return "neutral"


def _relative_label(m: dict[str, float], d: dict[str, float]) -> str:
    """The expression from the change against the set's neutral face (`signatures.change`), in
    an order that reads each part where the face mesh reads it cleanly (#31, measured on the
    real faces of bench/label_agreement.py): a closing lid makes the mesh lift the mouth corners
    a little (+0.01..0.05) and lengthens the brow-to-lid distance (`brow_raise`), so closed and
    narrowed eyes are read before the corners and the brows; a pout narrows the mouth 3x more
    than anything else does; lowered, knitted brows with corners that stay about level are
    anger, corners turned down under brows that did not rise are sadness."""
    er, el = d["eye_ratio_r"], d["eye_ratio_l"]
    opened = m["mouth_open"] > MOUTH_PARTED
    smiling = d["corner_lift"] > sig.LIFT / 2 and d["mouth_width"] > sig.WIDEN / 2
    opening = d["mouth_open"] > sig.OPEN / 2  # opened from the source's mouth, not open as it was
    if smiling and opened:
        return "laugh" if max(er, el) < 0.85 else "open smile"
    if min(er, el) < EYE_SHUT and max(er, el) > 0.75:
        return "wink"
    if max(er, el) < EYE_SHUT:
        return "blink"
    narrowed = max(er, el) < 0.9
    if smiling and not (narrowed and d["corner_lift"] < 1.5 * sig.LIFT):  # a squint nudges the corners up
        return "smile"
    if d["mouth_width"] < -POUT_NARROW and d["mouth_open"] < sig.OPEN:
        return "pout"
    if opening and d["brow_raise"] > sig.BROW:
        return "surprise"
    if opening and m["mouth_open"] > 0.15:
        return "open mouth"
    if opening:
        return "parted lips"
    knitted = d["brow_raise"] < -sig.BROW and d["brow_gap"] < -0.01
    down = d["corner_lift"] < -sig.LIFT
    if knitted and d["corner_lift"] > -3 * sig.LIFT:
        return "angry"
    if down and d["brow_raise"] < 0:
        return "sad"
    if knitted:
        return "angry"
    if narrowed:  # before the brows: a lowered lid lengthens the brow-to-lid distance
        return "squint"
    if d["brow_raise"] > sig.BROW:
        return "raised brows"
    return "sad" if down else "neutral"


EXPRESSION_WORDS: dict[str, tuple[str, ...]] = {
    "laugh": ("a laugh, the mouth wide open and the eyes narrowed", "a hearty laugh with squinting eyes",
              "laughing, with the mouth open and the cheeks raised"),
    "open smile": ("a broad smile that shows the teeth", "a wide, open-mouthed smile", "a big toothy smile"),
    "smile": ("a gentle closed-mouth smile", "a soft smile with closed lips", "a slight, pleasant smile",
              "a smile with the lips closed"),
    "surprise": ("a surprised look, the mouth open in a round O and the brows raised",
                 "an astonished expression with raised eyebrows and a dropped jaw", "a look of surprise"),
    "open mouth": ("a wide-open mouth", "the mouth open wide", "a gaping mouth"),
    "parted lips": ("slightly parted lips", "the lips a little apart", "a half-open mouth"),
    "pout": ("pursed, pouting lips", "the lips pushed together in a pout"),
    "angry": ("an angry look, the brows lowered and drawn together", "a scowl with knitted brows",
              "a stern, angry frown"),
    "sad": ("a sad face, the corners of the mouth turned down", "a downturned, unhappy mouth", "a faint frown"),
    "raised brows": ("raised eyebrows and closed lips", "eyebrows lifted high", "arched, raised brows"),
    "blink": ("both eyes closed, mid-blink", "the eyelids shut", "closed eyes"),
    "squint": ("narrowed, squinting eyes", "the eyes squeezed half shut", "a squint"),
    "neutral": ("a neutral, relaxed expression", "a calm, composed expression", "a serious, neutral look",
                "closed lips and a relaxed face"),
}


def _wink_words(a: dict[str, float]) -> list[str]:
    side = "left" if a["eye_open_l"] < a["eye_open_r"] else "right"  # the subject's side
    return [f"a wink of the {side} eye", f"the {side} eye closed in a wink, the other open", f"winking with the {side} eye"]


def measure(rgb: np.ndarray, mesh: fm.Mesh) -> dict[str, float]:
    """Every attribute the captions use, rounded for the manifest."""
    expr = fm.expression(mesh)
    shape = fm.expression_shape(mesh)
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
        "warmth": float(lab[..., 2][mask].mean() - 128.0), "mouth_width": expr.mouth_width,
        "eye_open_r": expr.eye_open_r, "eye_open_l": expr.eye_open_l, **shape.as_dict(),
    }
    return {k: round(float(v), 4) for k, v in values.items()}


def _side(value: float) -> str:
    """Image-right is the subject's left (mesh.py conventions)."""
    return "left" if value > 0 else "right"


def phrases(a: dict[str, float], ref: dict[str, float] | None = None) -> dict[str, list[list[str]]]:
    """For each part of the caption, the ideas that apply, each as a list of synonymous wordings."""
    out: dict[str, list[list[str]]] = {"expression": [], "head": [], "eyes": [], "light": []}
    label = expression_label(a, ref)
    out["expression"].append(list(EXPRESSION_WORDS[label]) if label != "wink" else _wink_words(a))
    if label not in ("surprise", "angry", "raised brows"):
        if a["brow_raise"] > BROWS_UP:
            out["expression"].append(["raised eyebrows", "eyebrows lifted high", "arched, raised brows"])
        elif a["brow_raise"] < BROWS_DOWN:
            out["expression"].append(["lowered, knitted brows", "furrowed eyebrows", "brows drawn down"])

    eye = a["eye_open"]
    if label in ("wink", "blink", "squint", "laugh"):
        pass  # the expression's own words say what the eyes do
    elif eye < EYES_CLOSED:
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
        out["head"].append([f"the head is turned well to their {_side(yaw)}",
                            f"the face is seen in three-quarter view, turned to their {_side(yaw)}"])
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
                             f"directional side lighting from the {lit} of the frame",
                             f"light from the {lit} and a shadowed {dark} side of the face"])
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


def compose(attrs: dict[str, float], seed: int, ref: dict[str, float] | None = None) -> str:
    """The caption for `attrs`, worded by `seed`."""
    rng = np.random.default_rng(seed)
    ideas = phrases(attrs, ref)

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

    def caption(self, images: Sequence[np.ndarray], seeds: Sequence[int],
                references: Sequence[str | None] | None = None) -> list[Caption | Reject]:
        """`references`: per image, the path of the same person's neutral face (the set's i00) or
        None; with one, the expression is worded from the change against it."""
        self.setup()
        out: list[Caption | Reject] = []
        for k, (rgb, seed) in enumerate(zip(images, seeds)):
            mesh = self._mesh.detect_one(rgb)
            if mesh is None:
                out.append(Reject("no_face", "the face mesh finds no face"))
                continue
            attrs = measure(rgb, mesh)
            ref = self.reference(references[k]) if references else None
            out.append(Caption(compose(attrs, seed, ref), attrs | {"expression": expression_label(attrs, ref)}))
        return out

    def reference(self, path: str | None) -> dict[str, float] | None:
        """The face mesh's measures of a neutral face image (cached: a set's 20 variants share one)."""
        if path is None:
            return None
        cache = self.__dict__.setdefault("_refs", {})
        if path not in cache:
            if len(cache) > 256:
                cache.clear()
            from pipeline.media.images import read_rgb

            try:
                mesh = self._mesh.detect_one(read_rgb(path))
            except (OSError, ValueError):
                mesh = None
            cache[path] = None if mesh is None else fm.measures(mesh)
        return cache[path]
