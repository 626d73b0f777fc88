"""The PiQPerfect model: a backbone UNet fed [source | driving | noisy target] latents.

Only the UNet trains; the VAE and text encoders are frozen (paper 4.1 fine-tunes SDXL's UNet).
The noise and the loss touch the target only: source and driving latents enter clean at every
timestep and their part of the UNet's output is ignored (`train/layout.py`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

from train.backbones import Components
from train.conditioning import TextCache, unet_kwargs
from train.layout import ConcatMode, in_channels, join, target_part
from train.pipeline import PiQPerfectPipeline


def widen_conv_in(unet: UNet2DConditionModel, latent_channels: int = 4) -> None:
    """Channel concatenation (ablation): conv_in takes 3 x latent_channels inputs. The weights
    for the noisy target (the last block, per `join`) are the pretrained ones, the new weights
    for source and driving start at zero, so at step 0 the UNet behaves as pretrained.
    `register_to_config` makes `from_pretrained` rebuild the wide layer."""
    old = unet.conv_in
    if old.in_channels != latent_channels:
        raise ValueError(f"conv_in already has {old.in_channels} input channels")
    new = torch.nn.Conv2d(3 * latent_channels, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, 2 * latent_channels :] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=3 * latent_channels)


class PiQModel(torch.nn.Module):
    """Wraps the components; `loss(batch)` is one training objective evaluation."""

    def __init__(self, comps: Components, concat: ConcatMode, resolution: int) -> None:
        super().__init__()
        self.comps, self.concat, self.resolution = comps, concat, resolution
        self.unet = comps.unet
        latent = comps.vae.config.latent_channels
        if concat == "channel" and self.unet.config.in_channels != in_channels(latent, "channel"):
            widen_conv_in(self.unet, latent)
        for frozen in (comps.vae, comps.text_encoder, comps.text_encoder_2):
            if frozen is not None:
                frozen.requires_grad_(False)
                frozen.eval()
        self._text: Optional[TextCache] = None

    def text(self, device: torch.device) -> TextCache:
        if self._text is None or self._text.device != device:
            self._text = TextCache(self.comps, device)
        return self._text

    @torch.no_grad()
    def encode(self, images: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Images in [-1, 1] -> scaled latents (a sample of the VAE posterior)."""
        vae = self.comps.vae
        dist = vae.encode(images.to(vae.dtype)).latent_dist
        return dist.sample(generator=generator) * vae.config.scaling_factor

    def predict(self, source: torch.Tensor, driving: torch.Tensor, noisy_target: torch.Tensor, t: torch.Tensor,
                embeds: torch.Tensor, pooled: Optional[torch.Tensor]) -> torch.Tensor:
        """The UNet's prediction for the target latent."""
        x = join(source, driving, noisy_target, self.concat)
        kwargs = unet_kwargs(self.comps, embeds, pooled, self.resolution, self.concat)
        return target_part(self.unet(x, t, **kwargs).sample, self.concat)

    def loss(self, batch: dict, generator: Optional[torch.Generator] = None) -> torch.Tensor:
        """Denoising loss on the target third; `generator` makes noise and timesteps reproducible."""
        device = next(self.unet.parameters()).device
        images = torch.cat([batch["source"], batch["driving"], batch["target"]]).to(device)
        source, driving, target = self.encode(images, generator).chunk(3)
        sched = self.comps.scheduler
        # drawn on the generator's device (CPU) and moved, so a CPU generator drives a GPU run
        noise = torch.randn(target.shape, generator=generator, dtype=target.dtype).to(device)
        t = torch.randint(0, sched.config.num_train_timesteps, (target.shape[0],), generator=generator).to(device)
        noisy = sched.add_noise(target, noise, t)
        if sched.config.prediction_type == "v_prediction":
            goal = sched.get_velocity(target, noise, t)
        else:
            goal = noise
        embeds, pooled = self.text(device)(batch["caption"])
        pred = self.predict(source, driving, noisy, t, embeds, pooled)
        return F.mse_loss(pred.float(), goal.float())


def export_pipeline(model: PiQModel, unet: UNet2DConditionModel, out_dir: str | Path, ema: Any = None) -> Path:
    """Save the trained model as a `PiQPerfectPipeline` folder (diffusers layout, `concat` and
    `resolution` in model_index.json) that `PiQPerfectPipeline.from_pretrained` and
    `train.backbones.load_pretrained` both read back. `unet` is the unwrapped training UNet
    (not the DDP wrapper). With `ema` (a diffusers EMAModel) the averaged weights are written
    and the live ones put back afterwards. The sampler gets an Euler scheduler built from the
    training scheduler's config (same betas and prediction type)."""
    comps = model.comps
    pipe = PiQPerfectPipeline(unet, comps.vae, comps.text_encoder, comps.tokenizer,
                              EulerDiscreteScheduler.from_config(comps.scheduler.config), comps.text_encoder_2,
                              comps.tokenizer_2, concat=model.concat, resolution=model.resolution)
    if ema is not None:
        ema.store(unet.parameters())
        ema.copy_to(unet.parameters())
    try:
        pipe.save_pretrained(out_dir)
    finally:
        if ema is not None:
            ema.restore(unet.parameters())
    return Path(out_dir)
