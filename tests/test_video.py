"""The one video reader (pipeline/media/video.py) on the real carphone clip as phones and tools write it
(tests/fixtures/real_clips.py): upright frames, true times, every common codec and container, each clip
decoded at most once, and a reason code that tells the truth for every bad file (#30)."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.media import video as V
from tests.fixtures import real_clips as rc

N = 60  # 2 s of the clip: two GOPs of 30 frames, as phones write them
PICKS = [0, 7, 29, 30, 31, 44, 59]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def variants(tmp_path_factory) -> dict[str, Path]:
    return rc.make_variants(tmp_path_factory.mktemp("variants"), n=N)


def frames_of(path: Path, picks=PICKS) -> dict[int, V.Frame]:
    with V.Clip(path) as clip:
        return {f.index: f for f in clip.read(picks)}


def code_of(path: Path) -> V.Reject:
    with pytest.raises(V.Reject) as err:
        V.Clip(path).close()
    return err.value


# --- orientation -------------------------------------------------------------------------------

def _ffplay(stored: np.ndarray, m: list[int]) -> np.ndarray:
    """FFmpeg's own autorotation (fftools, ffplay's configure_video_filters): its angle and the
    signs of matrix[0], [3], [4] choose transpose / hflip / vflip filters."""
    a, b = m[0] / 65536, m[1] / 65536
    theta = -round(-np.degrees(np.arctan2(b, a)))  # get_rotation(): -av_display_rotation_get()
    theta -= 360 * np.floor(theta / 360 + 0.9 / 360)
    out = stored
    if abs(theta - 90) < 1:
        out = out.transpose(1, 0, 2) if m[3] > 0 else np.rot90(out, -1)  # cclock_flip : clock
    elif abs(theta - 180) < 1:
        out = out[:, ::-1] if m[0] < 0 else out
        out = out[::-1] if m[4] < 0 else out
    elif abs(theta - 270) < 1:
        out = np.rot90(out.transpose(1, 0, 2), 2) if m[3] < 0 else np.rot90(out, 1)  # clock_flip : cclock
    elif m[4] < 0:
        out = out[::-1]
    return out


@pytest.mark.parametrize("rotation", [0, 90, 180, 270])
@pytest.mark.parametrize("mirrored", [False, True])
def test_orientation_agrees_with_ffmpegs_autorotation(rotation, mirrored) -> None:
    # the matrix FFmpeg writes for a player's clockwise turn, then a left-right mirror
    c, s = np.cos(np.radians(rotation)), np.sin(np.radians(rotation))
    a, b, cc, d = round(c), round(s), round(-s), round(c)  # av_display_rotation_set(-rotation)
    if mirrored:  # av_display_matrix_flip(hflip): matrix[0], [3] negated
        a, cc = -a, -cc
    m = [a * 65536, b * 65536, 0, cc * 65536, d * 65536, 0, 0, 0, 1 << 30]
    assert V.orientation(m) == (rotation, mirrored)
    stored = np.arange(3 * 5 * 3).reshape(3, 5, 3)
    assert np.array_equal(V.upright(stored, rotation, mirrored), _ffplay(stored, m))


@pytest.mark.parametrize("name", ["rot90", "rot180", "rot270", "mirrored"])
def test_rotated_clip_shows_the_upright_frames(variants, name) -> None:
    upright, turned = frames_of(variants["upright"]), frames_of(variants[name])
    assert sorted(turned) == PICKS
    for i in PICKS:
        assert turned[i].rgb.shape == upright[i].rgb.shape == (576, 704, 3)
        assert psnr(turned[i].rgb, upright[i].rgb) >= 40.0, f"{name} frame {i}"
        assert turned[i].time_s == upright[i].time_s


@pytest.mark.parametrize("name", ["rot90", "rot180", "rot270"])
def test_rotation_agrees_with_opencvs_autorotation(variants, name) -> None:
    """An independent decoder (OpenCV's FFmpeg, autorotation on) shows the same first frame."""
    cap = cv2.VideoCapture(str(variants[name]))
    cap.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)
    ok, bgr = cap.read()
    cap.release()
    assert ok
    ours = frames_of(variants[name], [0])[0].rgb
    assert psnr(ours, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)) >= 40.0


def test_non_right_angle_rotation_is_its_own_code(tmp_path) -> None:
    path = rc.write_clip(tmp_path / "rot45.mp4", rc.upscaled_frames(3), rotation=45, options=rc.FAST)
    err = code_of(path)
    assert err.code == "bad_rotation" and "45" in err.detail


# --- codecs, containers, times -----------------------------------------------------------------

