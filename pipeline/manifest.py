"""Consolidate a stage's records into manifest.parquet, rejects.parquet and stats.json."""
from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import pandas as pd

from pipeline.state import StageState, atomic_write_bytes, atomic_write_json

REJECT_COLUMNS = {"item_id": "string", "stage": "string", "code": "string", "detail": "string", "attempts": "int64"}


def _frame(rows: list[dict[str, Any]], columns: dict[str, str]) -> pd.DataFrame:
    """A DataFrame with the declared columns first (typed even when empty), then any extra."""
    df = pd.DataFrame(rows)
    for col, dtype in columns.items():
        if col not in df.columns:
            df[col] = pd.Series(dtype=dtype)
    extra = [c for c in df.columns if c not in columns]
    df = df[list(columns) + extra]
    for col, dtype in columns.items():
        if dtype in ("int64", "float64", "string", "bool"):
            df[col] = df[col].astype(dtype)
    # nested values (lists of landmarks, dicts) go to parquet as JSON text: one portable schema
    for col in df.columns:
        if any(isinstance(v, (list, dict)) for v in df[col]):
            df[col] = df[col].map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    return df


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    df.to_parquet(tmp, index=False)
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()


def consolidate(
    state: StageState,
    stage_name: str,
    item_ids: Sequence[str],
    manifest_columns: dict[str, str],
    started: float,
) -> dict[str, Any]:
    """Write the stage's tables from the records of `item_ids`; stats.json last. Returns stats."""
    records = state.load_all()
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    missing = []
    for item_id in item_ids:
        record = records.get(item_id)
        if record is None:
            missing.append(item_id)
        elif record["status"] == "done":
            rows.extend({"item_id": item_id, **row} for row in record["rows"])
        else:
            rejects.append(
                {"item_id": item_id, "stage": stage_name, "code": record["code"],
                 "detail": record.get("detail", ""), "attempts": record.get("attempts", 1)}
            )
    columns = {"item_id": "string", **manifest_columns}
    _write_parquet(_frame(rows, columns), state.out_dir / "manifest.parquet")
    _write_parquet(_frame(rejects, REJECT_COLUMNS), state.out_dir / "rejects.parquet")
    stats = {
        "stage": stage_name,
        "items": len(item_ids),
        "done": len(item_ids) - len(rejects) - len(missing),
        "rejected": len(rejects),
        "unfinished": len(missing),
        "rows": len(rows),
        "reject_codes": dict(sorted(Counter(r["code"] for r in rejects).items())),
        "seconds": round(time.time() - started, 2),
        "complete": not missing,
    }
    atomic_write_json(state.out_dir / "stats.json", stats)
    return stats
