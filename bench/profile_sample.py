"""Where a sampling step's GPU time goes: one CFG-batched UNet call of `PiQPerfectPipeline`
(SDXL architecture, random weights, bf16, fused QKV, channels_last, eager so kernels are
named), profiled with torch.profiler and grouped by kernel kind.

    python -m bench.profile_sample --images 4
"""
from __future__ import annotations

import argparse
import collections

import torch
from torch.profiler import ProfilerActivity, profile

from bench.sample import build_pipeline
from train.conditioning import predict_target

KINDS = (("attention", ("flash", "fmha", "attention", "sdpa")), ("matmul", ("gemm", "nvjet", "cutlass", "sm90", "matmul")),
         ("convolution", ("conv", "cudnn", "implicit", "winograd")), ("normalisation", ("norm",)))


def kind(name: str) -> str:
    low = name.lower()
    for label, keys in KINDS:
        if any(k in low for k in keys):
            return label
    return "elementwise / other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    from train.speed import enable_gpu_defaults

    enable_gpu_defaults()
    pipe, res = build_pipeline(False, "cuda", "none")  # eager, fused QKV, channels_last
    lat, b = res // 8, 2 * args.images
    dev, dt = pipe.device, pipe.unet.dtype
    x = torch.randn(b, 4, lat, lat, device=dev, dtype=dt)
    embeds = torch.randn(b, 77, 2048, device=dev, dtype=dt)
    pooled = torch.randn(b, 1280, device=dev, dtype=dt)
    t = torch.tensor(500.0, device=dev)
    call = lambda: predict_target(pipe.unet, "sdxl", x, x, x, t, embeds, pooled, res, "spatial")  # noqa: E731
    with torch.no_grad():
        for _ in range(3):
            call()
        torch.cuda.synchronize()
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            for _ in range(5):
                call()
            torch.cuda.synchronize()
    totals: dict[str, float] = collections.defaultdict(float)
    for evt in prof.key_averages():
        if evt.device_type.name == "CUDA" or getattr(evt, "self_device_time_total", 0):
            totals[kind(evt.key)] += getattr(evt, "self_device_time_total", 0.0)
    whole = sum(totals.values())
    print(f"one UNet call, batch {b} (CFG x {args.images} images), {whole / 5 / 1e3:.1f} ms of GPU time:")
    for label, us in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"  {label:22s} {us / 5 / 1e3:7.2f} ms  {100 * us / whole:5.1f} %")


if __name__ == "__main__":
    main()
