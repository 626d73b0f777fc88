"""Driving clips from users, read by the one video reader (#30 item 4): a phone's rotated clip
drives with the upright clip's head roll, and a clip whose head rolls or turns beyond the
params' limits is refused with its reason, never kept."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from pipeline.config.animate import DriversParams
from pipeline.config.runner import RunnerParams
from pipeline.engine.runner import Runner
from stages.drivers import DriversStage, list_items
from pipeline.media.video import first_last
from tests.fixtures import real_clips as rc


@pytest.fixture(scope="module")
def library(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("drivers")
    clips = root / "clips"
    made = rc.make_variants(clips, n=40, names=["upright", "rot90", "rot270", "hevc10_mov"])
    frames = rc.upscaled_frames(40)
    # the same phone clip with its rotation flag lost (a tool that re-muxes without the matrix)
    rc.write_clip(clips / "sideways.mp4", [rc.stored_from_upright(f, 90) for f in frames], options=rc.FAST)
    params = DriversParams(out_dir=str(root / "out"), clips_dir=str(clips), frames=4, size=192, min_frames=4)
    items = [i for i in list_items(params) if i.data["kind"] == "clip"]
    Runner(RunnerParams(workers=0, progress=False, reports_dir=""), seed=0).run(DriversStage(params), items, params.out_dir)
    assert len(items) == len(made) + 1
    return root / "out", clips


def test_rotated_clip_drives_with_the_upright_clips_roll(library) -> None:
    out, _ = library
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("label")
    assert {"upright", "rot90", "rot270", "hevc10 mov"} <= set(manifest.index)
    upright = manifest.loc["upright"]
    for name in ("rot90", "rot270", "hevc10 mov"):
        row = manifest.loc[name]
        assert row["n_frames"] == 40
        assert row["d_roll"] == pytest.approx(upright["d_roll"], abs=1.0), name
        assert row["d_yaw"] == pytest.approx(upright["d_yaw"], abs=1.5), name
    assert abs(upright["d_roll"]) < 10.0


def test_sideways_clip_is_refused_face_rolled(library) -> None:
    out, _ = library
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert rejects["code"].tolist() == ["face_rolled"]
    assert "sideways.mp4" in rejects["detail"].iloc[0] and "max_roll_deg" in rejects["detail"].iloc[0]


def test_animate_reads_a_kept_rotated_driver_upright(library) -> None:
    out, _ = library
    manifest = pd.read_parquet(out / "manifest.parquet").set_index("label")
    first, last = first_last(out / manifest.loc["rot90", "path"])
    assert first.shape == last.shape == (576, 704, 3)
