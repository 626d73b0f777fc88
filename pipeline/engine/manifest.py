"""Consolidate a stage's records into manifest.parquet, rejects.parquet and stats.json.

Everything written here is a pure function of the records and the item list (no wall-clock
time, host or absolute path), so two runs of a deterministic stage give byte-identical outs;
run timings go to the runner's timing report outside the outs (pipeline/engine/timing.py).
"""
from __future__ import annotations

import json
from collections import Counter
from typing import Any, Callable, Iterator

import pandas as pd

from pipeline.engine.spill import ExternalSort, Scratch, read_run, rebatch
from pipeline.engine.state import CONSOLIDATED, StageState

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


def without_version_stamps(table: Any) -> Any:
    """`table` without the library versions pandas writes into its schema metadata (`creator`:
    pyarrow's version, `pandas_version`): a DVC out must hash the same under any pandas. The
    column types pandas needs to read the frame back stay. (The Parquet footer's `created_by`
    stays: readers use it to work around known writer bugs; requirements.lock pins pyarrow.)"""
    meta = dict(table.schema.metadata or {})
    if b"pandas" in meta:
        pandas_meta = json.loads(meta[b"pandas"])
        pandas_meta.pop("creator", None)
        pandas_meta.pop("pandas_version", None)
        meta[b"pandas"] = json.dumps(pandas_meta).encode()
    return table.replace_schema_metadata(meta)


def write_frame(frame: pd.DataFrame, path: Any) -> None:
    """`frame.to_parquet(path, index=False)` without version stamps (see above)."""
    import pyarrow.parquet as pq

    pq.write_table(_to_arrow(frame), path)


def _to_arrow(df: pd.DataFrame) -> Any:
    import pyarrow as pa

    return without_version_stamps(pa.Table.from_pandas(df, preserve_index=False))


class _TableOut:
    """One output table (manifest.parquet or rejects.parquet) written from batches (arrow tables,
    each from a `_frame`) without holding them all. One batch is written as `DataFrame.to_parquet`
    wrote the whole frame (the bytes of a small stage's table do not change); several are first
    spilled to local scratch, their types unified as `pa.concat_tables(promote_options=
    "permissive")` unifies them (an int column of one batch and a float one of another become
    float, a column missing from a batch is null there), then streamed one row group per batch."""

    def __init__(self, state: StageState, name: str, empty: pd.DataFrame) -> None:
        self.state, self.name, self.empty = state, name, empty
        self.first: Any = None
        self.spill: Scratch | None = None
        self.runs: list[str] = []
        self.schemas: list[Any] = []

    def add(self, table: Any) -> None:
        if self.first is None:
            self.first = table
            return
        if self.spill is None:
            self.spill = Scratch()
            self._keep(self.first)
        self._keep(table)

    def _keep(self, table: Any) -> None:
        assert self.spill is not None
        self.runs.append(self.spill.write([table]))  # one file per batch: schemas may differ
        self.schemas.append(table.schema)

    def write(self) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            with self.state.out.writing(self.name) as fh:
                if self.spill is None:
                    pq.write_table(_to_arrow(self.empty) if self.first is None else self.first, fh)
                    return
                schema = pa.unify_schemas(self.schemas, promote_options="permissive")
                empty = schema.empty_table()
                with pq.ParquetWriter(fh, schema) as writer:
                    for path in self.runs:
                        batch = pa.concat_tables(list(read_run(path, 1 << 62)))
                        writer.write_table(pa.concat_tables([empty, batch], promote_options="permissive").cast(schema))
        finally:
            if self.spill is not None:
                self.spill.close()


def _joined(items: Iterator[Any], records: Iterator[Any]) -> Iterator[tuple[Any, int]]:
    """Merge join of two streams sorted by item id: (item_id, position) tables and the compacted
    records. Yields, per items table, its items' records with their `position` (in id order)
    and how many of its items have no record."""
    import pyarrow as pa
    import pyarrow.compute as pc

    held = None
    for batch in items:
        ids = batch["item_id"]
        lo, hi = ids[0], ids[-1]
        while held is None or held.num_rows == 0 or held["item_id"][-1].as_py() < hi.as_py():
            more = next(records, None)
            if more is None:
                break
            held = more if held is None else pa.concat_tables([held, more])
            held = held.filter(pc.greater_equal(held["item_id"], lo))  # records of no item of the run
        if held is None or held.num_rows == 0:
            yield None, batch.num_rows
            continue
        where = pc.index_in(ids, value_set=held["item_id"])
        found = pc.is_valid(where)
        picked = held.take(where.drop_null()).append_column("position", batch["position"].filter(found))
        yield picked, batch.num_rows - picked.num_rows
        held = held.filter(pc.greater(held["item_id"], hi))


def up_to_date(state: StageState, digest: str) -> dict[str, Any] | None:
    """The stats of the last consolidation when it was made from the item list with this
    `digest` (`pipeline.engine.state.ItemsDigest`) and no record came since (a finished stage resumed: nothing to
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


def consolidate(state: StageState, stage_name: str, sorted_ids: Callable[[], Iterator[Any]], n_items: int,
                digest: str, manifest_columns: dict[str, str]) -> dict[str, Any]:
    """Compact the records, write the stage's tables from the records of the run's items
    (`sorted_ids()`: their (item_id, position) sorted by id, `pipeline.engine.item_feed.ItemFeed`;
    `digest` is theirs), stats.json last. Returns the stats. The records are joined with the
    items in id order, put back in the stage's order on local scratch, and turned into rows
    `BATCH` items at a time: the driver's memory does not grow with the number of items."""
    from pipeline.engine.state import RECORD_COLUMNS

    state.compact()
    columns = {"item_id": "string", **manifest_columns}
    manifest = _TableOut(state, "manifest.parquet", _frame([], columns))
    reject_out = _TableOut(state, "rejects.parquet", _frame([], REJECT_COLUMNS))
    n_rows, n_rejects, missing, codes = 0, 0, 0, Counter()
    with ExternalSort([("position", "ascending")]) as in_order:
        for picked, unmatched in _joined(iter(sorted_ids()), state.compacted(RECORD_COLUMNS)):
            missing += unmatched
            if picked is not None:
                in_order.add(picked.drop_columns(["files"]))
        for batch in rebatch(in_order.sorted(), BATCH):
            picked = batch.to_pydict()
            rows: list[dict[str, Any]] = []
            rejects: list[dict[str, Any]] = []
            for k, item_id in enumerate(picked["item_id"]):
                if picked["status"][k] == "done":
                    rows.extend({"item_id": item_id, **row} for row in json.loads(picked["rows"][k]))
                else:
                    rejects.append({"item_id": item_id, "stage": stage_name, "code": picked["code"][k],
                                    "detail": picked["detail"][k], "attempts": int(picked["attempts"][k])})
            if rows:
                manifest.add(_to_arrow(_frame(rows, columns)))
            if rejects:
                reject_out.add(_to_arrow(_frame(rejects, REJECT_COLUMNS)))
            n_rows, n_rejects = n_rows + len(rows), n_rejects + len(rejects)
            codes.update(r["code"] for r in rejects)
    manifest.write()
    reject_out.write()
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
