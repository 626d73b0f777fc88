"""The real-clip run a user repeats (#31 item 6): `python -m bench.real_clip` on the carphone
clip with the offline defaults (configs/real_clip.yaml), shortened (12 frames, one face, the 18
expression programs, one relit variant), checked on its outputs: the chosen source is at rest
(item 1), the variants are measured against their labels and the misses recorded (item 2), the
captions' expression words agree with the labels the variants show (item 4)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.backends.animators.programs import EXPRESSIONS
from pipeline.backends.captioners.attributes import CAPTION_FOR_LABEL

REPO = Path(__file__).resolve().parents[1]
LABELS = [name for name, _ in EXPRESSIONS if name != "neutral"]


@pytest.mark.slow
@pytest.mark.timeout(1200)  # its subprocess may take 900 s
def test_real_clip_profile_end_to_end(tmp_path: Path) -> None:
    root, report = tmp_path / "data", tmp_path / "report"
    done = subprocess.run(
        [sys.executable, "-m", "bench.real_clip", "--root", str(root), "--report", str(report), "--clip-frames", "88", "100",
         "--keep", "1", "--per-face", str(len(LABELS)), "--variants", "1", "--programs", *LABELS],
        cwd=REPO, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    faces = pd.read_parquet(root / "ingest" / "manifest.parquet")
    assert len(faces) == 1 and faces.neutral.all() and (faces.mouth_open < 0.04).all()  # item 1
    assert 88 + faces.frame.iloc[0] in {95, 96, 97, 98}
    animate = pd.read_parquet(root / "animate" / "manifest.parquet")
    variants = animate[animate.kind == "expressive"]
    assert sorted(variants.driver_label) == sorted(LABELS)  # item 2: every label, each judged
    assert variants.label_ok.notna().all()
    assert (variants[~variants.label_ok.astype(bool)].label_misses.str.len() > 0).all()  # a miss says what
    for label in ("big smile", "smile with mouth open", "open mouth", "raise brows"):
        assert variants.set_index("driver_label").label_ok[label], label
    captions = pd.read_parquet(root / "caption" / "manifest.parquet").merge(variants, on=["face_id", "image"])
    shown = captions[captions.label_ok.astype(bool)]
    agree = [e in CAPTION_FOR_LABEL[lab] for e, lab in zip(shown.expression, shown.driver_label)]
    assert sum(agree) >= 0.9 * len(agree), list(zip(shown.driver_label, shown.expression))  # item 4
    assert (report / "report.md").is_file() and (report / "animate.jpg").stat().st_size > 10_000
    assert (report / "relight.jpg").is_file()
