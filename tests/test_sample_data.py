"""The embedded sample is small, complete and exactly what samples/make_sample.py makes."""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import cv2
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"


def frame_digest(path: Path) -> str:
    """Hash of the decoded frames (container bytes may legitimately differ between encoders)."""
    digest = hashlib.sha256()
    cap = cv2.VideoCapture(str(path))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        digest.update(frame.tobytes())
    cap.release()
    return digest.hexdigest()


def test_sample_is_small_and_consistent() -> None:
    total = sum(p.stat().st_size for p in SAMPLES.rglob("*") if p.is_file())
    assert total < 10 * 2**20
    meta = pd.read_csv(SAMPLES / "metadata.csv", dtype=str, keep_default_na=False)
    expected = pd.read_csv(SAMPLES / "expected.csv", dtype=str, keep_default_na=False)
    files = {p.name for p in (SAMPLES / "videos").iterdir()}
    for row in expected.itertuples():
        named = row.file in set(meta["file"])
        assert named == bool(row.video_id), row.file
        assert (row.file in files) == (row.expected != "missing_file"), row.file
    assert set(expected["expected"]) >= {
        "accept", "wrong_category", "no_face", "not_frontal", "head_tilt", "multiple_faces",
        "face_too_small", "truncated_video", "empty_video", "missing_file", "missing_metadata",
    }
    assert set(meta["participant_id"]) >= {"p0001", "p0002"}


@pytest.mark.slow
def test_script_regenerates_the_committed_sample(tmp_path: Path) -> None:
    subprocess.run([sys.executable, str(SAMPLES / "make_sample.py"), "--out", str(tmp_path)], check=True,
                   capture_output=True)
    for name in ("metadata.csv", "expected.csv"):
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name
    committed = sorted(p.name for p in (SAMPLES / "videos").iterdir())
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == committed
    for name in committed:
        assert frame_digest(tmp_path / "videos" / name) == frame_digest(SAMPLES / "videos" / name), name
