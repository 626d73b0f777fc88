"""The shared face-mesh measurements (pipeline/faces/mesh.py) on the packaged portraits."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from pipeline.faces.mesh import FaceMeshDetector, N_POINTS, expression, gaze, head_pose, lip_loops, regions


@pytest.fixture(scope="module")
def detector() -> FaceMeshDetector:
    return FaceMeshDetector()


def test_frontal_portrait_reads_upright(detector):
    mesh = detector.detect_one(data.astronaut())
    assert mesh is not None and mesh.points.shape == (N_POINTS, 3)
    yaw, pitch, roll = head_pose(mesh)
    assert abs(yaw) < 5 and abs(pitch) < 5 and abs(roll) < 6
    gx, gy = gaze(mesh)
    assert abs(gx) < 0.3 and abs(gy) < 0.5


def test_in_plane_rotation_is_read_as_roll(detector):
    img = data.astronaut()
    h, w = img.shape[:2]
    base = head_pose(detector.detect_one(img))[2]
    rotated = cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2, h / 2), -15, 1.0), (w, h))  # clockwise
    yaw, pitch, roll = head_pose(detector.detect_one(rotated))
    assert roll - base == pytest.approx(15, abs=3)


def test_mirror_flips_yaw_and_roll_signs(detector):
    img = data.astronaut()
    a = head_pose(detector.detect_one(img))
    b = head_pose(detector.detect_one(np.ascontiguousarray(img[:, ::-1])))
    assert a[2] * b[2] < 0
    assert abs(a[0] + b[0]) < 2.0


def test_smiling_open_mouth_measures_above_closed_mouth(detector):
    import matplotlib

    hopper = cv2.cvtColor(cv2.imread(matplotlib.get_data_path() + "/sample_data/grace_hopper.jpg"), cv2.COLOR_BGR2RGB)
    smiling = expression(detector.detect_one(data.astronaut()))  # Eileen Collins smiles, teeth showing
    closed = expression(detector.detect_one(hopper))
    assert smiling.mouth_open > closed.mouth_open + 0.05
    assert smiling.smile > closed.smile


def test_regions_are_closed_loops():
    r = regions()
    assert len(r["face_oval"]) == 36 and len(r["r_eye"]) == 16 and len(r["l_iris"]) == 4
    outer, inner = lip_loops()
    assert 0 in outer and 13 in inner and len(outer) == len(inner) == 20


def test_detection_works_while_the_trainer_flushes_denormals(detector):
    """The CPU trainer sets torch.set_flush_denormal(True) for speed; mediapipe then found no
    face at all. The detector turns flushing off around mediapipe and restores it."""
    import torch

    from pipeline.faces.mesh import _denormals_flushed

    torch.set_flush_denormal(True)
    try:
        assert _denormals_flushed()
        fresh = FaceMeshDetector()
        assert fresh.detect_one(data.astronaut()) is not None
        assert _denormals_flushed()  # restored for the trainer
    finally:
        torch.set_flush_denormal(False)
