"""Where LivePortrait looks: the square, roll-aligned face crop the networks see (`crop_rotated`),
and pasting the decoded crop back into the full image under a feathered face mask
(`paste_back_rotated`). Both are LivePortrait's own rotated-square warps, kept apart from the
project's axis-aligned crop and paste-back (`pipeline/faces/crop.py`, `pipeline/faces/paste.py`).

The crop rule is the official one (KwaiVGI/LivePortrait `src/utils/crop.py`, re-derived here):
the face's vertical axis runs from the centre of the eyes to the centre of the mouth corners;
the landmarks' box is measured in that rotated frame; its larger side times `scale` is the crop
side; the centre is the box centre moved by `vx_ratio` / `vy_ratio` crop sides along the
rotated x / y axes (y points down the face, so the official `vy_ratio = -0.125` moves the crop
up by an eighth of its side). The official source crop is 2.3 / 0 / -0.125 at 512 px, then
resized to the networks' 256 px with area averaging; drivers that are cropped at all (official:
`flag_crop_driving_video`, or a non-square clip) use 2.2 / -0.1 without rotation, one box
averaged over the clip's frames.

Landmarks (`FaceLandmarks`) come from the weights folder's own 203-point model (`landmarks.py`)
or, offline, from the mediapipe mesh. The mesh also spans the forehead: its box is about 1.15x
the landmark box and its centre about 0.05 crop sides higher, so `CropRule.for_mesh` divides the
scale and shifts the centre by those two (params.yaml `animate.mesh_box_ratio` /
`mesh_center_shift`) to frame the face the same way.
"""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np

from pipeline.faces.mesh import MOUTH_L, MOUTH_R, Mesh

OFFICIAL_CROP_PX = 512  # the official source crop size (dsize), resized to the input size after

# The 203-point layout (the official `parse_pt2_from_pt203`): eye contour points of each eye
# and the two mouth corners.
LEFT_EYE_203 = (0, 6, 12, 18)
RIGHT_EYE_203 = (24, 30, 36, 42)
MOUTH_CORNERS_203 = (48, 66)
LIP_GAP_203 = (90, 102)  # inner upper / lower lip, for the official lip-open ratio


@dataclasses.dataclass(frozen=True)
class FaceLandmarks:
    """Points that frame a face, the two that fix its roll, and where they came from."""

    points: np.ndarray      # (N, 2) pixels
    eye_center: np.ndarray  # (2,)
    lip_center: np.ndarray  # (2,)
    source: str             # "landmark_onnx" | "face_mesh"

    @classmethod
    def from_203(cls, points: np.ndarray) -> "FaceLandmarks":
        p = np.asarray(points, np.float64).reshape(-1, 2)
        eyes = (p[list(LEFT_EYE_203)].mean(0) + p[list(RIGHT_EYE_203)].mean(0)) / 2
        return cls(p, eyes, p[list(MOUTH_CORNERS_203)].mean(0), "landmark_onnx")

    @classmethod
    def from_mesh(cls, mesh: Mesh) -> "FaceLandmarks":
        five = mesh.five_points()
        lips = (mesh.xy[MOUTH_R] + mesh.xy[MOUTH_L]) / 2
        return cls(np.asarray(mesh.xy[:468], np.float64), five[:2].mean(0), lips, "face_mesh")

    def lip_open_ratio(self) -> float:
        """The official `calc_lip_close_ratio` (203 points only): inner-lip gap over mouth width."""
        if self.source != "landmark_onnx":
            raise ValueError("the official lip ratio needs the 203-point landmarks")
        p = self.points
        gap = np.linalg.norm(p[LIP_GAP_203[0]] - p[LIP_GAP_203[1]])
        return float(gap / (np.linalg.norm(p[MOUTH_CORNERS_203[0]] - p[MOUTH_CORNERS_203[1]]) + 1e-6))


@dataclasses.dataclass(frozen=True)
class CropRule:
    """The official crop parameters (see the module docstring)."""

    scale: float = 2.3
    vx_ratio: float = 0.0
    vy_ratio: float = -0.125
    rotate: bool = True

    def for_mesh(self, box_ratio: float, center_shift: float) -> "CropRule":
        """The same framing from mediapipe mesh points (whose box includes the forehead)."""
        return dataclasses.replace(self, scale=self.scale / box_ratio, vy_ratio=self.vy_ratio + center_shift)


@dataclasses.dataclass(frozen=True)
class Square:
    """A crop square in image pixels: centre, side and the rotated axes (rows: x, y)."""

    center: np.ndarray
    side: float
    axes: np.ndarray  # (2, 2)


def face_square(face: FaceLandmarks, rule: CropRule) -> Square:
    uy = face.lip_center - face.eye_center
    norm = float(np.linalg.norm(uy))
    uy = uy / norm if norm > 1e-3 else np.array([0.0, 1.0])
    ux = np.array([uy[1], -uy[0]])
    axes = np.stack([ux, uy])
    mean = face.points.mean(0)
    local = (face.points - mean) @ axes.T
    lo, hi = local.min(0), local.max(0)
    mid = (lo + hi) / 2
    side = float((hi - lo).max()) * rule.scale
    center = mean + ux * mid[0] + uy * mid[1] + ux * rule.vx_ratio * side + uy * rule.vy_ratio * side
    return Square(center, side, axes if rule.rotate else np.eye(2))


