"""Metrics of paper 4.2 / tables 1, 3, 4, one file per family.

Every metric is accumulated batch by batch (`update(outputs, targets, pair_ids)`, images RGB
uint8) and summarised as `MetricResult`: mean, standard error of the mean, n (pairs measured),
failures (pairs it could not measure: no face found) and the backend that produced the number,
or `unavailable` with the reason (missing weights) and no number at all. `paper_metric` says
whether the number comes from the model the paper used (True), from a stand-in (False: an offline
fallback or another network; the report flags "paper metric not computed"), or whether the
metric has no model to choose (None: PSNR, SSIM; AGD, whose gaze model the paper does not name).
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
# the model behind each metric in the paper (4.2, table 1), named where a stand-in is flagged
PAPER_MODELS = {"CSIM": "ArcFace", "FID": "the TF FID Inception (inception-2015-12-05)",
                "AED": "a 3DMM (Deep3DFaceRecon)", "APD": "a 3DMM (Deep3DFaceRecon)", "LPIPS": "LPIPS AlexNet v0.1"}


@dataclasses.dataclass
class MetricResult:
    name: str
    backend: str
    mean: float | None = None
    sem: float | None = None
    n: int = 0
    failures: int = 0
    unavailable: str | None = None  # the reason when no number could be computed
    paper_metric: bool | None = None  # True: the paper's model; False: a stand-in; None: no model to choose

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def sem(values: Sequence[float]) -> float | None:
    """Standard error of the mean: sample standard deviation (ddof=1) / sqrt(n). None for
    fewer than two values or non-finite ones (PSNR of identical images is inf)."""
    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or not np.all(np.isfinite(v)):
        return None
    return float(v.std(ddof=1) / math.sqrt(v.size))


def summarize(name: str, backend: str, values: Sequence[float | None], paper_metric: bool | None = None) -> MetricResult:
    """Per-pair values (None = the pair could not be measured) -> mean +- SEM."""
    ok = [float(v) for v in values if v is not None]
    if not ok:
        return MetricResult(name, backend, n=0, failures=len(values), paper_metric=paper_metric)
    return MetricResult(name, backend, mean=float(np.mean(ok)), sem=sem(ok), n=len(ok), failures=len(values) - len(ok),
                        paper_metric=paper_metric)


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
