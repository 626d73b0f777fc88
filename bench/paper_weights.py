"""Random weights for every paper backend, each in its PUBLISHED layout, under one weights root
laid out as configs/paper.yaml expects: `piq params --profile configs/paper.yaml --weights-root
ROOT` then loads each backend's real loading path from files with the official names, config
files, key names and (with `--full`) sizes. Nothing is downloaded; the values are random.

    python -m bench.paper_weights ROOT [--full] [--only caption train ...]

The writers are the tests' (tests/fixtures/published_layouts.py, tests/fixtures/llava_random.py,
tests/fixtures/neural_gaffer_release.py, tests/fixtures/eval_weight_specs.py, tests/fixtures/liveportrait_landmarks.py and
LivePortrait's own `write_random_checkpoints`), called with their `full` sizes here. `--full`
builds the large models on the GPU when there is one (SDXL ~3.5 B parameters, LLaVA-1.5-7B)
and takes ~35 GB of disk: SDXL fp16 7 GB, LLaVA fp16 14 GB, Zero123-XL + NeuralGaffer 8.5 GB,
the rest ~1.5 GB. Without `--full`: tiny models of the same classes and layouts (a CPU dry run;
`piq models check` then names the shapes that are not the published ones, for LivePortrait
only: its writer has one size).

Not written: IP-Adapter (h94/IP-Adapter, evaluation baseline A.1): the acceptance run leaves
it unavailable.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path
from typing import Callable

import torch

from pipeline.device import is_cuda

# component -> (folder or file under the root, as configs/paper.yaml names it)
LAYOUT: dict[str, str] = {
    "animate": "liveportrait",
    "caption": "llava-1.5-7b-hf",
    "segment": "face-parsing",
    "relight": "zero123-xl",            # + neural_gaffer_res256/
    "train": "sdxl-base-1.0",
    "evaluate.identity": "arcface/backbone.pth",
    "evaluate.fid": "fid/pt_inception-2015-12-05-6726825d.pth",
    "evaluate.lpips": "lpips/alexnet-owt-7be5be79.pth",
    "evaluate.motion": "deep3d/face_recon_feat0.2_augment",
}


def _liveportrait(root: Path, full: bool) -> None:
    from pipeline.backends.animators.liveportrait.checkpoints import write_random_checkpoints
    from tests.fixtures.liveportrait_landmarks import write_landmark_onnx

    folder = root / LAYOUT["animate"]
    write_random_checkpoints(folder)  # the published sizes (~500 MB) either way: one writer, one size
    write_landmark_onnx(folder / "landmark.onnx")  # the published signature (203 points); a small stand-in network


def _llava(root: Path, full: bool) -> None:
    from tests.fixtures.published_layouts import llava_hf_folder

    llava_hf_folder(root / LAYOUT["caption"], shards=3 if full else 2, full=full)


def _segformer(root: Path, full: bool) -> None:
    from tests.fixtures.published_layouts import face_parsing_folder

    # "skin" everywhere: every image then has a face mask for relighting and the training cut
    face_parsing_folder(root / LAYOUT["segment"], winner="skin", full=full)


def _neural_gaffer(root: Path, full: bool) -> None:
    from tests.fixtures.neural_gaffer_release import write_release

    write_release(root, full=full)  # root/zero123-xl + root/neural_gaffer_res256


def _sdxl(root: Path, full: bool) -> None:
    from tests.fixtures.published_layouts import diffusers_fp16_folder

    diffusers_fp16_folder(root / LAYOUT["train"], "sdxl", full=full)


def _eval(root: Path, full: bool) -> None:
    from tests.fixtures.eval_weight_specs import (IRESNET50, write_arcface_backbone, write_deep3d_checkpoint,
                                         write_pytorch_fid_inception, write_torchvision_alexnet)

    for key in ("evaluate.identity", "evaluate.fid", "evaluate.lpips"):
        (root / LAYOUT[key]).parent.mkdir(parents=True, exist_ok=True)
    write_arcface_backbone(root / LAYOUT["evaluate.identity"], IRESNET50)
    write_pytorch_fid_inception(root / LAYOUT["evaluate.fid"])
    write_torchvision_alexnet(root / LAYOUT["evaluate.lpips"])
    write_deep3d_checkpoint(root / "deep3d")  # deep3d/face_recon_feat0.2_augment/epoch_20.pth


WRITERS: dict[str, Callable[[Path, bool], None]] = {
    "animate": _liveportrait, "caption": _llava, "segment": _segformer, "relight": _neural_gaffer,
    "train": _sdxl, "evaluate": _eval,
}


def _bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


def write_paper_weights(root: str | Path, full: bool = False, only: list[str] | None = None,
                        log: Callable[[str], None] = print) -> dict[str, dict]:
    """Write the selected backends' folders under `root` (replacing what is there); returns
    {backend: {"seconds", "bytes"}}."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    done: dict[str, dict] = {}
    for name, writer in WRITERS.items():
        if only and name not in only:
            continue
        targets = [root / v for k, v in LAYOUT.items() if k.split(".")[0] == name]
        if name == "relight":
            targets.append(root / "neural_gaffer_res256")
        if name == "evaluate":
            targets = [root / "arcface", root / "fid", root / "lpips", root / "deep3d"]
        for t in targets:
            if t.is_dir():
                shutil.rmtree(t)
        t0 = time.perf_counter()
        writer(root, full)
        if is_cuda():
            torch.cuda.empty_cache()
        size = sum(_bytes(t) for t in targets if t.exists())
        done[name] = {"seconds": round(time.perf_counter() - t0, 1), "bytes": size}
        log(f"weights {name:9s} {'full' if full else 'tiny'}: {size / 2**30:7.2f} GiB in {done[name]['seconds']:6.1f} s")
    return done


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="weights root (configs/paper.yaml's weights_root)")
    parser.add_argument("--full", action="store_true", help="published sizes (GPU advised: ~35 GB written)")
    parser.add_argument("--only", nargs="+", choices=list(WRITERS), default=None)
    args = parser.parse_args(argv)
    done = write_paper_weights(args.root, args.full, args.only)
    print(json.dumps(done))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
