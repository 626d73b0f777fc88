"""Run every method on every test set and measure it (paper 4.2, tables 1, 3, 4).

For each data set: the triplets are read in batches; each method makes its outputs for the
batch; every metric family updates on (outputs, targets). Target-side work (identity
embeddings, face measurements, Inception features of the targets) is cached per data set and
shared by all methods. A method that cannot run (weights absent) is reported as unavailable
with its reason; a pair a method could not process (no face to align) scores the source in its
place and counts as a method failure; a pair a metric cannot measure (no face found in the
output or target) counts as that metric's failure.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.baselines import Unavailable, build_method
from eval.data import batched, iter_triplets, resize_square
from eval.metrics import MetricResult
from eval.metrics.fid import FID, load_features
from eval.metrics.identity import CSIM, load_encoder
from eval.metrics.lpips import LPIPS, load_net
from eval.metrics.motion import MotionMetrics, load_3dmm
from eval.metrics.pixel import PixelMetrics


@dataclasses.dataclass
class MethodReport:
    method: str
    metrics: dict[str, MetricResult]
    pairs: int = 0
    method_failures: int = 0
    seconds: float = 0.0
    unavailable: str | None = None
    per_pair: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    grid: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = dataclasses.field(default_factory=list)


class MetricSuite:
    """The metric backends, loaded once; `new()` gives fresh accumulators for one method that
    share the data set's target cache (call `reset_cache()` between data sets)."""

    def __init__(self, p) -> None:
        self.encoder, self.encoder_reason = load_encoder(p.identity_encoder, p.identity_weights)
        self.inception, self.inception_reason = load_features(p.inception_weights, p.device)
        self.lpips, self.lpips_reason = load_net(p.lpips_alexnet_weights, p.device)
        self.dmm, self.dmm_reason = load_3dmm(p.motion_backend, p.motion_3dmm_dir, p.device)
        self.device = p.device
        self.cache: dict = {}

    def reset_cache(self) -> None:
        self.cache = {}

    def new(self) -> list:
        return [CSIM(self.encoder, self.encoder_reason, self.cache), FID(self.inception, self.inception_reason, self.cache),
                MotionMetrics(self.dmm, self.dmm_reason, self.cache), LPIPS(self.lpips, self.lpips_reason),
                PixelMetrics(self.device)]


def evaluate_method(method, triplets_dir: Path, p, suite: MetricSuite, limit: int | None = None) -> MethodReport:
    metrics = suite.new()
    report = MethodReport(method.name, {})
    ids: list[str] = []
    start = time.perf_counter()
    for batch in batched(iter_triplets(triplets_dir, limit), p.batch_size):
        outs = method.run(batch)
        final = []
        for t, o in zip(batch, outs):
            if o is None or o.shape != t.source.shape:
                report.method_failures += 1
                o = t.source
            final.append(o)
        # scored at evaluate.resolution (stages.evaluate sets it: default the model's, the test set's size)
        size = p.resolution or batch[0].target.shape[0]
        final = [resize_square(o, size) for o in final]
        targets = [resize_square(t.target, size) for t in batch]
        pair_ids = [t.pair_id for t in batch]
        for m in metrics:
            m.update(final, targets, pair_ids)
        ids += pair_ids
        for t, o in zip(batch, final):
            if len(report.grid) < p.grid_pairs:
                report.grid.append((t.source, t.driving_input, o, t.target))
    report.seconds = time.perf_counter() - start
    report.pairs = len(ids)
    report.per_pair = {"pair_id": ids}
    for m in metrics:
        report.metrics.update(m.results())
        report.per_pair.update({k: v for k, v in m.per_pair().items() if len(v) == len(ids)})
    return report


def build_methods(names: Sequence[str], p, log=print) -> dict[str, Any]:
    """Each method built once for every data set: the method, or its `Unavailable` reason."""
    built: dict[str, Any] = {}
    for name in names:
        try:
            built[name] = build_method(name, p)
        except Unavailable as err:
            log(f"evaluate: {name} unavailable: {err}")
            built[name] = err
    return built


def evaluate_dataset(name: str, triplets_dir: Path, p, methods: dict[str, Any], suite: MetricSuite,
                     limit: int | None = None, log=print) -> list[MethodReport]:
    """Every method of `build_methods` on one triplet folder."""
    suite.reset_cache()
    reports = []
    for method_name, method in methods.items():
        if isinstance(method, Unavailable):
            reports.append(MethodReport(method_name, {}, unavailable=str(method)))
            continue
        r = evaluate_method(method, triplets_dir, p, suite, limit)
        log(f"evaluate {name}: {method_name}: {r.pairs} pairs in {r.seconds:.1f} s, "
            + ", ".join(f"{k} {v.mean:.4g}" for k, v in r.metrics.items() if v.mean is not None))
        reports.append(r)
    return reports
