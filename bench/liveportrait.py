"""Benchmark of the LivePortrait animator: images/s through `animate_batch` (one neutral face, all
its drivers batched on the device) against `animate` one driver at a time, with the published
network sizes and random weights written in the published layout.

    python -m bench.liveportrait --device cuda [--drivers 32] [--batch-size 8]
    python -m bench.liveportrait --tiny            # CPU smoke run of the same path, reduced widths

Every figure times the product's entry points end to end (face mesh on the CPU, crops, networks,
paste-back into the 1024 px image); the face-mesh share is measured separately and printed, since
it runs on the CPU whatever the device. One warm-up call precedes each timed configuration.
"cold" clears the animator's driver-motion cache first (every driver frame meshed, cropped and
run through the motion extractor); "warm" reuses it, as the pipeline does when the same driver
clips drive many neutral faces.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import cv2
import numpy as np
import torch
from matplotlib import cbook
from PIL import Image
from skimage import data

from pipeline.device import is_cuda
from pipeline.backends.animators.liveportrait import LivePortraitAnimator, LivePortraitConfig
from pipeline.backends.animators.liveportrait.checkpoints import write_random_checkpoints


def portraits_1024() -> tuple[np.ndarray, np.ndarray]:
    """The two public-domain portraits, square-cropped around the face and upscaled to 1024 px."""
    astronaut = data.astronaut()[0:260, 95:355]
    hopper = np.array(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))[30:500, 30:500]
    return tuple(cv2.resize(im, (1024, 1024), interpolation=cv2.INTER_CUBIC) for im in (astronaut, hopper))


def timed(fn) -> float:
    if is_cuda():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if is_cuda():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--drivers", type=int, default=32, help="driver pairs for the one neutral face")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--tiny", action="store_true", help="reduced widths on CPU: a smoke run of the path")
    args = parser.parse_args()
    if args.tiny:
        args.device, args.drivers = "cpu", min(args.drivers, 4)
    cfg = LivePortraitConfig.tiny() if args.tiny else LivePortraitConfig()
    neutral, other = portraits_1024()
    drivers = [(neutral, other) if k % 2 == 0 else (other, neutral) for k in range(args.drivers)]
    seeds = list(range(args.drivers))
    n = args.drivers
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        write_random_checkpoints(tmp, seed=0, cfg=cfg)
        print(f"random checkpoints ({'tiny' if args.tiny else 'published sizes'}): {time.perf_counter() - t0:.1f} s")
        results = {}
        for label, bf16 in (("bf16", True), ("fp32", False)):
            if label == "bf16" and not args.device.startswith("cuda"):
                continue
            animator = LivePortraitAnimator(tmp, args.device, bf16=bf16, batch_size=args.batch_size, config=cfg)
            t0 = time.perf_counter()
            animator.setup()
            print(f"[{label}] load: {time.perf_counter() - t0:.1f} s")
            animator.animate_batch(neutral, drivers[:2], seeds=seeds[:2])  # warm-up
            animator.clear_driver_cache()
            cold = timed(lambda animator=animator: animator.animate_batch(neutral, drivers, seeds=seeds))
            batched = timed(lambda animator=animator: animator.animate_batch(neutral, drivers, seeds=seeds))
            single = timed(lambda animator=animator: [animator.animate(neutral, first, last, seed=s)
                                                      for (first, last), s in zip(drivers, seeds)])
            results[label] = n / batched
            print(f"[{label}] batched (batch {args.batch_size}), cold: {n / cold:7.2f} images/s   warm: "
                  f"{n / batched:7.2f} images/s   one at a time, warm: {n / single:7.2f} images/s   "
                  f"ratio batched / one at a time: {single / batched:.2f}")
        mesh = LivePortraitAnimator(tmp, args.device, config=cfg).meshes
        mesh.detect_one(neutral)
        seconds = timed(lambda: [mesh.detect_one(neutral) for _ in range(n)])
        print(f"face mesh alone (CPU, the neutral face per image; square drivers are resized whole, the "
              f"official default): {seconds / n * 1000:.1f} ms per image = at most {n / seconds:.1f} images/s")
        if "bf16" in results:
            print(f"ratio bf16 / fp32 batched: {results['bf16'] / results['fp32']:.2f}")
        if args.device.startswith("cuda"):
            print(f"peak GPU memory: {torch.cuda.max_memory_allocated() / 2**30:.1f} GiB")


if __name__ == "__main__":
    main()
