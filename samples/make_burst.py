"""Synthesize the demo's burst: two people side by side, three shots, each with a flaw.

    python samples/make_burst.py --out samples/burst [--check]

The two public-domain portraits that pip packages ship (scikit-image's astronaut, Eileen
Collins, NASA; matplotlib's Grace Hopper, US Navy) stand side by side over a synthetic room.
Every shot animates each face with the project's own offline animator (the mesh backend,
`pipeline/backends/animators/mesh_animator.py`, driven by motion programs as the `drivers` stage drives it), so a
blink or a smile is the same warp the data set is made of. The camera drifts a few pixels
between shots, as a hand-held burst does. What each shot holds (`SHOTS`):

    shot_0  astronaut blinks,            Hopper smiles, eyes open
    shot_1  astronaut smiles, eyes open, Hopper blinks
    shot_2  astronaut looks away,        Hopper neutral, eyes open

so no shot is good for both people, and `piq best-take` must take one person's face from
another shot. Same code, same bytes: the portraits, the room and the animator are
deterministic, and JPEG encoding is fixed by `JPEG_QUALITY` and the encoder.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.backends.animators import motion as mo  # noqa: E402
from pipeline.backends.animators.mesh_animator import MeshAnimator  # noqa: E402
from samples.make_sample import astronaut, feathered, hopper, room  # noqa: E402

CANVAS = (1024, 560)  # width, height
TILE = 440            # each portrait's height on the canvas (px)
JPEG_QUALITY = 90
PEOPLE = ("astronaut", "hopper")
# head-and-shoulders crops (x0, y0, x1, y1) of each portrait, so each face is ~130-170 px wide
CROPS = ((70, 0, 380, 310), (24, 20, 504, 500))


@dataclasses.dataclass(frozen=True)
class Shot:
    """One frame of the burst: each person's expression, and the camera's drift (px)."""

    name: str
    controls: tuple[mo.Controls, mo.Controls]  # astronaut, hopper
    drift: tuple[int, int]


SHOTS = (
    Shot("shot_0", (mo.Controls(blink_r=1.0, blink_l=1.0), mo.Controls(smile=0.7)), (0, 0)),
    Shot("shot_1", (mo.Controls(smile=0.7), mo.Controls(blink_r=1.0, blink_l=1.0)), (4, -2)),
    Shot("shot_2", (mo.Controls(yaw=-15.0), mo.Controls()), (-3, 3)),
)


def portraits() -> list[np.ndarray]:
    """Both portraits, cropped to head and shoulders, at TILE px high (RGB uint8)."""
    out = []
    for rgb, (x0, y0, x1, y1) in zip((astronaut(), hopper()), CROPS):
        rgb = rgb[y0:y1, x0:x1]
        h, w = rgb.shape[:2]
        out.append(cv2.resize(rgb, (round(w * TILE / h), TILE), interpolation=cv2.INTER_AREA))
    return out


def compose(faces: list[np.ndarray], drift: tuple[int, int], background: np.ndarray) -> np.ndarray:
    """The two portraits feathered into the room, side by side, shifted by the camera drift."""
    canvas = background.astype(np.float32)
    height, width = canvas.shape[:2]
    dx, dy = drift
    centres = (width * 0.28 + dx, width * 0.72 + dx)
    for face, cx in zip(faces, centres):
        h, w = face.shape[:2]
        x0, y0 = int(round(cx - w / 2)), int(round((height - h) / 2 + dy))
        alpha = feathered(face)[..., None]
        region = canvas[y0:y0 + h, x0:x0 + w]
        region[:] = region * (1 - alpha) + face.astype(np.float32) * alpha
    return np.clip(canvas + 0.5, 0, 255).astype(np.uint8)


def render(animator: MeshAnimator | None = None) -> dict[str, np.ndarray]:
    """Every shot of the burst, by name (RGB uint8, CANVAS size)."""
    animator = animator or MeshAnimator()
    bases = portraits()
    meshes = [animator.mesh(face, f"{name} portrait") for face, name in zip(bases, PEOPLE)]
    w, h = CANVAS
    background = cv2.resize(room(11), (w, h), interpolation=cv2.INTER_CUBIC)
    shots = {}
    for shot in SHOTS:
        faces = [face if c == mo.Controls() else animator.apply(face, mesh, mo.program_motion(mesh, c)).image
                 for face, mesh, c in zip(bases, meshes, shot.controls)]
        shots[shot.name] = compose(faces, shot.drift, background)
    return shots


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, rgb in render().items():
        path = out / f"{name}.jpg"
        Image.fromarray(rgb).save(path, quality=JPEG_QUALITY, subsampling=0, optimize=True)
        paths.append(path)
    return paths


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "burst")
    args = parser.parse_args()
    for path in write(args.out):
        print(f"{path}  {path.stat().st_size / 1024:.0f} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
