"""LivePortrait backend: official parameter names / shapes, the checkpoint loading path, and the
animation of a 1024 px face with random weights of a reduced-width config."""
from __future__ import annotations

import pytest
import torch

from pipeline.backends.animators.liveportrait import checkpoints
from pipeline.backends.animators.liveportrait.config import LivePortraitConfig
from pipeline.weight_files.checks import WeightsFormatError
from tests.fixtures.liveportrait_keys import official
from tests.fixtures.portraits import face_1024


def test_full_size_keys_and_shapes_match_the_official_architecture():
    models = checkpoints.build_models(LivePortraitConfig(), "meta")
    expected = official()
    assert set(models.modules()) == set(expected)
    for name, module in models.modules().items():
        got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        assert set(got) - set(expected[name]) == set(), f"{name}: unexpected keys"
        assert set(expected[name]) - set(got) == set(), f"{name}: missing keys"
        assert got == expected[name], name


def test_full_size_parameter_counts_match_the_paper():
    """Millions of parameters per network as the LivePortrait paper tabulates them: a check of
    the sizes independent of the key list above (which was written from the public code)."""
    models = checkpoints.build_models(LivePortraitConfig(), "meta")
    paper = {"appearance_feature_extractor": 0.84, "motion_extractor": 28.12, "warping_module": 45.53,
             "spade_generator": 55.37}
    for name, millions in paper.items():
        count = sum(p.numel() for p in models.modules()[name].parameters())
        assert round(count / 1e6, 2) == millions, name


def test_full_size_forward_shapes_on_meta():
    """The published sizes run end to end (shapes only: meta tensors, no memory, no compute)."""
    models = checkpoints.build_models(LivePortraitConfig(), "meta")
    x = torch.rand(2, 3, 256, 256, device="meta")
    feature = models.appearance_feature_extractor(x)
    assert feature.shape == (2, 32, 16, 64, 64)
    heads = models.motion_extractor(x)
    assert {k: tuple(v.shape) for k, v in heads.items()} == {
        "kp": (2, 63), "exp": (2, 63), "pitch": (2, 66), "yaw": (2, 66), "roll": (2, 66), "t": (2, 3), "scale": (2, 1)}
    kp = torch.rand(2, 21, 3, device="meta")
    warped = models.warping_module(feature, kp_driving=kp, kp_source=kp)
    assert warped["out"].shape == (2, 256, 64, 64) and warped["occlusion_map"].shape == (2, 1, 64, 64)
    assert models.spade_generator(warped["out"]).shape == (2, 3, 512, 512)
    assert models.stitching(torch.rand(2, 126, device="meta")).shape == (2, 65)


def test_random_checkpoints_load_strictly_and_missing_files_are_named(tmp_path):
    cfg = LivePortraitConfig.tiny()
    checkpoints.write_random_checkpoints(tmp_path, seed=0, cfg=cfg)
    a = checkpoints.load_models(tmp_path, cfg)
    b = checkpoints.load_models(tmp_path, cfg)
    for name, module in a.modules().items():
        for (k, v), (_, w) in zip(module.state_dict().items(), b.modules()[name].state_dict().items()):
            assert torch.equal(v, w), (name, k)
    (tmp_path / checkpoints.BASE_FILES["warping_module"]).unlink()
    with pytest.raises(WeightsFormatError, match=str(tmp_path.name) + ".*warping_module.pth: missing"):
        checkpoints.load_models(tmp_path, cfg)
    # A checkpoint of other sizes is refused, naming the file and the first mismatches.
    checkpoints.write_random_checkpoints(tmp_path, seed=0, cfg=cfg)
    with pytest.raises(WeightsFormatError, match=r"appearance_feature_extractor.pth: missing: .*"
                                                 r"wrong shape: first.conv.weight \(8, 3, 3, 3\) \(expected \(64, 3, 3, 3\)\)"):
        checkpoints.load_models(tmp_path, LivePortraitConfig())
    # Folding the spectral norms for inference changes no output.
    models = checkpoints.load_models(tmp_path, cfg)
    x = torch.rand(1, cfg.spade.input_channels, 16, 16)
    with torch.no_grad():
        before = models.spade_generator(x)
        checkpoints.fold_spectral_norm(models)
        assert not any(k.endswith("weight_orig") for k in models.spade_generator.state_dict())
        assert torch.allclose(models.spade_generator(x), before, atol=1e-6)


# --- keypoints and warping -----------------------------------------------------------------

