"""Quiet by default, `--verbose`, `--json`, `--version` (issue 24, item 7): the photo commands
as a user runs them, each in a fresh process."""
from __future__ import annotations

import json

import pytest

from tests.fixtures.corpus import CORPUS, run_piq

REPO = CORPUS.parents[1]


def test_version_without_loading_anything() -> None:
    got = run_piq("--version")
    assert got.rc == 0 and got.out.startswith("piq (PiQPerfect) ") and got.seconds < 10


def test_faces_is_quiet_and_verbose_shows_the_library_lines() -> None:
    quiet = run_piq("faces", CORPUS / "biden_portrait.jpg")
    assert quiet.rc == 0 and "1 face(s)" in quiet.out
    assert quiet.err == "", quiet.err  # no absl / TF Lite / mediapipe line
    loud = run_piq("--verbose", "faces", CORPUS / "biden_portrait.jpg")
    assert loud.rc == 0 and "TensorFlow Lite" in loud.err  # silenced, not lost: --verbose shows them


def test_native_log_noise_is_dropped_and_anything_else_passed_on() -> None:
    from pipeline.quiet import passed_on as _passed_on

    noise = ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
             "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
             "W0000 00:00:1796653186.787589   13547 inference_feedback_manager.cc:114] Feedback manager ...\n"
             "W0000 00:00:1796653186.860109   13548 landmark_projection_calculator.cc:186] Using NORM_RECT ...\n")
    error = "E0000 00:00:1796653186.860109   13548 graph.cc:1] the graph failed\n"
    assert _passed_on(noise) == "" and _passed_on(noise + error) == error


@pytest.mark.slow
def test_replace_json_and_quiet(tmp_path) -> None:
    out = tmp_path / "out.jpg"
    got = run_piq("replace", CORPUS / "obama_portrait.jpg", "--driving", CORPUS / "obama_lectern.jpg", "-o", out,
                  "--method", "classical", "--json")
    assert got.rc == 0 and got.err == "", got.err
    rec = json.loads(got.out)
    assert rec["face"] == 0 and rec["output"] == str(out) and rec["method"] == "classical"
    assert 0 <= rec["identity_distance"] < 0.08 and len(rec["box"]) == 4 and out.exists()


@pytest.mark.slow
def test_best_take_json_and_quiet(tmp_path) -> None:
    shots = sorted((REPO / "samples" / "burst").glob("shot_*.jpg"))
    got = run_piq("best-take", *shots, "-o", tmp_path / "best.jpg", "--json")
    assert got.rc == 0 and got.err == "", got.err
    rec = json.loads(got.out)
    assert rec["base"] in [s.name for s in shots] and set(rec["plan"]) >= {"base", "people", "scores"}
    assert all({"person", "face", "reference"} <= set(r) for r in rec["replaced"])
