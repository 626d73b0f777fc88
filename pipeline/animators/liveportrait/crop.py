"""Where LivePortrait looks: the square, roll-aligned face crop the networks see, and pasting the
decoded crop back into the full image under a feathered face mask.

The official cropper needs InsightFace weights that are not available offline; we use the shared
mediapipe face mesh instead. Rule (documented, one place): the crop is rotated so the eye line is
horizontal (the official `flag_do_rot`); its side is `scale` x the larger side of the mesh's box;
it is centred on the box centre shifted up by `shift_up` x the side. The official rule is side =
2.3 x the larger side of its 203-landmark box (brows to chin), centre shifted up by 0.125 x side
(`vy_ratio=-0.125`). The mesh box also spans the forehead: its larger side is about 1.15x the
landmark box's and its centre about 0.05 crop sides higher, hence 2.0 and 0.075 here (the same
framing: whole head with hair and some neck, the face about half the crop).
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from pipeline.faces.mesh import Mesh


@dataclasses.dataclass(frozen=True)
class CropRule:
    scale: float = 2.0
    shift_up: float = 0.075
    mask_dilate: float = 0.06  # of the face size: the paste-back mask grows past the mesh hull
    mask_feather: float = 0.05  # Gaussian sigma of the mask edge, of the face size


@dataclasses.dataclass(frozen=True)
class FaceCrop:
    """An affine map from image pixels to a `size` px crop, and the crop itself."""

    image: np.ndarray  # (size, size, 3) uint8
    matrix: np.ndarray  # (2, 3) image -> crop
    size: int


def crop_matrix(mesh: Mesh, size: int, rule: CropRule) -> np.ndarray:
    x0, y0, x1, y1 = mesh.box
    side = rule.scale * max(x1 - x0, y1 - y0)
    five = mesh.five_points()
    dx, dy = five[1] - five[0]  # image-left eye -> image-right eye
    theta = math.atan2(dy, dx)
    c, s = math.cos(theta), math.sin(theta)
    cx = (x0 + x1) / 2 + s * rule.shift_up * side  # "up" in the rotated frame
    cy = (y0 + y1) / 2 - c * rule.shift_up * side
    a = size / side
    return np.array([[a * c, a * s, size / 2 - a * (c * cx + s * cy)],
                     [-a * s, a * c, size / 2 - a * (-s * cx + c * cy)]], dtype=np.float64)


def warp(image: np.ndarray, matrix: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """warpAffine that first shrinks the image with area averaging when the map shrinks it by
    more than 2x (bilinear sampling alone would alias a 1024 px face into 256 px). Outside the
    image is black, as in the official crops the networks were trained on."""
    zoom = math.sqrt(abs(np.linalg.det(matrix[:, :2])))
    if zoom < 0.5:
        h, w = image.shape[:2]
        small = cv2.resize(image, (max(1, round(w * zoom)), max(1, round(h * zoom))), interpolation=cv2.INTER_AREA)
        fx, fy = small.shape[1] / w, small.shape[0] / h
        matrix = matrix @ np.array([[1 / fx, 0, 0], [0, 1 / fy, 0], [0, 0, 1]])
        image = small
    return cv2.warpAffine(image, matrix, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def crop_face(image: np.ndarray, mesh: Mesh, size: int, rule: CropRule) -> FaceCrop:
    matrix = crop_matrix(mesh, size, rule)
    return FaceCrop(warp(image, matrix, (size, size)), matrix, size)


def paste_mask(mesh: Mesh, crop: FaceCrop, shape: tuple[int, int], rule: CropRule) -> np.ndarray:
    """(H, W) float32 in [0, 1]: the mesh's convex hull, dilated and feathered, and zero outside
    the crop (pixels the decoder never produced stay the neutral image's). Drawn where the face
    is about 128 px wide and resized up: the mask is smooth, and full-size blurs cost ~60 ms."""
    h, w = shape
    x0, y0, x1, y1 = mesh.box
    face = max(x1 - x0, y1 - y0)
    f = min(1.0, 128 / max(face, 1.0))
    sh, sw = max(1, round(h * f)), max(1, round(w * f))
    mask = np.zeros((sh, sw), np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(np.round(mesh.xy[:468] * f).astype(np.int32)), 255)
    grow = max(1, int(round(rule.mask_dilate * face * f)))
    mask = cv2.dilate(mask, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1)))
    mask = cv2.GaussianBlur(mask.astype(np.float32) / 255, (0, 0), max(0.5, rule.mask_feather * face * f))
    mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR)
    inside = cv2.warpAffine(np.ones((crop.size, crop.size), np.float32), cv2.invertAffineTransform(crop.matrix),
                            (w, h), flags=cv2.INTER_LINEAR, borderValue=0)
    mask = mask * cv2.erode(inside, np.ones((3, 3), np.uint8))
    mask[mask < 1e-3] = 0  # the blur's far tail: keep the untouched region exactly the original
    return mask


def paste_back(decoded: np.ndarray, crop: FaceCrop, original: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Blend a decoded crop (any size: it covers the same square as `crop`) into `original`.
    Only the mask's bounding box is resampled and blended (the rest is copied)."""
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
