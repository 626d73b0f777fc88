"""Training-step throughput of the SDXL UNet at 576 px (latent 4 x 72 x 216), random weights.

    python -m bench.train            # on a GPU: every configuration, baseline first
    python -m bench.train --tiny     # CPU smoke run of the same code with a tiny UNet

A step is forward + backward (loss on the target third only) + Adam. Text encoders and the VAE
are not in the step: the trainer caches text embeddings and encodes latents once per batch.
Prints samples/s, peak memory, and the ratio to the eager fp32-master baseline of this run.
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch
import torch.nn.functional as F

from bench.sdxl import build_unet, inputs


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    batch: int
    weights: str  # "fp32" (master weights, bf16 autocast) or "bf16" (bf16 weights and optimizer state)
    checkpointing: bool
    compile: bool = False
    channels_last: bool = False


CONFIGS = [
    Config("baseline fp32+autocast b16 ckpt", 16, "fp32", True),
    Config("fp32+autocast b16 ckpt channels_last", 16, "fp32", True, channels_last=True),
    Config("bf16 weights b16 ckpt", 16, "bf16", True),
    Config("bf16 weights b32 ckpt", 32, "bf16", True),
    Config("bf16 weights b8 no-ckpt", 8, "bf16", False),
    Config("fp32+autocast b16 ckpt compiled", 16, "fp32", True, compile=True),
    Config("bf16 weights b32 ckpt compiled", 32, "bf16", True, compile=True),
]


def run(cfg: Config, tiny: bool, device: str, steps: int, warmup: int) -> tuple[float, float]:
    dtype = torch.bfloat16 if cfg.weights == "bf16" else torch.float32
    unet = build_unet(tiny, device, dtype)
    if cfg.checkpointing:
        unet.enable_gradient_checkpointing()
    if cfg.channels_last:
        unet = unet.to(memory_format=torch.channels_last)
    model = torch.compile(unet) if cfg.compile else unet
    opt = torch.optim.Adam(unet.parameters(), lr=1e-5, betas=(0.9, 0.999), fused=device == "cuda")
    batch = inputs(unet, cfg.batch, 8 if tiny else 72, device, dtype)
    target = torch.randn(cfg.batch, 4, batch["sample"].shape[2], batch["sample"].shape[2], device=device, dtype=dtype)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=cfg.weights == "fp32" and device == "cuda")

    def step() -> None:
        with autocast:
            out = model(**batch).sample
            w = out.shape[-1] // 3
            loss = F.mse_loss(out[..., 2 * w :].float(), target.float())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else float("nan")
    return cfg.batch * steps / seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--only", nargs="*", help="substrings of configuration names to run")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, {'tiny UNet' if args.tiny else 'SDXL UNet, 576 px'}, "
          f"{args.steps} timed steps after {args.warmup} warm-up")
    configs = [c for c in CONFIGS if not args.only or any(s in c.name for s in args.only)]
    if args.tiny:
        configs = [dataclasses.replace(c, batch=2, compile=False) for c in configs[:2]]
    baseline = None
    for cfg in configs:
        try:
            rate, peak = run(cfg, args.tiny, device, args.steps, args.warmup)
        except torch.OutOfMemoryError:
            print(f"{cfg.name:42s}  out of memory")
            torch.cuda.empty_cache()
            continue
        baseline = baseline or rate
        print(f"{cfg.name:42s}  {rate:7.2f} samples/s  peak {peak:6.1f} GiB  x{rate / baseline:.2f} vs baseline", flush=True)
        torch.cuda.empty_cache() if device == "cuda" else None


if __name__ == "__main__":
    main()
