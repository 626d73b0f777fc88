"""`piq evaluate`: test sets, every method, the paper's metrics with standard errors, the report
(paper 4.2, tables 1, 3, 4; appendix A.1, A.2).

1. Builds the replacement-ID test set from `evaluate.id_shards` (source and target from one
   set) and the replacement-OOD one from `evaluate.ood_shards` (target from another set of the
   same identity), `evaluate.num_pairs` each, seeded, as triplet folders under
   `evaluate.testset_dir` (kept when their plan is unchanged), with images at the model's
   resolution (the trained pipeline's, else data.resolution); adds the user triplet folders.
2. Runs each method of `evaluate.methods` on each data set, batched, on the GPU when there is
   one, fed at the model's resolution; scores at `evaluate.resolution` (null: the model's);
   measures CSIM, FID, AED / APD / AGD, LPIPS, PSNR, SSIM with their backends named.
3. Writes `evaluate.out_dir`: metrics.json (dvc metrics), report.json, tables.md, plots/*.csv
   (dvc plots), grids/*.png and per-pair CSVs.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Any

from pipeline.device import fix_cpu_threads
from pipeline.config.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--limit", type=int, default=None, help="evaluate only the first N pairs of each data set")
    parser.add_argument("--methods", nargs="*", default=None, help="override evaluate.methods")


def model_resolution(params) -> int:
    """The resolution the model was trained at (its pipeline's config; before training:
    data.resolution, what `piq train` will use)."""
    index = Path(params.evaluate.model_dir) / "model_index.json"
    if index.is_file():
        return int(json.loads(index.read_text()).get("resolution", params.data.resolution))
    return params.data.resolution


def datasets(params, resolution: int) -> dict[str, tuple[Path, str]]:
    """{name: (triplet folder, 'ID' | 'OOD' | 'user')}; builds the shard test sets with images at
    `resolution` (the model's: every method gets its inputs at the size the model was trained at)."""
    from eval.data import build_test_set

    p = params.evaluate
    test_data = dataclasses.replace(params.data, caption_dropout=0.0)
    out: dict[str, tuple[Path, str]] = {}
    for name, shards, kind in (("piq_id", p.id_shards, "id"), ("piq_ood", p.ood_shards, "ood")):
        try:
            folder = build_test_set(shards, Path(p.testset_dir) / name, kind, p.num_pairs, p.seed, test_data, resolution)
        except (ValueError, FileNotFoundError) as err:  # no shards, or no identity with two clips
            print(f"evaluate: replacement-{kind.upper()} skipped: {err}")
            continue
        out[name] = (folder, kind.upper())
    for folder in p.user_triplets:
        out[Path(folder).name] = (Path(folder), "user")
    return out


def training_loss(train_metrics: Path) -> dict[str, Any]:
    """{"loss": {"initial", "final"}}: the trainer's loss from its metrics.json, for the headline
    metrics (`dvc exp show` compares one file: columns loss.initial, loss.final); nothing when no
    model was trained here."""
    try:
        made = json.loads(train_metrics.read_text())
    except (OSError, ValueError):
        return {}
    return {"loss": {k.removesuffix("_loss"): made[k] for k in ("initial_loss", "final_loss") if k in made}}


def main(args: argparse.Namespace) -> int:
    from eval.evaluate import MetricSuite, MetricWeightsError, build_methods, evaluate_dataset
    from eval.report import write_report
    from pipeline.weight_files.checks import WeightsFormatError

    params = load_params(args.params)
    fix_cpu_threads(params.cpu_threads)  # before any torch work: CPU floats must not depend on the machine
    model_res = model_resolution(params)
    p = dataclasses.replace(params.evaluate, resolution=params.evaluate.resolution or model_res)
    if p.liveportrait_dir is None and params.animate.liveportrait_dir:
        p = dataclasses.replace(p, liveportrait_dir=params.animate.liveportrait_dir)
    methods = tuple(args.methods) if args.methods else p.methods
    try:  # configured weights first: a bad file stops here, before test sets are built or the GPU used
        suite = MetricSuite(p)
        built = build_methods(methods, p)
    except (MetricWeightsError, WeightsFormatError) as err:
        raise SystemExit(f"evaluate: a configured weights file cannot be used (see `piq models check`):\n{err}") from err
    sets = datasets(params, model_res)
    if not sets:
        raise SystemExit("evaluate: no data set (set evaluate.id_shards / ood_shards / user_triplets)")
    results = {name: evaluate_dataset(name, folder, p, built, suite, args.limit, kind=kind)
               for name, (folder, kind) in sets.items()}
    meta = {"num_pairs": args.limit or p.num_pairs, "resolution": p.resolution, "input_resolution": model_res,
            "methods": list(methods),
            "params": dataclasses.asdict(p)}
    write_report(p.out_dir, results, {name: kind for name, (_, kind) in sets.items()}, meta,
                 headline_extra=training_loss(Path(params.train.reports_dir) / "metrics.json"))
    print(f"evaluate: report in {p.out_dir}/tables.md")
    return 0
