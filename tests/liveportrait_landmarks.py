"""Test stand-in for LivePortrait's `landmark.onnx`: a tiny torch module exported with torch.onnx
in the published signature (one input `input` of (1, 3, 224, 224), three outputs, the third 203 x 2
normalised coordinates). Its landmarks are a fixed face-like layout (eyes, mouth corners, inner
lips at the official 203-point indices) plus a small random-conv term, so crops placed from them
are predictable."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from pipeline.backends.animators.liveportrait.crop import LEFT_EYE_203, LIP_GAP_203, MOUTH_CORNERS_203, RIGHT_EYE_203


def template_203() -> np.ndarray:
    """(203, 2) in [0, 1]: a frontal face in the runner's 224 px crop; lip ratio 0.2."""
    rng = np.random.default_rng(0)
    angles = np.linspace(0, 2 * np.pi, 203, endpoint=False)
    pts = np.stack([0.5 + 0.3 * np.cos(angles), 0.5 + 0.35 * np.sin(angles)], 1)  # face contour
    pts += rng.normal(0, 0.005, pts.shape)
    for idx, cx in ((LEFT_EYE_203, 0.38), (RIGHT_EYE_203, 0.62)):
        pts[list(idx)] = [[cx - 0.04, 0.42], [cx, 0.40], [cx + 0.04, 0.42], [cx, 0.44]]
    pts[list(MOUTH_CORNERS_203)] = [[0.40, 0.70], [0.60, 0.70]]
    pts[list(LIP_GAP_203)] = [[0.50, 0.68], [0.50, 0.72]]
    return pts


class _Landmarks(torch.nn.Module):
    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 7, stride=8)
        self.register_buffer("template", torch.tensor(template_203(), dtype=torch.float32).reshape(1, -1))
        self.n_out = n_out

    def forward(self, x: torch.Tensor):
        f = self.conv(x).mean((2, 3))
        pts = self.template + 1e-4 * torch.tanh(f.mean(1, keepdim=True))
        return (f, f.sum(1, keepdim=True), pts)[: self.n_out]


def write_landmark_onnx(path: str | Path, size: int = 224, outputs: int = 3, input_name: str = "input") -> Path:
    """Export the stand-in; `size`, `outputs` and `input_name` let tests write wrong ones."""
    path = Path(path)
    torch.manual_seed(0)
    names = ["feature", "score", "landmarks"][:outputs]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Landmarks(outputs).eval(), (torch.rand(1, 3, size, size),), str(path),
                          input_names=[input_name], output_names=names, dynamo=False)
    return path
