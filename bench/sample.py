"""Seconds per image of `PiQPerfectPipeline.__call__` at 576 px (50 Euler steps, guidance 1.5),
end to end (text encoding, VAE encode of source / driving / zeroed driving, the denoising loop,
VAE decode), beside the UNet-only floor of the same run.

    python -m bench.sample          # GPU: SDXL architecture, random weights, bf16
    python -m bench.sample --tiny   # CPU smoke run of the same code

Levers as `piq sample` applies them (`PiQPerfectPipeline.optimize`): fused QKV, channels_last,
torch.compile of the whole UNet with CUDA graphs, FP8 (torchao). Compile time is printed, not
counted. The floor is 50 x the compiled UNet call on the CFG batch (both branches in one call).
"""
from __future__ import annotations

import argparse
import dataclasses
import time

import torch


@dataclasses.dataclass(frozen=True)
class Mode:
    name: str
    compile: str = "none"
    fuse_qkv: bool = False
    channels_last: bool = False
    fp8: bool = False


MODES = [
    Mode("eager bf16"),
    Mode("eager bf16 + fused qkv + channels_last", fuse_qkv=True, channels_last=True),
    Mode("compiled (full, CUDA graphs) + fused qkv + channels_last", "full", True, True),
    Mode("compiled + fused qkv + channels_last + fp8", "full", True, True, fp8=True),
]


def build_pipeline(tiny: bool, device: str, mode: Mode):
    from diffusers import EulerDiscreteScheduler

    from train.backbones import tiny_components
    from train.pipeline import PiQPerfectPipeline

    dtype = torch.bfloat16 if device == "cuda" else torch.float32
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
    pipe.optimize(compile=mode.compile, fuse_qkv=mode.fuse_qkv, channels_last=mode.channels_last, fp8=mode.fp8)
    return pipe, res


def seconds_per_image(pipe, res: int, images: int, steps: int, repeats: int) -> float:
    src = torch.rand(images, 3, res, res) * 2 - 1
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    best = float("inf")
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        pipe(src, src, ["a photo of a person smiling"] * images, num_inference_steps=steps, guidance_scale=1.5,
             generator=torch.Generator().manual_seed(0), output_type="pt")
        sync()
        best = min(best, time.perf_counter() - t0)
    return best / images


def unet_floor(pipe, res: int, images: int, steps: int) -> float:
    """50 calls of the (optimised) UNet on the CFG batch, per image: the loop's lower bound."""
    from train.conditioning import predict_target

    lat = res // (8 if res >= 256 else 4)
    dev, dt = pipe.device, pipe.unet.dtype
    src = torch.randn(2 * images, 4, lat, lat, device=dev, dtype=dt)
    embeds = torch.randn(2 * images, 77, pipe.unet.config.cross_attention_dim, device=dev, dtype=dt)
    pooled = torch.randn(2 * images, pipe.unet.config.projection_class_embeddings_input_dim
                         - 6 * pipe.unet.config.addition_time_embed_dim, device=dev, dtype=dt)
    t = torch.tensor(500.0, device=dev)
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    with torch.no_grad():
        predict_target(pipe.unet, "sdxl", src, src, src, t, embeds, pooled, res, "spatial")
        sync()
        t0 = time.perf_counter()
        for _ in range(steps):
            predict_target(pipe.unet, "sdxl", src, src, src, t, embeds, pooled, res, "spatial")
        sync()
    return (time.perf_counter() - t0) / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--images", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--only", nargs="*", help="substrings of mode names")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    modes = [m for m in MODES if not args.only or any(s in m.name for s in args.only)]
    if device == "cpu":
        modes = modes[:1]
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    if device == "cuda":
        from train.speed import enable_gpu_defaults

        enable_gpu_defaults()  # as `piq sample` does (train.sampler.load_sampler)
    print(f"device {name}, torch {torch.__version__}, {'tiny' if args.tiny else 'SDXL architecture 576 px'}, "
          f"{args.steps} steps, guidance 1.5, PiQPerfectPipeline.__call__ end to end")
    for mode in modes:
        torch._dynamo.reset()
        try:
            t0 = time.perf_counter()
            pipe, res = build_pipeline(args.tiny, device, mode)
            for images in args.images:
                w0 = time.perf_counter()
                seconds_per_image(pipe, res, images, 2, 1)  # warm-up: compiles, records CUDA graphs
                warm = time.perf_counter() - w0
                s = seconds_per_image(pipe, res, images, args.steps, 2)
                floor = unet_floor(pipe, res, images, args.steps)
                print(f"{mode.name:58s} batch {images}: {s:6.3f} s/image  UNet-only floor {floor:6.3f}  "
                      f"ratio {s / floor:.2f}  (warm-up incl. compile {warm:.0f} s)", flush=True)
        except Exception as err:  # noqa: BLE001 - a lever that fails here (fp8 without torchao) must not stop the rest
            print(f"{mode.name:58s} failed: {type(err).__name__}: {str(err)[:300]}", flush=True)
        finally:
            pipe = None
            torch.cuda.empty_cache() if device == "cuda" else None


if __name__ == "__main__":
    main()
