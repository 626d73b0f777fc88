"""Environment maps: loading .hdr/.exr files, procedural maps, rotation and 2nd-order SH.

Conventions (shared by every relighter and recorded in the manifest):
- Directions live in the camera frame: x towards image right, y up, z towards the camera
  (out of the picture). A light "at" direction d shines from d onto the subject.
- An equirectangular map is (H, W, 3) float32 linear radiance with W = 2H. Row 0 is straight
  up (elevation +90 deg); column u has azimuth phi = 2 pi (u + 0.5) / W - pi measured from the
  direction the camera looks (-z, behind the subject) towards image right: the map's centre
  column lies behind the subject, its quarter columns at image left / right, and its left and
  right edges behind the camera (a frontal light).
- `rotation_deg` turns the map about the vertical axis: a light at azimuth phi moves to
  phi + rotation (positive = towards image right when it starts behind the subject).

Real spherical harmonics up to l = 2 (9 per colour channel) and the irradiance filter of
Ramamoorthi & Hanrahan (2001) give the diffuse shading of any normal under the map.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

ENVMAP_SUFFIXES = (".hdr", ".exr")
# Irradiance convolution of the Lambertian kernel per band l = 0, 1, 2.
IRRADIANCE_BAND = np.array([np.pi] + [2 * np.pi / 3] * 3 + [np.pi / 4] * 5, dtype=np.float64)
LUMA = np.array([0.2126, 0.7152, 0.0722])  # linear sRGB / Rec. 709 luminance


@dataclasses.dataclass(frozen=True)
class EnvLight:
    """One lighting of one variant: the (already rotated) map and what the manifest records."""

    radiance: np.ndarray          # (H, 2H, 3) float32, linear, rotation applied
    name: str                     # file name, or procedural spec such as "softbox(el=30,temp=5600)"
    rotation_deg: float
    exposure: float = 1.0         # overall brightness factor a shading backend applies

    @functools.cached_property
    def sh(self) -> np.ndarray:
        """(9, 3) SH coefficients of the radiance."""
        return project_sh(self.radiance)

    @property
    def light_dir(self) -> list[float]:
        return [round(float(v), 4) for v in dominant_direction(self.sh)]

    @property
    def color_temp_k(self) -> float:
        return color_temperature(self.sh[0])


# --- geometry ----------------------------------------------------------------------------------

@functools.lru_cache(maxsize=8)
def directions(height: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit directions (H, 2H, 3) of the pixel centres and their solid angles (H, 2H); cached,
    read-only."""
    width = 2 * height
    el = np.pi / 2 - (np.arange(height) + 0.5) * np.pi / height
    phi = (np.arange(width) + 0.5) * 2 * np.pi / width - np.pi
    el, phi = np.meshgrid(el, phi, indexing="ij")
    d = np.stack([np.cos(el) * np.sin(phi), np.sin(el), -np.cos(el) * np.cos(phi)], axis=-1)
    solid = np.cos(el) * (np.pi / height) * (2 * np.pi / width)
    d.flags.writeable = False
    solid.flags.writeable = False
    return d, solid


