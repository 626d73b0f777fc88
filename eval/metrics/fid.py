"""FID between the outputs and the targets of a test set (paper tables 1, 3, 4).

Inception features come from a local weights file only; without one FID is "unavailable"
with the reason, never computed with random features:
- `*.pt` TorchScript in the NVIDIA / clean-fid layout (`inception-2015-12-05.pt`, the
  TensorFlow FID network): called as `model(x, return_features=True)` on float (B, 3, H, W)
  in [0, 255]; it resizes to 299 itself. This gives numbers comparable with published FIDs.
- `*.pth` torchvision Inception-v3 state dict (`inception_v3_google-0cc3c7bd.pth`): 2048-d
  pool features after ImageNet normalisation at 299 px (close to, not equal to, TF FID).
FID has no per-pair value, hence no SEM (the paper reports none either).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from eval.metrics import MetricResult, to_tensor, unavailable
from pipeline.device import device_name


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    import warnings

    from scipy import linalg

    with warnings.catch_warnings():  # near-singular covariances (few images) are expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    if not np.isfinite(covmean).all():
        eps = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = features.astype(np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


class InceptionFeatures:
    """Inception pool features from a local file (see the module docstring)."""

    def __init__(self, weights: str | Path, device: str | None = None) -> None:
        import torch

        self.weights = Path(weights)
        if not self.weights.is_file():
            raise FileNotFoundError(f"Inception weights not found: {self.weights}")
        self.device = device_name(device)
        if self.weights.suffix == ".pt":
            self.model = torch.jit.load(str(self.weights), map_location=self.device).eval()
            self.kind = "torchscript"
        else:
            import torchvision

            net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
            net.load_state_dict(torch.load(str(self.weights), map_location="cpu"))
            net.fc = torch.nn.Identity()
            self.model = net.eval().to(self.device)
            self.kind = "torchvision"
        self.name = f"inception:{self.weights.name}"

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = to_tensor(images, self.device)
        with torch.inference_mode():
            if self.kind == "torchscript":
                f = self.model(x * 255.0, return_features=True)
            else:
                x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
                mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
                std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
                f = self.model((x - mean) / std)
        return f.float().cpu().numpy().reshape(len(images), -1)


def load_features(weights: str | None, device: str | None = None):
    """(InceptionFeatures, None) or (None, why FID is unavailable)."""
    try:
        if not weights:
            raise FileNotFoundError("evaluate.inception_weights is not set")
        return InceptionFeatures(weights, device), None
    except (FileNotFoundError, RuntimeError, OSError) as err:
        return None, str(err)


class FID:
    names = ("FID",)

    def __init__(self, features: InceptionFeatures | None = None, reason: str | None = None,
                 cache: dict | None = None) -> None:
        self.features, self.reason = features, reason
        self.backend = features.name if features is not None else "inception"
        self.cache = {} if cache is None else cache
        self._out: list[np.ndarray] = []
        self._tgt: list[np.ndarray] = []
        self._n = 0

    def update(self, outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], pair_ids: Sequence[str] = ()) -> None:
        self._n += len(outputs)
        if self.features is None:
            return
        self._out.append(self.features(outputs))
        ids = list(pair_ids)
        if ids and all(("fid", p) in self.cache for p in ids):
            self._tgt.append(np.stack([self.cache[("fid", p)] for p in ids]))
            return
        f = self.features(targets)
        for p, v in zip(ids, f):
            self.cache[("fid", p)] = v
        self._tgt.append(f)

    def per_pair(self) -> dict[str, list[float | None]]:
        return {}

    def results(self) -> dict[str, MetricResult]:
        if self.reason:
            return {"FID": unavailable("FID", self.backend, self.reason)}
        if self._n < 2:
            return {"FID": unavailable("FID", self.backend, f"FID needs at least 2 images, got {self._n}")}
        out, tgt = np.concatenate(self._out), np.concatenate(self._tgt)
        value = frechet_distance(*stats(out), *stats(tgt))
        return {"FID": MetricResult("FID", self.backend, mean=value, sem=None, n=len(out), failures=0)}
