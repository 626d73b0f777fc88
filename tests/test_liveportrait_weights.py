"""LivePortrait with the files of its public release: the official crop rule, the 203-point
`landmark.onnx` placing it (a stand-in exported in the published signature), the official
command line's defaults, and what a broken folder gives (`WeightsFormatError` naming the file,
and `piq models check`'s inspection)."""
from __future__ import annotations

import dataclasses
import math
import types

import numpy as np
import pytest
import torch

from pipeline.backends.animators.liveportrait import checkpoints
from pipeline.backends.animators.liveportrait.config import LivePortraitConfig
from pipeline.backends.animators.liveportrait.crop import CropRule, FaceLandmarks, face_square, mean_square, square_matrix
from pipeline.config.animate import AnimateParams
from pipeline.weight_files.checks import WeightsFormatError
from tests.fixtures.liveportrait_landmarks import template_203, write_landmark_onnx


@pytest.fixture(scope="module")
def lp_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("liveportrait")
    checkpoints.write_random_checkpoints(folder, seed=0, cfg=LivePortraitConfig.tiny())
    write_landmark_onnx(folder / "landmark.onnx")
    return folder


@pytest.fixture(scope="module")
def faces():
    from tests.fixtures.portraits import face_1024

    return face_1024("astronaut"), face_1024("hopper")


# --- the official crop rule --------------------------------------------------------------------

def test_official_crop_square_upright_and_rolled():
    """Side = 2.3 x the larger side of the landmarks' box in the eye-to-mouth frame; centre moved
    up by 0.125 x side; a rolled face is rotated upright in the crop."""
    face = FaceLandmarks.from_203(template_203() * 200 + 100)
    sq = face_square(face, CropRule())
    extent = (face.points.max(0) - face.points.min(0)).max()
    assert sq.side == pytest.approx(2.3 * extent, rel=1e-6)
    box_centre = (face.points.max(0) + face.points.min(0)) / 2
    assert sq.center == pytest.approx(box_centre + [0, -0.125 * sq.side], abs=1e-6)
    # Rolled by 30 degrees about the image origin: the same square, rotated.
    a = math.radians(30)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    rolled = FaceLandmarks.from_203(face.points @ rot.T)
    sq2 = face_square(rolled, CropRule())
    assert sq2.side == pytest.approx(sq.side, rel=1e-6) and sq2.center == pytest.approx(rot @ sq.center, abs=1e-6)
    m = square_matrix(sq2, 256)
    eyes_to_mouth = m[:, :2] @ (rolled.lip_center - rolled.eye_center)
    assert abs(eyes_to_mouth[0]) < 1e-6 and eyes_to_mouth[1] > 0  # vertical in the crop, pointing down
    # The driving rule: no rotation, one box averaged over the clip's frames.
    drive = CropRule(2.2, 0.0, -0.1, rotate=False)
    box = mean_square([face_square(face, drive), face_square(rolled, drive)])
    assert np.array_equal(box.axes, np.eye(2))
    assert box.side == pytest.approx(2.2 * extent, rel=1e-6)


def test_lip_ratio_is_the_official_203_point_ratio():
    face = FaceLandmarks.from_203(template_203() * 224)
    assert face.lip_open_ratio() == pytest.approx(0.04 / 0.2, rel=1e-6)  # inner-lip gap / mouth width


# --- landmark.onnx ------------------------------------------------------------------------------

def test_landmark_onnx_places_the_crop(lp_folder, faces):
    from pipeline.backends.animators.liveportrait.landmarks import INPUT_SIZE, RUNNER_RULE, LandmarkModel
    from pipeline.faces.mesh import FaceMeshDetector

    neutral, _ = faces
    mesh = FaceMeshDetector(max_faces=1).detect_one(neutral)
    model = LandmarkModel(lp_folder / "landmark.onnx")
    first = model._run(neutral, FaceLandmarks.from_mesh(mesh))
    final = model.detect(neutral, mesh)
    assert final.source == "landmark_onnx" and final.points.shape == (203, 2)
    # The model's normalised outputs, mapped back through the runner's 224 px crop (official
    # rule 1.5 / -0.1, placed from the first pass's own points).
    m = square_matrix(face_square(first, RUNNER_RULE), INPUT_SIZE)
    back = final.points @ m[:, :2].T + m[:, 2]
    assert np.abs(back - template_203() * INPUT_SIZE).max() < 0.05
    assert final.lip_open_ratio() == pytest.approx(0.2, abs=1e-3)


