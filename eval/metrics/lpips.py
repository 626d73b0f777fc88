"""LPIPS (Zhang et al. 2018, AlexNet variant v0.1) against the target.

The `lpips` package ships only the linear heads (`lpips/weights/v0.1/alex.pth`); the AlexNet
trunk comes from a local torchvision file (`alexnet-owt-7be5be79.pth`, torchvision's
`AlexNet_Weights.IMAGENET1K_V1`, the trunk `lpips.LPIPS(net="alex")` downloads). Without it LPIPS
is "unavailable" with the reason; a configured file that is missing or is not that state dict
raises `WeightsFormatError`. The network is assembled here from those two files (the
`lpips.LPIPS` constructor would try to download the trunk); it computes what `lpips.LPIPS`
computes (tests/test_eval_metrics.py).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Sequence

import numpy as np

from eval.metrics import MetricResult, summarize, to_tensor, unavailable
from pipeline.device import device_name
from pipeline.weight_files.formats import load_state_dict, torch_file_kind
from pipeline.weight_files.checks import ComponentCheck, WeightsFormatError, compare_shapes, register_check, tensor_shapes

SLICES = ((0, 2), (2, 5), (5, 8), (8, 10), (10, 12))  # relu1 .. relu5 of torchvision's AlexNet features
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
ALEXNET_FORMATS = ("torchvision alexnet-owt-7be5be79.pth (AlexNet state dict: features.*, classifier.*)",)
ALEXNET_RELEASE = ("torchvision's AlexNet_Weights.IMAGENET1K_V1 file alexnet-owt-7be5be79.pth "
                   "(download.pytorch.org/models/); set evaluate.lpips_alexnet_weights to it")


def expected_alexnet_shapes() -> dict[str, tuple[int, ...]]:
    import torch
    import torchvision

    with torch.device("meta"):
        net = torchvision.models.alexnet(weights=None)
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def inspect_alexnet(path: str | Path) -> str:
    """What was found in the AlexNet file (CPU, no values kept); `WeightsFormatError` if it is
    missing, damaged, TorchScript or not torchvision's AlexNet state dict."""
    path = Path(path)
    if torch_file_kind(path, ALEXNET_FORMATS) != "state_dict":
        raise WeightsFormatError(path, ALEXNET_FORMATS, "a TorchScript module, not a state dict")
    shapes = tensor_shapes(path, ALEXNET_FORMATS)
    compare_shapes(path, shapes, expected_alexnet_shapes(), ALEXNET_FORMATS)
    return f"torchvision AlexNet state dict ({len(shapes)} tensors) + lpips v0.1 linear heads"


def lpips_heads_path() -> Path:
    spec = importlib.util.find_spec("lpips")
    if spec is None or spec.origin is None:
        raise ImportError("the lpips package (linear heads) is not installed: pip install lpips")
    return Path(spec.origin).parent / "weights" / "v0.1" / "alex.pth"


class LPIPSNet:
    def __init__(self, alexnet_weights: str | Path, device: str | None = None, heads: str | Path | None = None) -> None:
        import torch
        import torchvision

        path = Path(alexnet_weights)
        inspect_alexnet(path)
        self.device = device_name(device)
        net = torchvision.models.alexnet(weights=None)
        net.load_state_dict(load_state_dict(path, ALEXNET_FORMATS), strict=True)
        self.features = net.features.eval().to(self.device)
        head_sd = torch.load(str(heads or lpips_heads_path()), map_location="cpu", weights_only=True)
        self.heads = [head_sd[f"lin{k}.model.1.weight"].to(self.device) for k in range(5)]
        self.shift = torch.tensor(SHIFT, device=self.device).view(1, 3, 1, 1)
        self.scale = torch.tensor(SCALE, device=self.device).view(1, 3, 1, 1)
        self.name = f"lpips_alex_v0.1:{path.name}"

    def _feats(self, x):
        x = (x * 2 - 1 - self.shift) / self.scale
        out = []
        for a, b in SLICES:
            for layer in self.features[a:b]:
                x = layer(x)
            out.append(x / (x.pow(2).sum(1, keepdim=True).sqrt() + 1e-10))
        return out

    def __call__(self, a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            fa, fb = self._feats(to_tensor(a, self.device)), self._feats(to_tensor(b, self.device))
            d = sum(F.conv2d((x - y) ** 2, w).mean(dim=(1, 2, 3)) for x, y, w in zip(fa, fb, self.heads))
        return d.float().cpu().numpy()


def load_net(alexnet_weights: str | None, device: str | None = None):
    """(LPIPSNet, None), or (None, why LPIPS is unavailable: no file configured, lpips not
    installed). A configured file that is missing or not usable raises `WeightsFormatError`."""
    if not alexnet_weights:
        return None, "evaluate.lpips_alexnet_weights is not set"
    try:
        return LPIPSNet(alexnet_weights, device), None
    except ImportError as err:
        return None, str(err)


LPIPS_LAYOUT = """evaluate.lpips_alexnet_weights: one file
  alexnet-owt-7be5be79.pth      torchvision AlexNet (IMAGENET1K_V1); the linear heads ship in the lpips package
  (unset: LPIPS unavailable)"""


@register_check("evaluate.lpips", layout=LPIPS_LAYOUT)
def check_lpips(params) -> list[ComponentCheck]:
    weights = params.evaluate.lpips_alexnet_weights
    if not weights:
        return [ComponentCheck("evaluate.lpips", "lpips_alex", None, True, "not configured: LPIPS is reported unavailable "
                               f"(no offline stand-in); to compute it: {ALEXNET_RELEASE}")]
    try:
        found = inspect_alexnet(weights)
        lpips_heads_path()
    except (WeightsFormatError, ImportError) as err:
        return [ComponentCheck("evaluate.lpips", "lpips_alex", weights, False, str(err), ALEXNET_RELEASE)]
    return [ComponentCheck("evaluate.lpips", "lpips_alex", weights, True, found)]


class LPIPS:
    names = ("LPIPS",)

    def __init__(self, net: LPIPSNet | None = None, reason: str | None = None) -> None:
        self.net, self.reason = net, reason
        self.backend = net.name if net is not None else "lpips_alex"
        self._values: list[float | None] = []

    def update(self, outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], pair_ids: Sequence[str] = ()) -> None:
        if self.net is not None:
            self._values += [float(v) for v in self.net(outputs, targets)]

    def per_pair(self) -> dict[str, list[float | None]]:
        return {"LPIPS": self._values}

    def results(self) -> dict[str, MetricResult]:
        if self.reason:
            return {"LPIPS": unavailable("LPIPS", self.backend, self.reason)}
        return {"LPIPS": summarize("LPIPS", self.backend, self._values, True)}
