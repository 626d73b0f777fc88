"""Synthesize the embedded sample of "crowdsourced" clips, deterministically.

    python samples/make_sample.py --out samples [--verify]

Sources: the two public-domain portraits that pip packages ship, scikit-image's astronaut
(Eileen Collins, NASA) and matplotlib's Grace Hopper (US Navy). Each clip moves a portrait with
smooth 2D head motion (translation, scale, a few degrees of in-plane rotation) over a
synthetic room, and `metadata.csv` files it under one of the paper's categories (B.2). Some
clips are made to be refused; `expected.csv` says what ingest must make of every clip (tests
and docs/STAGES.md read it, ingest never does). Same code, same bytes of metadata, same frames.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import os
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
from matplotlib import cbook
from PIL import Image
from skimage import data

FPS = 25
SIZE = (640, 480)  # width, height: a webcam frame
CATEGORIES = (
    "making eye contact with the camera while sitting in front of a computer",
    "making eye contact with the camera while sitting at a distance",
    "making eye contact with the camera while standing",
    "no facial expression",
    "no gesture",
)


def astronaut() -> np.ndarray:
    return data.astronaut()


def hopper() -> np.ndarray:
    path = cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)
    return np.array(Image.open(path).convert("RGB"))


def room(seed: int) -> np.ndarray:
    """A plain synthetic background: a vertical colour gradient with soft blotches."""
    rng = np.random.default_rng(seed)
    w, h = SIZE
    top, bottom = rng.uniform(60, 200, 3), rng.uniform(40, 160, 3)
    t = np.linspace(0, 1, h)[:, None, None]
    img = top * (1 - t) + bottom * t + np.zeros((h, w, 3))
    noise = cv2.GaussianBlur(rng.normal(0, 12, (h // 8, w // 8, 3)).astype(np.float32), (0, 0), 2)
    img += cv2.resize(noise, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(img, 0, 255).astype(np.uint8)


def feathered(portrait: np.ndarray) -> np.ndarray:
    """Alpha mask that fades the portrait's rectangle into the room."""
    h, w = portrait.shape[:2]
    mask = np.zeros((h, w), np.float32)
    cv2.ellipse(mask, (w // 2, h // 2), (int(w * 0.46), int(h * 0.48)), 0, 0, 360, 1.0, -1)
    return cv2.GaussianBlur(mask, (0, 0), min(h, w) * 0.06)


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where the portrait's centre sits in the frame, its scale, and the head motion."""

    cx: float
    cy: float
    scale: float
    roll: float = 0.0  # constant in-plane rotation, degrees
    wobble_deg: float = 1.5
    wobble_px: float = 5.0


def render(portrait: np.ndarray, place: Placement, background: np.ndarray, t: int) -> np.ndarray:
    """One frame: the portrait, moved smoothly with time step t, over the background."""
    h, w = portrait.shape[:2]
    angle = place.roll + place.wobble_deg * np.sin(2 * np.pi * t / 47)
    scale = place.scale * (1 + 0.02 * np.sin(2 * np.pi * t / 61))
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, scale)
    m[0, 2] += place.cx - w / 2 + place.wobble_px * np.sin(2 * np.pi * t / 53)
    m[1, 2] += place.cy - h / 2 + 0.6 * place.wobble_px * np.cos(2 * np.pi * t / 59)
    size = SIZE
    fg = cv2.warpAffine(portrait, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    alpha = cv2.warpAffine(feathered(portrait), m, size, flags=cv2.INTER_LINEAR)[..., None]
    return (fg * alpha + background * (1 - alpha)).astype(np.uint8)


def turn_head(portrait: np.ndarray, nose: tuple[float, float], face_width: float, shift: float) -> np.ndarray:
    """Simulate yaw on a still photo: slide the nose, mouth and the middle of the face sideways
    relative to the eyes' outer corners with a smooth, face-wide displacement field centred
    just below the nose (a landmark-driven warp)."""
    h, w = portrait.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    nx, ny = nose
    sx, sy = 0.45 * face_width, 0.6 * face_width
    weight = np.exp(-((xx - nx) ** 2 / (2 * sx**2) + (yy - ny - 0.15 * face_width) ** 2 / (2 * sy**2)))
    return cv2.remap(portrait, xx - shift * weight, yy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def clip_frames(make_frame: Callable[[int], np.ndarray], seconds: float) -> list[np.ndarray]:
    return [make_frame(t) for t in range(int(round(seconds * FPS)))]


def write_clip(path: Path, frames: list[np.ndarray]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, SIZE)
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write mp4v video here")
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


@dataclasses.dataclass(frozen=True)
class Clip:
    """One row of the sample: how to make the file, its metadata row and the expected outcome."""

    file: str
    video_id: str | None  # None: the file has no metadata row
    participant_id: str
    category: str
    expected: str
    description: str
    camera_segments: str = ""
    make: Callable[[Path], None] | None = None  # None: no file (a row whose clip is missing)


def portrait_clip(portrait: np.ndarray, place: Placement, seed: int, seconds: float = 1.6) -> Callable[[Path], None]:
    background = room(seed)
    return lambda path: write_clip(path, clip_frames(lambda t: render(portrait, place, background, t), seconds))


def two_faces_clip(seed: int) -> Callable[[Path], None]:
    background = room(seed)
    a, b = astronaut(), hopper()
    left, right = Placement(170, 250, 0.62), Placement(470, 240, 0.55)

    def frame(t: int) -> np.ndarray:
        return render(b, right, render(a, left, background, t), t + 11)

    return lambda path: write_clip(path, clip_frames(frame, 1.6))


def scene_clip(seed: int) -> Callable[[Path], None]:
    coffee = cv2.resize(data.coffee(), SIZE, interpolation=cv2.INTER_AREA)
    place = Placement(SIZE[0] / 2, SIZE[1] / 2, 1.05, wobble_deg=1.0, wobble_px=8)
    background = room(seed)
    return lambda path: write_clip(path, clip_frames(lambda t: render(coffee, place, background, t), 1.6))


def corrupt_clip(source: Callable[[Path], None]) -> Callable[[Path], None]:
    def make(path: Path) -> None:
        source(path)
        head = path.read_bytes()[:3000]
        rng = np.random.default_rng(7)
        path.write_bytes(head + rng.integers(0, 256, 20000, dtype=np.uint8).tobytes())

    return make


def clips() -> list[Clip]:
    astro, grace = astronaut(), hopper()
    flipped = np.ascontiguousarray(astro[:, ::-1])
    # Grace Hopper's nose tip and face width in the original photo (MTCNN landmarks).
    turned = turn_head(grace, nose=(269.0, 239.0), face_width=180.0, shift=72.0)
    computer_a = Placement(320, 250, 1.05)
    computer_g = Placement(330, 215, 0.80)
    return [
        Clip("astronaut_desk.mp4", "v0001", "p0001", CATEGORIES[0], "accept",
             "astronaut at a computer, close to the camera", make=portrait_clip(astro, computer_a, 1)),
        Clip("astronaut_standing.mp4", "v0002", "p0001", CATEGORIES[2], "accept",
             "astronaut standing, further away; looks at the camera from 0.4 s", "0.4-1.6",
             make=portrait_clip(astro, Placement(360, 270, 0.85), 2)),
        Clip("hopper_desk.mp4", "v0003", "p0002", CATEGORIES[0], "accept",
             "Hopper at a computer", make=portrait_clip(grace, computer_g, 3)),
        Clip("hopper_distance.mp4", "v0004", "p0002", CATEGORIES[1], "accept",
             "Hopper sitting at a distance", make=portrait_clip(grace, Placement(300, 240, 0.55), 4)),
        Clip("hopper_neutral.mp4", "v0005", "p0002", CATEGORIES[3], "accept",
             "Hopper, no facial expression, slower motion",
             make=portrait_clip(grace, Placement(320, 230, 0.7, wobble_deg=0.8, wobble_px=3), 5)),
        Clip("astronaut_still.mp4", "v0006", "p0001", CATEGORIES[4], "accept",
             "astronaut (mirrored photo), no gesture", make=portrait_clip(flipped, Placement(300, 240, 0.9), 6)),
        Clip("astronaut_walking.mp4", "v0007", "p0001", "talking to a friend while walking", "wrong_category",
             "a good face, but a category the paper does not keep", make=portrait_clip(astro, computer_a, 7)),
        Clip("coffee_table.mp4", "v0008", "p0003", CATEGORIES[4], "no_face",
             "a cup of coffee: no face in any frame", make=scene_clip(8)),
        Clip("hopper_turned.mp4", "v0009", "p0002", CATEGORIES[0], "not_frontal",
             "Hopper with the head turned (yaw simulated by a landmark-driven warp)",
             make=portrait_clip(turned, computer_g, 9)),
        Clip("astronaut_tilted.mp4", "v0010", "p0001", CATEGORIES[0], "head_tilt",
             "astronaut with the head tilted ~20 degrees (roll)",
             make=portrait_clip(astro, Placement(320, 250, 1.0, roll=20.0), 10)),
        Clip("two_people.mp4", "v0011", "p0001", CATEGORIES[1], "multiple_faces",
             "astronaut and Hopper side by side", make=two_faces_clip(11)),
        Clip("hopper_far.mp4", "v0012", "p0002", CATEGORIES[2], "face_too_small",
             "Hopper far away: a face of ~45 px, below the 64 px floor",
             make=portrait_clip(grace, Placement(420, 200, 0.24, wobble_px=3), 12)),
        Clip("broken_upload.mp4", "v0013", "p0001", CATEGORIES[0], "truncated_video",
             "an upload cut short and filled with garbage", make=corrupt_clip(portrait_clip(astro, computer_a, 13))),
        Clip("empty_upload.mp4", "v0014", "p0002", CATEGORIES[0], "empty_video",
             "a zero-length upload", make=lambda path: path.write_bytes(b"")),
        Clip("lost_clip.mp4", "v0015", "p0002", CATEGORIES[0], "missing_file",
             "a metadata row whose clip never arrived", make=None),
        Clip("unregistered.mp4", None, "p0001", CATEGORIES[0], "missing_metadata",
             "a clip that no metadata row names", make=portrait_clip(astro, computer_a, 16, seconds=1.0)),
    ]


def build(out: Path) -> None:
    videos = out / "videos"
    videos.mkdir(parents=True, exist_ok=True)
    for old in videos.glob("*"):
        old.unlink()
    meta_rows, expected_rows = [], []
    for clip in clips():
        if clip.make is not None:
            clip.make(videos / clip.file)
        if clip.video_id is not None:
            meta_rows.append([clip.video_id, clip.participant_id, clip.file, clip.category,
                              clip.camera_segments, FPS, clip.description, licence(clip.file), CONSENT])
        expected_rows.append([clip.file, clip.video_id or "", clip.expected])
    with open(out / "metadata.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["video_id", "participant_id", "file", "category", "camera_segments", "fps", "description",
                         "license", "consent"])
        writer.writerows(meta_rows)
    with open(out / "expected.csv", "w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["file", "video_id", "expected"])
        writer.writerows(expected_rows)


# Rights of the two source photographs, carried through ingest into the dataset card.
RIGHTS = {"astronaut": "public domain (NASA photograph; scikit-image astronaut.png)",
          "hopper": "public domain (U.S. Navy photograph; matplotlib grace_hopper.jpg)"}
CONSENT = "not required (public-domain photograph)"


def licence(file: str) -> str:
    """The photograph a clip is made from decides its licence; clips of both or none: plain."""
    sources = [text for name, text in RIGHTS.items() if file.startswith(name)]
    return sources[0] if len(sources) == 1 else "public domain"


def verify(out: Path, frames_per_clip: int = 4) -> None:
    """Print what MTCNN and the frontal filter see on a few frames of every clip."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from pipeline.faces.detect import FaceDetector
    from pipeline.faces.geometry import frontal_angles, square_crop
    from pipeline.rejection import Reject
    from pipeline.media.video import Clip

    detector = FaceDetector()
    for clip in clips():
        path = out / "videos" / clip.file
        try:
            with Clip(path) as video:
                picks = np.linspace(0, video.info.frames - 1, frames_per_clip).astype(int).tolist()
                rgbs = [f.rgb for f in video.read(picks)]
        except Reject as err:
            print(f"{clip.file:24} {clip.expected:18} -> {err.code}")
            continue
        seen = []
        for rgb in rgbs:
            faces = [f for f in detector.detect(rgb) if f.prob >= 0.9]
            if not faces:
                seen.append("none")
                continue
            f = faces[0]
            a = frontal_angles(f.landmarks)
            pad = square_crop(f.box, 2.0).pad_fraction(*SIZE)
            seen.append(f"{len(faces)}f box={f.short_side:.0f} eye={a.eye_nose:.1f} mouth={a.mouth_nose:.1f} "
                        f"vert={a.vertical:.1f} pad={pad:.2f}")
        print(f"{clip.file:24} {clip.expected:18} -> " + " | ".join(seen))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent)
    parser.add_argument("--verify", action="store_true", help="print MTCNN's view of every clip")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "2")
    cv2.setNumThreads(1)  # deterministic, order-independent encoding
    build(args.out)
    if args.verify:
        verify(args.out)


if __name__ == "__main__":
    main()
