"""The PiQPerfect model: a backbone UNet fed [source | driving | noisy target] latents.

Only the UNet trains; the VAE and text encoders are frozen (paper 4.1 fine-tunes SDXL's UNet).
The noise and the loss touch the target only: source and driving latents enter clean at every
timestep and their part of the UNet's output is ignored (`train/layout.py`).

Every component is a registered submodule, so `model.to(device)` moves all of them (a VAE left
on the CPU crashed the first GPU step once). `place()` also sets precisions: the UNet keeps
fp32 master weights (autocast computes in bf16), the frozen parts run in `frozen_dtype` (bf16 on
a GPU: they need no master copy, and half the memory lets batch 16 fit beside the UNet).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel

from pipeline.device import is_cuda, resolve_dtype
from train.backbones import Components
from train.conditioning import TextCache, predict_target
from train.latents import encode_moments, sample_latents
from train.layout import ConcatMode, in_channels

def widen_conv_in(unet: UNet2DConditionModel, latent_channels: int = 4) -> None:
    """Channel concatenation (ablation): conv_in takes 3 x latent_channels inputs. The weights
    for the noisy target (the last block, per `join`) are the pretrained ones, the new weights
    for source and driving start at zero, so at step 0 the UNet behaves as pretrained.
    `register_to_config` makes `from_pretrained` rebuild the wide layer."""
    old = unet.conv_in
    if old.in_channels != latent_channels:
        raise ValueError(f"conv_in already has {old.in_channels} input channels")
    new = torch.nn.Conv2d(3 * latent_channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    new.to(device=old.weight.device, dtype=old.weight.dtype)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, 2 * latent_channels :] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=3 * latent_channels)


@dataclasses.dataclass
class NoisyInputs:
    """One draw of the training objective's inputs (clean latents, noise, timesteps, text)."""

    source: torch.Tensor
    driving: torch.Tensor
    target: torch.Tensor
    noise: torch.Tensor
    t: torch.Tensor
    noisy: torch.Tensor
    embeds: torch.Tensor
    pooled: Optional[torch.Tensor]


