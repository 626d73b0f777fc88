"""Classical stand-ins for the learned dataset stages, driven by the five MTCNN landmarks.

The test fixtures (tests/release_fixtures.py) and bench/shards.py make upstream stage outputs
with these (in the layouts of animate, segment, relight and caption) and build releases from
them through `piq shard`: honest, visibly working, and labelled as such in each sample's
`meta.json` backends.

- re-posing: a landmark-driven expression warp (mouth corners, jaw) then a similarity transform;
- label maps: ellipses and bands placed from the landmarks (canonical ids, pipeline/labels.py);
- relighting: Lambertian shading of an ellipsoid fitted to the face, with a colour temperature;
- captions: words for what was actually applied (expression, head roll).
"""
from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np

from pipeline.labels import LABEL_IDS

L = LABEL_IDS


@dataclasses.dataclass(frozen=True)
class FaceFrame:
    """Landmark-derived face axes in pixels: eye midpoint, mouth midpoint, eye distance, roll."""

    eyes: np.ndarray  # (2, 2)
    nose: np.ndarray  # (2,)
    mouth: np.ndarray  # (2, 2)

    @classmethod
    def from_landmarks(cls, lms: np.ndarray) -> "FaceFrame":
        lms = np.asarray(lms, float).reshape(5, 2)
        return cls(lms[:2], lms[2], lms[3:])

    @property
    def d(self) -> float:
        return float(np.linalg.norm(self.eyes[1] - self.eyes[0]))

    @property
    def roll_deg(self) -> float:
        v = self.eyes[1] - self.eyes[0]
        return math.degrees(math.atan2(v[1], v[0]))

    def at(self, dx: float, dy: float) -> tuple[int, int]:
        """The point dx, dy eye-distances from the eye midpoint, along the face's axes."""
        c = self.eyes.mean(axis=0)
        a = math.radians(self.roll_deg)
        ux, uy = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
        p = c + self.d * (dx * ux + dy * uy)
        return int(round(p[0])), int(round(p[1]))


def label_map(shape: tuple[int, int], lms: np.ndarray) -> np.ndarray:
    """A coarse face-parsing map (canonical ids) from five landmarks."""
    f = FaceFrame.from_landmarks(lms)
    d, roll = f.d, f.roll_deg
    out = np.zeros(shape, np.uint8)

    def ellipse(center: tuple[int, int], axes: tuple[float, float], label: str) -> None:
        cv2.ellipse(out, center, (max(1, int(axes[0] * d)), max(1, int(axes[1] * d))), roll, 0, 360, L[label], -1)

    neck_top, neck_bottom = f.at(0, 1.6), f.at(0, 3.0)
    cv2.line(out, neck_top, neck_bottom, L["neck"], max(1, int(1.1 * d)))
    ellipse(f.at(0, 0.1), (1.25, 1.55), "hair")
    ellipse(f.at(0, 0.55), (1.0, 1.25), "skin")
    ellipse(f.at(-1.0, 0.45), (0.12, 0.28), "l_ear")
    ellipse(f.at(1.0, 0.45), (0.12, 0.28), "r_ear")
    ellipse(f.at(-0.5, -0.33), (0.3, 0.07), "l_brow")
    ellipse(f.at(0.5, -0.33), (0.3, 0.07), "r_brow")
    for eye, label in zip(f.eyes, ("l_eye", "r_eye")):
        cv2.ellipse(out, (int(eye[0]), int(eye[1])), (max(1, int(0.2 * d)), max(1, int(0.09 * d))), roll, 0, 360, L[label], -1)
    nose_top = f.at(0, 0.15)
    cv2.line(out, nose_top, (int(f.nose[0]), int(f.nose[1])), L["nose"], max(1, int(0.25 * d)))
    cv2.ellipse(out, (int(f.nose[0]), int(f.nose[1])), (max(1, int(0.22 * d)), max(1, int(0.13 * d))), roll, 0, 360, L["nose"], -1)
    mouth_c = f.mouth.mean(axis=0)
    half = max(1, int(np.linalg.norm(f.mouth[1] - f.mouth[0]) / 2))
    cx, cy = int(mouth_c[0]), int(mouth_c[1])
    cv2.ellipse(out, (cx, cy), (half, max(1, int(0.1 * d))), roll, 180, 360, L["u_lip"], -1)
    cv2.ellipse(out, (cx, cy), (half, max(1, int(0.13 * d))), roll, 0, 180, L["l_lip"], -1)
    cv2.ellipse(out, (cx, cy), (max(1, int(half * 0.8)), max(1, int(0.03 * d))), roll, 0, 360, L["mouth"], -1)
    return out


