"""`train.gradient_checkpointing: auto`: checkpointing only when the step would not fit.

Checkpointing recomputes every block's forward in the backward pass (~25.5 instead of ~19
TFLOP per sample at 3 x 576 px) to save activation memory. Whether the step fits without it
depends on the GPU, batch size, resolution and compile settings, so `auto` measures it: one
forward + backward passes (two, gradients accumulating) of the UNet at the run's batch size and input shape, on random
latents and embeddings, under the run's autocast, without checkpointing, through the compiled
blocks when the run compiles (compiled and eager steps differ in memory; the compilation is the
one step 1 would otherwise pay). Its peak memory plus
what the first optimizer step will add (Adam's two fp32 moments per trainable weight, an EMA
copy) is the predicted peak; checkpointing stays off if that is under `train.memory_headroom`
of the GPU's memory, and a trial that runs out of memory turns it on. With
`train.encode_ahead` the driving encode it keeps beside the step is measured too; if the step
fits only without it, encoding ahead is turned off instead. On a CPU `auto` is off
(no device memory to run out of; checkpointing only slows a CPU run).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ContextManager, Optional

import torch

from pipeline.device import is_cuda
from train.model import PiQModel

GIB = 2**30


@dataclasses.dataclass(frozen=True)
class CheckpointingChoice:
    enabled: bool
    reason: str
    trial_peak_gib: Optional[float] = None  # measured peak of the trial step
    predicted_peak_gib: Optional[float] = None  # trial + optimizer state
    capacity_gib: Optional[float] = None
    encode_ahead: Optional[bool] = None  # None: as train.encode_ahead says; False: turned off, it would not fit

    def as_metrics(self) -> dict[str, Any]:
        out = {"gradient_checkpointing": self.enabled, "gradient_checkpointing_reason": self.reason}
        if self.encode_ahead is not None:
            out["encode_ahead"] = self.encode_ahead
        for key in ("trial_peak_gib", "predicted_peak_gib", "capacity_gib"):
            if getattr(self, key) is not None:
                out[f"checkpointing_{key}"] = round(getattr(self, key), 2)
        return out


def trial_inputs(model: PiQModel, batch: int, device: torch.device) -> dict[str, torch.Tensor]:
    """Random latents and text of the run's shapes (a local generator: the run's RNG streams
    are left as they were, so exact resume is unaffected)."""
    gen = torch.Generator().manual_seed(0)
    vae, unet = model.comps.vae, model.unet
    side = model.resolution // 2 ** (len(vae.config.block_out_channels) - 1)
    channels = vae.config.latent_channels
    randn = lambda *shape: torch.randn(*shape, generator=gen).to(device)  # noqa: E731
    tokens = model.comps.tokenizer.model_max_length
    out = {"source": randn(batch, channels, side, side), "driving": randn(batch, channels, side, side),
           "noisy_target": randn(batch, channels, side, side), "embeds": randn(batch, tokens, unet.config.cross_attention_dim),
           "t": torch.randint(0, 1000, (batch,), generator=gen).to(device), "pooled": None}
    if model.comps.family == "sdxl":
        pooled = unet.config.projection_class_embeddings_input_dim - 6 * unet.config.addition_time_embed_dim
        out["pooled"] = randn(batch, pooled)
    return out


def optimizer_state_bytes(model: PiQModel, ema: bool) -> int:
    """What Adam (exp_avg, exp_avg_sq in the weights' dtype) and an EMA copy will allocate."""
    weights = sum(p.numel() * p.element_size() for p in model.unet.parameters() if p.requires_grad)
    return weights * (2 + int(ema))


def measure_trial(model: PiQModel, batch: int, autocast: Callable[[], ContextManager], micro_steps: int = 2) -> int:
    """Peak bytes of `micro_steps` forward + backward passes without checkpointing, gradients
    accumulating as under gradient accumulation (the second forward runs beside the first's
    gradients, which is where a real step peaks); gradients are freed afterwards. Raises
    torch.OutOfMemoryError when it does not fit."""
    device = model.device
    x = trial_inputs(model, batch, device)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    try:
        for _ in range(micro_steps):
            with autocast():  # a fresh context each pass (accelerate's is a one-shot generator)
                pred = model.predict(x["source"], x["driving"], x["noisy_target"], x["t"], x["embeds"], x["pooled"])
                loss = pred.float().square().mean()
            loss.backward()
            del pred, loss
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)
    finally:
        del x
        model.unet.zero_grad(set_to_none=True)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def measure_encode(model: PiQModel, batch: int) -> int:
    """Peak bytes one encode of `batch` driving images adds beside what is allocated: what
    `train.encode_ahead` keeps on its side stream while the UNet's step runs."""
    from train.latents import encode_moments

    device = model.device
    torch.cuda.synchronize(device)
    base = torch.cuda.memory_allocated(device)
    torch.cuda.reset_peak_memory_stats(device)
    images = torch.zeros(batch, 3, model.resolution, model.resolution, device=device)
    try:
        encode_moments(model.comps.vae, images, model.vae_chunk)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    finally:
        del images
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def decide(trial: int, optimizer_state: int, encode: Optional[int], capacity: int, headroom: float,
           batch: int) -> CheckpointingChoice:
    """Checkpointing off if the trial's peak plus the optimizer state fits in `headroom` of
    `capacity`. `encode`: bytes `train.encode_ahead` adds (None when it is off); when the step
    fits without it but not with it, encoding ahead is turned off rather than checkpointing on
    (recomputing every forward costs more than the encode it would hide)."""
    predicted = trial + optimizer_state
    fits = predicted <= headroom * capacity
    reason = (f"auto: trial step at batch {batch} peaks at {trial / GIB:.1f} GiB, {predicted / GIB:.1f} GiB with "
              f"optimizer state, {'within' if fits else 'over'} {headroom:.0%} of {capacity / GIB:.1f} GiB")
    ahead = None
    if encode is not None and fits:
        ahead = predicted + encode <= headroom * capacity
        reason += (f"; encoding ahead adds {encode / GIB:.1f} GiB: "
                   f"{'kept' if ahead else 'turned off (it would not fit)'}")
    return CheckpointingChoice(not fits, reason, trial / GIB, predicted / GIB, capacity / GIB, ahead)


def choose_checkpointing(model: PiQModel, setting: bool | str, batch: int, headroom: float,
                         autocast: Callable[[], ContextManager], ema: bool = False,
                         encode_ahead: bool = False) -> CheckpointingChoice:
    """Resolve `train.gradient_checkpointing` (true / false / auto) for this run; `autocast`
    makes the run's autocast context (e.g. `accelerator.autocast`). With `encode_ahead`, auto
    also measures the driving encode that train.encode_ahead keeps beside the step (`decide`)."""
    if setting is True or setting is False:
        return CheckpointingChoice(bool(setting), "set in params")
    if not is_cuda(model.device):
        return CheckpointingChoice(False, "auto on a CPU: off")
    capacity = torch.cuda.get_device_properties(model.device).total_memory
    try:
        trial = measure_trial(model, batch, autocast)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return CheckpointingChoice(True, f"auto: the trial step at batch {batch} ran out of memory",
                                   capacity_gib=capacity / GIB)
    encode = measure_encode(model, batch) if encode_ahead else None
    return decide(trial, optimizer_state_bytes(model, ema), encode, capacity, headroom, batch)