FORMATS = {  # name: (container, codec, bit depth, min PSNR against the upright H.264 decode)
    "hevc10_mov": ("mov", "hevc", 10, 38.0), "hevc_mp4": ("mp4", "hevc", 8, 38.0),
    "vp9_webm": ("webm", "vp9", 8, 38.0), "av1_mp4": ("mp4", "av1", 8, 35.0),
    "prores_mov": ("mov", "prores", 10, 38.0), "mjpeg_avi": ("avi", "mjpeg", 8, 32.0),
    "h264_mkv": ("matroska", "h264", 8, 60.0), "audio": ("mp4", "h264", 8, 60.0),
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_every_format_gives_the_same_frames_at_the_same_times(variants, name) -> None:
    container, codec, depth, floor = FORMATS[name]
    with V.Clip(variants[name]) as clip:
        info = clip.info
        got = {f.index: f for f in clip.read(PICKS)}
    assert (info.container, info.codec, info.bit_depth) == (container, codec, depth)
    assert (info.width, info.height, info.frames, info.rotation) == (704, 576, N, 0)
    assert info.duration_s == pytest.approx(N * 1001 / 30000, abs=2e-3)
    upright = frames_of(variants["upright"])
    for i in PICKS:
        assert got[i].time_s == pytest.approx(upright[i].time_s, abs=1e-3)  # Matroska keeps ms
        assert psnr(got[i].rgb, upright[i].rgb) >= floor, f"{name} frame {i}"


def test_portrait_and_original_sizes(variants) -> None:
    with V.Clip(variants["portrait"]) as clip:
        assert (clip.info.width, clip.info.height) == (324, 576)
    with V.Clip(variants["original"]) as clip:
        assert (clip.info.width, clip.info.height, clip.info.frames, clip.info.transfer) == (176, 144, 120, "unspecified")


def test_variable_frame_rate_times_are_the_timestamps(variants) -> None:
    times = rc.vfr_times(N)
    with V.Clip(variants["vfr"]) as clip:
        assert clip.info.vfr and not V.Clip(variants["upright"]).info.vfr
        assert clip.times == pytest.approx(times, abs=1e-4)
        got = {f.index: f for f in clip.read(PICKS)}
        # seconds map to frames by those times, not by index / mean rate
        segment = V.parse_segments("1.0-1.5", clip.times, clip.info.duration_s)[0]
    assert [f.time_s for f in got.values()] == pytest.approx([times[i] for i in PICKS], abs=1e-4)
    assert segment.tolist() == [i for i, t in enumerate(times) if 1.0 <= t < 1.5]
    upright = frames_of(variants["upright"])
    assert all(psnr(got[i].rgb, upright[i].rgb) >= 40.0 for i in PICKS), "frame i is still the i-th picture"


def test_each_clip_is_decoded_at_most_once_and_seeks_by_keyframe(variants) -> None:
    for name in ("upright", "hevc10_mov", "vp9_webm", "av1_mp4", "vfr"):
        with V.Clip(variants[name]) as clip:
            everything = {f.index: f.rgb for f in clip.read()}
            assert clip.frames_decoded == N
        with V.Clip(variants[name]) as clip:
            picked = {f.index: f.rgb for f in clip.read([50, 5])}
            # at most frames 0-5 from the opening and 30-50 after seeking to the keyframe at 30 (also
            # x265's open-GOP keyframe in MOV: the seek goes by its presentation time, so FFmpeg does
            # not start it a GOP earlier for leading pictures frame 50 does not need)
            assert clip.frames_decoded <= 6 + 21, (name, clip.frames_decoded)
        assert all(np.array_equal(picked[i], everything[i]) for i in (5, 50)), name
        with V.Clip(variants[name]) as clip:  # the frames just before a keyframe (an open GOP's leading pictures)
            leading = {f.index: f.rgb for f in clip.read([29, 58, 59])}
            assert clip.frames_decoded <= N
        assert all(np.array_equal(leading[i], everything[i]) for i in (29, 58, 59)), name


@pytest.mark.parametrize("codec", ["libx264", "libx265"])
def test_frames_nothing_refers_to_are_skipped_on_the_way(tmp_path, codec, monkeypatch) -> None:
    """With B-frames (x264 veryfast, x265 fast: a pyramid of them), the frames on the way to a
    wanted one that no frame refers to are not decoded, and the wanted ones come out the same."""
    path = rc.write_clip(tmp_path / "b.mp4", rc.upscaled_frames(N), codec=codec,
                         options={"preset": "veryfast" if codec == "libx264" else "fast", "crf": "18",
                                  **({"x265-params": "log-level=error"} if codec == "libx265" else {})})
    picks = [13, 27, 44, 58]
    with V.Clip(path) as clip:
        skipped = {f.index: f.rgb for f in clip.read(picks)}
        fewer = clip.frames_decoded
    monkeypatch.setattr(V, "SKIP_NONREF_CODECS", frozenset())
    with V.Clip(path) as clip:
        plain = {f.index: f.rgb for f in clip.read(picks)}
        assert fewer < clip.frames_decoded, (fewer, clip.frames_decoded)
    assert all(np.array_equal(skipped[i], plain[i]) for i in picks)


def test_decoder_threads_follow_the_runner(variants, monkeypatch) -> None:
    from pipeline.engine.runner import _limit_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "")
    _limit_threads(1)  # what the runner does in each worker: runner.threads_per_worker
    with V.Clip(variants["upright"]) as clip:
        assert clip._stream.codec_context.thread_count == 1
    V.set_decoder_threads(2)
    try:
        with V.Clip(variants["upright"]) as clip:
            assert clip._stream.codec_context.thread_count == 2
    finally:
        V.set_decoder_threads(None)


