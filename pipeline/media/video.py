"""The one clip reader of every stage (PyAV, FFmpeg 8 inside its wheel), with reason codes.

Clips come from phones and cameras, so the reader does what a player does, and no more:
- frames upright as a player shows them: the container's display matrix (a phone held upright
  stores its frames sideways with a 90 / 270 degree matrix; a front camera may mirror) is applied
  to every frame; a matrix that is not a multiple of 90 degrees (or mirrored) is `bad_rotation`.
- times from the stream's timestamps: frame i's time is its presentation timestamp minus the
  first frame's, so a variable frame rate is read right; `parse_segments` maps seconds to frames
  by those times.
- H.264, HEVC (8 / 10 bit), VP9, AV1 (libdav1d), ProRes, MJPEG and more in MP4, MOV, MKV, WebM,
  AVI: whatever FFmpeg decodes. 10-bit frames reach 8 bits through FFmpeg's swscale; HDR (PQ,
  HLG) and BT.2020 frames are converted to BT.709 primaries and the sRGB curve by swscale's
  colour management (FFmpeg 8): HDR reference white (203 cd/m2, ITU-R BT.2408) becomes sRGB
  white, highlights above it clip. `VideoInfo.transfer` names the clip's transfer.
- each clip decoded at most once: the frame list (timestamps, keyframes) comes from demuxing
  the packets, which reads the file but decodes nothing, and is checked against the header's
  frame count (`truncated_video` when the data ends before the frames it lists); a wanted frame
  is reached by seeking to the keyframe before it and decoding forward, and frames after it in
  the same GOP are reached by decoding on. Decoder threads follow the runner's CPU share
  (`set_decoder_threads`).

Reason codes (docs/DATA.md): missing_file, empty_video (0 bytes, or a video stream with no
frame), unreadable_video (not a container FFmpeg can open, or no frame decodes),
unsupported_codec (the codec is named), no_video_stream, truncated_video, bad_rotation,
bad_timestamps. FFmpeg's own log lines are off (PyAV's default); `--verbose` turns them on.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from pathlib import Path
from typing import Iterator, Sequence

import av
import numpy as np
from av.video.reformatter import ColorPrimaries, ColorTrc

from pipeline.rejection import Reject

HDR_TRANSFERS = frozenset({ColorTrc.SMPTE2084, ColorTrc.ARIB_STD_B67})  # PQ, HLG
UNSPECIFIED_COLORSPACE = 2  # AVCOL_SPC_UNSPECIFIED
MAX_SEEK_RETRIES = 3  # keyframes further back tried when a seek lands after the wanted frame
# Decoders that honour skip_frame packet by packet: on the way to a wanted frame, frames no other
# frame refers to (H.264 nal_ref_idc 0, HEVC sub-layer non-reference pictures) are not decoded;
# every frame that is decoded comes out bit-identical (tests/test_video.py).
SKIP_NONREF_CODECS = frozenset({"h264", "hevc"})

_decoder_threads: int | None = None


def set_decoder_threads(threads: int | None) -> None:
    """Decoder threads of every clip opened from now on in this process (None: the default)."""
    global _decoder_threads
    _decoder_threads = None if threads is None else max(1, int(threads))


def decoder_threads() -> int:
    """`set_decoder_threads`'s value, else the runner's CPU share (it sets OMP_NUM_THREADS to
    `runner.threads_per_worker` in every worker, so N workers do not decode on N x all cores),
    else the CPUs this process may run on."""
    if _decoder_threads:
        return _decoder_threads
    share = os.environ.get("OMP_NUM_THREADS", "")
    return int(share) if share.isdigit() and int(share) > 0 else len(os.sched_getaffinity(0))


@dataclasses.dataclass(frozen=True)
class VideoInfo:
    """What a clip is, as read. width / height are as shown (after the display matrix);
    rotation is the clockwise turn a player gives the stored frames, then `mirrored` flips
    them left-right. frames / duration_s come from the packets' timestamps; the header's
    claims are kept beside them (header_frames 0 = not given)."""

    container: str
    codec: str
    pix_fmt: str
    bit_depth: int
    width: int
    height: int
    rotation: int
    mirrored: bool
    transfer: str
    primaries: str
    frames: int
    duration_s: float
    fps: float
    vfr: bool
    video_streams: int
    header_frames: int
    header_duration_s: float | None

    @property
    def hdr(self) -> bool:
        return self.transfer in ("smpte2084", "arib_std_b67")


@dataclasses.dataclass(frozen=True)
class Frame:
    """One decoded frame: its index in presentation order, its time and its RGB pixels."""

    index: int
    time_s: float
    rgb: np.ndarray


@dataclasses.dataclass(frozen=True)
class PacketIndex:
    """The video stream's frames in presentation order (pts), from demuxing, not decoding."""

    pts: np.ndarray          # int64, sorted
    key_pts: np.ndarray      # int64, sorted: pts of keyframes (a seek to one lands on it, see Clip._frame_at)
    time_base: float
    last_duration: int       # the last frame's duration in time_base units (0 = unknown)

    def times(self) -> np.ndarray:
        return (self.pts - self.pts[0]) * self.time_base


