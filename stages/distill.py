"""`piq distill`: the few-step student of the trained model (train/distill.py), for `sample.mode: fast`.

Reads the trained pipeline (`distill.teacher_dir`, the output of `piq train`) and the training
shards (`data.shards`, captions kept: the student is conditional only), trains the student with
the training loop (`train.loop.train`: accumulation, exact resume, checkpoints) and exports it as
its own `PiQPerfectPipeline` folder (`distill.out_dir`) with a DDIM scheduler, sampled with
`sample.fast_steps` steps and no guidance.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from pipeline.device import fix_cpu_threads
from pipeline.config.params import load_params


def teacher_components(folder: str):
    """The trained pipeline's parts, in fp32 on the CPU (the loop places them)."""
    from train.piq_pipeline import PiQPerfectPipeline

    if not (Path(folder) / "model_index.json").is_file():
        raise FileNotFoundError(f"distill: no trained model at {folder} (run `piq train` first)")
    pipe = PiQPerfectPipeline.from_pretrained(folder, local_files_only=True)
    return pipe.components_view, pipe.config.concat, pipe.config.resolution


def loop_params(params):
    """The training loop's params for the distillation run (the distill section decides)."""
    d = params.distill
    return dataclasses.replace(
        params.train, out_dir=d.out_dir, reports_dir=d.reports_dir, checkpoint_dir=d.checkpoint_dir,
        batch_size=d.batch_size, effective_batch=d.effective_batch, max_steps=d.max_steps, lr=d.lr,
        mixed_precision=d.mixed_precision, gradient_checkpointing=d.gradient_checkpointing, compile=d.compile,
        fp8=False, ema_decay=None, validate_every=d.max_steps)


def teacher_stamp(folder: str) -> list:
    """Size and mtime of the teacher's UNet files: a new teacher discards old checkpoints."""
    files = sorted((Path(folder) / "unet").glob("*"))
    return [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]


def main(args: argparse.Namespace) -> int:
    from train.data import make_train_loader
    from train.distill import DistillModel
    from train.export import write_pipeline_folder
    from train.loop import make_accelerator, summary, train, write_metrics

    params = load_params(args.params)
    fix_cpu_threads(params.cpu_threads)  # before any torch work: CPU floats must not depend on the machine
    d, data = params.distill, params.data
    tp = loop_params(params)
    comps, concat, resolution = teacher_components(d.teacher_dir)
    model = DistillModel(comps, concat, resolution, d.student_steps, d.teacher_steps, d.guidance_scale, tp.vae_chunk)
    accelerator = make_accelerator(tp)
    conditions = dataclasses.replace(data, caption_dropout=0.0, resolution=resolution)
    loader, stream = make_train_loader(conditions, data.shards, tp.batch_size, params.seed + 7,
                                       accelerator.process_index, accelerator.num_processes, tp.num_workers)
    fingerprint = {"distill": dataclasses.asdict(d), "data": dataclasses.asdict(conditions), "seed": params.seed,
                   "teacher": teacher_stamp(d.teacher_dir)}
    fingerprint = json.loads(json.dumps(fingerprint))  # tuples -> lists, as a loaded checkpoint has them
    result = train(model, loader, stream, tp, params.seed + 7, accelerator, fingerprint=fingerprint)
    if accelerator.is_main_process:
        unet = accelerator.unwrap_model(model.unet)
        write_pipeline_folder(model.comps, unet, concat, resolution, d.out_dir, d.teacher_dir, scheduler=model.sampler)
        # as `piq train`: metrics.json (a DVC metric) holds what the run made, the same on every rerun;
        # timing.json (git-ignored) how it ran
        metrics = {**summary(result), "student_steps": d.student_steps, "teacher_steps": d.teacher_steps,
                   "guidance_scale": d.guidance_scale}
        run_facts = {**result.throughput, "resumed_from": metrics.pop("resumed_from")}
        write_metrics(Path(d.reports_dir) / "metrics.json", metrics)
        write_metrics(Path(d.reports_dir) / "timing.json", run_facts)
        print(f"distill: {result.step} steps, loss {metrics['initial_loss']:.5f} -> {metrics['final_loss']:.5f}; "
              f"{d.student_steps}-step student -> {d.out_dir}")
    accelerator.wait_for_everyone()
    return 0
