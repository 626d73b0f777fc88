"""Seconds per replaced face of `piq replace`, end to end (decode, detection, identity, crop,
parse, model, paste-back, watermark, encode), beside each part's time (wall clock) and the run's process CPU time (on a shared machine the
wall clock includes waiting for the core; CPU time is what an idle core would take).

    python -m bench.replace --clock cpu         # classical on one CPU core, 12 MP JPEG
    python -m bench.replace --device cuda       # piq: SDXL architecture, random weights, 576 px, compiled
    python -m bench.replace --method piq --tiny --identity random-arcface --repeats 1   # the piq path on a CPU

The identity encoder is params' (`replace.identity_encoder`: dlib's ResNet by default) or, with
`--identity random-arcface` (the default on cuda: dlib and its 100 MB of models do not travel
to the device), ArcFace from an arcface_torch iresnet50 `backbone.pth` in the published layout
with random values (tests/fixtures/eval_weight_specs.py); random weights carry no identity, so the
same-identity guard is set to let any face through (`max_identity_distance` 2) and the face is
the nearest by that random embedding: the timing is the same work.

The photo: the two public-domain portraits side by side (tests/fixtures/photos.py) enlarged onto
a 4000 x 3000 canvas (12 MP, faces ~450 px); REF: another "photo" of the astronaut at 1600 px.
The run goes through the product's entry point (`facereplace.cli.run_replace`, what `piq
replace` runs); one warm-up run (model loading, compiling) is not counted. For piq, the
sampler-only floor is the `PiQPerfectPipeline.__call__` time of the same runs; the overhead is
end to end minus that.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import tempfile
import time
import types
from pathlib import Path

import cv2
import numpy as np

PARTS = ("decode", "detect", "identity", "crop", "parse", "model", "paste", "watermark", "encode")


def make_inputs(root: Path) -> tuple[Path, Path]:
    from tests.fixtures.photos import astronaut_reference, group_photo, save_jpeg

    group = group_photo()
    scale = 3000 / group.shape[0]
    big = cv2.resize(group, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    canvas = np.full((3000, 4000, 3), 190, np.uint8)
    w = min(4000, big.shape[1])
    canvas[:, :w] = big[:, :w]
    ref = cv2.resize(astronaut_reference(), (1600, 1600), interpolation=cv2.INTER_CUBIC)
    return save_jpeg(root / "photo.jpg", canvas), save_jpeg(root / "ref.jpg", ref)


def build_piq_folder(root: Path, tiny: bool = False) -> Path:
    """A PiQPerfectPipeline folder with the full SDXL architecture (random weights) at 576 px,
    built on the GPU; `tiny`: the tests' tiny SDXL-like models at 32 px, on the CPU."""
    import torch

    from bench.sdxl import full_components
    from train.backbones import tiny_components
    from train.export import write_pipeline_folder

    if tiny:
        comps = tiny_components("sdxl", seed=3)
        return write_pipeline_folder(comps, comps.unet, "spatial", 32, root / "piq")
    with torch.device("cuda"):
        comps = full_components(dtype=torch.float32)
    out = write_pipeline_folder(comps, comps.unet, "spatial", 576, root / "piq")
    del comps
    torch.cuda.empty_cache()
    return out