class PiQModel(torch.nn.Module):
    """UNet (trained), VAE and text encoders (frozen) as submodules; `loss(batch)` is one
    evaluation of the training objective."""

    def __init__(self, comps: Components, concat: ConcatMode, resolution: int, vae_chunk: int = 16,
                 text_cache_size: int = 4096) -> None:
        super().__init__()
        self.comps, self.concat, self.resolution, self.vae_chunk = comps, concat, resolution, vae_chunk
        self.text_cache_size = text_cache_size
        self.latent_hits = self.latent_misses = 0  # cached source/target latents used / encoded in the step
        self.unet = comps.unet
        self.vae = comps.vae
        self.text_encoder = comps.text_encoder
        if comps.text_encoder_2 is not None:
            self.text_encoder_2 = comps.text_encoder_2
        latent = comps.vae.config.latent_channels
        if concat == "channel" and self.unet.config.in_channels != in_channels(latent, "channel"):
            widen_conv_in(self.unet, latent)
        for frozen in self.frozen_parts():
            frozen.requires_grad_(False)
            frozen.eval()
        self._text: Optional[TextCache] = None

    def frozen_parts(self) -> list[torch.nn.Module]:
        return [m for m in (self.comps.vae, self.comps.text_encoder, self.comps.text_encoder_2) if m is not None]

    def place(self, device: torch.device | str, frozen_dtype: str = "auto") -> "PiQModel":
        """Every component on `device`; the UNet in fp32 (master weights), the frozen parts in
        `frozen_dtype` (`auto`: bf16 on CUDA, fp32 on a CPU)."""
        self.to(device)
        dtype = resolve_dtype(frozen_dtype, device)
        for frozen in self.frozen_parts():
            frozen.to(dtype=dtype)
        if is_cuda(device):  # NHWC convolutions: the VAE encodes 3 images per sample
            self.comps.vae.to(memory_format=torch.channels_last)
        self._text = None
        return self

    @property
    def device(self) -> torch.device:
        return next(self.unet.parameters()).device

    def text(self, device: torch.device) -> TextCache:
        if self._text is None or self._text.device != device:
            self._text = TextCache(self.comps, device, self.text_cache_size)
        return self._text

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Images in [-1, 1] -> scaled fp32 latents (a sample of the VAE posterior), in chunks
        of `vae_chunk` images: one call on 3 x 16 images of 576 px does not fit beside the
        UNet's training step on 80 GB."""
        vae = self.comps.vae
        images = images.to(device=self.device, dtype=vae.dtype)
        parts = [vae.encode(chunk).latent_dist.sample(generator=generator) for chunk in images.split(self.vae_chunk)]
        return torch.cat(parts).float() * vae.config.scaling_factor

    @torch.no_grad()
    def cached_latents(self, batch: dict, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """(source, driving, target) latents of a batch whose source and target come as cached
        VAE moments (`train/latents.py`): only the driving images, and any source/target image
        the cache lacked, go through the VAE; then one posterior sample of all three is drawn,
        as `encode` would draw it. Counts hits and misses. Driving moments encoded ahead on a
        side stream (`train/encode_ahead.py`, `batch["driving_moments"]`) are used as they are."""
        vae, device = self.comps.vae, self.device
        rows: dict[str, list] = {}
        parts: dict[str, torch.Tensor] = {}
        ahead = batch.get("driving_moments")
        pixels = [] if ahead is not None else [batch["driving"].to(device, non_blocking=True)]
        for role in ("source", "target"):
            moments = batch[f"{role}_moments"]
            if isinstance(moments, torch.Tensor):  # every row cached (the usual batch): one asynchronous copy
                parts[role] = moments.to(device, non_blocking=True).to(vae.dtype)  # cast there: the host makes no copy
                self.latent_hits += len(moments)
                continue
            rows[role] = list(moments) if moments is not None else [None] * len(batch[role])
            missing = [batch[role][i] for i, m in enumerate(rows[role]) if m is None]
            self.latent_misses += len(missing)
            self.latent_hits += len(rows[role]) - len(missing)
            if missing:
                pixels.append(torch.stack(missing).to(device, non_blocking=True))
        encoded = iter(encode_moments(vae, torch.cat(pixels), self.vae_chunk) if pixels else ())
        n_driving = len(batch["driving"])
        driving = ahead.wait() if ahead is not None else torch.stack([next(encoded) for _ in range(n_driving)])
        for role, rows_of_role in rows.items():
            parts[role] = torch.stack([next(encoded) if m is None else m.to(device, non_blocking=True).to(vae.dtype)
                                       for m in rows_of_role])
        moments = torch.cat([parts["source"], driving.to(vae.dtype), parts["target"]])
        return sample_latents(moments, vae.config.scaling_factor, generator)

    def noisy_inputs(self, batch: dict, generator: Optional[torch.Generator] = None,
                     t: Optional[int] = None) -> NoisyInputs:
        """Encode the triplet (or read source and target from the latent cache), draw noise and
        timesteps (or use the fixed `t`), noise the target and embed the captions. The draw order
        (latents, noise, timesteps) is what exact resume relies on: change it and resumed runs
        stop matching."""
        device = self.device
        if "source_moments" in batch:
            latents = self.cached_latents(batch, generator)
        else:
            latents = self.encode(torch.cat([batch["source"], batch["driving"], batch["target"]]), generator)
        source, driving, target = latents.chunk(3)
        sched = self.comps.scheduler
        # drawn on the generator's device and moved: a CPU generator can drive a GPU run (validation
        # grids), while the training loop's generator lives on the GPU (`train.rng_device: auto`),
        # where the draws need no host copy, which would wait for the GPU to finish the last step
        draw_on = generator.device if generator is not None else device
        noise = torch.randn(target.shape, generator=generator, dtype=target.dtype, device=draw_on).to(device)
        if t is None:
            steps = torch.randint(0, sched.config.num_train_timesteps, (target.shape[0],), generator=generator,
                                  device=draw_on).to(device)
        else:
            steps = torch.full((target.shape[0],), t, dtype=torch.long, device=device)
        embeds, pooled = self.text(device)(batch["caption"])
        return NoisyInputs(source, driving, target, noise, steps, sched.add_noise(target, noise, steps), embeds, pooled)

    def predict(self, source: torch.Tensor, driving: torch.Tensor, noisy_target: torch.Tensor, t: torch.Tensor,
                embeds: torch.Tensor, pooled: Optional[torch.Tensor]) -> torch.Tensor:
        """The UNet's prediction for the target latent."""
        return predict_target(self.unet, self.comps.family, source, driving, noisy_target, t, embeds, pooled,
                              self.resolution, self.concat)

    def loss(self, batch: dict, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Denoising loss on the target third; `generator` makes noise and timesteps reproducible."""
        x = self.noisy_inputs(batch, generator)
        sched = self.comps.scheduler
        goal = sched.get_velocity(x.target, x.noise, x.t) if sched.config.prediction_type == "v_prediction" else x.noise
        pred = self.predict(x.source, x.driving, x.noisy, x.t, x.embeds, x.pooled)
        return F.mse_loss(pred.float(), goal.float())

    @torch.no_grad()
    def x0_estimate(self, batch: dict, t: int, seed: int = 0) -> torch.Tensor:
        """One-step estimate of the clean target at timestep `t`, decoded to pixels in [-1, 1]
        (validation grids: shows whether the model uses the driving face)."""
        x = self.noisy_inputs(batch, torch.Generator().manual_seed(seed), t=t)
        pred = self.predict(x.source, x.driving, x.noisy, x.t, x.embeds, x.pooled).float()
        sched = self.comps.scheduler
        alpha = sched.alphas_cumprod.to(self.device)[t]
        if sched.config.prediction_type == "v_prediction":
            x0 = alpha.sqrt() * x.noisy - (1 - alpha).sqrt() * pred
        else:
            x0 = (x.noisy - (1 - alpha).sqrt() * pred) / alpha.sqrt()
        vae = self.comps.vae
        return vae.decode(x0.to(vae.dtype) / vae.config.scaling_factor).sample.float()


def export_pipeline(model: PiQModel, unet: UNet2DConditionModel, out_dir: str | Path, ema: Any = None,
                    pretrained_dir: Optional[str] = None) -> Path:
    """Save the trained model as a `PiQPerfectPipeline` folder (diffusers layout, `concat` and
    `resolution` in model_index.json) that `PiQPerfectPipeline.from_pretrained` and
    `train.backbones.load_pretrained` both read back. `unet` is the unwrapped training UNet
    (not the DDP wrapper), written with its fp32 master weights; with `ema` (a diffusers
    EMAModel) the averaged weights are written and the live ones put back afterwards. The frozen
    parts are copied file for file from `pretrained_dir` when there is one (training may have
    cast them to bf16; the export keeps the originals), else saved in fp32. The sampler gets an
    Euler scheduler built from the training scheduler's config (same betas, prediction type)."""
    from train.export import write_pipeline_folder

    if ema is not None:
        ema.store(unet.parameters())
        ema.copy_to(unet.parameters())
    try:
        return write_pipeline_folder(model.comps, unet, model.concat, model.resolution, out_dir, pretrained_dir)
    finally:
        if ema is not None:
            ema.restore(unet.parameters())
