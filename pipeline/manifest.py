"""Consolidate a stage's records into manifest.parquet, rejects.parquet and stats.json.

Everything written here is a pure function of the records and the item list (no wall-clock
time, host or absolute path), so two runs of a deterministic stage give byte-identical outs;
run timings go to the runner's timing report outside the outs (pipeline/timing.py).
"""
from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any, Sequence

import pandas as pd

from pipeline.state import CONSOLIDATED, StageState, items_digest

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


def _write_parquet(state: StageState, df: pd.DataFrame, name: str) -> None:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    state.out.write_bytes(name, buf.getvalue())


def up_to_date(state: StageState, item_ids: Sequence[str]) -> dict[str, Any] | None:
    """The stats of the last consolidation when it was made from these items and no record
    came since (a finished stage resumed: nothing to rewrite); else None."""
    out = state.out
    if state.part_names() or not out.exists(CONSOLIDATED) or not out.exists("stats.json"):
        return None
    try:
        made = json.loads(out.read_bytes(CONSOLIDATED))
        stats = json.loads(out.read_bytes("stats.json"))
    except (OSError, ValueError):
        return None
    return stats if made.get("items") == items_digest(item_ids) else None


def consolidate(state: StageState, stage_name: str, item_ids: Sequence[str], manifest_columns: dict[str, str]) -> dict[str, Any]:
    """Compact the records, write the stage's tables from the records of `item_ids`, stats.json
    last. Returns the stats."""
    table = state.table()
    state.compact_table(table)
    position = pd.Index(table["item_id"].to_pylist()).get_indexer(list(item_ids))
    found = position >= 0
    missing = int((~found).sum())
    rows: list[dict[str, Any]] = []
    rejects: list[dict[str, Any]] = []
    for batch in table.take(position[found]).to_batches(max_chunksize=8192):  # in item order
        picked = batch.to_pydict()
        for k, item_id in enumerate(picked["item_id"]):
            if picked["status"][k] == "done":
                rows.extend({"item_id": item_id, **row} for row in json.loads(picked["rows"][k]))
            else:
                rejects.append({"item_id": item_id, "stage": stage_name, "code": picked["code"][k],
                                "detail": picked["detail"][k], "attempts": int(picked["attempts"][k])})
    _write_parquet(state, _frame(rows, {"item_id": "string", **manifest_columns}), "manifest.parquet")
    _write_parquet(state, _frame(rejects, REJECT_COLUMNS), "rejects.parquet")
    stats = {
        "stage": stage_name,
        "items": len(item_ids),
        "done": len(item_ids) - len(rejects) - missing,
        "rejected": len(rejects),
        "unfinished": missing,
        "rows": len(rows),
        "reject_codes": dict(sorted(Counter(r["code"] for r in rejects).items())),
        "complete": not missing,
    }
    state.out.write_bytes(CONSOLIDATED, json.dumps({"items": items_digest(item_ids)}).encode())
    state.out.write_bytes("stats.json", (json.dumps(stats, indent=1, sort_keys=True) + "\n").encode())
    return stats