def direction_to_pixel(d: np.ndarray, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Continuous (column, row) pixel coordinates of unit directions (inverse of `directions`)."""
    width = 2 * height
    phi = np.arctan2(d[..., 0], -d[..., 2])
    el = np.arcsin(np.clip(d[..., 1], -1.0, 1.0))
    col = (phi + np.pi) * width / (2 * np.pi) - 0.5
    row = (np.pi / 2 - el) * height / np.pi - 0.5
    return col, row


def sample(radiance: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Bilinear lookup of the map in directions `d` (..., 3); wraps around in azimuth."""
    import cv2

    height = radiance.shape[0]
    col, row = direction_to_pixel(d, height)
    padded = np.concatenate([radiance[:, -1:], radiance, radiance[:, :1]], axis=1).astype(np.float32)
    out = cv2.remap(padded, (col + 1).astype(np.float32), row.astype(np.float32), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_REPLICATE)
    return out.reshape(*d.shape[:-1], 3)


def rotate(radiance: np.ndarray, degrees: float) -> np.ndarray:
    """The map turned about the vertical axis by `degrees` (see the module docstring)."""
    if degrees % 360 == 0:
        return radiance
    d, _ = directions(radiance.shape[0])
    a = -np.radians(degrees)  # look up where each direction's light came from
    rot = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    return sample(radiance, d @ rot.T).astype(np.float32)


def from_azimuth(el_deg: float, az_deg: float) -> np.ndarray:
    """Unit direction at elevation `el_deg` and azimuth `az_deg` measured from the camera (0 =
    frontal light from behind the camera) towards image right."""
    el, az = np.radians(el_deg), np.radians(az_deg)
    return np.array([np.cos(el) * np.sin(az), np.sin(el), np.cos(el) * np.cos(az)])


# --- spherical harmonics -------------------------------------------------------------------------

def sh_basis(n: np.ndarray) -> np.ndarray:
    """Real SH basis Y_lm (l <= 2) of unit vectors (..., 3) -> (..., 9), order
    [Y00, Y1-1, Y10, Y11, Y2-2, Y2-1, Y20, Y21, Y22]."""
    x, y, z = n[..., 0], n[..., 1], n[..., 2]
    return np.stack([
        np.full_like(x, 0.282095), 0.488603 * y, 0.488603 * z, 0.488603 * x,
        1.092548 * x * y, 1.092548 * y * z, 0.315392 * (3 * z * z - 1), 1.092548 * x * z,
        0.546274 * (x * x - y * y),
    ], axis=-1)


def project_sh(radiance: np.ndarray) -> np.ndarray:
    """(9, 3) SH coefficients of an equirectangular map (integral of L * Y over the sphere)."""
    d, solid = directions(radiance.shape[0])
    basis = sh_basis(d) * solid[..., None]
    return np.einsum("hwk,hwc->kc", basis, radiance.astype(np.float64))


def irradiance(sh: np.ndarray, normals: np.ndarray) -> np.ndarray:
    """Diffuse irradiance (..., 3) at unit normals (..., 3) under SH lighting (9, 3)."""
    return np.einsum("...k,kc->...c", sh_basis(normals), sh * IRRADIANCE_BAND[:, None])


def dominant_direction(sh: np.ndarray) -> np.ndarray:
    """Unit direction of the luminance's first band: where most light comes from."""
    lum = sh @ LUMA
    d = np.array([lum[3], lum[1], lum[2]])
    norm = np.linalg.norm(d)
    return d / norm if norm > 1e-12 else np.array([0.0, 0.0, 1.0])


# --- colour ----------------------------------------------------------------------------------------

def kelvin_to_rgb(kelvin: float) -> np.ndarray:
    """Linear sRGB colour of a black body (luminance 1), from a fit of the Planckian locus in
    sRGB (valid 1000-40000 K): what "3200 K tungsten" or "6500 K daylight" look like."""
    t = np.clip(kelvin, 1000.0, 40000.0) / 100.0
    r = 255.0 if t <= 66 else 329.698727446 * (t - 60) ** -0.1332047592
    g = 99.4708025861 * np.log(t) - 161.1195681661 if t <= 66 else 288.1221695283 * (t - 60) ** -0.0755148492
    b = 255.0 if t >= 66 else (0.0 if t <= 19 else 138.5177312231 * np.log(t - 10) - 305.0447927307)
    srgb = np.clip(np.array([r, g, b]) / 255.0, 0, 1)
    lin = srgb_to_linear(srgb)
    return lin / max(float(lin @ LUMA), 1e-6)


def color_temperature(rgb: np.ndarray) -> float:
    """Correlated colour temperature (K) of a linear sRGB colour (McCamy's formula on CIE xy),
    clamped to [1000, 25000]; colours far from white get the temperature of their nearest
    white-ish tint, which is what a viewer reads as warm or cool."""
    m = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])
    xyz = m @ np.clip(np.asarray(rgb, dtype=np.float64), 1e-9, None)
    x, y = xyz[0] / xyz.sum(), xyz[1] / xyz.sum()
    n = (x - 0.3320) / (0.1858 - y)
    cct = 449 * n**3 + 3525 * n**2 + 6823.3 * n + 5520.33
    return float(round(np.clip(cct, 1000.0, 25000.0), 1))


