"""`piq sample`: run the trained model on test pairs (paper A.1: 50 steps, guidance 1.5).

Pairs come from the test splits of the release (`sample.shards`; a missing or empty split is
skipped), built exactly as in training (inner face of the target, distorted) but with a fixed
seed and no caption dropout. `sample.mode: fast` samples the distilled student instead; the
speed levers are `sample.*` params (train/sampler.py). Writes a grid (source | driving | output
| target) and a manifest with the PSNR of each output against its target. The first batch's
time (which includes compiling, cached on disk in `sample.compile_cache_dir`) is printed.
"""
from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from eval.metrics import to_tensor
from eval.metrics.pixel import psnr_batch
from pipeline.device import fix_cpu_threads
from pipeline.engine.manifest import write_frame
from pipeline.config.params import load_params
from train.data import make_train_loader
from pipeline.media.grids import write_grid
from train.plots import to_uint8
from train.sampler import load_sampler, model_folder, sampling_kwargs


def main(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    fix_cpu_threads(params.cpu_threads)  # before any torch work: CPU floats must not depend on the machine
    sp, dp = params.sample, params.data
    from eval.data import finished_splits
    from pipeline.release.shards import finished_shards

    # every finished shard of the test splits that exist (a split folder expands to its tar files)
    shards = [str(t) for split in finished_splits(sp.shards)
              for t in (finished_shards(split) if Path(split).is_dir() else [split])]
    if not shards:
        raise SystemExit(f"sample: no finished test shards in {list(sp.shards)} (run `piq shard`)")
    pipe = load_sampler(sp)
    kwargs = sampling_kwargs(sp)
    test = dataclasses.replace(dp, caption_dropout=0.0, resolution=pipe.config.resolution)
    loader, _ = make_train_loader(test, shards, sp.batch_size, seed=params.seed + 2)
    generator = torch.Generator().manual_seed(sp.seed)
    columns: list[list[np.ndarray]] = [[], [], [], []]
    rows = []
    for batch in loader:
        start = time.perf_counter()
        out = pipe(batch["source"], batch["driving"], batch["caption"], generator=generator, output_type="np",
                   **kwargs).images
        if not rows:
            print(f"sample: first batch {time.perf_counter() - start:.1f} s (includes compiling; compiled code is "
                  f"cached in {sp.compile_cache_dir})", flush=True)
        src, drv, tgt = to_uint8(batch["source"]), to_uint8(batch["driving"]), to_uint8(batch["target"])
        psnrs = psnr_batch(to_tensor(list(out), "cpu"), to_tensor(list(tgt), "cpu"))  # evaluation's PSNR
        for b in range(len(out)):
            rows.append({"set_id": batch["set_id"][b], "source_index": batch["source_index"][b],
                         "target_index": batch["target_index"][b], "caption": batch["caption"][b],
                         "psnr": float(psnrs[b])})
        for col, arr in zip(columns, (src, drv, out, tgt)):
            col.append(arr)
        if len(rows) >= sp.num_pairs:
            break
    out_dir = Path(sp.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = [np.concatenate(c)[: sp.num_pairs] for c in columns]
    titles = ["source", "driving", f"{sp.mode}: {kwargs['num_inference_steps']} steps g={kwargs['guidance_scale']}", "target"]
    write_grid(out_dir / "pairs.png", cols, titles)
    manifest = pd.DataFrame(rows[: sp.num_pairs])
    write_frame(manifest, out_dir / "manifest.parquet")
    print(f"sample: {len(manifest)} pairs from {model_folder(sp)}, mean PSNR {manifest['psnr'].mean():.2f} dB -> {out_dir}")
    return 0
