"""Offline baselines (eval/baselines): right size, and the paste changes the face only."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from skimage import data

from eval.baselines import METHODS, Unavailable, build_method
from eval.baselines.paste import AlignedPaste
from eval.data import Triplet
from pipeline.config.evaluate import EvaluateParams
from pipeline.faces.identity import face_mesh
from pipeline.faces.mesh_masks import oval_mask
from samples.make_sample import turn_head


@pytest.fixture(scope="module")
def triplet() -> Triplet:
    """Source: the astronaut at 256 px; driving: the same photo with the head turned (the
    sample's yaw generator), moved, scaled and darkened, so an aligned paste must warp it and
    visibly changes the face."""
    src = cv2.resize(data.astronaut()[5:235, 109:339], (256, 256), interpolation=cv2.INTER_AREA)
    turned = turn_head(src, nose=(128.0, 138.0), face_width=95.0, shift=25.0)
    m = cv2.getRotationMatrix2D((128, 128), 8, 1.15)
    m[:, 2] += (12, -6)
    drv = (cv2.warpAffine(turned, m, (256, 256), borderMode=cv2.BORDER_REFLECT) * 0.7).astype(np.uint8)
    return Triplet("t0", src, drv, drv, drv)


def test_every_offline_baseline_keeps_the_size_and_changes_the_image(triplet):
    p = EvaluateParams()
    for name in ("paste", "poisson", "classical"):
        out = build_method(name, p).run([triplet])[0]
        assert out.shape == triplet.source.shape and out.dtype == np.uint8, name
        assert np.abs(out.astype(int) - triplet.source).mean() > 0.5, name
    assert np.array_equal(build_method("source", p).run([triplet])[0], triplet.source)


@pytest.mark.parametrize("blend", ["none", "poisson"])
def test_paste_differs_from_source_inside_the_face_only(triplet, blend):
    out = AlignedPaste(blend=blend, landmarks="mesh").apply(triplet)
    face = oval_mask(face_mesh(triplet.source))
    near_face = cv2.dilate(face.astype(np.uint8), np.ones((9, 9), np.uint8)).astype(bool)
    changed = np.any(out != triplet.source, axis=2)
    assert changed[face].mean() > 0.3  # the face was replaced
    assert not changed[~near_face].any()  # nothing outside it moved


def test_five_point_alignment_also_pastes(triplet):
    out = AlignedPaste(landmarks="five").apply(triplet)
    assert out is not None and np.any(out != triplet.source)


def test_no_face_in_driving_is_a_method_failure(triplet):
    blank = np.full_like(triplet.source, 100)
    t = Triplet("t1", triplet.source, blank, blank, blank)
    assert AlignedPaste().apply(t) is None


def test_weighted_methods_without_weights_are_unavailable(tmp_path):
    p = EvaluateParams(model_dir=str(tmp_path / "none"), ipadapter_dir=str(tmp_path), ipadapter_sdxl_dir=str(tmp_path))
    for name in ("ipadapter", "piq"):
        with pytest.raises(Unavailable):
            build_method(name, p)
    assert set(METHODS) == set(EvaluateParams().methods)


def test_an_error_on_one_pair_is_a_method_failure(triplet):
    class Broken(AlignedPaste):
        def apply(self, t):
            raise cv2.error("degenerate")

    with pytest.warns(UserWarning, match="pair t0 failed"):
        assert Broken().run([triplet]) == [None]
