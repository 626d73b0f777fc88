"""The runner's timing report: how long a stage took, where its items ran. Outside the DVC outs.

Wall-clock seconds and node ids differ on every run, so they must not sit inside a stage's
out_dir (its hash in dvc.lock would change on every `dvc repro`). They go to
`<runner.reports_dir>/<stage>/timing.json`, which git ignores and dvc.yaml does not track.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


def write_timing(reports_dir: str, summary: Any, workers: int) -> Path | None:
    """Write the run's figures; nothing when `reports_dir` is empty."""
    if not reports_dir:
        return None
    path = Path(reports_dir) / summary.stage / "timing.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "stage": summary.stage, "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "seconds": round(summary.seconds, 3), "processed": summary.processed, "skipped": summary.skipped,
        "items_per_s": round(summary.processed / summary.seconds, 1) if summary.seconds > 0 else None,
        "workers": workers, "items_per_node": dict(sorted(summary.nodes.items())),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path
