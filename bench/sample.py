"""Seconds per image of `PiQPerfectPipeline.__call__` for the paper's sampling and each speed
lever, beside the UNet-only floor, with each variant's deviation from the paper's output.

    python -m bench.sample                      # GPU: SDXL architecture, random weights, bf16, 576 px
    python -m bench.sample --model models/piq --fast-model models/piq-fast   # trained models (CPU or GPU)
    python -m bench.sample --tiny               # CPU smoke run of the same code

End to end: text encoding, VAE encode of source / driving / zeroed driving, the denoising loop,
VAE decode. Levers as `piq sample` applies them (`train.sampler`): fused QKV, channels_last,
torch.compile with CUDA graphs of the DeepCache wrapper's full and shallow passes (the full
pass is the UNet's forward), and the step plans of `train/step_plan.py`. Each variant runs
once untimed (compiling its shapes, printed) and once timed. The floor is 50 x the compiled
UNet call on the CFG batch (the paper's work). PSNR / SSIM are against the paper variant's
images from the same noise (`eval.metrics.pixel`); for the fast mode they need a distilled
student (`--fast-model`): with random weights its timing is measured on the teacher's UNet.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from typing import Optional

import torch

from pipeline.device import is_cuda

SDXL_INTERVAL = (0.28, 5.42)  # Kynkäänniemi et al. 2024, SDXL


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    kwargs: dict = dataclasses.field(default_factory=dict)
    fast: bool = False


VARIANTS = [
    Variant("paper: CFG every step"),
    Variant("guidance interval sigma in (0.28, 5.42]", {"guidance_interval": SDXL_INTERVAL}),
    Variant("guidance every 2nd step", {"guidance_every": 2}),
    Variant("deep cache N=2", {"deep_cache_interval": 2}),
    Variant("deep cache N=3", {"deep_cache_interval": 3}),
    Variant("guidance interval + deep cache N=2", {"guidance_interval": SDXL_INTERVAL, "deep_cache_interval": 2}),
    Variant("guidance interval + deep cache N=3", {"guidance_interval": SDXL_INTERVAL, "deep_cache_interval": 3}),
    Variant("fast: 4-step distilled student, no CFG", {"num_inference_steps": 4, "guidance_scale": 1.0}, fast=True),
]


def build_pipeline(tiny: bool, device: str, compile_mode: str, model: Optional[str] = None):
    """(pipeline, resolution), optimised as `piq sample` does; `model`: a trained folder."""
    from diffusers import EulerDiscreteScheduler

    from train.piq_pipeline import PiQPerfectPipeline

    on_gpu = device == "cuda"
    dtype = torch.bfloat16 if on_gpu else torch.float32
    if model:
        pipe = PiQPerfectPipeline.from_pretrained(model, local_files_only=True, torch_dtype=dtype).to(device)
    else:
        from train.backbones import tiny_components

        if tiny:
            comps, res = tiny_components("sdxl"), 64
        else:
            from bench.sdxl import full_components

            with torch.device(device):
                comps, res = full_components(dtype=dtype), 576
        pipe = PiQPerfectPipeline(comps.unet, comps.vae, comps.text_encoder, comps.tokenizer,
                                  EulerDiscreteScheduler.from_config(comps.scheduler.config), comps.text_encoder_2,
                                  comps.tokenizer_2, concat="spatial", resolution=res).to(device, dtype)
    pipe.set_progress_bar_config(disable=True)
    pipe.optimize(compile=compile_mode, fuse_qkv=on_gpu, channels_last=on_gpu, deep_cache=True)
    return pipe, pipe.config.resolution


def student_like(pipe):
    """The teacher's parts with the student's DDIM sampler: the fast mode's cost, for random weights."""
    from train.distill import student_scheduler
    from train.piq_pipeline import PiQPerfectPipeline

    student = PiQPerfectPipeline(**{**pipe.components, "scheduler": student_scheduler(pipe.scheduler.config)},
                                 concat=pipe.config.concat, resolution=pipe.config.resolution)
    student._deep_cache = pipe._deep_cache  # the same compiled passes: same UNet, same shapes
    student.set_progress_bar_config(disable=True)
    return student


def inputs(images: int, res: int):
    g = torch.Generator().manual_seed(1)
    src = torch.rand(images, 3, res, res, generator=g) * 2 - 1
    drv = torch.rand(images, 3, res, res, generator=g) * 2 - 1
    return src, drv, ["a photo of a person smiling"] * images


def timed(pipe, batch, kwargs) -> tuple[float, torch.Tensor]:
    sync = torch.cuda.synchronize if is_cuda() else (lambda: None)
    sync()
    t0 = time.perf_counter()
    out = pipe(*batch, generator=torch.Generator().manual_seed(0), output_type="pt",
               **{"num_inference_steps": 50, "guidance_scale": 1.5, **kwargs}).images
    sync()
    return time.perf_counter() - t0, out.float()


