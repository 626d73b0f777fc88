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
from eval.metrics.csim import CSIM, load_encoder
from eval.metrics.lpips import LPIPS, load_net
from eval.metrics.motion import MotionMetrics, load_3dmm
from eval.metrics.pixel import PixelMetrics
from pipeline.weight_files.checks import WeightsFormatError


class MetricWeightsError(ValueError):
    """One or more configured metric weights files are missing or unusable; the message has
    one line per metric, each naming the file, the accepted formats and what was found."""


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


def preflight(p) -> list[str]:
    """Every configured metric file inspected on the CPU (nothing loaded onto a GPU): one line
    per file that is missing or in no accepted format. Run before any backend is loaded, so a
    bad file stops `piq evaluate` before any GPU memory is taken, with every problem listed."""
    from pipeline.faces.identity import inspect_arcface
    from eval.metrics.fid import inspect_inception
    from eval.metrics.lpips import inspect_alexnet
    from eval.metrics.motion import inspect_3dmm

    checks = []
    if p.identity_weights and p.identity_encoder != "dlib":
        checks.append(("CSIM (evaluate.identity_weights)", lambda: inspect_arcface(p.identity_weights)))
    if p.inception_weights:
        checks.append(("FID (evaluate.inception_weights)", lambda: inspect_inception(p.inception_weights)))
    if p.lpips_alexnet_weights:
        checks.append(("LPIPS (evaluate.lpips_alexnet_weights)", lambda: inspect_alexnet(p.lpips_alexnet_weights)))
    if p.motion_3dmm_dir and p.motion_backend != "mesh":
        checks.append(("APD / AED (evaluate.motion_3dmm_dir)", lambda: inspect_3dmm(p.motion_3dmm_dir)))
    errors = []
    for label, check in checks:
        try:
            check()
        except WeightsFormatError as err:
            errors.append(f"{label}: {err}")
    return errors


class MetricSuite:
    """The metric backends, loaded once; `new()` gives fresh accumulators for one method that
    share the data set's target cache (call `reset_cache()` between data sets).

    Raises `MetricWeightsError` when a configured weights file is missing or unusable: that is
    an error of the configuration, reported as such, never turned into "unavailable" or into a
    silent fallback. A metric whose file is simply not configured is "unavailable" (or, for
    CSIM and APD / AED with `auto`, computed by the offline backend and flagged)."""

    def __init__(self, p) -> None:
        errors = preflight(p)
        if errors:
            raise MetricWeightsError("\n".join(errors))
        try:
            self.encoder, self.encoder_reason = load_encoder(p.identity_encoder, p.identity_weights, p.device)
            self.inception, self.inception_reason = load_features(p.inception_weights, p.device)
            self.lpips, self.lpips_reason = load_net(p.lpips_alexnet_weights, p.device)
            self.dmm, self.dmm_reason = load_3dmm(p.motion_backend, p.motion_3dmm_dir, p.device)
        except WeightsFormatError as err:  # found only when loading (a TorchScript with the wrong interface)
            raise MetricWeightsError(str(err)) from err
        self.device = p.device
        self.motion_pose = p.motion_pose
        self.cache: dict = {}

    def reset_cache(self) -> None:
        self.cache = {}

    def new(self) -> list:
        return [CSIM(self.encoder, self.encoder_reason, self.cache), FID(self.inception, self.inception_reason, self.cache),
                MotionMetrics(self.dmm, self.dmm_reason, self.cache, self.motion_pose), LPIPS(self.lpips, self.lpips_reason),
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
                     limit: int | None = None, log=print, kind: str | None = None) -> list[MethodReport]:
    """Every method of `build_methods` on one triplet folder (`kind`: 'ID', 'OOD' or 'user';
    a method that declares `settings` runs only on data sets of those kinds)."""
    suite.reset_cache()
    reports = []
    for method_name, method in methods.items():
        if isinstance(method, Unavailable):
            reports.append(MethodReport(method_name, {}, unavailable=str(method)))
            continue
        settings = getattr(method, "settings", None)
        if settings is not None and kind not in settings:
            reports.append(MethodReport(method_name, {}, unavailable=f"not applicable to replacement-{kind} "
                                        f"(runs on {'/'.join(settings)} only, as in the paper)"))
            continue
        r = evaluate_method(method, triplets_dir, p, suite, limit)
        log(f"evaluate {name}: {method_name}: {r.pairs} pairs in {r.seconds:.1f} s, "
            + ", ".join(f"{k} {v.mean:.4g}" for k, v in r.metrics.items() if v.mean is not None))
        reports.append(r)
    return reports