def random_arcface(root: Path, rp):
    """`rp` (ReplaceParams) with ArcFace from a random arcface_torch iresnet50 backbone.pth."""
    from tests.fixtures.eval_weight_specs import IRESNET50, write_arcface_backbone

    path = write_arcface_backbone(root / "backbone.pth", IRESNET50)
    return dataclasses.replace(rp, identity_encoder="arcface", identity_weights=str(path), max_identity_distance=2.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    ap.add_argument("--method", choices=("classical", "piq"), help="default: classical on cpu, piq on cuda")
    ap.add_argument("--tiny", action="store_true", help="piq with the tests' tiny random models (checks the path on a CPU)")
    ap.add_argument("--identity", choices=("params", "random-arcface"),
                    help="identity encoder: params' (default on cpu) or a random ArcFace file (default on cuda)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cores", type=int, default=1, help="CPU cores (classical aim: 1)")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                    help="per-part clock: wall, or this process's CPU time (a shared machine's wall clock "
                         "counts the wait for the core)")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity") and args.device == "cpu":
        cores = set(sorted(os.sched_getaffinity(0))[: args.cores])
        # every thread, not only this one: numpy's BLAS pool, started at import, kept all cores
        # (its work and spin-waiting then ran beside the pinned thread and counted as CPU time)
        tasks = os.listdir("/proc/self/task") if os.path.isdir("/proc/self/task") else ["0"]
        for tid in tasks:
            os.sched_setaffinity(int(tid), cores)
    import torch

    torch.set_num_threads(args.cores)
    cv2.setNumThreads(args.cores)

    import facereplace.cli
    import facereplace.replace
    import facereplace.target

    if args.clock == "cpu":  # the product's part timers read this process's CPU time instead
        for mod in (facereplace.cli, facereplace.replace, facereplace.target):
            mod.time = types.SimpleNamespace(perf_counter=time.process_time)
    from facereplace.cli import run_replace
    from facereplace.methods import build_method
    from pipeline.config.params import load_params

    params = load_params(args.params)
    root = Path(tempfile.mkdtemp(prefix="bench_replace_"))
    photo, ref = make_inputs(root)
    method_name = args.method or ("piq" if args.device == "cuda" else "classical")
    rp = params.replace
    if (args.identity or ("random-arcface" if args.device == "cuda" else "params")) == "random-arcface":
        rp = random_arcface(root, rp)
    sampler_times: list[float] = []
    sync = torch.cuda.synchronize if args.device == "cuda" else (lambda: None)
    if method_name == "piq":
        model_dir = build_piq_folder(root, args.tiny)
        rp = dataclasses.replace(rp, model_dir=str(model_dir), num_inference_steps=args.steps, device=args.device)
        sample = params.sample if args.device == "cuda" else dataclasses.replace(params.sample, compile="none")
        method = build_method("piq", rp, sample, args.device)
        pipe = method.pipe

        class Timed:  # the sampler-only floor: PiQPerfectPipeline.__call__, synchronised
            config = pipe.config
            replace_crops = type(pipe).replace_crops  # the pipeline's crop handling around the timed call below

            def __call__(self, *a, **k):
                sync()
                t = time.perf_counter()
                out = pipe(*a, **k)
                sync()
                sampler_times.append(time.perf_counter() - t)
                return out

        method.pipe = Timed()
    else:
        method = build_method("classical", rp)
    params = dataclasses.replace(params, replace=rp)
    print(f"identity encoder: {rp.identity_encoder} {rp.identity_weights or ''}")
    ns = argparse.Namespace(photo=str(photo), driving=str(ref), face=None, driving_face=None, method=method.name,
                            allow_cross_identity=False, caption="")
    runs = []
    for i in range(args.repeats + 1):
        ns.output = str(root / f"out{i}.jpg")
        t, c = time.perf_counter(), time.process_time()
        parts = run_replace(ns, params, method)
        parts["total"], parts["cpu"] = time.perf_counter() - t, time.process_time() - c
        if i:  # the first run loads models (and compiles)
            runs.append(parts)
        else:
            print(f"warm-up run (loading{', compiling' if args.device == 'cuda' else ''}): {parts['total']:.1f} s")
    sampler_times = sampler_times[1:] or sampler_times  # the warm-up's call compiles
    med = {k: statistics.median(r.get(k, 0.0) for r in runs) for k in (*PARTS, "total", "cpu")}
    print(f"\n{method.name} on {args.device} ({args.cores} CPU core(s)), 12 MP JPEG, {args.repeats} runs, "
          f"median s per face ({args.clock} clock per part):")
    for k in PARTS:
        print(f"  {k:10s} {med[k]:7.3f}")
    print(f"  {'total':10s} {med['total']:7.3f}   (end to end, one replaced face)")
    print(f"  {'cpu time':10s} {med['cpu']:7.3f}   (process CPU seconds of the same run: the wall time on an idle core)")
    if sampler_times:
        floor = statistics.median(sampler_times)
        print(f"  sampler only {floor:7.3f}   ({args.steps} steps, guidance {params.replace.guidance_scale})")
        print(f"  overhead     {med['total'] - floor:7.3f}   (end to end - sampler); on the GPU side "
              f"{med['model'] - floor:.3f} s (resize, transfer)")


if __name__ == "__main__":
    main()
