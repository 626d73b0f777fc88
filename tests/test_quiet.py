"""Quiet runs (#30 item 6): no Ray, mediapipe or FFmpeg lines under the progress bar by default,
each library silenced in its own way; `piq --verbose` shows them."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import quiet
from tests.fixtures import real_clips as rc

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def loud(monkeypatch):
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")


def test_native_info_and_warning_lines_are_dropped_errors_kept(capfd, monkeypatch) -> None:
    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    with quiet.native_stderr_filtered():
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n")
        os.write(2, b"W0000 00:00:1.0   1 inference_feedback_manager.cc:114] Feedback manager ...\n")
        os.write(2, b"E0000 00:00:1.0   1 graph.cc:1] a real error\n")
    assert capfd.readouterr().err == "E0000 00:00:1.0   1 graph.cc:1] a real error\n"


def test_the_face_mesh_starts_without_a_line_unless_verbose(capfd, monkeypatch) -> None:
    from pipeline.faces.mesh import FaceMeshDetector

    monkeypatch.delenv(quiet.VERBOSE_ENV, raising=False)
    FaceMeshDetector().detect(np.zeros((64, 64, 3), np.uint8))
    assert capfd.readouterr().err == ""
    monkeypatch.setenv(quiet.VERBOSE_ENV, "1")
    FaceMeshDetector().detect(np.zeros((64, 64, 3), np.uint8))
    assert "inference_feedback_manager" in capfd.readouterr().err


def test_verbose_switches_ray_and_ffmpeg_logging_on(monkeypatch) -> None:
    import logging

    import av.logging

    try:
        quiet.configure(False)
        assert logging.getLogger("ray").level == logging.ERROR and av.logging.get_level() is None
        quiet.configure(True)
        assert os.environ[quiet.VERBOSE_ENV] == "1"
        assert logging.getLogger("ray").level == logging.INFO and av.logging.get_level() == av.logging.WARNING
    finally:
        quiet.configure(False)


@pytest.mark.slow
def test_piq_ingest_on_ray_prints_only_its_progress_and_summary(tmp_path) -> None:
    videos = tmp_path / "videos"
    rc.make_variants(videos, n=30, names=["rot90", "av1_mp4"])
    pd.DataFrame([("v1", "p", "rot90.mp4", "no facial expression", ""),
                  ("v2", "p", "av1_mp4.mp4", "no facial expression", "")],
                 columns=["video_id", "participant_id", "file", "category", "camera_segments"]).to_csv(
        tmp_path / "meta.csv", index=False)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["ingest"].update(videos_dir=str(videos), metadata_csv=str(tmp_path / "meta.csv"), out_dir=str(tmp_path / "out"))
    params["runner"].update(workers=1, reports_dir=str(tmp_path / "reports"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PIQ_"))}
    piq = str(Path(sys.executable).parent / "piq")
    run = subprocess.run([piq, "--params", str(tmp_path / "params.yaml"), "ingest", "--report", str(tmp_path / "s.json")],
                         env=env, capture_output=True, text=True, timeout=600, cwd=REPO)
    assert run.returncode in (0, 1), run.stderr[-3000:]
    lines = [line for line in run.stderr.replace("\r", "\n").splitlines() if line.strip()]
    assert all(line.startswith("ingest:") for line in lines), lines  # the bar and its summary only
    assert run.stdout.startswith("ingest: 2 clips")
