"""IResNet, the ArcFace backbone of arcface_torch (insightface `recognition/arcface_torch`).

Written here from the published architecture so that arcface_torch's `backbone.pth` state dicts
(iresnet50 for ms1mv3/glint360k r50, iresnet100 for r100) load strictly: the same module names
(`conv1`, `bn1`, `prelu`, `layer1..4.N.{bn1,conv1,bn2,prelu,conv2,bn3,downsample.0/1}`, `bn2`,
`fc`, `features`) and shapes. Input: (B, 3, 112, 112) RGB in [-1, 1]; output (B, 512), not
normalised (CSIM normalises).

Block: BN -> 3x3 conv -> BN -> PReLU -> 3x3 conv (stride here) -> BN, plus the shortcut (1x1
conv + BN when the shape changes); no activation after the sum. The stem keeps 112 px; each of
the four stages halves it, to 7x7, flattened into the 25088 -> 512 `fc`, then a BatchNorm1d.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

# blocks per stage of the published depths
DEPTHS: dict[str, tuple[int, int, int, int]] = {
    "iresnet18": (2, 2, 2, 2), "iresnet34": (3, 4, 6, 3),
    "iresnet50": (3, 4, 14, 3), "iresnet100": (3, 13, 30, 3), "iresnet200": (6, 26, 60, 6),
}
WIDTHS = (64, 128, 256, 512)
EMBEDDING = 512
SIZE = 112


class IBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout, eps=1e-5)
        self.prelu = nn.PReLU(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, stride, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout, eps=1e-5)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout, eps=1e-5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return y + (x if self.downsample is None else self.downsample(x))


class IResNet(nn.Module):
    def __init__(self, depth: Sequence[int]) -> None:
        super().__init__()
        if len(depth) != 4 or min(depth) < 1:
            raise ValueError(f"IResNet needs four stage depths >= 1, got {tuple(depth)}")
        self.depth = tuple(int(d) for d in depth)
        self.conv1 = nn.Conv2d(3, WIDTHS[0], 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0], eps=1e-5)
        self.prelu = nn.PReLU(WIDTHS[0])
        cin = WIDTHS[0]
        for i, (n, width) in enumerate(zip(self.depth, WIDTHS)):
            blocks = [IBlock(cin if j == 0 else width, width, 2 if j == 0 else 1) for j in range(n)]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            cin = width
        self.bn2 = nn.BatchNorm2d(WIDTHS[-1], eps=1e-5)
        self.dropout = nn.Dropout(0.0)
        self.fc = nn.Linear(WIDTHS[-1] * 7 * 7, EMBEDDING)
        self.features = nn.BatchNorm1d(EMBEDDING, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x))


def depth_from_keys(keys: Mapping[str, object] | Sequence[str]) -> tuple[int, int, int, int] | None:
    """Blocks per stage read off a state dict's names (`layerS.N.`), or None if it has none."""
    counts = [0, 0, 0, 0]
    for key in keys:
        parts = key.split(".")
        if len(parts) > 2 and parts[0] in ("layer1", "layer2", "layer3", "layer4") and parts[1].isdigit():
            s = int(parts[0][-1]) - 1
            counts[s] = max(counts[s], int(parts[1]) + 1)
    return tuple(counts) if all(counts) else None  # type: ignore[return-value]


def depth_name(depth: Sequence[int]) -> str:
    for name, d in DEPTHS.items():
        if tuple(depth) == d:
            return name
    return f"iresnet{list(depth)}"


def expected_shapes(depth: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the state dict of an IResNet of this depth (built on the meta
    device: no memory, no time)."""
    with torch.device("meta"):
        net = IResNet(depth)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}
