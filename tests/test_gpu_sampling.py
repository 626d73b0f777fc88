"""The DeepCache passes with the full-size SDXL UNet (random weights, bf16) on a GPU: the full
pass is the UNet's forward and the shallow pass costs a small fraction of it.

Run on the device: `pytest -m gpu tests/test_gpu_sampling.py`. Skipped without CUDA.
"""
from __future__ import annotations

import time

import pytest
import torch

pytestmark = pytest.mark.gpu


def test_deep_cache_passes_at_full_size() -> None:
    from bench.sdxl import full_components
    from train.conditioning import unet_kwargs
    from train.deep_cache import DeepCacheUNet

    with torch.device("cuda"):
        unet = full_components(dtype=torch.bfloat16).unet.eval()
    net = DeepCacheUNet(unet)
    x = torch.randn(2, 4, 72, 216, device="cuda", dtype=torch.bfloat16)
    kw = unet_kwargs("sdxl", torch.randn(2, 77, 2048, device="cuda", dtype=torch.bfloat16),
                     torch.randn(2, 1280, device="cuda", dtype=torch.bfloat16), 576, "spatial")
    t = torch.tensor(500.0, device="cuda")
    with torch.no_grad():
        ref = unet(x, t, **kw).sample
        out, deep = net.full_pass(x, t, **kw)
        assert torch.equal(out, ref), "full pass = the UNet's forward"
        shallow = net.shallow_pass(x, t, kw["encoder_hidden_states"], deep, kw["added_cond_kwargs"])
        assert torch.allclose(shallow.float(), ref.float(), atol=1e-2, rtol=1e-2), "same step: same output"

        def seconds(fn) -> float:
            fn()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(5):
                fn()
            torch.cuda.synchronize()
            return (time.perf_counter() - t0) / 5

        full_s = seconds(lambda: net.full_pass(x, t, **kw))
        shallow_s = seconds(lambda: net.shallow_pass(x, t, kw["encoder_hidden_states"], deep, kw["added_cond_kwargs"]))
    print(f"SDXL UNet at 4x72x216, batch 2, eager bf16: full pass {1e3 * full_s:.1f} ms, shallow {1e3 * shallow_s:.1f} ms")
    assert shallow_s < 0.35 * full_s