def srgb_to_linear(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(v: np.ndarray) -> np.ndarray:
    v = np.clip(np.asarray(v, dtype=np.float32), 0.0, 1.0)
    return np.where(v <= 0.0031308, v * 12.92, 1.055 * np.power(v, 1 / 2.4) - 0.055)


# --- files -------------------------------------------------------------------------------------------

def list_envmaps(folder: str | Path | None) -> list[Path]:
    """The .hdr / .exr files of a user folder, sorted; [] for None or a folder without maps."""
    if not folder:
        return []
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"environment map folder {folder} not found (relight.envmap_dir)")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in ENVMAP_SUFFIXES and p.is_file())


def load_envmap(path: str | Path, height: int) -> np.ndarray:
    """An equirectangular .hdr / .exr file as (height, 2 height, 3) float32 linear RGB."""
    os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # read when OpenCV first meets an EXR
    import cv2

    path = Path(path)
    bgr = cv2.imread(str(path), cv2.IMREAD_ANYDEPTH | cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: not a readable .hdr/.exr image")
    h, w = bgr.shape[:2]
    if abs(w / h - 2.0) > 0.1:
        raise ValueError(f"{path}: {w}x{h} is not an equirectangular (2:1) map")
    rgb = np.nan_to_num(bgr[..., ::-1].astype(np.float32), nan=0.0, posinf=0.0)
    rgb = np.clip(rgb, 0.0, None)
    interp = cv2.INTER_AREA if h > height else cv2.INTER_LINEAR
    return cv2.resize(rgb, (2 * height, height), interpolation=interp)


# --- procedural maps ------------------------------------------------------------------------------

def _lobe(d: np.ndarray, centre: np.ndarray, sharpness: float) -> np.ndarray:
    """A smooth spherical lobe exp(k (d.c - 1)) normalised to integrate to 1 over the sphere."""
    k = sharpness
    norm = k / (2 * np.pi * (1 - np.exp(-2 * k)))
    return norm * np.exp(k * (d @ centre - 1.0))


def _hue(rng: np.random.Generator) -> np.ndarray:
    import colorsys

    rgb = srgb_to_linear(np.array(colorsys.hsv_to_rgb(rng.uniform(0, 1), rng.uniform(0.4, 0.7), 1.0)))
    return rgb / max(float(rgb @ LUMA), 1e-6)


def _sun_sky(d: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    el, az, temp = rng.uniform(15, 60), rng.uniform(-60, 60), rng.uniform(4500, 6500)
    up = np.clip(d[..., 1:2], 0, 1)
    sky = (0.25 + 0.35 * up) * kelvin_to_rgb(9000)
    ground = 0.12 * kelvin_to_rgb(4000)
    base = np.where(d[..., 1:2] > 0, sky, ground)
    sun = _lobe(d, from_azimuth(el, az), 900.0)[..., None] * 6.0 * kelvin_to_rgb(temp)
    return base + sun, f"sun_sky(el={el:.0f},az={az:.0f},temp={temp:.0f})"


def _softbox(d: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    el, az, temp = rng.uniform(10, 45), rng.uniform(-50, 50), rng.uniform(4800, 6000)
    box = _lobe(d, from_azimuth(el, az), rng.uniform(12, 25))[..., None] * 5.0 * kelvin_to_rgb(temp)
    fill = _lobe(d, from_azimuth(0, -np.sign(az) * 60), 4.0)[..., None] * 0.8 * kelvin_to_rgb(temp)
    return 0.06 + box + fill, f"softbox(el={el:.0f},az={az:.0f},temp={temp:.0f})"


def _rim(d: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    side = rng.choice([-1.0, 1.0])
    az, el = side * rng.uniform(100, 145), rng.uniform(0, 30)
    colour = _hue(rng)
    rim = _lobe(d, from_azimuth(el, az), 30.0)[..., None] * 2.5 * colour
    key = _lobe(d, from_azimuth(20, -side * 30), 6.0)[..., None] * 2.5 * kelvin_to_rgb(5200)
    return 0.05 + rim + key, f"rim(el={el:.0f},az={az:.0f},rgb={'/'.join(f'{c:.2f}' for c in colour)})"


def _split(d: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    side = rng.choice([-1.0, 1.0])
    warm, cool = rng.uniform(2700, 3800), rng.uniform(7500, 11000)
    a = _lobe(d, from_azimuth(rng.uniform(0, 30), side * rng.uniform(60, 90)), 15.0)[..., None] * 4.0 * kelvin_to_rgb(warm)
    b = _lobe(d, from_azimuth(rng.uniform(0, 30), -side * rng.uniform(60, 90)), 15.0)[..., None] * 1.6 * kelvin_to_rgb(cool)
    return 0.04 + a + b, f"split(warm={warm:.0f},cool={cool:.0f},side={'right' if side > 0 else 'left'})"


def _window(d: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, str]:
    side = rng.choice([-1.0, 1.0])
    el, az, temp = rng.uniform(5, 30), side * rng.uniform(55, 95), rng.uniform(6000, 8000)
    # A rectangular opening: bright within +-20 deg azimuth and +-25 deg elevation of its centre.
    centre = from_azimuth(el, az)
    lobe = _lobe(d, centre, 8.0)
    box = (lobe > 0.6 * lobe.max()).astype(np.float32)
    window = box[..., None] * 3.0 * kelvin_to_rgb(temp)
    room = 0.1 * kelvin_to_rgb(3500)
    return room + window, f"window(el={el:.0f},az={az:.0f},temp={temp:.0f})"


PROCEDURAL: dict[str, Callable[[np.ndarray, np.random.Generator], tuple[np.ndarray, str]]] = {
    "sun_sky": _sun_sky, "softbox": _softbox, "rim": _rim, "split": _split, "window": _window,
}


def procedural(kind: str, rng: np.random.Generator, height: int) -> tuple[np.ndarray, str]:
    """A procedural map of `kind` with random parameters; returns (radiance, spec)."""
    if kind not in PROCEDURAL:
        raise ValueError(f"unknown procedural environment map {kind!r}; known: {sorted(PROCEDURAL)}")
    d, _ = directions(height)
    radiance, spec = PROCEDURAL[kind](d, rng)
    return np.broadcast_to(radiance, d.shape).astype(np.float32), spec


def draw_lights(n: int, rng: np.random.Generator, *, files: Sequence[Path] = (), kinds: Sequence[str] = (),
                rotation_deg: tuple[float, float] = (-180.0, 180.0), exposure: tuple[float, float] = (1.0, 1.0),
                height: int = 128) -> list[EnvLight]:
    """`n` lightings: user files drawn without repetition while there are enough (else with),
    otherwise procedural kinds in a shuffled cycle so the variants of one image differ in kind;
    each with its own random rotation and exposure."""
    lights = []
    if files:
        picks = rng.choice(len(files), size=n, replace=len(files) < n)
    else:
        order = list(rng.permutation(len(kinds)))
        picks = [order[i % len(order)] for i in range(n)]
    for pick in picks:
        if files:
            path = files[int(pick)]
            radiance, name = load_envmap(path, height), path.name
        else:
            radiance, name = procedural(kinds[int(pick)], rng, height)
        rot = float(round(rng.uniform(*rotation_deg), 1))
        lights.append(EnvLight(rotate(radiance, rot), name, rot, float(round(rng.uniform(*exposure), 3))))
    return lights
