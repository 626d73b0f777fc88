"""Expression measures that hold on real faces (issue 24, item 5), on the corpus's real faces
with blinks and smiles made by the project's own animator: eyes judged by the eye the camera
sees under a head turn, a smile measure that rises with an open-mouth smile, and `piq
best-take` fixing the blink of a turned head (run as a user runs it)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from pipeline.faces import mesh as fm
from tests.fixtures.corpus import BURST_SHOTS, blink_burst, corpus_rgb, run_piq


def test_open_mouth_counts_its_widening_closed_mouth_its_corners() -> None:
    assert fm.smile_of(0.05, 0.0, 1.0) == pytest.approx(0.05)  # closed: the corners' lift alone
    laugh, speaking = fm.smile_of(0.0, 0.25, 0.98), fm.smile_of(0.0, 0.25, 0.66)
    assert laugh > 0.1 and speaking == pytest.approx(0.0)  # open: a laugh is wide, speaking is not


@pytest.fixture(scope="module")
def animated():
    from pipeline.backends.animators import motion as mo
    from pipeline.backends.animators.mesh_animator import MeshAnimator

    rgb = np.ascontiguousarray(corpus_rgb("biden_portrait.jpg")[0:500, 50:550])
    animator = MeshAnimator()
    mesh = animator.mesh(rgb, "biden")
    det = fm.FaceMeshDetector(max_faces=1)

    def measure(**controls) -> fm.Expression:
        img = animator.apply(rgb, mesh, mo.program_motion(mesh, mo.Controls(**controls))).image if controls else rgb
        return fm.expression(det.detect_one(img))

    return measure


def test_smile_rises_with_broad_and_open_mouth_smiles(animated) -> None:
    rest, speaking = animated(), animated(mouth_open=0.5)
    for smile in (animated(smile=1.0), animated(smile=0.8, mouth_open=0.5), animated(smile=1.0, mouth_open=0.9)):
        assert smile.smile > max(rest.smile, speaking.smile) + 0.01


def test_turned_head_blink_is_read_on_the_visible_eye(animated) -> None:
    opened, shut = animated(yaw=40.0), animated(yaw=40.0, blink_r=1.0, blink_l=1.0)
    assert shut.eyes_open < 0.75 * opened.eyes_open
    down_open, down_shut = animated(pitch=-20.0), animated(pitch=-20.0, blink_r=1.0, blink_l=1.0)
    assert down_shut.eyes_open < 0.75 * down_open.eyes_open
    front = animated()
    assert front.eyes_open == pytest.approx((front.eye_open_r + front.eye_open_l) / 2, rel=0.05)  # frontal: both


@pytest.mark.slow
def test_best_take_fixes_the_blink_of_a_turned_head(tmp_path) -> None:
    """The corpus group photo as a 3-shot burst, one blink a shot (Obama's head turned in every
    shot, the animator's yaw 40): whatever the base, every person's eyes are open in the result."""
    shots = []
    for k, rgb in enumerate(blink_burst()):
        shots.append(tmp_path / f"shot_{k}.jpg")
        Image.fromarray(rgb).save(shots[-1], "JPEG", quality=92)
    out = tmp_path / "best.jpg"
    got = run_piq("best-take", *shots, "-o", out, "--json", "--save-plan", tmp_path / "plan.json")
    assert got.rc == 0, got.err
    done = json.loads(got.out)
    base = int(done["base"].split("_")[1].split(".")[0])
    blinker = next(i for i, c in BURST_SHOTS[base].items() if c.get("blink_r"))
    assert any(r["person"] == blinker for r in done["replaced"]), done  # the base's blink was replaced
    scores = done["plan"]["scores"][str(blinker)]
    assert scores[done["base"]]["eyes_open"] < 0.8  # ... because it was seen as one
    after = json.loads(run_piq("faces", out, "--json").out)["faces"][blinker]["eyes_open"]
    before = json.loads(run_piq("faces", shots[base], "--json").out)["faces"][blinker]["eyes_open"]
    opened = json.loads(run_piq("faces", shots[(base + 1) % 3], "--json").out)["faces"][blinker]["eyes_open"]
    assert before < 0.75 * opened and after > 0.85 * opened, (before, after, opened)
