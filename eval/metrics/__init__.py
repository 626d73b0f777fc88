"""Metrics of paper 4.2 / tables 1, 3, 4, one file per family.

Every metric is accumulated batch by batch (`update(outputs, targets, pair_ids)`, images RGB
uint8) and summarised as `MetricResult`: mean, standard error of the mean, n (pairs measured),
failures (pairs it could not measure: no face found) and the backend that produced the number,
or `unavailable` with the reason (missing weights) and no number at all.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Protocol, Sequence

import numpy as np

# name -> True when higher is better (the tables' arrows)
HIGHER_IS_BETTER = {"CSIM": True, "FID": False, "AED": False, "APD": False, "AGD": False,
                    "LPIPS": False, "PSNR": True, "SSIM": True}
ORDER = ("CSIM", "FID", "AED", "APD", "AGD", "LPIPS", "PSNR", "SSIM")  # paper's column order (+ SSIM)


@dataclasses.dataclass
class MetricResult:
    name: str
    backend: str
    mean: float | None = None
    sem: float | None = None
    n: int = 0
    failures: int = 0
    unavailable: str | None = None  # the reason when no number could be computed

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sem(values: Sequence[float]) -> float | None:
    """Standard error of the mean: sample standard deviation (ddof=1) / sqrt(n). None for
    fewer than two values or non-finite ones (PSNR of identical images is inf)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or not np.all(np.isfinite(v)):
        return None
    return float(v.std(ddof=1) / math.sqrt(v.size))


def summarize(name: str, backend: str, values: Sequence[float | None]) -> MetricResult:
    """Per-pair values (None = the pair could not be measured) -> mean +- SEM."""
    ok = [float(v) for v in values if v is not None]
    if not ok:
        return MetricResult(name, backend, n=0, failures=len(values))
    return MetricResult(name, backend, mean=float(np.mean(ok)), sem=sem(ok), n=len(ok), failures=len(values) - len(ok))


def unavailable(name: str, backend: str, reason: str) -> MetricResult:
    return MetricResult(name, backend, unavailable=reason)


class Metric(Protocol):
    """A metric family: one `update` per batch, `results()` once at the end."""

    names: tuple[str, ...]

    def update(self, outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], pair_ids: Sequence[str]) -> None: ...

    def per_pair(self) -> dict[str, list[float | None]]: ...

    def results(self) -> dict[str, MetricResult]: ...


def to_tensor(images: Sequence[np.ndarray], device: str):
    """(B, H, W, 3) uint8 list -> float (B, 3, H, W) in [0, 1] on `device`."""
    import torch

    x = torch.from_numpy(np.stack([np.ascontiguousarray(i) for i in images])).to(device)
    return x.permute(0, 3, 1, 2).float() / 255.0
