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

import numpy as np

from pipeline.config.relight import RelightParams
from pipeline.config.runner import RunnerParams


def bench_cpu(args: argparse.Namespace) -> None:
    from pipeline.runner import init_ray
    from stages.relight import run
    from tests.annotate_fixtures import make_fake_annotate_inputs

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        faces = (("astronaut", False), ("hopper", False), ("astronaut", True))
        per_face = max(1, -(-args.images // len(faces)))
        animate, segment = make_fake_annotate_inputs(work / "in", size=args.size, faces=faces, images=per_face)
        n = len(faces) * per_face
        print(f"input: {n} images of {args.size} px x {args.variants} variants, backend sh, procedural maps")
        results = {}
        for workers in args.workers:
            if workers:
                t0 = time.perf_counter()
                init_ray(RunnerParams(workers=max(args.workers)))
                print(f"ray start-up (excluded): {time.perf_counter() - t0:.1f} s")
            params = RelightParams(animate_dir=str(animate), segment_dir=str(segment), out_dir=str(work / f"out{workers}"),
                                   variants=args.variants, preview=False)
            start = time.perf_counter()
            stats = run(params, RunnerParams(workers=workers, threads_per_worker=1, progress=False), seed=0).stats
            seconds = time.perf_counter() - start
            label = "in-process" if workers == 0 else f"ray x{workers}"
            cores = max(workers, 1)
            results[label] = n / seconds
            print(f"{label:>10}: {seconds:6.1f} s  {n / seconds:5.2f} images/s  {n / seconds / cores:5.2f} images/s/core  "
                  f"{n * args.variants / seconds:5.2f} variants/s  ({stats['done']} done, {stats['rejected']} refused)")
        if len(results) > 1:
            base = results.get("in-process")
            for label, rate in results.items():
                if base and label != "in-process":
                    print(f"ratio {label} / in-process: {rate / base:.2f}")


def bench_gpu(args: argparse.Namespace) -> None:
    import torch

    from pipeline.relighters.neural_gaffer import NeuralGafferModel
    from pipeline.relighters.neural_gaffer_random import build_random_components

    cuda = not args.tiny
    device, dt = ("cuda", torch.bfloat16) if cuda else ("cpu", torch.float32)
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    unet, vae, encoder, scheduler = build_random_components(full=cuda)
    model = NeuralGafferModel(unet.to(device, dt).eval(), vae.to(device, dt).eval(), encoder.to(device, dt).eval(), scheduler)
    n_params = sum(p.numel() for p in unet.parameters()) / 1e6
    res = args.resolution if cuda else 32
    where = torch.cuda.get_device_name() if cuda else "CPU (--tiny: a tiny model, figures mean nothing)"
    print(f"NeuralGaffer architecture, random weights, {str(dt).split('.')[-1]}, {res} px, {args.steps} DDIM steps, "
          f"guidance 3 (2x batch); UNet {n_params:.0f} M parameters on {where}")

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    rates = {}
    for batch in args.batches:
        x = torch.rand(batch, 3, res, res, device=device) * 2 - 1
        gen = torch.Generator(device=device).manual_seed(0)
        model.sample(x, x, x, steps=2, guidance=3.0, generator=gen)  # warm-up
        sync()
        if cuda:
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        for _ in range(args.repeats):
            model.sample(x, x, x, steps=args.steps, guidance=3.0, generator=gen)
        sync()
        seconds = (time.perf_counter() - start) / args.repeats
        rates[batch] = batch / seconds
        peak = f"  peak {torch.cuda.max_memory_allocated() / 2**30:5.1f} GiB" if cuda else ""
        print(f"batch {batch:>3}: {seconds * 1000:8.1f} ms/call  {batch / seconds:7.2f} variants/s  "
              f"{batch / seconds / 5:6.2f} images/s (5 variants){peak}")
    if 1 in rates:
        best = max(rates, key=rates.get)
        print(f"ratio batch {best} / batch 1: {rates[best] / rates[1]:.2f}")
    if args.stage_images:
        bench_gpu_stage(args, cuda)


def bench_gpu_stage(args: argparse.Namespace, cuda: bool) -> None:
    """The product path: a saved random folder loaded by the stage, 1024 px images in, JPEGs out."""
    from pipeline.relighters.neural_gaffer_random import save_random_folder
    from stages.relight import run
    from tests.annotate_fixtures import make_fake_annotate_inputs

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        folder = save_random_folder(work / "neural_gaffer", full=cuda)
        print(f"stage: random folder saved in {time.perf_counter() - start:.1f} s (excluded)")
        faces = (("astronaut", False), ("hopper", False))
        per_face = max(1, -(-args.stage_images // len(faces)))
        animate, segment = make_fake_annotate_inputs(work / "in", size=args.size, faces=faces, images=per_face)
        n = len(faces) * per_face
        params = RelightParams(animate_dir=str(animate), segment_dir=str(segment), out_dir=str(work / "out"),
                               backend="neural_gaffer", neural_gaffer_dir=str(folder), variants=args.variants,
                               resolution=args.resolution if cuda else 32, num_inference_steps=args.steps,
                               device="cuda" if cuda else "cpu", preview=False)
        start = time.perf_counter()
        stats = run(params, RunnerParams(workers=0, progress=False), seed=0).stats
        seconds = time.perf_counter() - start
        print(f"stage (piq relight path, in-process, model load included): {n} images x {args.variants} variants "
              f"in {seconds:.1f} s = {n / seconds:.2f} images/s ({stats['done']} done, {stats['rejected']} refused)")


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
        bench_gpu(args)
    else:
        bench_cpu(args)


if __name__ == "__main__":
    main()
