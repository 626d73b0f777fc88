"""Benchmark of the relight stage: the offline SH backend on CPU cores, NeuralGaffer on a GPU.

    python bench/relight.py [--images 8] [--variants 5] [--size 1024] [--workers 0 2]
    python bench/relight.py --device cuda [--steps 50] [--batches 1 5 10 20 40]
    python bench/relight.py --tiny --steps 2 --batches 1 2   (the GPU code on a CPU, not a figure)

CPU: images/s of the `sh` backend through the stage's entry point (`stages.relight.run`, the
runner in-process with one thread = one core, then on Ray actors), on 1024 px portraits in the
layout of `data/animate` + `data/segment`; each image makes `--variants` relit variants.

GPU (`--device cuda`): the NeuralGaffer architecture at its real sizes (SD 1.x UNet with 16 input
channels, SD VAE, CLIP ViT-L/14) with random weights in bf16, timing `NeuralGafferModel.sample`
at 256 px with classifier-free guidance: batch 1 (one variant at a time) against batches of
variants (the stage sends the K variants of one image as one batch); then `--stage-images`
1024 px images through the stage's own path (a saved random folder loaded by `piq relight`'s
code, JPEGs written), model loading included. Weights do not change the cost, so these are the
figures of the released model.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Sequence


from pipeline.config.relight import RelightParams
from pipeline.config.runner import RunnerParams


def bench_cpu(images: int = 6, variants: int = 5, size: int = 1024, workers: Sequence[int] = (0,)) -> dict[str, float]:
    """images/s of the sh backend through `stages.relight.run` per runner configuration
    ("in-process", "ray xN"); prints one line each. bench/annotate.py can call this."""
    from pipeline.engine.runner import init_ray
    from stages.relight import run
    from tests.fixtures.relight_inputs import make_fake_annotate_inputs

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        faces = (("astronaut", False), ("hopper", False), ("astronaut", True))
        per_face = max(1, -(-images // len(faces)))
        animate, segment = make_fake_annotate_inputs(work / "in", size=size, faces=faces, images=per_face)
        n = len(faces) * per_face
        print(f"relight sh input: {n} images of {size} px x {variants} variants, procedural maps")
        results: dict[str, float] = {}
        ray_started = False
        for count in workers:
            if count and not ray_started:
                t0 = time.perf_counter()
                init_ray(RunnerParams(workers=max(workers)))
                ray_started = True
                print(f"ray start-up (excluded): {time.perf_counter() - t0:.1f} s")
            params = RelightParams(animate_dir=str(animate), segment_dir=str(segment), out_dir=str(work / f"out{count}"),
                                   variants=variants, preview=False)
            start = time.perf_counter()
            stats = run(params, RunnerParams(workers=count, threads_per_worker=1, progress=False), seed=0).stats
            seconds = time.perf_counter() - start
            label = "in-process" if count == 0 else f"ray x{count}"
            results[label] = n / seconds
            print(f"relight sh {label:>10}: {seconds:6.1f} s  {n / seconds:5.2f} images/s  "
                  f"{n / seconds / max(count, 1):5.2f} images/s/core  {n * variants / seconds:5.2f} variants/s  "
                  f"({stats['done']} done, {stats['rejected']} refused)")
        labels = list(results)
        for label in labels[1:]:
            print(f"ratio {label} / {labels[0]}: {results[label] / results[labels[0]]:.2f}")
        return results


def bench_gpu(steps: int = 50, batches: Sequence[int] = (1, 5, 10, 20, 40), resolution: int = 256, repeats: int = 2,
              tiny: bool = False, stage_images: int = 8, variants: int = 5, size: int = 1024) -> dict[int, float]:
    """variants/s of NeuralGaffer sampling per batch size (real architecture in bf16 on CUDA, or
    the tiny model on a CPU), then `stage_images` through the stage; prints one line each."""
    import torch

    from pipeline.backends.relighters.neural_gaffer import NeuralGafferModel
    from tests.fixtures.neural_gaffer_random import build_random_components

    cuda = not tiny
    device, dt = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    unet, vae, encoder, scheduler = build_random_components(full=cuda)
    model = NeuralGafferModel(unet.to(device, dt).eval(), vae.to(device, dt).eval(), encoder.to(device, dt).eval(), scheduler)
    n_params = sum(p.numel() for p in unet.parameters()) / 1e6
    res = resolution if cuda else 32
    where = torch.cuda.get_device_name() if cuda else "CPU (--tiny: a tiny model, figures mean nothing)"
    print(f"NeuralGaffer architecture, random weights, {str(dt).split('.')[-1]}, {res} px, {steps} DDIM steps, "
          f"guidance 3 (2x batch); UNet {n_params:.0f} M parameters on {where}")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    rates = {}
    for batch in batches:
        x = torch.rand(batch, 3, res, res, device=device) * 2 - 1
        gen = torch.Generator(device=device).manual_seed(0)
        model.sample(x, x, x, steps=2, guidance=3.0, generator=gen)  # warm-up
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(repeats):
            model.sample(x, x, x, steps=steps, guidance=3.0, generator=gen)
        sync()
        seconds = (time.perf_counter() - start) / repeats
        rates[batch] = batch / seconds
        peak = f"  peak {torch.cuda.max_memory_allocated() / 2**30:5.1f} GiB" if cuda else ""
        print(f"relight neural_gaffer batch {batch:>3}: {seconds * 1000:8.1f} ms/call  {batch / seconds:7.2f} variants/s  "
              f"{batch / seconds / variants:6.2f} images/s ({variants} variants){peak}")
    if 1 in rates:
        best = max(rates, key=rates.get)
        print(f"ratio batch {best} / batch 1: {rates[best] / rates[1]:.2f}")
    if stage_images:
        bench_gpu_stage(stage_images, variants, size, resolution, steps, cuda)
    return rates


def bench_gpu_stage(images: int, variants: int, size: int, resolution: int, steps: int, cuda: bool) -> float:
    """The product path: a saved random folder loaded by the stage, 1024 px images in, JPEGs out."""
    from tests.fixtures.neural_gaffer_random import save_random_folder
    from stages.relight import run
    from tests.fixtures.relight_inputs import make_fake_annotate_inputs

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        folder = save_random_folder(work / "neural_gaffer", full=cuda)
        print(f"stage: random folder saved in {time.perf_counter() - start:.1f} s (excluded)")
        faces = (("astronaut", False), ("hopper", False))
        per_face = max(1, -(-images // len(faces)))
        animate, segment = make_fake_annotate_inputs(work / "in", size=size, faces=faces, images=per_face)
        n = len(faces) * per_face
        params = RelightParams(animate_dir=str(animate), segment_dir=str(segment), out_dir=str(work / "out"),
                               backend="neural_gaffer", neural_gaffer_dir=str(folder), variants=variants,
                               resolution=resolution if cuda else 32, num_inference_steps=steps,
                               device="cuda" if cuda else "cpu", preview=False)
        start = time.perf_counter()
        stats = run(params, RunnerParams(workers=0, progress=False), seed=0).stats
        seconds = time.perf_counter() - start
        print(f"relight neural_gaffer stage (piq relight path, in-process, model load included): {n} images x "
              f"{variants} variants in {seconds:.1f} s = {n / seconds:.2f} images/s ({stats['done']} done, {stats['rejected']} refused)")
        return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--variants", type=int, default=5)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--workers", type=int, nargs="+", default=[0], help="0 = in-process; N = N Ray actors")
    parser.add_argument("--resolution", type=int, default=256)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 5, 10, 20, 40])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--stage-images", type=int, default=8, help="GPU: images through the stage (0 = skip)")
    parser.add_argument("--tiny", action="store_true", help="the GPU benchmark's code on a CPU with a tiny model (smoke test)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.device == "cuda" or args.tiny:
        bench_gpu(args.steps, args.batches, args.resolution, args.repeats, args.tiny, args.stage_images, args.variants, args.size)
    else:
        bench_cpu(args.images, args.variants, args.size, args.workers)


if __name__ == "__main__":
    main()
