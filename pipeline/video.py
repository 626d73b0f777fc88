"""Reading chosen frames of a video clip with OpenCV, with errors that say what is wrong."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from pipeline.stage import Reject


class VideoError(Exception):
    """A clip that cannot be used. `code` is a reject reason code (docs/DATA.md)."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    frames: int
    fps: float
    width: int
    height: int


def _open(path: Path) -> cv2.VideoCapture:
    if not path.is_file():
        raise VideoError("missing_file", f"{path} does not exist")
    if path.stat().st_size == 0:
        raise VideoError("empty_video", f"{path.name} is 0 bytes")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise VideoError("unreadable_video", f"OpenCV cannot open {path.name} (corrupt or not a video)")
    return cap


def probe(path: Path) -> VideoInfo:
    """Frame count (by decoding, since container counts can lie), fps and size."""
    cap = _open(path)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS)) or 25.0
        frames, width, height = 0, 0, 0
        while True:
            ok = cap.grab()
            if not ok:
                break
            frames += 1
        width = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        height = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
    finally:
        cap.release()
    if frames == 0:
        raise VideoError("empty_video", f"{path.name} decodes to zero frames")
    return VideoInfo(frames=frames, fps=fps if np.isfinite(fps) and fps > 0 else 25.0, width=width, height=height)


def read_frames(path: Path, indices: list[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (index, RGB uint8 frame) for the wanted indices, decoding sequentially (seeking
    is unreliable in many codecs). A frame that fails to decode ends the stream."""
    wanted = sorted(set(indices))
    if not wanted:
        return
    cap = _open(path)
    try:
        position, target = 0, 0
        while target < len(wanted):
            if position < wanted[target]:
                if not cap.grab():
                    return
                position += 1
                continue
            ok, frame = cap.read()
            if not ok or frame is None:
                return
            yield position, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
            position += 1
            target += 1
    finally:
        cap.release()


def parse_segments(spec: str | float | None, fps: float, frames: int) -> list[range]:
    """'0.0-2.0;2.5-3.5' (seconds) -> frame ranges clipped to the clip. Empty = whole clip."""
    if spec is None or (isinstance(spec, float) and np.isnan(spec)) or not str(spec).strip():
        return [range(0, frames)]
    ranges = []
    for part in str(spec).split(";"):
        part = part.strip()
        if not part:
            continue
        try:
            start_s, end_s = (float(v) for v in part.split("-"))
        except ValueError as err:
            raise VideoError("bad_segments", f"cannot parse segment {part!r} (want start-end in seconds)") from err
        if end_s <= start_s or start_s < 0:
            raise VideoError("bad_segments", f"segment {part!r} is empty or negative")
        start, end = int(round(start_s * fps)), min(frames, int(round(end_s * fps)))
        if start >= frames:
            raise VideoError("bad_segments", f"segment {part!r} starts after the clip ends ({frames / fps:.2f} s)")
        ranges.append(range(start, end))
    if not ranges:
        raise VideoError("bad_segments", f"no segment in {spec!r}")
    return ranges


def clip_frames(path: str | Path, indices: list[int] | None = None) -> list[np.ndarray]:
    """Frames of a clip (all, or the given indices; negative ones count from the end), RGB.
    An unusable file is a Reject with the video reader's reason code."""
    path = Path(path)
    try:
        n = probe(path).frames
        wanted = list(range(n)) if indices is None else [i % n for i in indices]
        frames = dict(read_frames(path, wanted))
    except VideoError as err:
        raise Reject(err.code, err.detail) from err
    return [frames[i] for i in wanted if i in frames]


def first_last(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A clip's first and last frames (RGB): all an animator needs (relative motion)."""
    frames = clip_frames(path, [0, -1])
    if len(frames) < 2:
        raise Reject("too_short", f"{path} has fewer than 2 frames")
    return frames[0], frames[-1]
