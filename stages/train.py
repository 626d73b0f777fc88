"""`piq train`: fine-tune the backbone on the release shards (paper 3.1, 4.1, table 2).

Single process by default; `--processes N` re-launches itself with one process per device
(accelerate launch on GPUs, torchrun on CPUs), NCCL multicast kept off in every process.
Ablations are params: `dvc exp run -S train.concat=channel`, `-S train.backbone=sd15`,
`-S data.relight=false`, `-S data.augment=false`, `-S data.inner_face=false`.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import torch
from diffusers import EulerDiscreteScheduler

from pipeline.params import load_params
from train.backbones import build_components
from train.data import make_train_loader
from train.loop import config_fingerprint, make_accelerator, summary, train, write_metrics
from train.model import PiQModel
from train.pipeline import PiQPerfectPipeline
from train.plots import validation_grid

# Set in every launched process: NVLink multicast can take a shared host's GPUs down.
SAFE_NCCL_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}


def launch(args: argparse.Namespace) -> int:
    """Re-run this command with `args.processes` processes: `accelerate launch --multi_gpu` on
    GPUs; torchrun (the same launcher underneath) on CPUs, where accelerate then uses gloo."""
    if torch.cuda.is_available():
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(args.processes),
               "--num_machines", "1", "--dynamo_backend", "no"]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(args.processes), "--standalone"]
    cmd += ["-m", "pipeline.cli", "train", "--params", args.params]
    return subprocess.run(cmd, env={**os.environ, **SAFE_NCCL_ENV}).returncode


def main(args: argparse.Namespace) -> int:
    os.environ.update(SAFE_NCCL_ENV)
    if args.processes > 1 and "LOCAL_RANK" not in os.environ:
        return launch(args)
    params = load_params(args.params)
    tp, dp = params.train, params.data
    accelerator = make_accelerator(tp)
    comps = build_components(tp.backbone, tp.pretrained_dir, params.seed)
    model = PiQModel(comps, tp.concat, dp.resolution)
    loader, stream = make_train_loader(dp, dp.shards, tp.batch_size, params.seed, accelerator.process_index,
                                       accelerator.num_processes, tp.num_workers)
    val_loader, _ = make_train_loader(dataclasses.replace(dp, caption_dropout=0.0), dp.shards, 4, params.seed + 1)
    val_batch = next(iter(val_loader))
    reports = Path(tp.reports_dir)

    def on_validate(m: PiQModel, step: int) -> None:
        validation_grid(m, val_batch, reports / f"val-step-{step:06d}.png")

    result = train(model, loader, stream, tp, params.seed, accelerator, on_validate,
                   fingerprint=config_fingerprint(tp, dp, params.seed))
    if accelerator.is_main_process:
        unet = accelerator.unwrap_model(model.unet)
        pipe = PiQPerfectPipeline(unet, comps.vae, comps.text_encoder, comps.tokenizer,
                                  EulerDiscreteScheduler.from_config(comps.scheduler.config), comps.text_encoder_2,
                                  comps.tokenizer_2, concat=tp.concat, resolution=dp.resolution)
        pipe.save_pretrained(tp.out_dir)
        metrics = {**summary(result), "backbone": tp.backbone, "concat": tp.concat, "processes": accelerator.num_processes,
                   "accumulation": accelerator.gradient_accumulation_steps}
        write_metrics(reports / "metrics.json", metrics)
        print(f"train: {result.step} steps, loss {metrics['initial_loss']:.4f} -> {metrics['final_loss']:.4f}; model -> {tp.out_dir}")
    accelerator.wait_for_everyone()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, default=1, help="processes (devices); >1 runs under accelerate launch")