# --- display matrix ----------------------------------------------------------------------------

def orientation(matrix: Sequence[int] | None) -> tuple[int, bool]:
    """(clockwise rotation, mirrored) of an FFmpeg display matrix (9 int32, 16.16 fixed point).

    The matrix maps a stored pixel (x, y) to its shown place (a x + c y, b x + d y), QuickTime's
    convention that FFmpeg keeps: `rotate=90` (a phone held upright) is (0, 1, -1, 0). Only the
    eight right-angle orientations are accepted; any other angle or a scaled / sheared matrix is
    `bad_rotation`."""
    if matrix is None:
        return 0, False
    a, b, c, d = (matrix[i] / 65536.0 for i in (0, 1, 3, 4))
    det = a * d - b * c
    if not np.isfinite(det) or abs(abs(det) - 1.0) > 1e-3:
        raise Reject("bad_rotation", f"display matrix {[a, b, c, d]} scales or shears the frame")
    ints = [round(v) for v in (a, b, c, d)]
    if any(abs(v - i) > 1e-3 for v, i in zip((a, b, c, d), ints)):
        angle = np.degrees(np.arctan2(b, a))
        raise Reject("bad_rotation", f"display matrix turns the frame by {angle:.1f} deg, not a multiple of 90")
    a, b, c, d = ints
    mirrored = det < 0
    if mirrored:  # shown = mirror(rotate(stored)): undo the mirror of the shown x
        a, c = -a, -c
    rotation = {(1, 0, 0, 1): 0, (0, 1, -1, 0): 90, (-1, 0, 0, -1): 180, (0, -1, 1, 0): 270}[(a, b, c, d)]
    return rotation, mirrored