def test_pose_bins_decode_to_degrees_and_rotation_is_orthonormal():
    from pipeline.backends.animators.liveportrait.keypoints import bins_to_degrees, rotation_matrix

    logits = torch.full((2, 66), -1e4)
    logits[0, 10] = 0  # bin 10 -> 3 * 10 - 97.5
    logits[1, 40] = 0
    assert bins_to_degrees(logits).tolist() == pytest.approx([-67.5, 22.5])
    R = rotation_matrix(torch.tensor([10.0, 0]), torch.tensor([-20.0, 0]), torch.tensor([5.0, 90]))
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-6)
    # Pure 90 degree roll: the row vector x-axis goes to the y-axis (x @ R).
    assert torch.allclose(torch.tensor([[1.0, 0, 0]]) @ R[1], torch.tensor([[0.0, 1, 0]]), atol=1e-6)


def test_relative_motion_of_an_unchanged_driver_is_the_source_and_changes_follow_the_driver():
    from pipeline.backends.animators.liveportrait.keypoints import Motion, relative_driving_keypoints, source_keypoints

    g = torch.Generator().manual_seed(0)

    def motion(b: int) -> Motion:
        heads = {"kp": torch.randn(b, 63, generator=g), "exp": torch.randn(b, 63, generator=g) * 0.1,
                 "pitch": torch.randn(b, 66, generator=g), "yaw": torch.randn(b, 66, generator=g),
                 "roll": torch.randn(b, 66, generator=g), "t": torch.randn(b, 3, generator=g) * 0.1,
                 "scale": 1 + torch.rand(b, 1, generator=g)}
        return Motion.from_heads(heads)

    src, drv = motion(1), motion(2)
    same = relative_driving_keypoints(src, drv[0:1], drv[0:1])
    assert torch.allclose(same, source_keypoints(src), atol=1e-5)
    # A driver that only opens its expression moves the source by exactly that much (scaled).
    moved = Motion(drv.kp[:1], drv.R[:1], drv.exp[:1] + 0.05, drv.scale[:1], drv.t[:1], drv.pose[:1])
    out = relative_driving_keypoints(src, drv[0:1], moved)
    assert torch.allclose(out - source_keypoints(src), src.scale[:, :, None] * 0.05 * torch.tensor([1, 1, 1.0]),
                          atol=1e-5)


def test_warp_flow_is_the_identity_when_source_and_driving_keypoints_agree():
    from pipeline.backends.animators.liveportrait.warping import WarpingNetwork, coordinate_grid

    cfg = LivePortraitConfig.tiny().warping
    torch.manual_seed(0)
    net = WarpingNetwork(cfg).eval()
    feature = torch.randn(1, cfg.reshape_channel, cfg.dense_motion.reshape_depth, 64, 64)
    kp = torch.rand(1, 21, 3) * 1.6 - 0.8
    with torch.no_grad():
        same = net(feature, kp_driving=kp, kp_source=kp)
        moved = net(feature, kp_driving=kp + torch.tensor([0.2, 0, 0]), kp_source=kp)
    identity = coordinate_grid(cfg.dense_motion.reshape_depth, 64, 64, kp)
    assert torch.allclose(same["deformation"][0], identity, atol=1e-5)
    assert same["out"].shape == (1, cfg.block_expansion * 4, 64, 64)
    # Driving keypoints moved right by 0.2: the flow samples the source further left, nowhere right.
    dx = (moved["deformation"][0, ..., 0] - identity[..., 0])
    assert dx.min() < -0.05 and dx.max() <= 1e-5


# --- crop, paste back, the animator on CPU -------------------------------------------------

@pytest.fixture(scope="module")
def neutral():
    return face_1024("astronaut")


def test_crop_then_paste_back_returns_the_face_in_place(neutral):
    import cv2
    import numpy as np

    from pipeline.backends.animators.liveportrait.crop import (CropRule, FaceLandmarks, crop_rotated, face_square,
                                                               paste_back_rotated, paste_mask)
    from pipeline.faces.mesh import FaceMeshDetector

    mesh = FaceMeshDetector(max_faces=1).detect_one(neutral)
    square = face_square(FaceLandmarks.from_mesh(mesh), CropRule().for_mesh(1.15, 0.05))
    crop = crop_rotated(neutral, square, 256)
    # The face fills the crop's middle: the mesh box maps inside it with a margin.
    pts = cv2.transform(mesh.xy[None, :468].astype(np.float64), crop.matrix)[0]
    assert pts.min() > 256 * 0.1 and pts.max() < 256 * 0.9
    mask = paste_mask(mesh, crop, neutral.shape[:2], 0.06, 0.05)
    assert mask[int(mesh.points[1, 1]), int(mesh.points[1, 0])] > 0.99  # nose tip
    assert mask[5, 5] == 0 and mask[1000, 1000] == 0
    # A decoder that returned the crop itself (at 512 px) pastes back to (nearly) the original.
    back = paste_back_rotated(cv2.resize(crop.image, (512, 512), interpolation=cv2.INTER_CUBIC), crop, neutral, mask)
    inside = mask > 0.5
    err = np.abs(back.astype(float) - neutral.astype(float))[inside].mean()
    assert err < 6, err  # the 1024 -> 256 -> 1024 round trip loses detail, not position
    assert np.array_equal(back[mask == 0], neutral[mask == 0])