# --- bad input ---------------------------------------------------------------------------------

def test_bad_files_get_codes_that_tell_the_truth(variants, tmp_path) -> None:
    zero = tmp_path / "zero.mp4"
    zero.write_bytes(b"")
    garbage = tmp_path / "notes.mp4"
    garbage.write_bytes(b"this is not a video\n" * 500)
    cases = {
        zero: ("empty_video", "0 bytes"),
        garbage: ("unreadable_video", "FFmpeg cannot open"),
        tmp_path / "absent.mp4": ("missing_file", "does not exist"),
        rc.audio_only(tmp_path / "voice.m4a"): ("no_video_stream", "audio"),
        rc.unknown_codec(variants["upright"], tmp_path / "zzzz.mp4"): ("unsupported_codec", "'zzzz'"),
        variants["truncated"]: ("truncated_video", "moov"),
    }
    for path, (code, words) in cases.items():
        err = code_of(path)
        assert (err.code, words in err.detail) == (code, True), f"{path.name}: {err}"


def test_a_recording_never_finalised_is_truncated(variants, tmp_path) -> None:
    """A phone that stops mid-recording leaves an 'mdat' of undeclared size (0: to the end of the
    file) and no 'moov'."""
    data = bytearray(variants["truncated"].read_bytes())
    at = data.index(b"mdat") - 4
    data[at:at + 4] = bytes(4)
    (tmp_path / "unfinished.mp4").write_bytes(bytes(data))
    err = code_of(tmp_path / "unfinished.mp4")
    assert err.code == "truncated_video" and "never finalised" in err.detail


def test_a_cut_off_clip_with_its_index_first_is_truncated(tmp_path) -> None:
    full = rc.write_clip(tmp_path / "fast.mp4", rc.upscaled_frames(N), options=rc.FAST,
                         container_options={"movflags": "faststart"})
    err = code_of(rc.truncate(full, tmp_path / "cut.mp4", 0.6))
    assert err.code == "truncated_video" and f"of the {N} frames" in err.detail


def test_a_header_that_claims_ten_minutes_of_two_seconds(variants, tmp_path) -> None:
    liar = rc.claim_duration(variants["h264_mkv"], tmp_path / "liar.mkv", 600.0)
    with V.Clip(liar) as clip:
        assert clip.info.header_duration_s == pytest.approx(600.0)
        assert clip.info.duration_s == pytest.approx(2.0, abs=0.01) and clip.info.frames == N
        last = list(clip.read([N - 1]))
    assert last and last[0].time_s < 2.0


def test_two_video_streams_read_the_full_size_one(tmp_path) -> None:
    path = rc.two_video_streams(tmp_path / "two.mp4", rc.upscaled_frames(10))
    with V.Clip(path) as clip:
        assert (clip.info.video_streams, clip.info.width, clip.info.height, clip.info.frames) == (2, 704, 576, 10)


@pytest.mark.parametrize("transfer", ["smpte2084", "arib_std_b67"])
def test_hdr_clip_reads_as_srgb_with_its_transfer_named(tmp_path, transfer) -> None:
    sdr = rc.upscaled_frames(4)
    with V.Clip(rc.write_hdr(tmp_path / f"{transfer}.mov", sdr, transfer)) as clip:
        assert (clip.info.transfer, clip.info.primaries, clip.info.bit_depth, clip.info.hdr) == (transfer, "bt2020", 10, True)
        got = [f.rgb for f in clip.read()]
    # reference white (203 cd/m2) back at sRGB white: the SDR frames within 10-bit 4:2:0 coding error
    assert all(frame.dtype == np.uint8 and psnr(frame, ref) >= 35.0 for frame, ref in zip(got, sdr))


def test_an_8k_clip_reads(tmp_path) -> None:
    big = [cv2.resize(f, (7680, 4320), interpolation=cv2.INTER_LINEAR) for f in rc.upscaled_frames(2)]
    with V.Clip(rc.write_clip(tmp_path / "8k.mp4", big, options=rc.FAST)) as clip:
        assert (clip.info.width, clip.info.height, clip.info.frames) == (7680, 4320, 2)
        assert [f.rgb.shape for f in clip.read([1])] == [(4320, 7680, 3)]
