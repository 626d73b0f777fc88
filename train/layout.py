"""How the three latents meet in the UNet input (paper 3.1, table 2).

`spatial` (the paper's): [source | driving | noisy target] side by side along the width, so one
UNet sees all three through self-attention; the noise, the loss and the sampler act on the
target third only, the other two thirds are clean conditioning at every step.
`channel` (ablation): the three stacked on channels (12 input channels, widened conv_in); the
UNet's output is already target-sized.
"""
from __future__ import annotations

from typing import Literal

import torch

ConcatMode = Literal["spatial", "channel"]


def join(source: torch.Tensor, driving: torch.Tensor, noisy_target: torch.Tensor, mode: ConcatMode) -> torch.Tensor:
    """UNet input from three (B, C, h, w) latents."""
    if not source.shape == driving.shape == noisy_target.shape:
        raise ValueError(f"latent shapes differ: {source.shape}, {driving.shape}, {noisy_target.shape}")
    if mode == "spatial":
        return torch.cat([source, driving, noisy_target], dim=-1)
    if mode == "channel":
        return torch.cat([source, driving, noisy_target], dim=1)
    raise ValueError(f"unknown concat mode {mode!r}")


def target_part(unet_output: torch.Tensor, mode: ConcatMode) -> torch.Tensor:
    """The part of the UNet's output that predicts the target: the last width third (spatial)
    or the whole output (channel)."""
    if mode == "spatial":
        width = unet_output.shape[-1]
        if width % 3:
            raise ValueError(f"spatial output width {width} is not a multiple of 3")
        return unet_output[..., 2 * width // 3 :]
    if mode == "channel":
        return unet_output
    raise ValueError(f"unknown concat mode {mode!r}")


def in_channels(latent_channels: int, mode: ConcatMode) -> int:
    """conv_in channels the UNet needs for `mode`."""
    return latent_channels * (3 if mode == "channel" else 1)
