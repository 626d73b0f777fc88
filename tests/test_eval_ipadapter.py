"""The IP-Adapter baseline loads through its real path: a tiny random SDXL img2img pipeline, a
tiny CLIP vision encoder and two IP-Adapter-Plus weight files in the h94/IP-Adapter layout."""
from __future__ import annotations

import numpy as np

from eval.baselines import build_method
from eval.data import Triplet
from pipeline.config.evaluate import EvaluateParams
from tests.fixtures.ipadapter_weights import make_weights


def test_ipadapter_runs_from_its_published_layout(tmp_path):
    ip, sdxl = make_weights(tmp_path)
    p = EvaluateParams(ipadapter_dir=str(ip), ipadapter_sdxl_dir=str(sdxl), ipadapter_steps=4, ipadapter_resolution=32)
    method = build_method("ipadapter", p)
    scales = {tuple(proc.scale) for proc in method.pipe.unet.attn_processors.values() if hasattr(proc, "scale")}
    assert scales == {(0.5, 0.6)}  # paper A.1: source ("style") 0.5, driving ("face") 0.6
    rng = np.random.default_rng(0)
    src, drv = (rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(2))
    out = method.run([Triplet("p0", src, drv, drv, drv)])
    assert out[0].shape == (48, 48, 3) and out[0].dtype == np.uint8
    again = method.run([Triplet("p0", src, drv, drv, drv)])
    assert np.array_equal(out[0], again[0])  # seeded
