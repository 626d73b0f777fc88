"""Offline relighter: second-order spherical-harmonic shading and ratio images.

Why a ratio image: without an albedo estimate, new = image x shade_new / shade_orig keeps
skin texture, make-up, eyes and hair colour exactly and changes only the lighting. Both
shadings live on the same normals (face mesh + ellipsoid, `pipeline.faces.normals`):
- shade_orig: a first-order SH (ambient + one direction) fitted by least squares to the
  luminance of the face (the mesh's pixels: hair has another albedo), i.e. the light the photo was taken under, divided out with
  strength `original_shading` (0 treats the photo as flat-lit).
- shade_new: the irradiance of the map's 9 SH coefficients per channel, relative to its mean
  over the face (so a variant keeps the photo's exposure, scaled by the light's `exposure`),
  with the map's colour at strength `color_strength`.
The ratio is computed at `normal_size` and upsampled (shading is smooth); the product is
taken in linear light with a soft shoulder on luminance, so highlights roll off instead of
clipping and keep their hue.
"""
from __future__ import annotations

from typing import ClassVar, Sequence

import cv2
import numpy as np

from pipeline.config.relight import RelightParams
from pipeline.faces.mesh import FaceMeshDetector, Mesh
from pipeline.faces.normals import head_normals
from pipeline.rejection import Reject
from pipeline.backends.relighters.base import Relighter
from pipeline.backends.relighters.envmaps import LUMA, EnvLight, irradiance, linear_to_srgb, sh_basis, srgb_to_linear

_SRGB_TO_LINEAR = srgb_to_linear(np.arange(256) / 255.0).astype(np.float32)
_LINEAR_STEPS = 16383  # linear -> 8-bit sRGB through a table: < 0.3 code values of error near black
_LINEAR_TO_SRGB8 = np.rint(linear_to_srgb(np.arange(_LINEAR_STEPS + 1) / _LINEAR_STEPS) * 255).astype(np.uint8)


def encode_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear [0, 1] floats -> 8-bit sRGB."""
    idx = np.clip(linear * _LINEAR_STEPS + 0.5, 0, _LINEAR_STEPS).astype(np.int32)
    return _LINEAR_TO_SRGB8[idx]


def soft_shoulder(x: np.ndarray, knee: float = 0.8) -> np.ndarray:
    """Identity below `knee`, then a tanh roll-off that approaches 1: no hard clipping."""
    room = 1.0 - knee
    return np.where(x <= knee, x, knee + room * np.tanh((x - knee) / room))


def light_chroma(rgb: np.ndarray, lum: np.ndarray, dc: np.ndarray, mean: float) -> np.ndarray:
    """Per-pixel colour of the light (rgb / luminance), without the tints of SH ringing: where a
    pixel gets little light (a rim light's front, the far side of a key) the order-2 SH of each
    channel dips to ~0 or below on its own, and their ratios give any hue (#31: a rim light turned
    faces green). There the colour fades to the map's mean colour (its DC term), and every
    channel stays within [0.5, 2] of the luminance."""
    base = np.clip(dc, 1e-6, None)
    base = base / float(base @ LUMA)
    lit = np.clip(lum / max(0.25 * mean, 1e-9), 0.0, 1.0)[..., None]
    own = np.clip(np.clip(rgb, 0.0, None) / lum[..., None], 0.0, 4.0)
    return np.clip(lit * own + (1 - lit) * base, 0.5, 2.0)


class SHRelighter(Relighter):
    name: ClassVar[str] = "sh"
    worker_local = ("_detector",)

    def __init__(self, params: RelightParams) -> None:
        self.params = params
        self._detector: FaceMeshDetector | None = None

    def setup(self) -> None:
        if self._detector is None:
            self._detector = FaceMeshDetector(max_faces=1)

    def find_mesh(self, image: np.ndarray) -> Mesh:
        self.setup()
        mesh = self._detector.detect_one(image)
        if mesh is None:
            raise Reject("no_face", "the face mesh found no face in the image")
        return mesh

    def relight(self, image: np.ndarray, mask: np.ndarray, lights: Sequence[EnvLight], *, seed: int = 0,
                mesh: Mesh | None = None) -> list[np.ndarray]:
        p = self.params
        h, w = image.shape[:2]
        mesh = mesh or self.find_mesh(image)
        side = max(h, w)
        square = np.zeros((side, side), bool)
        square[:h, :w] = mask
        size = p.normal_size
        small = cv2.resize(square.astype(np.uint8), (size, size), interpolation=cv2.INTER_AREA) > 0
        if not small.any():
            raise Reject("no_face_mask", "the mask is empty at the shading resolution")
        normals, covered = head_normals(mesh, small)
        face = small & covered  # skin: where the photo's shading is fitted and exposure is kept
        if face.sum() < 16:
            face = small
        linear_full = _SRGB_TO_LINEAR[image]
        lum_small = self._luminance_small(linear_full, side, size)
        orig = self.original_shading(normals, lum_small, face)
        ys, xs = np.nonzero(mask)  # only the mask's box changes: the rest is copied
        box = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        linear = linear_full[box]
        out = []
        for light in lights:
            ratio = self.new_shading(normals, face, light) / orig[..., None]
            ratio = cv2.resize(ratio.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR)[box]
            relit = linear * ratio
            lum = relit @ LUMA.astype(np.float32)
            relit *= (soft_shoulder(lum) / np.maximum(lum, 1e-6))[..., None]  # hue-preserving roll-off
            new = image.copy()
            new[box] = encode_srgb8(relit)
            out.append(new)
        return out

    @staticmethod
    def _luminance_small(linear: np.ndarray, side: int, size: int) -> np.ndarray:
        lum = linear @ LUMA.astype(np.float32)
        padded = np.zeros((side, side), np.float32)
        padded[: lum.shape[0], : lum.shape[1]] = lum
        return cv2.resize(padded, (size, size), interpolation=cv2.INTER_AREA)

    def original_shading(self, normals: np.ndarray, lum: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Relative shading of the photo (mean 1 over `mask`, the face), fitted as ambient +
        one direction on the normals, raised to `original_shading` (0 = flat)."""
        basis = sh_basis(normals[mask].astype(np.float64))[:, :4]
        target = lum[mask].astype(np.float64)
        coef, *_ = np.linalg.lstsq(basis, target, rcond=None)
        fit = sh_basis(normals.astype(np.float64))[..., :4] @ coef
        mean = max(float(fit[mask].mean()), 1e-6)
        rel = np.clip(fit / mean, 0.35, 2.5)
        return rel ** self.params.original_shading

    def new_shading(self, normals: np.ndarray, mask: np.ndarray, light: EnvLight) -> np.ndarray:
        """(size, size, 3) relative shading under `light`: mean luminance 1 over `mask` (the
        face, so the face keeps the photo's exposure and hair may brighten or darken) times the
        light's exposure, the map's colour at `color_strength`."""
        p = self.params
        rgb = irradiance(light.sh, normals.astype(np.float64))
        lum = np.clip(rgb @ LUMA, 1e-6, None)
        mean = max(float(lum[mask].mean()), 1e-9)
        rel = np.clip(lum / mean, *p.shade_range)
        chroma = (light_chroma(rgb, lum, light.sh[0], mean) ** p.color_strength)
        chroma /= max(float((chroma[mask] @ LUMA).mean()), 1e-6)  # colour without changing brightness
        return rel[..., None] * chroma * light.exposure
