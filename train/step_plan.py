"""Which denoising steps get classifier-free guidance and which run the whole UNet.

Levers that need no retraining, each a `sample.*` param (docs/BENCHMARKS.md gives their
speed and their deviation from the paper's output):

- `guidance_interval: [lo, hi]`: guidance only where the noise level sigma is in (lo, hi]
  (Kynkäänniemi et al. 2024, "Applying guidance in a limited interval improves sample and
  distribution quality"; their SDXL interval is (0.28, 5.42]). Steps outside it run the
  conditional branch alone: half the UNet batch.
- `guidance_every: k`: guidance on every k-th step only (the others conditional only).
- `deep_cache_interval: N`: DeepCache (Ma et al. 2024): the whole UNet on every N-th step, the
  shallow pass (first down block, last up block, reusing the cached deep feature) between.

sigma is computed from the scheduler's `alphas_cumprod` at the step's timestep, so the plan is
the same for Euler, DDIM or any scheduler with a discrete training schedule.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence

import numpy as np
import torch


@dataclasses.dataclass(frozen=True)
class StepPlan:
    """One entry per step: guided (both CFG branches) and full (whole UNet, refreshes the cache)."""

    guided: tuple[bool, ...]
    full: tuple[bool, ...]

    @property
    def unet_passes(self) -> float:
        """UNet passes per image counting a CFG step as 2, for the record (shallow passes count 0)."""
        return float(sum((2 if g else 1) for g, f in zip(self.guided, self.full) if f))


def step_sigmas(scheduler, timesteps: torch.Tensor) -> torch.Tensor:
    """Noise level sigma = sqrt((1 - a) / a) of each (possibly fractional) timestep."""
    alphas = scheduler.alphas_cumprod.to(torch.float64)
    t = timesteps.detach().to("cpu", torch.float64).clamp(0, len(alphas) - 1)
    a = torch.from_numpy(np.interp(t.numpy(), range(len(alphas)), alphas.numpy()))
    return ((1 - a) / a).sqrt()


def make_plan(scheduler, timesteps: torch.Tensor, guidance_scale: float,
              guidance_interval: Optional[Sequence[float]] = None, guidance_every: int = 1,
              deep_cache_interval: int = 1) -> StepPlan:
    """The paper's plan is every step guided and full (interval None, every 1, cache 1)."""
    if guidance_every < 1 or deep_cache_interval < 1:
        raise ValueError("sample.guidance_every and sample.deep_cache_interval must be >= 1")
    n = len(timesteps)
    guided = [guidance_scale != 1.0] * n
    if guidance_interval is not None:
        lo, hi = guidance_interval
        sig = step_sigmas(scheduler, timesteps)
        guided = [g and lo < float(s) <= hi for g, s in zip(guided, sig)]
    guided = [g and i % guidance_every == 0 for i, g in enumerate(guided)]
    full = [i % deep_cache_interval == 0 for i in range(n)]
    return StepPlan(tuple(guided), tuple(full))
