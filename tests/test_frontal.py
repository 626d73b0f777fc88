"""Our reading of the paper's frontal filter (B.2), on synthetic 3D landmark geometry, and the crop."""
from __future__ import annotations

import numpy as np
import pytest

from pipeline.faces.crop import extract_crop
from pipeline.faces.geometry import frontal_angles, frontal_reject_code, square_crop

# A canonical five-point face in millimetres (x right, y up, z towards the camera), nose tip at
# the origin: eyes 63 mm apart and 25 mm behind the nose tip, mouth corners 50 mm apart.
FACE_3D = np.array([[-31.5, 45, -25], [31.5, 45, -25], [0, 0, 0], [-25, -28, -18], [25, -28, -18]], float)


def project(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, scale: float = 2.0) -> np.ndarray:
    """Image landmarks (y down) of the canonical face turned by yaw/pitch/roll degrees."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    pts = FACE_3D @ (rz @ rx @ ry).T
    return np.stack([300 + scale * pts[:, 0], 300 - scale * pts[:, 1]], axis=1)


def verdict(landmarks: np.ndarray) -> str | None:
    return frontal_reject_code(frontal_angles(landmarks), 10.0, 10.0, 10.0)


def test_frontal_face_passes() -> None:
    angles = frontal_angles(project())
    assert angles.eye_nose == pytest.approx(0, abs=1e-9) and angles.vertical == pytest.approx(0, abs=1e-9)
    assert verdict(project()) is None


@pytest.mark.parametrize("yaw", [-15.0, 15.0, 25.0])
def test_yaw_of_15_degrees_fails(yaw: float) -> None:
    assert verdict(project(yaw=yaw)) == "not_frontal"


@pytest.mark.parametrize("roll", [-15.0, 15.0])
def test_roll_of_15_degrees_fails(roll: float) -> None:
    angles = frontal_angles(project(roll=roll))
    assert angles.eye_nose == pytest.approx(0, abs=1e-6)  # interior angles ignore in-plane rotation
    assert abs(angles.vertical) == pytest.approx(15.0, abs=1e-6)
    assert verdict(project(roll=roll)) == "head_tilt"


@pytest.mark.parametrize("pose", [{"yaw": 8.0}, {"roll": 8.0}, {"pitch": 15.0}, {"yaw": 5.0, "roll": 5.0}])
def test_small_poses_pass(pose: dict) -> None:
    assert verdict(project(**pose)) is None


def test_square_crop_is_box_scaled_around_midpoint() -> None:
    crop = square_crop((100, 50, 180, 150), 2.0)  # 80 x 100 box, midpoint (140, 100)
    assert crop.size == 200 and crop.box == (40, 0, 240, 200)
    assert crop.pad_fraction(1000, 1000) == 0.0
    assert square_crop((0, 0, 100, 100), 2.0).pad_fraction(1000, 1000) == pytest.approx(1 - 150 * 150 / 200**2)


def test_extract_crop_pads_outside_the_frame() -> None:
    img = np.full((100, 100, 3), 200, np.uint8)
    crop = square_crop((-20, 10, 40, 70), 1.0)  # partly left of the frame
    out = extract_crop(img, crop, 64, "constant")
    assert out.shape == (64, 64, 3)
    assert out[:, :5].max() == 0 and out[:, -5:].min() == 200
    assert extract_crop(img, crop, 64, "replicate").min() == 200
