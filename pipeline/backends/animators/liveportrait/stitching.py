"""S (stitching) and the eye / lip retargeting MLPs (paper Sec. 3.2)."""
from __future__ import annotations

import torch
from torch import nn

from .config import MLPConfig


class StitchingRetargetingNetwork(nn.Module):
    """Linear/ReLU stack under `mlp` (keys mlp.0, mlp.2, ... as published)."""

    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        sizes = [cfg.input_size, *cfg.hidden_sizes]
        layers: list[nn.Module] = []
        for a, b in zip(sizes, sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        layers.append(nn.Linear(sizes[-1], cfg.output_size))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
