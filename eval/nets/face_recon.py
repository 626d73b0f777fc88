"""Deep3DFaceRecon's reconstruction network (`net_recon` in its `epoch_20.pth`).

A torchvision-layout ResNet-50 without its `fc` (`backbone.*`) and seven 1x1-conv heads
(`final_layers.0..6`) on the 2048-d pooled feature, concatenated into 257 coefficients of the
BFM09 3DMM: identity 80, expression 64, texture 80, angles 3 (radians: pitch, yaw, roll),
lighting 27 (SH), translation 3 (tx, ty from head 5, tz from head 6). Input: (B, 3, 224, 224)
RGB in [0, 1], aligned with `eval.metrics.motion.align_3dmm` (Deep3DFaceRecon's align_img).
"""
from __future__ import annotations

import torch
import torchvision
from torch import nn

HEADS = (("id", 80), ("exp", 64), ("tex", 80), ("angle", 3), ("gamma", 27), ("trans_xy", 2), ("trans_z", 1))
COEFFICIENTS = sum(n for _, n in HEADS)  # 257
SIZE = 224


def _slices() -> dict[str, slice]:
    out, start = {}, 0
    for name, n in HEADS:
        out[name] = slice(start, start + n)
        start += n
    return out


SLICES = _slices()
EXP, ANGLE = SLICES["exp"], SLICES["angle"]
TRANS = slice(SLICES["trans_xy"].start, SLICES["trans_z"].stop)


class ReconNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        backbone = torchvision.models.resnet50(weights=None)
        del backbone.fc  # Deep3DFaceRecon's backbone has no fc (use_last_fc=False)
        self.backbone = backbone
        self.final_layers = nn.ModuleList([nn.Conv2d(2048, n, 1, bias=True) for _, n in HEADS])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        x = b.maxpool(b.relu(b.bn1(b.conv1(x))))
        x = b.avgpool(b.layer4(b.layer3(b.layer2(b.layer1(x)))))
        return torch.flatten(torch.cat([head(x) for head in self.final_layers], 1), 1)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    with torch.device("meta"):
        net = ReconNet()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}