def mean_square(squares: list[Square]) -> Square:
    """One unrotated box for a whole clip (the official driving crop averages the frames' boxes)."""
    return Square(np.mean([s.center for s in squares], axis=0), float(np.mean([s.side for s in squares])), np.eye(2))


def square_matrix(square: Square, size: int) -> np.ndarray:
    """(2, 3) image -> crop map of a `size` px crop of `square`."""
    a = size / square.side
    rot = a * square.axes
    return np.concatenate([rot, (size / 2 - rot @ square.center)[:, None]], axis=1)


@dataclasses.dataclass(frozen=True)
class FaceCrop:
    """An affine map from image pixels to a `size` px crop, and the crop itself."""

    image: np.ndarray  # (size, size, 3) uint8
    matrix: np.ndarray  # (2, 3) image -> crop
    size: int


def warp(image: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The official warp: bilinear, black outside the image (the crops the networks were trained
    on). The official pipeline first limits the image to 1280 px, so a 512 px crop never shrinks
    by much more than 2x."""
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def crop_rotated(image: np.ndarray, square: Square, size: int, interpolation: int = cv2.INTER_AREA) -> FaceCrop:
    """The official two-step crop of a rotated square: warp to 512 px, resize to `size` (area
    for the source, the official driving crop uses bilinear). Not `pipeline.faces.crop`'s
    `extract_crop`: that one cuts an axis-aligned `SquareCrop` and pads outside the frame by
    reflection, where LivePortrait's networks were trained on this roll-aligned, bilinear
    warp with black outside the image (the official `crop_image`; test_liveportrait_weights
    pins the rule)."""
    big = warp(image, square_matrix(square, OFFICIAL_CROP_PX), OFFICIAL_CROP_PX)
    small = big if size == OFFICIAL_CROP_PX else cv2.resize(big, (size, size), interpolation=interpolation)
    return FaceCrop(small, square_matrix(square, size), size)


def paste_mask(mesh: Mesh, crop: FaceCrop, shape: tuple[int, int], dilate: float, feather: float) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the mesh's convex hull, dilated by `dilate` and feathered by
    `feather` (both shares of the face size), and zero outside the crop (pixels the decoder
    never produced stay the neutral image's). Drawn where the face is about 128 px wide and
    resized up: the mask is smooth, and full-size blurs cost ~60 ms."""
    h, w = shape
    x0, y0, x1, y1 = mesh.box
    face = max(x1 - x0, y1 - y0)
    f = min(1.0, 128 / max(face, 1.0))
    sh, sw = max(1, round(h * f)), max(1, round(w * f))
    mask = np.zeros((sh, sw), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(mesh.xy[:468] * f).astype(np.int32)), 255)
    grow = max(1, int(round(dilate * face * f)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    mask = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), max(0.5, feather * face * f))
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones((crop.size, crop.size), np.float32), cv2.invertAffineTransform(crop.matrix),
                            (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = mask * cv2.erode(inside, np.ones((3, 3), np.uint8))
    mask[mask < 1e-3] = 0  # the blur's far tail: keep the untouched region exactly the original
    return mask


def paste_back_rotated(decoded: np.ndarray, crop: FaceCrop, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend a decoded crop (any size: it covers the same square as `crop`) into `original`
    under `mask`, a soft alpha already in the image's frame (`paste_mask`): the official
    `paste_back` (the crop warped back bilinearly through the inverse of its rotated affine,
    `mask * crop + (1 - mask) * original`), rounded to nearest. Only the mask's bounding box
    is resampled and blended (the rest is copied). Not `pipeline.faces.paste.paste_back`:
    that one maps an axis-aligned `SquareCrop` back (area-averaged when shrinking) and erodes,
    colour-matches and feathers a hard mask given in the crop's frame; a rotated crop and the
    animator's own feathered image-frame mask are a different computation."""
    out = original.copy()
    ys, xs = np.nonzero(mask.max(axis=1) > 0)[0], np.nonzero(mask.max(axis=0) > 0)[0]
    if ys.size == 0:
        return out
    y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    up = decoded.shape[0] / crop.size
    to_decoded = crop.matrix * up  # image -> decoded pixels
    to_decoded[:, 2] += to_decoded[:, :2] @ np.array([x0, y0], np.float64)  # ROI pixel -> decoded pixel
    back = cv2.warpAffine(decoded, cv2.invertAffineTransform(to_decoded), (int(x1 - x0), int(y1 - y0)),
                          flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    m = mask[y0:y1, x0:x1, None]
    roi = original[y0:y1, x0:x1].astype(np.float32)
    out[y0:y1, x0:x1] = np.clip(m * back.astype(np.float32) + (1 - m) * roi + 0.5, 0, 255).astype(np.uint8)
    return out