def upright(rgb: np.ndarray, rotation: int, mirrored: bool) -> np.ndarray:
    """The stored frame as shown: turned `rotation` degrees clockwise, then mirrored."""
    out = np.rot90(rgb, k=-(rotation // 90)) if rotation else rgb
    if mirrored:
        out = out[:, ::-1]
    return np.ascontiguousarray(out) if out is not rgb else rgb


# --- opening -----------------------------------------------------------------------------------

class Clip:
    """An open clip: its `info`, its frames' `times`, and `read(indices)`. Use as a context
    manager (or call `close`). Opening demuxes the packets and decodes the first frame (to
    learn the display matrix and the colour tags, and that the codec decodes at all)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise Reject("missing_file", f"{self.path} does not exist")
        if self.path.stat().st_size == 0:
            raise Reject("empty_video", f"{self.path.name} is 0 bytes")
        try:
            self._container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError) as err:
            if _mp4_without_index(self.path):
                raise Reject("truncated_video", f"{self.path.name} ends before its 'moov' index box (an MP4 / MOV "
                              "upload or copy cut off, or a recording never finalised)") from err
            raise Reject("unreadable_video", f"FFmpeg cannot open {self.path.name}: {_reason(err)}") from err
        self._iter: Iterator[av.VideoFrame] | None = None
        self._last_pts: int | None = None  # pts of the last frame decoded since the last seek
        self._decoded_upto: int | None = None  # ... before the last seek
        self._seek_forward = True
        self._first_index = 0
        self._wanted_pts: frozenset[int] | None = None  # while reading: the frames to decode; None: all
        self.undecodable: list[int] = []
        self.frames_decoded = 0  # frames the decoder produced (a clip is decoded at most once: <= info.frames)
        try:
            self._stream = self._video_stream()
            self.index = self._index()
            first = self._first_frame()
            self.rotation, self.mirrored = orientation(_display_matrix(first))
            self.info = self._info(first)
            self._first = first
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Clip:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._iter = None
        self._container.close()

    @functools.cached_property
    def times(self) -> np.ndarray:
        """Each frame's time in seconds (presentation order, first frame at 0)."""
        return self.index.times()

    def _video_stream(self) -> av.video.stream.VideoStream:
        streams = self._container.streams
        if not streams.video:
            kinds = ", ".join(sorted({s.type for s in streams})) or "nothing"
            raise Reject("no_video_stream", f"{self.path.name} holds no video stream ({kinds})")
        # the largest picture of several (a camera's preview track, an editor's proxy); cover art is
        # a picture attached to the file, not video
        moving = [s for s in streams.video if not s.disposition & av.stream.Disposition.attached_pic] or streams.video
        stream = max(moving, key=lambda s: (s.codec_context.width * s.codec_context.height) if s.codec_context else 0)
        ctx = stream.codec_context
        if ctx is None:
            raise Reject("unsupported_codec", f"{self.path.name}: codec {_unknown_codec(self.path)!r} is unknown to "
                          f"FFmpeg {av.ffmpeg_version_info}")
        try:
            av.codec.Codec(ctx.name, "r")
        except (av.FFmpegError, ValueError) as err:
            raise Reject("unsupported_codec", f"{self.path.name}: no decoder for codec {_codec_name(stream)!r} in "
                          f"FFmpeg {av.ffmpeg_version_info}") from err
        ctx.thread_count = decoder_threads()
        ctx.thread_type = "AUTO"
        return stream

    def _index(self) -> PacketIndex:
        """Every frame's timestamp and the keyframes, from the packets (nothing decoded)."""
        pts, keys = [], []
        last_duration, ended_early = 0, ""
        try:
            for packet in self._container.demux(self._stream):
                if packet.size == 0 or packet.is_discard:
                    continue
                pts.append(packet.pts if packet.pts is not None else packet.dts)
                keys.append(bool(packet.is_keyframe))
                last_duration = packet.duration or 0
        except av.FFmpegError as err:
            ended_early = _reason(err)
        name, header = self.path.name, self._stream.frames
        if not pts:
            if ended_early:
                raise Reject("unreadable_video", f"{name}: no packet can be read ({ended_early})")
            raise Reject("empty_video", f"{name}: the video stream holds no frame")
        if header and len(pts) < header and (ended_early or _data_ends_early(self._container, self._stream, len(pts))):
            raise Reject("truncated_video", f"{name} holds {len(pts)} of the {header} frames its header lists: "
                          "the file ends early (an interrupted upload or copy)")
        if any(p is None for p in pts):
            raise Reject("bad_timestamps", f"{name}: {sum(p is None for p in pts)} frames have no timestamp")
        order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
        sorted_pts = np.asarray(pts, dtype=np.int64)[order]
        if np.any(np.diff(sorted_pts) == 0):
            dup = int(np.sum(np.diff(sorted_pts) == 0))
            raise Reject("bad_timestamps", f"{name}: {dup} frames share another frame's timestamp")
        key_idx = [i for i in order if keys[i]]
        if not key_idx:
            raise Reject("unreadable_video", f"{name}: no keyframe: no frame can be decoded on its own")
        key_pts = np.asarray([pts[i] for i in key_idx], dtype=np.int64)
        return PacketIndex(sorted_pts, key_pts, float(self._stream.time_base), last_duration)

    def _first_frame(self) -> av.VideoFrame:
        """The first frame the decoder gives from the start (a stream cut mid-GOP, or opening
        with an open GOP's leading pictures, may start a few frames in, as players do)."""
        self._seek(int(self.index.key_pts[0]))
        for frame in self._iter:
            self.frames_decoded += 1
            if frame.pts is not None:
                self._last_pts = frame.pts
                self._first_index = int(np.searchsorted(self.index.pts, frame.pts))
                return frame
        raise Reject("unreadable_video", f"{self.path.name}: the {_codec_name(self._stream)} stream does "
                      "not decode (corrupt data)")

    def _info(self, first: av.VideoFrame) -> VideoInfo:
        stream, times = self._stream, self.times
        n = len(times)
        gaps = np.diff(times)
        last = self.index.last_duration * self.index.time_base or (float(np.median(gaps)) if n > 1 else 0.0)
        duration = float(times[-1] + last)
        tol = 2 * self.index.time_base + 1e-6  # timestamps are rounded to the time base
        vfr = bool(n > 2 and float(gaps.max() - gaps.min()) > max(tol, 0.02 * float(np.median(gaps))))
        turned = self.rotation in (90, 270)
        w, h = (first.height, first.width) if turned else (first.width, first.height)
        header_s = float(stream.duration * stream.time_base) if stream.duration else (
            self._container.duration / 1e6 if self._container.duration else None)
        return VideoInfo(
            container=_container_name(self._container), codec=_codec_name(stream),
            pix_fmt=first.format.name, bit_depth=_bit_depth(first.format), width=w, height=h,
            rotation=self.rotation, mirrored=self.mirrored, transfer=_enum_name(ColorTrc, first.color_trc),
            primaries=_enum_name(ColorPrimaries, first.color_primaries), frames=n, duration_s=round(duration, 6),
            fps=round((n - 1) / float(times[-1]), 4) if n > 1 and times[-1] > 0 else 0.0, vfr=vfr,
            video_streams=len(self._container.streams.video), header_frames=int(stream.frames or 0),
            header_duration_s=round(header_s, 6) if header_s else None,
        )

    # --- decoding ------------------------------------------------------------------------------

    def read(self, indices: Sequence[int] | None = None) -> Iterator[Frame]:
        """The frames at `indices` (presentation order; all when None), upright RGB uint8, in
        increasing order. A frame that does not decode is skipped and listed in `undecodable`."""
        n = len(self.index.pts)
        wanted = range(n) if indices is None else sorted({i for i in indices if 0 <= i < n})
        times = self.times
        self._wanted_pts = None if indices is None else frozenset(int(self.index.pts[i]) for i in wanted)
        for i in wanted:
            frame = self._first if i == self._first_index else self._frame_at(i)
            if frame is None:
                self.undecodable.append(i)
                continue
            yield Frame(i, round(float(times[i]), 6), self.rgb(frame))

    def rgb(self, frame: av.VideoFrame) -> np.ndarray:
        """A decoded frame as shown: 8-bit sRGB, upright."""
        return upright(to_rgb8(frame), self.rotation, self.mirrored)

    def _frame_at(self, i: int) -> av.VideoFrame | None:
        """The frame with the i-th pts. The decoder seeks to the keyframe before the frame only
        when that keyframe is after what it has decoded; otherwise it goes on forward, so no
        frame is decoded twice. Seeks go by the keyframe's presentation timestamp: FFmpeg's MOV
        reader indexes decode timestamps, and given one before an HEVC open-GOP keyframe's
        presentation it starts a GOP earlier (for leading pictures, which a frame at or after the
        keyframe does not need). A seek that still lands on frames already decoded (a sparse seek
        index) turns forward seeking off for the clip."""
        target = int(self.index.pts[i])
        k = max(int(np.searchsorted(self.index.key_pts, target, side="right")) - 1, 0)
        go_on = self._iter is not None and self._last_pts is not None and self._last_pts < target and (
            not self._seek_forward or k <= self._key_of(self._last_pts))
        for _ in range(MAX_SEEK_RETRIES + 1):
            if not go_on:
                if k < 0:
                    return None
                self._seek(int(self.index.key_pts[k]))
            go_on = False
            frame, overshot = self._decode_until(target)
            if frame is not None or not overshot:
                return frame
            k -= 1  # open GOP: the frame is a leading picture of the keyframe before
        return None

    def _key_of(self, pts: int) -> int:
        return int(np.searchsorted(self.index.key_pts, pts, side="right")) - 1

    def _seek(self, ts: int) -> None:
        self._container.seek(ts, stream=self._stream, backward=True, any_frame=False)
        self._iter = self._decoded()
        self._decoded_upto, self._last_pts = self._last_pts, None

    def _decoded(self) -> Iterator[av.VideoFrame]:
        ctx = self._stream.codec_context
        skipping = ctx.name in SKIP_NONREF_CODECS
        for packet in self._container.demux(self._stream):
            if skipping:  # read per packet: a wanted frame is always decoded
                wanted = self._wanted_pts is None or packet.pts in self._wanted_pts
                ctx.skip_frame = "DEFAULT" if wanted else "NONREF"
            try:
                yield from packet.decode()
            except av.FFmpegError:
                continue  # a broken packet: its frame is missing, the next ones may decode

    def _decode_until(self, target: int) -> tuple[av.VideoFrame | None, bool]:
        """(the frame at pts `target` or None, whether the first frame decoded was past it)."""
        assert self._iter is not None
        first = self._last_pts is None
        for frame in self._iter:
            self.frames_decoded += 1
            pts = frame.pts
            if pts is None:
                continue
            if first and self._decoded_upto is not None and pts <= self._decoded_upto:
                self._seek_forward = False  # this clip's seek index is too sparse to seek forward
            self._last_pts = pts
            if pts == target:
                return frame, False
            if pts > target:
                return None, first
            first = False
        self._iter = None
        return None, False


# --- colour ------------------------------------------------------------------------------------

def to_rgb8(frame: av.VideoFrame) -> np.ndarray:
    """RGB uint8 as a player shows the frame (before the display matrix).

    Tagged frames convert by their tags (matrix, range) through swscale; an untagged matrix is
    read as BT.709 from 720 lines up and BT.601 below, as players guess. HDR (PQ / HLG) and
    BT.2020 frames go through swscale's colour management to BT.709 primaries and the sRGB curve
    (HDR: reference white 203 cd/m2 to sRGB white, highlights above it clipped)."""
    kwargs: dict = {"threads": decoder_threads()}  # swscale's own threads: the same CPU share
    if frame.colorspace == UNSPECIFIED_COLORSPACE and not frame.format.is_rgb:
        kwargs["src_colorspace"] = "ITU709" if frame.height >= 720 else "ITU601"
    trc, primaries = frame.color_trc, frame.color_primaries
    if trc in HDR_TRANSFERS:
        kwargs.update(dst_color_trc=ColorTrc.IEC61966_2_1, dst_color_primaries=ColorPrimaries.BT709,
                      dst_colorspace="ITU709", dst_color_range="JPEG")
    elif primaries == ColorPrimaries.BT2020:
        kwargs.update(dst_color_trc=ColorTrc.BT709, dst_color_primaries=ColorPrimaries.BT709,
                      dst_colorspace="ITU709", dst_color_range="JPEG")
    return frame.to_ndarray(format="rgb24", **kwargs)


# --- segments ----------------------------------------------------------------------------------

def parse_segments(spec: str | float | None, times: np.ndarray, duration_s: float) -> list[np.ndarray]:
    """'0.0-2.0;2.5-3.5' (seconds) -> the indices of the frames whose time lies in each
    [start, end). Empty = the whole clip."""
    n = len(times)
    if spec is None or (isinstance(spec, float) and np.isnan(spec)) or not str(spec).strip():
        return [np.arange(n)]
    segments = []
    for part in str(spec).split(";"):
        part = part.strip()
        if not part:
            continue
        try:
            start_s, end_s = (float(v) for v in part.split("-"))
        except ValueError as err:
            raise Reject("bad_segments", f"cannot parse segment {part!r} (want start-end in seconds)") from err
        if end_s <= start_s or start_s < 0:
            raise Reject("bad_segments", f"segment {part!r} is empty or negative")
        if start_s >= duration_s:
            raise Reject("bad_segments", f"segment {part!r} starts after the clip ends ({duration_s:.2f} s)")
        segments.append(np.flatnonzero((times >= start_s - 1e-9) & (times < end_s - 1e-9)))
    if not segments:
        raise Reject("bad_segments", f"no segment in {spec!r}")
    return segments


# --- whole-clip helpers ------------------------------------------------------------------------

def clip_frames(path: str | Path, indices: Sequence[int] | None = None) -> list[np.ndarray]:
    """Frames of a clip (all, or the given indices; negative ones count from the end), upright
    RGB. An unusable file is a Reject with the reader's reason code."""
    with Clip(path) as clip:
        n = clip.info.frames
        wanted = None if indices is None else [i % n for i in indices]
        frames = {f.index: f.rgb for f in clip.read(wanted)}
    order = range(n) if wanted is None else wanted
    return [frames[i] for i in order if i in frames]


def first_last(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """A clip's first and last frames (RGB): all an animator needs (relative motion)."""
    frames = clip_frames(path, [0, -1])
    if len(frames) < 2:
        raise Reject("too_short", f"{path} has fewer than 2 frames")
    return frames[0], frames[-1]


# --- small helpers -----------------------------------------------------------------------------

def _display_matrix(frame: av.VideoFrame) -> list[int] | None:
    for side in frame.side_data:
        if "DISPLAYMATRIX" in str(side.type):
            return np.frombuffer(bytes(side), dtype=np.int32).tolist()
    return None


def _codec_name(stream: av.stream.Stream) -> str:
    """The codec's name, av1 for libdav1d's decoding."""
    name = stream.codec_context.name if stream.codec_context is not None else "unknown"
    return {"libdav1d": "av1", "libaom-av1": "av1"}.get(name, name)


def _unknown_codec(path: Path) -> str:
    """The name a file gives a codec FFmpeg does not know: an MP4 / MOV sample entry's four
    characters (the first 'stsd' entry that is not audio), else 'unknown'."""
    data = path.read_bytes()
    at = data.find(b"stsd")
    while at >= 0:
        tag = data[at + 16:at + 20]
        if tag.isalnum() and tag not in (b"mp4a", b"Opus", b"ac-3", b"ec-3", b"alac", b"lpcm", b"sowt", b"twos"):
            return tag.decode("ascii")
        at = data.find(b"stsd", at + 4)
    return "unknown"


def _container_name(container: av.container.InputContainer) -> str:
    """mp4 / mov / matroska / webm / avi ...: FFmpeg's demuxer, with the MP4 family told apart
    by its brand and Matroska from WebM by its doctype."""
    name = container.format.name.split(",")[0]
    if name == "mov":
        return "mov" if container.metadata.get("major_brand", "").strip() == "qt" else "mp4"
    if name == "matroska":  # one demuxer reads both; the doctype is not exposed, the name says it
        return "webm" if container.name.lower().endswith(".webm") else "matroska"
    return name


def _mp4_without_index(path: Path) -> bool:
    """An ISO-BMFF file (ftyp first) that ends before any 'moov' box: its last box runs past the
    end of the file, or to it by declaring no size (a recording stopped before it was finalised)."""
    with open(path, "rb") as f:
        head = f.read(12)
        if head[4:8] != b"ftyp":
            return False
        size, pos = os.path.getsize(path), 0
        while pos + 8 <= size:
            f.seek(pos)
            box = f.read(16)
            length, kind = int.from_bytes(box[:4], "big"), box[4:8]
            if kind == b"moov":
                return False
            if length == 0:  # "to the end of the file": a recording never finalised (its moov unwritten)
                return True
            if length == 1:
                length = int.from_bytes(box[8:16], "big")
            if length < 8:
                return False
            pos += length
        return pos > size


def _bit_depth(fmt: av.VideoFormat) -> int:
    return max((c.bits for c in fmt.components), default=8)


def _enum_name(enum: type, value: int) -> str:
    try:
        return enum(value).name.lower()
    except ValueError:
        return f"unknown_{value}"


def _reason(err: BaseException) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def _data_ends_early(container: av.container.InputContainer, stream: av.stream.Stream, got: int) -> bool:
    """Whether the file is shorter than the data its index points at (the last listed
    packet would start at or past the end of the file)."""
    entries = getattr(stream, "index_entries", None)
    if not entries or len(entries) <= got:
        return False
    size = os.path.getsize(container.name)
    return any(e.pos >= size for e in list(entries)[got:got + 1])