def unet_floor(pipe, res: int, images: int, steps: int) -> tuple[float, float]:
    """(`steps` calls of the compiled full UNet pass on the CFG batch, per image; seconds of
    the first call, which compiles that pass for this batch)."""
    from train.conditioning import predict_target

    net = pipe._deep_cache_unet()
    net.use_full = True
    lat = res // (2 ** (len(pipe.vae.config.block_out_channels) - 1))
    dev, dt = pipe.device, pipe.unet.dtype
    x = torch.randn(2 * images, 4, lat, lat, device=dev, dtype=dt)
    embeds = torch.randn(2 * images, 77, pipe.unet.config.cross_attention_dim, device=dev, dtype=dt)
    pooled = torch.randn(2 * images, pipe.unet.config.projection_class_embeddings_input_dim
                         - 6 * pipe.unet.config.addition_time_embed_dim, device=dev, dtype=dt)
    t = torch.tensor(500.0, device=dev)
    sync = torch.cuda.synchronize if is_cuda() else (lambda: None)
    with torch.no_grad():
        t0 = time.perf_counter()
        predict_target(net, "sdxl", x, x, x, t, embeds, pooled, res, "spatial")
        sync()
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(steps):
            predict_target(net, "sdxl", x, x, x, t, embeds, pooled, res, "spatial")
        sync()
    return (time.perf_counter() - t0) / images, first


def deviation(out: torch.Tensor, ref: torch.Tensor) -> tuple[float, float]:
    from eval.metrics.pixel import psnr_batch, ssim_batch

    return float(psnr_batch(out, ref).clamp(max=99).mean()), float(ssim_batch(out, ref).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny random model on the CPU (smoke run)")
    parser.add_argument("--model", help="a trained PiQPerfectPipeline folder (default: random weights)")
    parser.add_argument("--fast-model", help="the distilled student of `piq distill` (deviation of the fast mode)")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--images", type=int, nargs="*", default=[4, 1])
    parser.add_argument("--only", nargs="*", help="substrings of variant names (the paper variant always runs)")
    parser.add_argument("--warm-compile", action="store_true",
                        help="at the end, drop the compiled code and compile the paper variant again from the "
                             "on-disk inductor cache (what a second `piq sample` pays)")
    parser.add_argument("--compile", default="auto", help="auto = full with CUDA graphs on a GPU, none on a CPU")
    args = parser.parse_args()
    device = "cuda" if is_cuda() and not args.tiny else "cpu"
    from train.speed import enable_gpu_defaults, resolve_compile

    if device == "cuda":
        enable_gpu_defaults()
    else:  # denormal floats are ~50x slower on x86 (the tiny random model reaches them)
        torch.set_flush_denormal(True)
    variants = [v for v in VARIANTS if v is VARIANTS[0] or not args.only or any(s in v.name for s in args.only)]
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    what = args.model or ("tiny random" if args.tiny else "SDXL architecture 576 px, random weights")
    print(f"device {name}, torch {torch.__version__}, {what}, PiQPerfectPipeline.__call__ end to end; "
          f"PSNR / SSIM against the paper's {args.steps} guided steps from the same noise")
    t0 = time.perf_counter()
    pipe, res = build_pipeline(args.tiny, device, resolve_compile(args.compile, device, on_gpu="full"), args.model)
    print(f"built in {time.perf_counter() - t0:.0f} s", flush=True)
    fast = None
    if any(v.fast for v in variants):
        fast = build_pipeline(args.tiny, device, "none", args.fast_model)[0] if args.fast_model else student_like(pipe)
        if args.fast_model and pipe.deep_cache_compiled:
            fast.optimize(compile="full", fuse_qkv=device == "cuda", channels_last=device == "cuda", deep_cache=True)
    for images in args.images:
        batch = inputs(images, res)
        floor, first = unet_floor(pipe, res, images, args.steps)
        print(f"UNet-only floor, batch {images}: first call of the full pass on the CFG batch {first:.0f} s "
              f"(compiling it, when compiled)", flush=True)
        ref = None
        for v in variants:
            target = fast if v.fast else pipe
            kwargs = {"num_inference_steps": args.steps, **v.kwargs} if not v.fast else v.kwargs
            # compiles this variant's shapes / records its graphs (nothing to warm up eager)
            warm = timed(target, batch, kwargs)[0] if pipe.deep_cache_compiled else 0.0
            s, out = timed(target, batch, kwargs)
            ref = out if ref is None else ref
            if v.fast and not args.fast_model:
                dev_text = "deviation n/a (random weights: no distilled student)"
            else:
                p, q = deviation(out, ref)
                dev_text = f"PSNR {p:5.1f} dB  SSIM {q:.4f}"
            print(f"{v.name:40s} batch {images}: {s / images:6.3f} s/image  UNet-only floor {floor:6.3f}  "
                  f"ratio {s / images / floor:.2f}  {dev_text}  (first call {warm:.0f} s)", flush=True)
    if args.warm_compile and pipe.deep_cache_compiled:
        torch._dynamo.reset()
        pipe._deep_cache.compile_passes(device == "cuda")
        warm, _ = timed(pipe, inputs(args.images[0], res), {"num_inference_steps": args.steps})
        print(f"paper variant, batch {args.images[0]}, first call after dropping the compiled code: {warm:.0f} s "
              f"(compiled from the warm on-disk cache)", flush=True)


if __name__ == "__main__":
    main()
