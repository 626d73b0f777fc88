"""LivePortrait as an evaluation baseline (eval/baselines/liveportrait.py, paper table 1,
replacement-ID only): the source animated by the two-frame video (source, driving), through
the animate backend, with random weights in the official checkpoint layout."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from eval.baselines import Unavailable, build_method
from eval.baselines.liveportrait import LivePortraitBaseline
from eval.data import Triplet
from eval.evaluate import evaluate_dataset
from pipeline.backends.animators.liveportrait import checkpoints
from pipeline.backends.animators.liveportrait.config import LivePortraitConfig
from pipeline.config.evaluate import EvaluateParams
from pipeline.weight_files.checks import WeightsFormatError
from samples.make_sample import turn_head


@pytest.fixture(scope="module")
def triplet() -> Triplet:
    src = cv2.resize(data.astronaut()[5:235, 109:339], (256, 256), interpolation=cv2.INTER_AREA)
    drv = turn_head(src, nose=(128.0, 138.0), face_width=95.0, shift=25.0)
    return Triplet("t0", src, drv, drv, drv)


@pytest.fixture(scope="module")
def tiny_baseline(tmp_path_factory) -> LivePortraitBaseline:
    from pipeline.backends.animators.liveportrait import LivePortraitAnimator

    folder = tmp_path_factory.mktemp("liveportrait")
    cfg = LivePortraitConfig.tiny()
    checkpoints.write_random_checkpoints(folder, seed=0, cfg=cfg)  # base_models/, retargeting_models/ as published
    animator = LivePortraitAnimator(str(folder), "cpu", config=cfg)
    animator.setup()
    return LivePortraitBaseline(EvaluateParams(liveportrait_dir=str(folder)), animator=animator)


def test_unconfigured_is_unavailable_with_the_reason_and_a_bad_folder_is_an_error(tmp_path):
    with pytest.raises(Unavailable, match="liveportrait_dir"):
        build_method("liveportrait", EvaluateParams())
    with pytest.raises(WeightsFormatError) as info:
        build_method("liveportrait", EvaluateParams(liveportrait_dir=str(tmp_path), device="cpu"))
    assert str(tmp_path) in str(info.value) and "base_models" in str(info.value)


def test_source_animated_by_the_two_frame_video_source_then_driving(tiny_baseline, triplet):
    calls = []
    animate = tiny_baseline.animator.animate

    def spy(neutral, first, last, *, seed=0):
        calls.append((neutral, first, last))
        return animate(neutral, first, last, seed=seed)

    tiny_baseline.animator.animate = spy
    try:
        [out] = tiny_baseline.run([triplet])
    finally:
        tiny_baseline.animator.animate = animate
    neutral, first, last = calls[0]
    assert neutral is triplet.source and first is triplet.source and last is triplet.driving
    assert out.shape == triplet.source.shape and out.dtype == np.uint8
    changed = np.any(out != triplet.source, axis=2)
    assert 0.02 < changed.mean() < 0.9  # the face region is regenerated and pasted back, the rest kept


def test_no_face_in_the_source_is_a_method_failure(tiny_baseline, triplet):
    blank = np.full_like(triplet.source, 90)
    with pytest.warns(UserWarning, match="liveportrait: pair t1"):
        assert tiny_baseline.run([Triplet("t1", blank, triplet.driving, triplet.driving, triplet.driving)]) == [None]


def test_replacement_ood_lists_it_as_not_applicable(tiny_baseline, tmp_path):
    class NoMetrics:
        def reset_cache(self):
            pass

    [report] = evaluate_dataset("piq_ood", tmp_path, EvaluateParams(), {"liveportrait": tiny_baseline}, NoMetrics(),
                                log=lambda *_: None, kind="OOD")
    assert report.unavailable and "replacement-OOD" in report.unavailable and "ID only" in report.unavailable


@pytest.mark.gpu
def test_full_size_liveportrait_baseline_on_cuda(tmp_path, triplet):
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    checkpoints.write_random_checkpoints(tmp_path, seed=0)
    method = build_method("liveportrait", EvaluateParams(liveportrait_dir=str(tmp_path), device="cuda"))
    outs = method.run([triplet, triplet])
    assert all(o.shape == triplet.source.shape for o in outs)
    assert np.array_equal(outs[0], outs[1])  # deterministic
