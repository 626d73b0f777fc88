"""`piq train`: fine-tune the backbone on the release shards (paper 3.1, 4.1, table 2).

Single process by default; `piq train --processes N` re-launches itself under `accelerate launch
--config_file configs/accelerate_single_node.yaml`, one process per device (GPUs with NCCL, or CPU
processes with gloo), with NVLink multicast kept off in every process (SAFE_NCCL_ENV).
Gradient accumulation is derived from the number of processes so the effective batch stays
`train.effective_batch`.
Ablations are params: `dvc exp run -S train.concat=channel`, `-S train.backbone=sd15`,
`-S data.relight=false`, `-S data.augment=false`, `-S data.inner_face=false`.

Speed (issue 18, docs/BENCHMARKS.md): with `train.latents_dir` source and target latents come
from `piq latents` (only the augmented driving face is encoded per step);
`train.gradient_checkpointing: auto` measures a trial step and turns checkpointing off when the
step fits. metrics.json's `samples_per_s` is the steady state the progress bar shows: the first
step (`first_step_s`, with compilation `compile_s` inside it), validation (`validation_s`),
checkpoints (`checkpoint_s`) and the export (`export_s`) are timed apart and written beside it.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from pipeline.device import fix_cpu_threads
from pipeline.config.params import load_params
from pipeline.release.reader import empty_split_refusal, resolve_shards
from train.backbones import build_components
from train.data import make_train_loader
from train.latents import open_cache, vae_fingerprint
from train.loop import config_fingerprint, make_accelerator, summary, train, write_metrics
from train.model import PiQModel, export_pipeline
from train.plots import validation_grid

# Set in every launched process: NVLink multicast can take a shared host's GPUs down.
SAFE_NCCL_ENV = {"NCCL_NVLS_ENABLE": "0", "TORCH_SYMM_MEM_DISABLE_MULTICAST": "1", "NVSHMEM_DISABLE_NVLS": "1"}
REPO = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIG = REPO / "configs" / "accelerate_single_node.yaml"


def free_port() -> int:
    """A port for the rendezvous of this run, so two runs on one host do not collide on 29500."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loopback_interface() -> str | None:
    """This host's loopback network interface ('lo' on Linux, 'lo0' on macOS), or None."""
    names = [name for _, name in socket.if_nameindex()]
    return next((n for n in ("lo", "lo0") if n in names), None)


def single_host_env() -> dict[str, str]:
    """What every process of a one-host launch gets: NVLink multicast off (SAFE_NCCL_ENV) and,
    unless the user chose one, gloo on the loopback interface: gloo otherwise talks on the
    address the host name resolves to, which a sandboxed or firewalled host may not route to
    itself, and the ranks then wait on each other until gloo's 30-minute timeout."""
    env = dict(SAFE_NCCL_ENV)
    loopback = loopback_interface()
    if loopback and "GLOO_SOCKET_IFNAME" not in os.environ:
        env["GLOO_SOCKET_IFNAME"] = loopback
    return env


def launch_command(processes: int, params_path: str, port: int) -> list[str]:
    """`accelerate launch` with the project's config, one process per device, running
    `piq train` again inside each process (where LOCAL_RANK is set, so it trains)."""
    return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ACCELERATE_CONFIG),
            "--num_processes", str(processes), "--main_process_port", str(port),
            "-m", "pipeline.commands.piq", "--params", params_path, "train"]


def launch(args: argparse.Namespace) -> int:
    """Re-run this command under the launcher, NVLink multicast off and gloo on the loopback in
    every process (`single_host_env`)."""
    cmd = launch_command(args.processes, args.params, free_port())
    print("train: launching", " ".join(cmd), flush=True)
    return subprocess.run(cmd, env={**os.environ, **single_host_env()}).returncode


def main(args: argparse.Namespace) -> int:
    inherited = all(os.environ.get(k) == v for k, v in SAFE_NCCL_ENV.items())  # as the launcher passed it
    os.environ.update(SAFE_NCCL_ENV)  # and set here too, before any process group exists
    if args.processes == 0:
        args.processes = max(torch.cuda.device_count(), 1)
    if args.processes > 1 and "LOCAL_RANK" not in os.environ:
        return launch(args)
    params = load_params(args.params)
    refusal = empty_split_refusal(params.data.shards, "piq train")
    if refusal:  # one line, exit 2: not a traceback from the loader
        print(refusal, file=sys.stderr)
        return 2
    threads = fix_cpu_threads(params.cpu_threads)  # before any torch work: CPU floats must not depend on the machine
    tp, dp = params.train, params.data
    accelerator = make_accelerator(tp)
    comps = build_components(tp.backbone, tp.pretrained_dir, params.seed, tp.concat)  # checks the folder first
    # the cache must come from this VAE (hashed before training casts it), resolution and shard set
    latents = None if tp.latents_dir is None else open_cache(tp.latents_dir, vae_fingerprint(comps.vae), dp.resolution,
                                                             resolve_shards(dp.shards))
    model = PiQModel(comps, tp.concat, dp.resolution, tp.vae_chunk, tp.text_cache_size)
    loader, stream = make_train_loader(dp, dp.shards, tp.batch_size, params.seed, accelerator.process_index,
                                       accelerator.num_processes, tp.num_workers, latents=latents)
    val_loader, _ = make_train_loader(dataclasses.replace(dp, caption_dropout=0.0), dp.shards, 4, params.seed + 1)
    val_batch = next(iter(val_loader))
    reports = Path(tp.reports_dir)

    def on_validate(m: PiQModel, step: int) -> None:
        validation_grid(m, val_batch, reports / f"val-step-{step:06d}.png")

    result = train(model, loader, stream, tp, params.seed, accelerator, on_validate,
                   fingerprint=config_fingerprint(tp, dp, params.seed))
    launched_safe = all(accelerator.gather_for_metrics([inherited], use_gather_object=True))
    if accelerator.is_main_process:
        t0 = time.perf_counter()
        export_pipeline(model, accelerator.unwrap_model(model.unet), tp.out_dir, result.ema, tp.pretrained_dir)
        # metrics.json (stats without timings): what the run made, the same on every rerun of a CPU run;
        # timing.json (git-ignored, untracked): how it ran (samples/s, compile, first step, export), which varies
        metrics = {**summary(result), "backbone": tp.backbone, "concat": tp.concat, "batch_size": tp.batch_size,
                   "effective_batch": tp.effective_batch, "resolution": dp.resolution,
                   "latent_cache": tp.latents_dir is not None}
        run_facts = {**result.throughput, "resumed_from": metrics.pop("resumed_from"),
                     "processes": accelerator.num_processes, "accumulation": accelerator.gradient_accumulation_steps,
                     "cpu_threads_per_process": threads, "export_s": round(time.perf_counter() - t0, 3)}
        if accelerator.num_processes > 1:  # did the launcher hand every process the multicast-off settings?
            run_facts["multicast_off_all_ranks"] = launched_safe
        write_metrics(reports / "metrics.json", metrics)
        write_metrics(reports / "timing.json", run_facts)
        print(f"train: {result.step} steps, loss {metrics['initial_loss']:.4f} -> {metrics['final_loss']:.4f}; model -> {tp.out_dir}")
    accelerator.wait_for_everyone()
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--processes", type=int, default=1,
                        help="processes, one per device; >1 re-launches under accelerate launch "
                             "(NCCL on GPUs, gloo on CPUs); 0 = one per visible GPU")
