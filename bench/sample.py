"""Seconds per image of PiQPerfect sampling at 576 px: 50 Euler steps, CFG (guidance 1.5).

    python -m bench.sample          # on a GPU: eager, then compiled, in one run
    python -m bench.sample --tiny   # CPU smoke run with a tiny UNet

Each step runs the SDXL UNet (random weights, bf16) once on a batch holding both CFG branches
(negative: empty prompt + zeroed driving) of every image, then a scheduler step on the target
third. VAE encode/decode are outside the loop (FACTS: ~23 ms encode, ~29 ms decode per image).
"""
from __future__ import annotations

import argparse
import time

import torch
from diffusers import EulerDiscreteScheduler

from bench.sdxl import build_unet, inputs


def sample_seconds(unet, images: int, latent: int, steps: int, device: str, repeats: int) -> float:
    sched = EulerDiscreteScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    batch = inputs(unet, 2 * images, latent, device, torch.bfloat16)
    cond = batch["sample"][..., : 2 * latent]
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = float("inf")
    for _ in range(repeats):
        sched.set_timesteps(steps, device=device)
        latents = torch.randn(images, 4, latent, latent, device=device, dtype=torch.float32) * sched.init_noise_sigma
        sync()
        start = time.perf_counter()
        with torch.no_grad():
            for t in sched.timesteps:
                noisy = sched.scale_model_input(torch.cat([latents, latents]), t).to(torch.bfloat16)
                x = torch.cat([cond, noisy], dim=-1)
                out = unet(x, t.expand(2 * images), encoder_hidden_states=batch["encoder_hidden_states"],
                           added_cond_kwargs=batch["added_cond_kwargs"]).sample[..., 2 * latent :].float()
                uncond, guided = out.chunk(2)
                latents = sched.step(uncond + 1.5 * (guided - uncond), t, latents).prev_sample
        sync()
        best = min(best, time.perf_counter() - start)
    return best / images


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--images", type=int, nargs="*", default=[1, 4])
    parser.add_argument("--modes", nargs="*", default=["eager", "max-autotune-no-cudagraphs", "reduce-overhead"])
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() and not args.tiny else "cpu"
    latent = 8 if args.tiny else 72
    unet = build_unet(args.tiny, device, torch.bfloat16).eval()
    name = torch.cuda.get_device_name() if device == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}, {'tiny UNet' if args.tiny else 'SDXL UNet bf16, 576 px'}, "
          f"{args.steps} steps, CFG in one batched forward")
    baseline = None
    for mode in args.modes if device == "cuda" else ["eager"]:
        torch._dynamo.reset()
        model = unet if mode == "eager" else torch.compile(unet, mode=mode)
        for images in args.images:
            t0 = time.perf_counter()
            sample_seconds(model, images, latent, 2, device, 1)  # warm-up (and compilation)
            warm = time.perf_counter() - t0
            s = sample_seconds(model, images, latent, args.steps, device, 2)
            baseline = baseline or s
            print(f"{mode:28s} images/call {images}:  {s:6.3f} s/image  x{baseline / s:.2f} vs eager b1  "
                  f"(warm-up incl. compile {warm:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
