"""The training loop: accelerate, gradient accumulation to a fixed effective batch, exact resume.

One optimizer step consumes `effective_batch` samples: `batch_size` per process per micro-step,
times the number of processes, times the accumulation steps computed here. Only the main
process writes checkpoints, the loss curve and validation grids. A non-finite loss stops the
run before it can touch the weights or write a checkpoint, so the last good one stays intact.
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional

import torch
from accelerate import Accelerator, PartialState
from tqdm import tqdm

from pipeline.device import is_cuda
from pipeline.config.keys import output_params
from pipeline.config.train import TrainParams
from train import checkpoint
from train.model import PiQModel
from train.encode_ahead import DrivingAhead
from train.memory import choose_checkpointing
from train.speed import (compile_seconds, compile_unet, enable_fp8_training, enable_gpu_defaults,
                         enable_training_allocator, resolve_compile)


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


def accumulation_steps(effective_batch: int, batch_size: int, processes: int) -> int:
    per_step = batch_size * processes
    if effective_batch % per_step:
        raise ValueError(f"train.effective_batch {effective_batch} is not a multiple of batch_size {batch_size} "
                         f"x {processes} process(es)")
    return effective_batch // per_step


@dataclasses.dataclass
class LoopResult:
    step: int
    losses: list[tuple[int, float]]
    resumed_from: Optional[int]
    ema: Any = None  # diffusers EMAModel when train.ema_decay is set: the weights to export
    throughput: dict[str, float] = dataclasses.field(default_factory=dict)  # samples/s, peak memory


class Throughput:
    """Steady-state samples/s of this run's optimizer steps, and what is not in it.

    The first `warmup` steps are excluded (compilation, cuDNN autotuning, loader start-up,
    allocator growth) and timed on their own (`first_step_s`); so is every pause the loop
    takes between steps (validation grids, checkpoints), named in `exclude(name)`. The clock
    stops at each step's end (`step()` is called after the step's loss has been read back, so
    the GPU has finished it): the rate the progress bar shows after the last step is the very
    number metrics.json reports, and pauses after the last step (final validation, checkpoint,
    export) cannot leak into it."""

    def __init__(self, samples_per_step: int, warmup: int = 1) -> None:
        self.samples_per_step, self.warmup = samples_per_step, warmup
        self.steps, self.start = 0, None
        self.created = time.perf_counter()
        self.first_step_s = math.nan
        self.excluded: dict[str, float] = {}
        self._excluded_since_start = 0.0
        self._steady = math.nan  # steady-state seconds up to the end of the last step

    def step(self) -> None:
        self.steps += 1
        _sync()
        now = time.perf_counter()
        if self.steps == self.warmup:
            self.start = now
            self.first_step_s = self.start - self.created
        if self.start is not None:
            self._steady = now - self.start - self._excluded_since_start

    @contextlib.contextmanager
    def exclude(self, name: str) -> Iterator[None]:
        """Time the block as `<name>_s` and keep it out of the steady-state rate."""
        _sync()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            _sync()
            spent = time.perf_counter() - t0
            self.excluded[name] = self.excluded.get(name, 0.0) + spent
            if self.start is not None:
                self._excluded_since_start += spent

    @property
    def steady_s(self) -> float:
        return self._steady

    @property
    def samples_per_s(self) -> float:
        if self.start is None or self.steps <= self.warmup:
            return math.nan
        return (self.steps - self.warmup) * self.samples_per_step / self.steady_s

    def summary(self) -> dict[str, float]:
        out = {"samples_per_s": round(self.samples_per_s, 3), "timed_steps": max(self.steps - self.warmup, 0),
               "steady_s": round(self.steady_s, 3), "first_step_s": round(self.first_step_s, 3)}
        out.update({f"{name}_s": round(spent, 3) for name, spent in sorted(self.excluded.items())})
        if is_cuda():
            out["peak_gpu_mem_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        return out


def _sync() -> None:
    if is_cuda():
        torch.cuda.synchronize()


def _gpu_mem() -> str:
    return f"{torch.cuda.max_memory_allocated() / 2**30:.1f}G" if is_cuda() else "-"


class OutOfMemory(RuntimeError):
    """The accelerator ran out of memory; the message names the params to lower."""


def _oom_message(params: TrainParams, step: int) -> str:
    return (f"out of GPU memory at step {step} with train.batch_size={params.batch_size}, "
            f"train.vae_chunk={params.vae_chunk}, train.gradient_checkpointing={params.gradient_checkpointing}, "
            f"train.frozen_dtype={params.frozen_dtype}: lower train.batch_size (gradient accumulation keeps "
            f"train.effective_batch={params.effective_batch}), lower train.vae_chunk, or set "
            f"train.gradient_checkpointing: true")


def make_accelerator(params: TrainParams) -> Accelerator:
    """An Accelerator whose accumulation keeps the effective batch for the number of processes
    the launcher started (1 without `accelerate launch`). Mixed precision only on a GPU."""
    cpu = not is_cuda()
    if cpu:  # denormal floats are ~50x slower on x86; torch's worker threads created after this inherit it
        torch.set_flush_denormal(True)
    else:
        enable_gpu_defaults()
        enable_training_allocator()
    processes = PartialState(cpu=cpu).num_processes
    accum = accumulation_steps(params.effective_batch, params.batch_size, processes)
    precision = "no" if cpu or params.mixed_precision == "fp32" else params.mixed_precision
    return Accelerator(cpu=cpu, gradient_accumulation_steps=accum, mixed_precision=precision)


def train(
    model: PiQModel,
    batches: Iterable[dict],
    stream: Any,
    params: TrainParams,
    seed: int,
    accelerator: Accelerator,
    on_validate: Optional[Callable[[PiQModel, int], None]] = None,
    max_steps: Optional[int] = None,
    fingerprint: Optional[dict[str, Any]] = None,
) -> LoopResult:
    """Run (or resume) training until `max_steps` (default: params.max_steps). A checkpoint is
    resumed only if it was made under the same `fingerprint` (what decides the weights, e.g.
    backbone, concat mode, data params); one from another configuration is discarded, so an
    ablation never continues another run's weights."""
    max_steps = max_steps or params.max_steps
    compiled_before = compile_seconds()  # this run's compile time is what it adds to the process's
    model.unet.train()
    model.place(accelerator.device, params.frozen_dtype)
    prepare_for_speed(model, params, accelerator.device)
    # the trial runs the compiled blocks (their compilation is paid here instead of in step 1):
    # compiled and eager steps differ in memory, and the decision is about the real step
    trial_start = time.perf_counter()
    choice = choose_checkpointing(model, params.gradient_checkpointing, params.batch_size, params.memory_headroom,
                                  accelerator.autocast, ema=params.ema_decay is not None,
                                  encode_ahead=params.encode_ahead)
    encode_ahead = params.encode_ahead if choice.encode_ahead is None else choice.encode_ahead
    trial_s = time.perf_counter() - trial_start
    if accelerator.is_main_process:
        print(f"train: gradient checkpointing {'on' if choice.enabled else 'off'} ({choice.reason}; {trial_s:.1f} s)",
              flush=True)
    if choice.enabled:
        model.unet.enable_gradient_checkpointing()
    trainable = [p for p in model.unet.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(trainable, lr=params.lr, betas=params.betas, weight_decay=params.weight_decay,
                                 fused=is_cuda())
    model.unet, optimizer = accelerator.prepare(model.unet, optimizer)
    ema = _make_ema(model, params)
    generator = torch.Generator(rng_device(params.rng_device, accelerator.device))
    generator.manual_seed(seed * 1000 + accelerator.process_index)

    step, losses, resumed = 0, [], None
    last = checkpoint.latest(params.checkpoint_dir)
    state = checkpoint.load(last) if last is not None else None
    if state is not None and state.get("fingerprint") != fingerprint:
        if accelerator.is_main_process:
            print(f"train: discarding checkpoints in {params.checkpoint_dir} (made under another configuration)")
            checkpoint.discard(params.checkpoint_dir)
        accelerator.wait_for_everyone()
        state = None
    if state is not None:
        accelerator.unwrap_model(model.unet).load_state_dict(state["unet"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None and state.get("ema") is not None:
            ema.load_state_dict(state["ema"])
        stream.load_state_dict(state["stream"][accelerator.process_index])
        checkpoint.restore_rng(state["rng"][accelerator.process_index], generator)
        step, losses, resumed = state["step"], [tuple(x) for x in state["losses"]], state["step"]
    if step >= max_steps:  # already trained: the curve is still an output (DVC removed it before running)
        if accelerator.is_main_process:
            write_loss_curve(Path(params.reports_dir) / "loss.tsv", losses)
        return LoopResult(step, losses, resumed, ema, {**choice.as_metrics(), "checkpointing_trial_s": round(trial_s, 3)})

    window: list[torch.Tensor] = []
    ahead = DrivingAhead(batches, model, accelerator.gradient_accumulation_steps) if encode_ahead else None
    batches = ahead if ahead is not None else batches
    speed = Throughput(params.effective_batch)
    bar = tqdm(total=max_steps, initial=step, desc="train", unit="step", file=sys.stderr,
               disable=not accelerator.is_main_process, dynamic_ncols=True)
    for batch in batches:
        try:
            with accelerator.accumulate(model.unet):
                loss = model.loss(batch, generator)
                window.append(loss.detach())
                if accelerator.sync_gradients:  # the step's last micro-step, before the weights are touched
                    mean = _window_mean_or_stop(accelerator, window, step + 1, params.checkpoint_dir)
                accelerator.backward(loss)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        except torch.OutOfMemoryError as err:
            raise OutOfMemory(_oom_message(params, step + 1)) from err
        if not accelerator.sync_gradients:
            continue
        step += 1
        if ema is not None:
            ema.step(accelerator.unwrap_model(model.unet).parameters())
        window.clear()
        speed.step()  # after the step's loss is read back: the GPU has finished this step
        if speed.steps == speed.warmup:
            compile_first = max(compile_seconds() - compiled_before, 0.0)
            if accelerator.is_main_process:
                bar.write(f"train: first optimizer step {speed.first_step_s:.1f} s (loader start-up, warm-up; "
                          f"{compile_first:.1f} s compiling so far, the checkpointing trial's included), "
                          f"excluded from samples/s", file=sys.stderr)
        losses.append((step, mean))
        bar.update(1)
        bar.set_postfix(loss=f"{mean:.4f}", samples_s=f"{speed.samples_per_s:.2f}", gpu_mem=_gpu_mem(), refresh=False)
        if accelerator.is_main_process and (step % params.log_every == 0 or step == max_steps):
            write_loss_curve(Path(params.reports_dir) / "loss.tsv", losses)
        if on_validate is not None and accelerator.is_main_process and (step % params.validate_every == 0 or step == max_steps):
            with speed.exclude("validation"):
                on_validate(model, step)
        if params.keep_checkpoints and (step % params.checkpoint_every == 0 or step == max_steps):
            with speed.exclude("checkpoint"):
                _checkpoint(accelerator, model, optimizer, ema, stream, generator, step, losses, params, fingerprint)
        if step >= max_steps:
            break
    bar.close()
    figures = {**speed.summary(), **choice.as_metrics(), "checkpointing_trial_s": round(trial_s, 3),
               "compile_s": round(max(compile_seconds() - compiled_before, 0.0), 3),
               "latent_cache_hits": model.latent_hits, "latent_cache_misses": model.latent_misses,
               "driving_encoded_ahead": 0 if ahead is None else ahead.ahead}
    if model._text is not None:
        figures.update(text_cache_entries=len(model._text), text_cache_hits=model._text.hits,
                       text_cache_misses=model._text.misses)
    if accelerator.is_main_process:
        print(f"train: {figures['samples_per_s']:.2f} samples/s steady state over {figures['timed_steps']} steps; "
              f"first step {figures['first_step_s']:.1f} s, checkpointing trial {trial_s:.1f} s, compiling "
              f"{figures['compile_s']:.1f} s in all (inside those two and validation), "
              f"validation {figures.get('validation_s', 0):.1f} s, checkpoints {figures.get('checkpoint_s', 0):.1f} s "
              f"(excluded); latent cache {model.latent_hits} hits, {model.latent_misses} encoded in the step", flush=True)
    return LoopResult(step, losses, resumed, ema, figures)


def prepare_for_speed(model: PiQModel, params: TrainParams, device: torch.device) -> None:
    """The training speed levers of params (train/speed.py), applied before the optimizer and
    the DDP wrapper see the UNet. FP8 replaces linear layers, so it comes before compiling. The
    frozen VAE encoder (3 images per sample at full resolution) is compiled with the UNet."""
    if params.channels_last:
        model.unet.to(memory_format=torch.channels_last)
    if params.fp8:
        enable_fp8_training(model.unet)
    mode = resolve_compile(params.compile, device)
    inductor_mode = None if params.compile_mode == "default" else params.compile_mode
    compile_unet(model.unet, mode, inductor_mode=inductor_mode)
    if mode != "none":
        model.comps.vae.encoder.compile(dynamic=False, mode=inductor_mode)


def rng_device(setting: str, device: torch.device) -> torch.device:
    """Where the loop's generator draws noise, timesteps and posterior samples
    (`train.rng_device`): `auto` = the training device, so a GPU step has no host-side draw
    and no blocking host-to-GPU copy (each made the host wait for the GPU's queue to drain,
    leaving the GPU idle while the next micro-step was prepared); `cpu` = the CPU generator of
    earlier runs (the same draws on any device). On a CPU both are the CPU."""
    if setting not in ("auto", "cpu"):
        raise ValueError(f"train.rng_device must be auto or cpu, not {setting!r}")
    return torch.device(device) if setting == "auto" else torch.device("cpu")


def _window_mean_or_stop(accelerator: Accelerator, window: list[torch.Tensor], step: int, checkpoint_dir: str) -> float:
    """The mean loss of the optimizer step's micro-steps (over all processes), read back in one
    host sync per optimizer step; raises `TrainingDiverged` on every process if any micro-step
    of any process had a NaN/inf loss. It runs at the step's last micro-step, before its
    backward pass and the optimizer step: the weights are not updated and no checkpoint is
    written. A check per micro-step (`.item()` each) made the host wait for every forward
    before launching its backward. The flag and the mean travel in one all-reduce, so all
    ranks stop together with the same message instead of the healthy ones blocking in the
    next gradient all-reduce."""
    losses = torch.stack(window)
    stats = torch.stack([(~torch.isfinite(losses)).any().float(), losses.mean().float()])
    if accelerator.num_processes > 1:
        stats = accelerator.reduce(stats, reduction="sum")
    bad, total = stats.tolist()
    if bad > 0:
        where = f"on {int(bad)} of {accelerator.num_processes} processes " if accelerator.num_processes > 1 else ""
        local = [f"{x:g}" for x in losses.tolist()]
        raise TrainingDiverged(
            f"loss is not finite {where}at step {step} (this process's micro-steps: {', '.join(local)}); weights not "
            f"updated, no checkpoint written. Last good checkpoint: {checkpoint.latest(checkpoint_dir) or 'none'}"
        )
    return total / accelerator.num_processes


def _make_ema(model: PiQModel, params: TrainParams):
    if params.ema_decay is None:
        return None
    from diffusers.training_utils import EMAModel

    return EMAModel(model.unet.parameters(), decay=params.ema_decay)


def _checkpoint(accelerator: Accelerator, model: PiQModel, optimizer, ema, stream, generator: torch.Generator,
                step: int, losses: list, params: TrainParams, fingerprint: Optional[dict[str, Any]]) -> None:
    streams = accelerator.gather_for_metrics([stream.state_dict()], use_gather_object=True)
    rngs = accelerator.gather_for_metrics([checkpoint.rng_state(generator)], use_gather_object=True)
    if accelerator.is_main_process:
        state = {
            "step": step, "losses": losses, "stream": streams, "rng": rngs, "fingerprint": fingerprint,
            "unet": accelerator.unwrap_model(model.unet).state_dict(), "optimizer": optimizer.state_dict(),
            "ema": None if ema is None else ema.state_dict(),
        }
        checkpoint.save(params.checkpoint_dir, step, state, params.keep_checkpoints)
    accelerator.wait_for_everyone()


def write_loss_curve(path: Path, losses: list[tuple[int, float]]) -> None:
    """The whole curve, rewritten (a resumed run's history comes from its checkpoint)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t", lineterminator="\n")
        writer.writerow(["step", "loss"])
        writer.writerows((s, f"{loss:.6f}") for s, loss in losses)
    tmp.replace(path)


def summary(result: LoopResult, last_n: int = 10) -> dict[str, Any]:
    """Steps and the loss at the start and end of the run: the means of the first and the last
    window of logged steps. A window is `last_n` steps, or half the run when it is shorter
    (so a 5-step run compares steps 1-2 with 4-5 rather than the same five steps twice); a
    1-step run has one window and equal figures."""
    losses = [loss for _, loss in result.losses]
    window = max(1, min(last_n, len(losses) // 2))
    mean = lambda xs: sum(xs) / len(xs) if xs else math.nan  # noqa: E731
    return {"steps": result.step, "initial_loss": mean(losses[:window]), "final_loss": mean(losses[-window:]),
            "loss_window_steps": window, "resumed_from": result.resumed_from}


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(metrics, indent=1, sort_keys=True) + "\n")


def config_fingerprint(train_params: TrainParams, data_params: Any, seed: int) -> dict[str, Any]:
    """What decides the weights: a checkpoint made under another fingerprint is not resumed. The
    run-time keys of `train` (how long a run lasts, how it is logged, compiled, loaded; marked
    with `runtime()` in pipeline/config/train.py) are left out, as for every stage."""
    return {"train": output_params(train_params), "data": output_params(data_params), "seed": seed}
