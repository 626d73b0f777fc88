"""The Inception-v3 of FID (the TensorFlow graph `inception-2015-12-05`), as pytorch-fid
publishes its weights (`pt_inception-2015-12-05-6726825d.pth`; torch-fidelity / torchmetrics
ship the same tensors as `weights-inception-2015-12-05-6726825d.pth`).

The layout is torchvision's Inception3 with 1008 classes and no auxiliary head, so the module
names are torchvision's; what differs from torchvision's ImageNet network is the pooling of
some blocks, which the TF graph does differently:
- Mixed_5b..5d (InceptionA), Mixed_6b..6e (InceptionC), Mixed_7b (InceptionE): the average
  pool of the pool branch excludes the zero padding from its mean (count_include_pad=False);
- Mixed_7c (InceptionE): that branch is a 3x3 max pool instead.
The blocks here reuse torchvision's sub-modules (names and shapes) and redefine only their
forward. Features: the 2048-d global average pool before `fc`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torchvision.models import inception as tv

FID_CLASSES = 1008   # the TF graph's softmax has 1008 outputs
TORCHVISION_CLASSES = 1000
SIZE = 299


class FIDInceptionA(tv.InceptionA):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        pool = self.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        return [self.branch1x1(x), b5, b3, pool]


class FIDInceptionC(tv.InceptionC):
    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        b7d = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            b7d = layer(b7d)
        pool = self.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        return [self.branch1x1(x), b7, b7d, pool]


class FIDInceptionE(tv.InceptionE):
    """Mixed_7b: average pool without the padding; `max_pool=True` (Mixed_7c): a max pool."""

    def __init__(self, in_channels: int, max_pool: bool = False, **kwargs) -> None:
        super().__init__(in_channels, **kwargs)
        self.max_pool = max_pool

    def _forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, 3, 1, 1) if self.max_pool else F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return [self.branch1x1(x), b3, bd, self.branch_pool(pooled)]


def fid_inception() -> tv.Inception3:
    """The FID Inception with random weights (load pytorch-fid's state dict into it). Its
    `forward` takes (B, 3, 299, 299) in [-1, 1] and returns the 1008 logits; `features`
    below gives the 2048-d pool features."""
    blocks = [tv.BasicConv2d, FIDInceptionA, tv.InceptionB, FIDInceptionC, tv.InceptionD, FIDInceptionE, tv.InceptionAux]
    net = tv.Inception3(num_classes=FID_CLASSES, aux_logits=False, transform_input=False,
                        inception_blocks=blocks, init_weights=False)
    net.Mixed_7c = FIDInceptionE(2048, max_pool=True)
    return net


def torchvision_inception() -> tv.Inception3:
    """torchvision's ImageNet Inception-v3 as `inception_v3(weights=IMAGENET1K_V1)` builds it:
    auxiliary head present, `transform_input=True` (the Google weights expect inputs in
    [-1, 1]; this turns ImageNet-normalised inputs into that)."""
    return tv.Inception3(num_classes=TORCHVISION_CLASSES, aux_logits=True, transform_input=True, init_weights=False)


def pool_features(net: tv.Inception3, x: torch.Tensor) -> torch.Tensor:
    """(B, 3, 299, 299) input as the net expects it -> (B, 2048) global-average-pool features
    (everything `Inception3.forward` does before dropout and `fc`)."""
    if net.transform_input:
        x = net._transform_input(x)
    for name in ("Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "maxpool1", "Conv2d_3b_1x1", "Conv2d_4a_3x3",
                 "maxpool2", "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d",
                 "Mixed_6e", "Mixed_7a", "Mixed_7b", "Mixed_7c", "avgpool"):
        x = getattr(net, name)(x)
    return torch.flatten(x, 1)


def expected_shapes(kind: str) -> dict[str, tuple[int, ...]]:
    """State-dict names and shapes of `fid_inception()` ("pytorch_fid") or
    `torchvision_inception()` ("torchvision"), built on the meta device."""
    with torch.device("meta"):
        net = fid_inception() if kind == "pytorch_fid" else torchvision_inception()
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}
