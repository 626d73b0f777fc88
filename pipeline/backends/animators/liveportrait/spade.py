"""G, the SPADE decoder: warped 64 x 64 features -> 512 px RGB in [0, 1] (paper Sec. 3.1)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SPADEResnetBlock
from .config import SpadeConfig


class SPADEDecoder(nn.Module):
    def __init__(self, cfg: SpadeConfig) -> None:
        super().__init__()
        self.cfg = cfg
        c = cfg.input_channels
        hid = cfg.spade_hidden
        self.fc = nn.Conv2d(c, 2 * c, kernel_size=3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * c, 2 * c, c, hid))
        self.up_0 = SPADEResnetBlock(2 * c, c, c, hid)
        self.up_1 = SPADEResnetBlock(c, cfg.out_channels, c, hid)
        if cfg.upscale > 1:
            self.conv_img = nn.Sequential(nn.Conv2d(cfg.out_channels, 3 * 4, kernel_size=3, padding=1),
                                          nn.PixelShuffle(2))
        else:
            self.conv_img = nn.Conv2d(cfg.out_channels, 3, kernel_size=3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, feature)
        x = self.up_0(F.interpolate(x, scale_factor=2), feature)
        x = self.up_1(F.interpolate(x, scale_factor=2), feature)
        return torch.sigmoid(self.conv_img(F.leaky_relu(x, 0.2)))