def _gaussian_shift(shape: tuple[int, int], center: np.ndarray, sigma: float, shift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    weight = np.exp(-((xx - center[0]) ** 2 + (yy - center[1]) ** 2) / (2 * sigma**2))
    return shift[0] * weight, shift[1] * weight


@dataclasses.dataclass(frozen=True)
class Repose:
    """One expressive stand-in: expression amounts (in eye distances) and a similarity transform."""

    smile: float  # mouth corners up (+) or down (-)
    jaw: float  # lower lip down
    rotate_deg: float
    scale: float
    shift: tuple[float, float]  # fraction of the image size

    @classmethod
    def draw(cls, rng: np.random.Generator, max_rotate: float, max_shift: float) -> "Repose":
        return cls(
            smile=float(rng.uniform(-0.05, 0.15)), jaw=float(rng.uniform(0.0, 0.12)),
            rotate_deg=float(rng.uniform(-max_rotate, max_rotate)), scale=float(rng.uniform(0.92, 1.08)),
            shift=(float(rng.uniform(-max_shift, max_shift)), float(rng.uniform(-max_shift, max_shift))),
        )

    def caption(self) -> str:
        if self.jaw > 0.08:
            expression = "an open mouth"
        elif self.smile > 0.08:
            expression = "a smile"
        elif self.smile < -0.02:
            expression = "slightly downturned lips"
        else:
            expression = "a neutral expression"
        tilt = "upright" if abs(self.rotate_deg) < 4 else ("tilted to the left" if self.rotate_deg > 0 else "tilted to the right")
        return f"a photo of a person looking at the camera with {expression}, head {tilt}"

    def apply(self, rgb: np.ndarray, labels: np.ndarray, lms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Warped image, label map and landmarks."""
        f = FaceFrame.from_landmarks(lms)
        h, w = labels.shape
        d = f.d
        up = np.array([math.sin(math.radians(f.roll_deg)), -math.cos(math.radians(f.roll_deg))])
        dx = np.zeros((h, w), np.float32)
        dy = np.zeros((h, w), np.float32)
        for corner in f.mouth:  # backward map: sample from where the corner came from
            sx, sy = _gaussian_shift((h, w), corner, 0.25 * d, -self.smile * d * up)
            dx += sx
            dy += sy
        lower = f.mouth.mean(axis=0) - 0.15 * d * up
        sx, sy = _gaussian_shift((h, w), lower, 0.35 * d, self.jaw * d * up)
        dx += sx
        dy += sy
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        map_x, map_y = xx + dx, yy + dy
        rgb = cv2.remap(rgb, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        labels = cv2.remap(labels, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        lms = np.asarray(lms, float).copy()
        lms[3:] += self.smile * d * up
        m = cv2.getRotationMatrix2D((w / 2, h / 2), self.rotate_deg, self.scale)
        m[:, 2] += (self.shift[0] * w, self.shift[1] * h)
        rgb = cv2.warpAffine(rgb, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        labels = cv2.warpAffine(labels, m, (w, h), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        lms = np.c_[lms, np.ones(5)] @ m.T
        return rgb, labels, lms


@dataclasses.dataclass(frozen=True)
class Light:
    """A directional light (unit vector towards the light, camera looks down -z), its ambient
    share and a colour temperature as RGB gains."""

    direction: tuple[float, float, float]
    ambient: float
    gains: tuple[float, float, float]
    name: str

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Light":
        azimuth, elevation = rng.uniform(-80, 80), rng.uniform(-30, 60)
        a, e = math.radians(azimuth), math.radians(elevation)
        direction = (math.sin(a) * math.cos(e), -math.sin(e), math.cos(a) * math.cos(e))
        kelvin = rng.uniform(-1, 1)  # -1 warm, +1 cool
        gains = (1.0 - 0.15 * kelvin, 1.0, 1.0 + 0.15 * kelvin)
        name = f"sh-dir az{azimuth:+.0f} el{elevation:+.0f} {'cool' if kelvin > 0 else 'warm'}{abs(kelvin):.2f}"
        return cls(direction, float(rng.uniform(0.25, 0.55)), gains, name)

    def apply(self, rgb: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Relit image: Lambertian shading of an ellipsoid over the face, hair and neck; the
        background only takes the colour temperature and the mean light level."""
        person = np.isin(labels, [i for n, i in L.items() if n not in ("background", "cloth")])
        ys, xs = np.nonzero(person)
        out = rgb.astype(np.float32) / 255.0
        gains = np.array(self.gains, np.float32)
        if xs.size == 0:
            return (np.clip(out * gains, 0, 1) * 255).astype(np.uint8)
        cx, cy = xs.mean(), ys.mean()
        ax, ay = max(1.0, xs.std() * 2.0), max(1.0, ys.std() * 2.0)
        h, w = labels.shape
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        nx, ny = (xx - cx) / ax, (yy - cy) / ay
        nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
        lx, ly, lz = self.direction
        lambert = np.clip(nx * lx + ny * ly + nz * lz, 0, 1)
        shade = self.ambient + (1 - self.ambient) * lambert * 1.6
        mask = cv2.GaussianBlur(person.astype(np.float32), (0, 0), max(1.0, 0.02 * w))
        level = self.ambient + (1 - self.ambient) * 0.8
        factor = mask * shade + (1 - mask) * level
        return (np.clip(out * factor[..., None] * gains, 0, 1) * 255).astype(np.uint8)