@pytest.mark.slow  # ~35 s on 2 shared cores: two animations through the tiny networks at 512 px
def test_the_animator_crops_from_landmark_onnx_when_present(lp_folder, faces):
    from pipeline.backends.animators.liveportrait import LivePortraitAnimator
    from pipeline.backends.animators.liveportrait.animator import DrivingOptions

    neutral, hopper = faces
    animator = LivePortraitAnimator(str(lp_folder), "cpu", config=LivePortraitConfig.tiny(),
                                    driving=DrivingOptions(normalize_lip=True))
    out = animator.animate(neutral, neutral, hopper)
    assert out.info["crop"] == "landmark_onnx" and out.info["driver_crop"] == "none"
    assert out.info["lip_ratio"] == pytest.approx(0.2, abs=1e-3)  # the 203-point ratio, against 0.03
    assert out.info["lip_normalized"]
    # Expression-friendly on an image source: the official multiplier compares the source with
    # the first driving keypoints, which relative motion makes the source's own: 1.
    assert out.info["motion_multiplier"] == pytest.approx(1.0, abs=1e-4)
    # A non-square driver is cropped (official), from landmark.onnx's points.
    wide = animator.animate(neutral, hopper[:, 100:900], hopper[:, 100:900])
    assert wide.info["driver_crop"] == "landmark_onnx"
    assert pickle_roundtrip(animator).landmarks is None  # shipped without the ONNX session


def pickle_roundtrip(obj):
    import pickle

    return pickle.loads(pickle.dumps(obj))


def test_crop_mode_and_missing_landmark_file(tmp_path, lp_folder):
    from pipeline.backends.animators.liveportrait import LivePortraitAnimator
    from pipeline.backends.animators.liveportrait.animator import CropOptions

    assert LivePortraitAnimator(str(lp_folder), "cpu", crop=CropOptions(mode="mesh")).crop_source == "face_mesh"
    bare = tmp_path / "bare"
    checkpoints.write_random_checkpoints(bare, seed=0, cfg=LivePortraitConfig.tiny())
    assert LivePortraitAnimator(str(bare), "cpu").crop_source == "face_mesh"  # auto: the offline fallback
    with pytest.raises(WeightsFormatError, match=r"landmark.onnx: missing, and animate.liveportrait_crop"):
        LivePortraitAnimator(str(bare), "cpu", crop=CropOptions(mode="landmarks"))


@pytest.mark.parametrize("kind, message", [
    ("size", r"input 'input' has shape \[1, 3, 256, 256\], expected \(1, 3, 224, 224\)"),
    ("name", r"inputs \['image'\], expected one named 'input'"),
    ("outputs", r"2 outputs, the landmarks are the third"),
    ("truncated", r"could not be read as ONNX"),
])
def test_a_wrong_landmark_onnx_is_an_error_naming_the_file(tmp_path, kind, message):
    from pipeline.backends.animators.liveportrait.landmarks import LandmarkModel, inspect

    path = tmp_path / "landmark.onnx"
    if kind == "truncated":
        data = write_landmark_onnx(tmp_path / "good.onnx").read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        write_landmark_onnx(path, size=256 if kind == "size" else 224, outputs=2 if kind == "outputs" else 3,
                            input_name="image" if kind == "name" else "input")
    for load in (LandmarkModel, inspect):
        with pytest.raises(WeightsFormatError, match=str(path).replace(".", r"\.") + ": " + message):
            load(path)


# --- the official command line's defaults ----------------------------------------------------------

def test_params_defaults_are_the_official_command_line_defaults():
    p = AnimateParams()
    assert (p.crop_scale, p.crop_vx_ratio, p.crop_vy_ratio) == (2.3, 0.0, -0.125)  # crop_config / argument_config
    assert (p.crop_driving, p.driving_crop_scale, p.driving_crop_vy_ratio) == (False, 2.2, -0.1)
    assert (p.driving_option, p.driving_multiplier) == ("expression-friendly", 1.0)
    assert (p.normalize_lip, p.lip_normalize_threshold, p.stitching) == (False, 0.03, True)


