"""Consolidate a stage's records into manifest.parquet, rejects.parquet and stats.json.

Everything written here is a pure function of the records and the item list (no wall-clock
time, host or absolute path), so two runs of a deterministic stage give byte-identical outs;
run timings go to the runner's timing report outside the outs (pipeline/timing.py).
"""
from __future__ import annotations

import io
import json
from collections import Counter
from typing import Any

import pandas as pd

from pipeline.state import CONSOLIDATED, StageState

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


BATCH = 8192  # items whose rows are turned into Python objects at once


def _to_arrow(df: pd.DataFrame) -> Any:
    import pyarrow as pa

    return pa.Table.from_pandas(df, preserve_index=False)


def _write_parquet(state: StageState, tables: list[Any], empty: pd.DataFrame, name: str) -> None:
    """Batches (arrow tables, each from a `_frame`) as one parquet file. One batch is written as
    `DataFrame.to_parquet` wrote the whole frame (same bytes as before streaming); several are
    concatenated with their types unified (an int column of one batch and a float one of
    another become float, a column missing from a batch is null there)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = _to_arrow(empty) if not tables else tables[0] if len(tables) == 1 else \
        pa.concat_tables(tables, promote_options="permissive")
    buf = io.BytesIO()
    pq.write_table(table, buf)
    state.out.write_bytes(name, buf.getvalue())


def up_to_date(state: StageState, digest: str) -> dict[str, Any] | None:
    """The stats of the last consolidation when it was made from the item list with this
    `digest` (`pipeline.state.ItemsDigest`) and no record came since (a finished stage resumed: nothing to
    rewrite); else None."""
    out = state.out
    if state.part_names() or not out.exists(CONSOLIDATED) or not out.exists("stats.json"):
        return None
    try:
        made = json.loads(out.read_bytes(CONSOLIDATED))
        stats = json.loads(out.read_bytes("stats.json"))
    except (OSError, ValueError):
        return None
    return stats if made.get("items") == digest else None


def consolidate(state: StageState, stage_name: str, item_ids: Any, digest: str,
                manifest_columns: dict[str, str]) -> dict[str, Any]:
    """Compact the records, write the stage's tables from the records of `item_ids` (a pyarrow
    string array, in the stage's order; `digest` is theirs), stats.json last. Returns the
    stats. Rows become Python objects `BATCH` items at a time and go to arrow at once, so the
    driver holds the manifest as arrow columns, not as one dict per row."""
    import pyarrow.compute as pc

    table = state.table()
    state.compact_table(table)
    position = pc.index_in(item_ids, value_set=table["item_id"])
    missing = position.null_count
    position = position.drop_null()  # the records of the items, in item order
    columns = {"item_id": "string", **manifest_columns}
    manifests, reject_tables = [], []
    n_rows, n_rejects, codes = 0, 0, Counter()
    for start in range(0, len(position), BATCH):
        picked = table.take(position.slice(start, BATCH)).to_pydict()
        rows: list[dict[str, Any]] = []
        rejects: list[dict[str, Any]] = []
        for k, item_id in enumerate(picked["item_id"]):
            if picked["status"][k] == "done":
                rows.extend({"item_id": item_id, **row} for row in json.loads(picked["rows"][k]))
            else:
                rejects.append({"item_id": item_id, "stage": stage_name, "code": picked["code"][k],
                                "detail": picked["detail"][k], "attempts": int(picked["attempts"][k])})
        if rows:
            manifests.append(_to_arrow(_frame(rows, columns)))
        if rejects:
            reject_tables.append(_to_arrow(_frame(rejects, REJECT_COLUMNS)))
        n_rows, n_rejects = n_rows + len(rows), n_rejects + len(rejects)
        codes.update(r["code"] for r in rejects)
    del table
    _write_parquet(state, manifests, _frame([], columns), "manifest.parquet")
    _write_parquet(state, reject_tables, _frame([], REJECT_COLUMNS), "rejects.parquet")
    n_items = len(item_ids)
    stats = {
        "stage": stage_name,
        "items": n_items,
        "done": n_items - n_rejects - missing,
        "rejected": n_rejects,
        "unfinished": missing,
        "rows": n_rows,
        "reject_codes": dict(sorted(codes.items())),
        "complete": not missing,
    }
    state.out.write_bytes(CONSOLIDATED, json.dumps({"items": digest}).encode())
    state.out.write_bytes("stats.json", (json.dumps(stats, indent=1, sort_keys=True) + "\n").encode())
    return stats
