"""PSNR and SSIM against the target, batched in torch (GPU when there is one). Always
available: no weights. SSIM is Wang et al. 2004 with an 11x11 Gaussian window (sigma 1.5),
K1 = 0.01, K2 = 0.03, on each RGB channel, averaged over the valid (unpadded) window positions:
torchmetrics' default, and skimage's `structural_similarity(gaussian_weights=True, sigma=1.5,
use_sample_covariance=False)` (the Wang et al. setting; the test pins the two to 1e-5)."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from eval.metrics import MetricResult, summarize, to_tensor
from pipeline.device import device_name


def _gaussian(size: int = 11, sigma: float = 1.5):
    import torch

    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim_batch(a, b):
    """SSIM per image of two float (B, 3, H, W) batches in [0, 1]."""
    import torch
    import torch.nn.functional as F

    c1, c2 = 0.01**2, 0.03**2
    g = _gaussian().to(a.device)
    # the five local moments in one separable, grouped convolution ('valid': no padding artefacts)
    x = torch.cat([a, b, a * a, b * b, a * b], dim=1)
    n = x.shape[1]
    x = F.conv2d(x, g.view(1, 1, 1, -1).repeat(n, 1, 1, 1), groups=n)
    x = F.conv2d(x, g.view(1, 1, -1, 1).repeat(n, 1, 1, 1), groups=n)
    mu_a, mu_b, e_aa, e_bb, e_ab = x.chunk(5, dim=1)
    s_aa, s_bb, s_ab = e_aa - mu_a**2, e_bb - mu_b**2, e_ab - mu_a * mu_b
    m = ((2 * mu_a * mu_b + c1) * (2 * s_ab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (s_aa + s_bb + c2))
    return m.mean(dim=(1, 2, 3))


def psnr_batch(a, b):
    """PSNR per image (dB, peak 1.0); inf for identical images."""
    import torch

    mse = ((a - b) ** 2).mean(dim=(1, 2, 3)).double()
    return torch.where(mse == 0, torch.full_like(mse, float("inf")), 10 * torch.log10(1.0 / mse))


class PixelMetrics:
    names = ("PSNR", "SSIM")
    backend = "torch"

    def __init__(self, device: str | None = None) -> None:
        self.device = device_name(device)
        self._psnr: list[float | None] = []
        self._ssim: list[float | None] = []

    def update(self, outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], pair_ids: Sequence[str] = ()) -> None:
        import torch

        with torch.inference_mode():
            a, b = to_tensor(outputs, self.device), to_tensor(targets, self.device)
            self._psnr += [float(v) for v in psnr_batch(a, b).cpu()]
            self._ssim += [float(v) for v in ssim_batch(a, b).cpu()]

    def per_pair(self) -> dict[str, list[float | None]]:
        return {"PSNR": self._psnr, "SSIM": self._ssim}

    def results(self) -> dict[str, MetricResult]:
        return {k: summarize(k, self.backend, v) for k, v in self.per_pair().items()}