def test_the_factory_passes_the_conventions_through(lp_folder):
    from pipeline.backends.animators.factory import build_animator

    params = dataclasses.replace(AnimateParams(), backend="liveportrait", liveportrait_dir=str(lp_folder),
                                 device="cpu", driving_option="pose-friendly", driving_multiplier=1.5,
                                 crop_scale=2.0, liveportrait_crop="mesh", crop_driving=True)
    animator = build_animator(params)
    assert animator.driving.driving_option == "pose-friendly" and animator.driving.driving_multiplier == 1.5
    assert animator.crop.source == CropRule(2.0, 0.0, -0.125) and animator.crop.crop_driving
    assert animator.crop_source == "face_mesh"


def test_expression_friendly_multiplier_is_the_hull_volume_ratio():
    from pipeline.backends.animators.liveportrait.animator import hull_multiplier

    g = torch.Generator().manual_seed(0)
    x_s = torch.randn(1, 21, 3, generator=g)
    first = torch.cat([x_s, 2 * x_s])  # the same keypoints, and twice as large (8x the volume)
    assert hull_multiplier(x_s, first).tolist() == pytest.approx([1.0, 8 ** -0.5], rel=1e-5)


# --- broken folders ---------------------------------------------------------------------------------

def _copy(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst


def _break(folder, kind):
    path = folder / checkpoints.BASE_FILES["warping_module"]
    if kind == "missing":
        path.unlink()
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:1000])
    else:
        state = torch.load(path, weights_only=True)
        key = next(iter(state))
        if kind == "renamed":
            state["renamed." + key] = state.pop(key)
        else:
            state[key] = torch.zeros(3, 3)
        torch.save(state, path)
    return path


@pytest.mark.parametrize("kind, message", [("missing", "missing"), ("truncated", "could not be read"),
                                           ("renamed", "missing: .*unexpected: renamed"),
                                           ("wrong_shape", r"wrong shape: .* \(3, 3\) \(expected")])
def test_a_broken_folder_is_an_error_naming_the_file_before_the_device(tmp_path, lp_folder, kind, message):
    folder = _copy(lp_folder, tmp_path / "lp")
    path = _break(folder, kind)
    with pytest.raises(WeightsFormatError, match=str(path).replace(".", r"\.") + ": " + message):
        checkpoints.load_models(folder, LivePortraitConfig.tiny(), device="meta")  # never reaches the device
    params = types.SimpleNamespace(animate=dataclasses.replace(AnimateParams(), backend="liveportrait",
                                                               liveportrait_dir=str(folder)))
    lines = {c.component: c for c in checkpoints.check_liveportrait(params)}
    bad = lines["animate.liveportrait.warping_module"]
    assert not bad.ok and bad.path == str(path) and "huggingface.co/KwaiVGI/LivePortrait" in bad.release


def test_models_check_on_the_published_layout(lp_folder):
    params = types.SimpleNamespace(animate=dataclasses.replace(AnimateParams(), backend="liveportrait",
                                                               liveportrait_dir=str(lp_folder)))
    lines = checkpoints.check_liveportrait(params, LivePortraitConfig.tiny())
    assert [c.component for c in lines] == [
        f"animate.liveportrait.{n}" for n in (*checkpoints.BASE_FILES, "stitching_retargeting", "landmark")]
    assert all(c.ok for c in lines), [c.line() for c in lines]
    assert "retarget_shoulder: " in lines[4].detail and "input 'input' [1, 3, 224, 224]" in lines[5].detail
    # Against the published sizes the tiny random networks are wrong shapes, named per file.
    full = checkpoints.check_liveportrait(params)
    assert not full[0].ok and "wrong shape: first.conv.weight (8, 3, 3, 3) (expected (64, 3, 3, 3))" in full[0].detail
    unset = types.SimpleNamespace(animate=dataclasses.replace(AnimateParams(), backend="liveportrait"))
    assert [c.ok for c in checkpoints.check_liveportrait(unset)] == [False]
    assert checkpoints.check_liveportrait(types.SimpleNamespace(animate=AnimateParams())) == []  # mesh backend
