"""The evaluation report: metrics.json for `dvc metrics`, markdown tables shaped like the
paper's tables 1, 3 and 4, one CSV per metric for `dvc plots` bars, per-pair values, and an
image grid per data set and method (source | driving input | output | target)."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from eval.evaluate import MethodReport
from eval.metrics import HIGHER_IS_BETTER, ORDER, PAPER_MODELS, MetricResult

ARROW = {True: "↑", False: "↓"}
STAND_IN = "†"  # beside a number an offline stand-in computed instead of the paper's model
STAND_IN_NOTE = (f"{STAND_IN} paper metric not computed: a stand-in (the offline fallback, or another network) "
                 "replaced the paper's model; the backend is named under each table")


def stand_in_note(name: str) -> str:
    return f"paper metric not computed (the paper uses {PAPER_MODELS.get(name, 'another model')})"


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


HEADLINE_METHOD = "piq"
HEADLINE = ("CSIM", "FID", "AED", "APD", "AGD", "LPIPS", "PSNR")  # the paper's table 1 columns


def metrics_json(results: dict[str, list[MethodReport]]) -> dict[str, Any]:
    """{dataset: {metric: mean}} of the trained model (`piq`) only, the paper's headline
    metrics: what `dvc exp show` puts side by side for an ablation, on one screen. Every
    method's full table (SEM, failure counts, SSIM) is in table_json / report.json, tables.md
    and the plots. Unavailable metrics are left out (their reasons are in report.json); inf
    (identical images) is written as the string "inf"."""
    out: dict[str, Any] = {}
    for ds, methods in table_json(results).items():
        row = methods.get(HEADLINE_METHOD)
        if row is not None:
            out[ds] = {k: row[k] for k in HEADLINE if k in row}
    return out


def table_json(results: dict[str, list[MethodReport]]) -> dict[str, Any]:
    """{dataset: {method: {metric: mean, metric_sem: sem, metric_failures, metric_backend,
    metric_paper_metric, ...}}} for every method (report.json): every number comes with the
    backend that produced it, and `<metric>_paper_metric: false` where an offline stand-in
    replaced the paper's model. Unavailable metrics are left out (their reasons are in
    report.json). inf (identical images) is written as the string "inf"."""
    out: dict[str, Any] = {}
    for ds, reports in results.items():
        out[ds] = {}
        for r in reports:
            if r.unavailable:
                continue
            row: dict[str, Any] = {"pairs": r.pairs, "method_failures": r.method_failures}
            for name in ORDER:
                m = r.metrics.get(name)
                if m is None or m.unavailable or m.mean is None:
                    continue
                row[name] = m.mean if math.isfinite(m.mean) else "inf"
                if m.sem is not None:
                    row[f"{name}_sem"] = m.sem
                row[f"{name}_failures"] = m.failures
                row[f"{name}_backend"] = m.backend
                if m.paper_metric is not None:
                    row[f"{name}_paper_metric"] = m.paper_metric
            out[ds][r.method] = row
    return out


def report_json(results: dict[str, list[MethodReport]], meta: dict[str, Any]) -> dict[str, Any]:
    return {"meta": meta, "datasets": {
        ds: [{"method": r.method, "pairs": r.pairs, "method_failures": r.method_failures,
              "unavailable": r.unavailable, "metrics": {k: v.as_dict() for k, v in r.metrics.items()},
              "table": table_json({ds: [r]})[ds].get(r.method)}
             for r in reports] for ds, reports in results.items()}}


def _best(reports: Sequence[MethodReport], name: str) -> float | None:
    vals = [r.metrics[name].mean for r in reports
            if not r.unavailable and name in r.metrics and r.metrics[name].mean is not None and not r.metrics[name].unavailable]
    if not vals:
        return None
    return max(vals) if HIGHER_IS_BETTER[name] else min(vals)


def _cell(m: MetricResult | None, best: float | None) -> str:
    if m is None or m.unavailable:
        return "n/a"
    if m.mean is None:
        return "- (no face)"
    text = f"{m.mean:.4g}" if m.sem is None else f"{m.mean:.4g} ± {m.sem:.2g}"
    if math.isinf(m.mean):
        text = "inf"
    text = f"**{text}**" if best is not None and m.mean == best else text
    return text + (f" {STAND_IN}" if m.paper_metric is False else "")


def failures(r: MethodReport) -> int:
    """Face-detection failures of a method on a data set: the most pairs any face metric lost."""
    return max([m.failures for k, m in r.metrics.items() if k in ("CSIM", "APD") and not m.unavailable] or [0])


def dataset_table(name: str, reports: Sequence[MethodReport]) -> str:
    """Methods x metrics, mean ± SEM, best in bold (paper tables 3 and 4)."""
    header = ["Method"] + [f"{k} {ARROW[HIGHER_IS_BETTER[k]]}" for k in ORDER] + ["face not found", "method failed"]
    lines = [f"### {name}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {k: _best(reports, k) for k in ORDER}
    for r in reports:
        if r.unavailable:
            lines.append(f"| {r.method} | " + " | ".join(["unavailable"] + [""] * (len(header) - 2)) + " |")
            continue
        cells = [_cell(r.metrics.get(k), best[k]) for k in ORDER]
        lines.append(f"| {r.method} | " + " | ".join(cells) + f" | {failures(r)}/{r.pairs} | {r.method_failures} |")
    lines += ["", *notes(reports)]
    return "\n".join(lines) + "\n"


def notes(reports: Sequence[MethodReport]) -> list[str]:
    """Which backend produced each number, and why anything is missing."""
    out, seen = [], set()
    for r in reports:
        if r.unavailable:
            out.append(f"- method `{r.method}` unavailable: {r.unavailable}")
        for k in ORDER:
            m = r.metrics.get(k)
            if m is None or (k, m.backend, m.unavailable) in seen:
                continue
            seen.add((k, m.backend, m.unavailable))
            if m.unavailable:
                out.append(f"- {k}: unavailable ({m.backend}): {m.unavailable}")
            elif m.paper_metric is False:
                out.append(f"- {k}: {m.backend} {STAND_IN} {stand_in_note(k)}")
            else:
                out.append(f"- {k}: {m.backend}")
    return out


def summary_table(results: dict[str, list[MethodReport]], kinds: dict[str, str]) -> str:
    """Paper table 1: replacement-ID and -OOD side by side (mean over the data sets of each
    setting, without SEM, as in the paper)."""
    settings = [s for s in ("ID", "OOD") if any(k == s for k in kinds.values())]
    methods: list[str] = []
    for reports in results.values():
        methods += [r.method for r in reports if r.method not in methods]
    cols = [(s, k) for s in settings for k in ORDER]
    lines = ["| Method | " + " | ".join(f"{s} {k} {ARROW[HIGHER_IS_BETTER[k]]}" for s, k in cols) + " |",
             "|" + "---|" * (len(cols) + 1)]
    table: dict[str, dict[tuple[str, str], float | None]] = {}
    stand_in: set[tuple[str, str, str]] = set()
    for m in methods:
        for s, k in cols:
            used = [r.metrics[k] for ds, reports in results.items() if kinds.get(ds) == s for r in reports
                    if r.method == m and not r.unavailable and k in r.metrics and r.metrics[k].mean is not None]
            table.setdefault(m, {})[(s, k)] = float(np.mean([u.mean for u in used])) if used else None
            if any(u.paper_metric is False for u in used):
                stand_in.add((m, s, k))
    for m in methods:
        cells = []
        for c in cols:
            v = table[m][c]
            col = [table[x][c] for x in methods if table[x][c] is not None]
            best = (max(col) if HIGHER_IS_BETTER[c[1]] else min(col)) if col else None
            text = "-" if v is None else ("inf" if math.isinf(v) else f"{v:.4g}")
            text = f"**{text}**" if v is not None and v == best else text
            cells.append(text + (f" {STAND_IN}" if (m, *c) in stand_in else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    if stand_in:
        lines += ["", STAND_IN_NOTE]
    return "\n".join(lines) + "\n"


def write_report(out_dir: str | Path, results: dict[str, list[MethodReport]], kinds: dict[str, str],
                 meta: dict[str, Any], headline_extra: dict[str, Any] | None = None) -> None:
    """Every file of the report. `headline_extra`: more sections of metrics.json (the training
    loss), so `dvc exp show` of an ablation reads one metrics file."""
    from pipeline.media.grids import write_grid

    out = Path(out_dir)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    (out / "grids").mkdir(parents=True, exist_ok=True)
    (out / "pairs").mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps({**metrics_json(results), **(headline_extra or {})}, indent=1))
    (out / "report.json").write_text(json.dumps(report_json(results, meta), indent=1, default=str))
    # seconds per method vary from run to run: beside the report, git-ignored, not a DVC out
    (out / "timing.json").write_text(json.dumps({ds: {r.method: round(r.seconds, 2) for r in reports}
                                                 for ds, reports in results.items()}, indent=1, sort_keys=True) + "\n")
    md = ["# Evaluation", "", f"Pairs per data set: {meta.get('num_pairs')}; resolution {meta.get('resolution')} px; "
          "metrics against the target (ID: ground truth; OOD: the driving image). Bold: best.", "",
          "## Summary (paper table 1)", "", summary_table(results, kinds), "## Per data set (paper tables 3, 4)", ""]
    rows = []
    for ds, reports in results.items():
        md.append(dataset_table(f"{ds} (replacement-{kinds.get(ds, 'user')})", reports))
        for r in reports:
            if r.unavailable:
                continue
            for k in ORDER:
                m = r.metrics.get(k)
                if m is not None and m.mean is not None and not m.unavailable and math.isfinite(m.mean):
                    rows.append({"dataset": ds, "method": r.method, "name": f"{ds}/{r.method}", "metric": k, "value": m.mean})
            pd.DataFrame(r.per_pair).to_csv(out / "pairs" / f"{ds}_{r.method}.csv", index=False)
            if r.grid:
                cols = [np.stack([g[i] for g in r.grid]) for i in range(4)]
                write_grid(out / "grids" / f"{ds}_{r.method}.png", cols,
                           ["source", "driving input", f"{r.method} output", "target"], cell=160)
    (out / "tables.md").write_text("\n".join(md))
    frame = pd.DataFrame(rows, columns=["dataset", "method", "name", "metric", "value"])
    for k in ORDER:
        part = frame[frame.metric == k][["name", "value"]]
        part.to_csv(out / "plots" / f"{k}.csv", index=False)