@pytest.fixture(scope="module")
def tiny_animator(tmp_path_factory):
    from pipeline.backends.animators.liveportrait import LivePortraitAnimator

    folder = tmp_path_factory.mktemp("liveportrait")
    cfg = LivePortraitConfig.tiny()
    checkpoints.write_random_checkpoints(folder, seed=0, cfg=cfg)
    animator = LivePortraitAnimator(str(folder), "cpu", config=cfg)
    animator.setup()
    return animator


def test_animator_makes_a_1024_image_that_changes_the_face_only(tiny_animator, neutral):
    import numpy as np

    hopper = face_1024("hopper")
    out = tiny_animator.animate_batch(neutral, [(neutral, neutral), (neutral, hopper)], seeds=[0, 1])
    assert [o.image.shape for o in out] == [(1024, 1024, 3)] * 2 and out[0].image.dtype == np.uint8
    # Identical first / last driver frames: the driving keypoints are the source's.
    assert out[0].info["keypoint_motion"] < 1e-5
    assert out[1].info["keypoint_motion"] > 1e-3
    assert out[0].info["crop"] == "face_mesh" and out[0].info["driver_crop"] == "none"  # no landmark.onnx here
    assert not out[0].info["lip_normalized"]  # the official command line leaves the lips as they are
    for o in out:
        diff = np.abs(o.image.astype(int) - neutral.astype(int)).sum(-1)
        assert diff[:40].max() == 0 and diff[-40:].max() == 0  # outside the face: untouched
        assert diff[400:600, 400:600].mean() > 1  # the face region is the decoder's
    # Driver frames are remembered by their pixels: two distinct frames, whatever the pairs.
    assert len(tiny_animator._driver_motion) == 2
    # One at a time, from the cache or afresh, gives the batched result.
    single = tiny_animator.animate(neutral, neutral, hopper, seed=1)
    assert np.abs(single.image.astype(int) - out[1].image.astype(int)).max() <= 1
    tiny_animator.clear_driver_cache()
    fresh = tiny_animator.animate(neutral, neutral, hopper, seed=1)
    assert np.array_equal(fresh.image, single.image)


def test_the_animator_ships_to_a_worker_without_its_weights(tiny_animator):
    import pickle

    shipped = pickle.loads(pickle.dumps(tiny_animator))
    assert shipped.models is None and shipped.model_dir == tiny_animator.model_dir
    shipped.setup()
    assert shipped.models is not None


def test_a_frame_without_a_face_is_rejected_where_a_face_is_looked_for(tiny_animator, neutral):
    """The source always; a driver only where it is cropped (non-square, or crop_driving): the
    official default resizes a square driver clip whole, without looking for a face."""
    import numpy as np

    from pipeline.rejection import Reject

    blank = np.full((512, 512, 3), 127, np.uint8)
    with pytest.raises(Reject) as err:
        tiny_animator.animate(blank, neutral, neutral)
    assert err.value.code == "no_face"
    out = tiny_animator.animate(neutral, neutral, blank)
    assert out.info["driver_crop"] == "none"
    with pytest.raises(Reject, match="driver 0 last"):
        tiny_animator.animate(neutral, neutral[:, 100:900], blank[:, :400])


@pytest.mark.gpu
def test_full_size_batched_on_cuda(tmp_path, neutral):
    import numpy as np

    from pipeline.backends.animators.liveportrait import LivePortraitAnimator

    from tests.fixtures.liveportrait_landmarks import write_landmark_onnx

    checkpoints.write_random_checkpoints(tmp_path, seed=0)
    write_landmark_onnx(tmp_path / "landmark.onnx")  # the official crop from the release's landmark model
    animator = LivePortraitAnimator(str(tmp_path), "cuda", bf16=True, batch_size=4)
    hopper = face_1024("hopper")
    drivers = [(neutral, neutral), (neutral, hopper)] * 3
    out = animator.animate_batch(neutral, drivers, seeds=list(range(6)))
    assert len(out) == 6 and all(o.image.shape == (1024, 1024, 3) for o in out)
    assert out[0].info["crop"] == "landmark_onnx"
    assert out[0].info["keypoint_motion"] < 1e-4 < out[1].info["keypoint_motion"]
    # Same driver pair -> same image, whichever batch it fell in (bf16 noise only: random
    # full-size weights amplify it; measured 2.08 levels on an H100).
    assert np.abs(out[1].image.astype(int) - out[5].image.astype(int)).mean() < 4
    fp32 = LivePortraitAnimator(str(tmp_path), "cuda", bf16=False).animate(neutral, neutral, hopper)
    assert np.abs(fp32.image.astype(int) - out[1].image.astype(int)).mean() < 40  # random deep nets amplify bf16 rounding
