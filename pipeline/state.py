"""A stage's on-disk progress: an append-only table of finished items, written after their files.

Layout under a stage's out_dir (a local path or an fsspec URL, pipeline/outdir.py):

    <files the stage made>              written by the workers, each atomically
    _state/fingerprint.json             what the outputs depend on; a mismatch wipes the state
    _state/parts/<writer>-<seq>.jsonl   records of one batch of finished items, one file per batch,
                                        written atomically after the batch's files (append-only)
    _state/records.parquet              the parts compacted at the end of a run, sorted by item id
    _state/consolidated.json            which item list the tables below were made from
    manifest.parquet, rejects.parquet   consolidated from the records at the end of a run
    stats.json                          written last: the run is complete

A record is the only proof that an item is finished. A crash (of the driver or of any worker,
at any moment) leaves at worst files without a record: those items are redone and their files
overwritten, so nothing half-written ever counts and nothing recorded is ever redone. A part
that is unreadable or cut short (a copy interrupted, a foreign non-atomic filesystem) loses only
its unreadable lines: their items are redone. Duplicate records of one item (a worker that died
after recording, whose batch was retried elsewhere) collapse to one: done wins over a reject.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import sys
import uuid
import warnings
from typing import Any, Iterable

from pipeline.outdir import OutDir

STATE_DIR = "_state"
PARTS_DIR = f"{STATE_DIR}/parts"
RECORDS_TABLE = f"{STATE_DIR}/records.parquet"
CONSOLIDATED = f"{STATE_DIR}/consolidated.json"
FINGERPRINT_FILE = f"{STATE_DIR}/fingerprint.json"
OUTPUT_TABLES = ("manifest.parquet", "rejects.parquet", "stats.json")
# Reject codes that a later run tries again: the cause may have been fixed (a flaky disk, a
# model that ran out of memory). Codes raised by a stage for bad input are final.
RETRYABLE_CODES = frozenset({"stage_error", "worker_died", "write_error"})
RECORDS_ROW_GROUP = 16384  # rows per row group of records.parquet: what resuming decodes at once
RECORD_COLUMNS = ("item_id", "status", "code", "detail", "attempts", "files", "rows")


def json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=json_default, separators=(",", ":"))


def atomic_write_bytes(path: Any, data: bytes) -> None:
    """Write `data` to local `path` so that readers see the old file or the whole new one."""
    from pathlib import Path

    path = Path(path)
    OutDir(path.parent).write_bytes(path.name, data)


def atomic_write_json(path: Any, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=json_default).encode())


def fingerprint_digest(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(dumps(fingerprint).encode()).hexdigest()


class ItemsDigest:
    """sha256 of a run's item ids in order, fed chunk by chunk (`consolidated.json` records it:
    a finished stage is up to date only for the item list it was consolidated from)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()

    def update(self, item_ids: Iterable[str]) -> None:
        self._sha.update(b"".join(i.encode() + b"\0" for i in item_ids))

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


def without_local_paths(text: str) -> str:
    """Tracebacks name files by absolute path; outputs must not depend on where the checkout is."""
    for prefix, name in ((os.getcwd() + os.sep, ""), (sys.prefix + os.sep, "<python>/")):
        text = text.replace(prefix, name)
    return text


def done_record(item_id: str, rows: list[dict], files: Iterable[str], attempts: int) -> dict[str, Any]:
    return {"item_id": item_id, "status": "done", "code": "", "detail": "", "attempts": attempts,
            "files": dumps(sorted(files)), "rows": dumps(rows)}


def reject_record(item_id: str, code: str, detail: str, attempts: int) -> dict[str, Any]:
    return {"item_id": item_id, "status": "rejected", "code": code, "detail": without_local_paths(detail),
            "attempts": attempts, "files": "[]", "rows": "[]"}


def is_final(record: dict[str, Any]) -> bool:
    """Done, or refused for a reason a rerun would not change."""
    return record["status"] == "done" or record["code"] not in RETRYABLE_CODES


class RecordWriter:
    """Appends batches of records to the table: one atomically written part file per batch,
    named after this writer (unique per process), so writers never share a file."""

    def __init__(self, out: OutDir, writer_id: str | None = None) -> None:
        self.out = out
        self.writer_id = writer_id or uuid.uuid4().hex[:12]
        self.seq = 0

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        blob = "".join(dumps(r) + "\n" for r in records).encode()
        self.out.write_bytes(f"{PARTS_DIR}/{self.writer_id}-{self.seq:06d}.jsonl", blob)
        self.seq += 1


class StageState:
    """The records table of one stage's out_dir."""

    def __init__(self, out: OutDir | str | os.PathLike) -> None:
        self.out = out if isinstance(out, OutDir) else OutDir(out)

    def open(self, fingerprint: dict[str, Any]) -> bool:
        """Prepare the state for a run under `fingerprint`. Returns False when earlier records
        were made under another fingerprint and have been wiped (with their files)."""
        self.out.check_writable()
        digest = fingerprint_digest(fingerprint)
        kept = True
        if self.out.exists(FINGERPRINT_FILE):
            try:
                old = json.loads(self.out.read_bytes(FINGERPRINT_FILE))
            except (OSError, ValueError):
                old = {}
            if old.get("digest") != digest:
                self.wipe()
                kept = False
        elif self.out.listdir(PARTS_DIR) or self.out.exists(RECORDS_TABLE):
            self.wipe()  # records without a fingerprint: made by an unknown run
            kept = False
        blob = json.dumps({"digest": digest, "fingerprint": fingerprint}, indent=1, sort_keys=True, default=json_default)
        self.out.write_bytes(FINGERPRINT_FILE, blob.encode())
        return kept

    def wipe(self) -> None:
        """Remove every output of earlier runs: the files their records name, the records, and
        the consolidated tables."""
        for record in self.load().values():
            for rel in json.loads(record["files"]):
                self.out.remove(rel)
        self.out.rmtree(STATE_DIR)
        for name in OUTPUT_TABLES:
            self.out.remove(name)

    # --- reading -----------------------------------------------------------------------------

    def part_names(self) -> list[str]:
        return [n for n in self.out.listdir(PARTS_DIR) if n.endswith(".jsonl")]

    def load(self) -> dict[str, dict[str, Any]]:
        """Every item's record (compacted table, then the parts), one per item: a done record
        wins over a reject, a later reject over an earlier one."""
        records: dict[str, dict[str, Any]] = {}
        for record in self._compacted():
            records[record["item_id"]] = record
        for name in self.part_names():
            for record in self._part(name):
                old = records.get(record["item_id"])
                if old is None or old["status"] != "done":
                    records[record["item_id"]] = record
        return records

    def _compacted(self) -> list[dict[str, Any]]:
        table = self._compacted_columns(RECORD_COLUMNS)
        return [] if table is None else table.to_pylist()

    def _part(self, name: str) -> list[dict[str, Any]]:
        try:
            text = self.out.read_bytes(f"{PARTS_DIR}/{name}").decode("utf-8", errors="replace")
        except OSError as err:
            warnings.warn(f"record part {name} is unreadable ({err}); its items are redone", stacklevel=2)
            return []
        records, bad = [], 0
        for line in text.split("\n"):
            if not line:
                continue
            try:
                record = json.loads(line)
                if not all(k in record for k in RECORD_COLUMNS):
                    raise ValueError("missing fields")
                records.append(record)
            except ValueError:
                bad += 1
        if bad:
            warnings.warn(f"record part {self.out.path(PARTS_DIR + '/' + name)}: {bad} line(s) cut short or "
                          "unreadable; their items are redone", stacklevel=2)
        return records

    def finished(self) -> Any:
        """Ids that a new run must not redo, as one pyarrow string array: those with a final
        record anywhere in the table (a done record is never followed by another record of the
        item). Reads three columns of the compacted table, without a Python object per record:
        resuming a finished 100k-item stage stays well under a second, and the driver holds
        ~12 bytes per finished id, not a set entry."""
        import pyarrow as pa
        import pyarrow.compute as pc

        chunks = []
        retryable = pa.array(sorted(RETRYABLE_CODES))
        table = self._compacted_columns(("item_id", "status", "code"), where=lambda t: pc.or_(
            pc.equal(t["status"], "done"), pc.invert(pc.is_in(t["code"], value_set=retryable))))
        if table is not None:
            chunks.extend(table["item_id"].cast(pa.string()).chunks)
        for name in self.part_names():
            ids = [r["item_id"] for r in self._part(name) if is_final(r)]
            if ids:
                chunks.append(pa.array(ids, pa.string()))
        return pa.concat_arrays(chunks) if chunks else pa.array([], pa.string())

    def _compacted_columns(self, columns: tuple[str, ...], where: Any = None) -> Any:
        """Columns of the compacted table, read row group by row group; `where(table)` -> a
        boolean mask keeps only the rows the caller needs from each group."""
        if not self.out.exists(RECORDS_TABLE):
            return None
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(io.BytesIO(self.out.read_bytes(RECORDS_TABLE)))
            groups = []
            for g in range(parquet.num_row_groups):
                group = parquet.read_row_group(g, columns=list(columns), use_threads=False)
                groups.append(group if where is None else group.filter(where(group)))
            return pa.concat_tables(groups) if groups else parquet.schema_arrow.empty_table().select(list(columns))
        except Exception as err:  # noqa: BLE001 - a damaged table: its items are redone
            warnings.warn(f"{self.out.path(RECORDS_TABLE)} is unreadable ({type(err).__name__}: {err}); "
                          "its items count as unfinished and are redone", stacklevel=2)
            return None

    def table(self) -> Any:
        """Every item's record as one pyarrow table sorted by item id, one row per item (the
        same choice as `load`: a done record wins, else the latest), built part by part without
        a Python object per record, so compacting 100k+ records keeps the driver small."""
        import pyarrow as pa
        import pyarrow.compute as pc

        schema = pa.schema([(c, pa.int64() if c == "attempts" else pa.string()) for c in RECORD_COLUMNS])
        tables = []
        compacted = self._compacted_columns(RECORD_COLUMNS)
        if compacted is not None:
            tables.append(compacted.cast(schema))
        for name in self.part_names():
            records = self._part(name)
            if records:
                tables.append(pa.Table.from_pylist([{c: r[c] for c in RECORD_COLUMNS} for r in records], schema=schema))
        table = pa.concat_tables(tables) if tables else schema.empty_table()
        n = table.num_rows
        if n == 0:
            return table
        # one sort of three narrow columns, then one take of the whole table (no sorted copy
        # of every column that is filtered again)
        keys = pa.table({"item_id": table["item_id"], "_done": pc.equal(table["status"], "done"),
                         "_order": pa.array(range(n), pa.int64())})
        order = pc.sort_indices(keys, sort_keys=[("item_id", "ascending"), ("_done", "ascending"),
                                                 ("_order", "ascending")])
        ids = keys["item_id"].take(order).combine_chunks()
        del keys
        last = pc.not_equal(ids.slice(0, n - 1), ids.slice(1)) if n > 1 else pa.array([], pa.bool_())
        keep = pa.concat_arrays([last, pa.array([True])])
        return table.take(order.filter(keep))

    # --- compaction ----------------------------------------------------------------------------

    def compact_table(self, table: Any) -> None:
        """Write `table` (from `table()`) as the compacted records, then drop the parts."""
        import pyarrow.parquet as pq

        parts = self.part_names()
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd", row_group_size=RECORDS_ROW_GROUP)
        self.out.write_bytes(RECORDS_TABLE, buf.getvalue())
        for name in parts:
            self.out.remove(f"{PARTS_DIR}/{name}")
        if not self.out.listdir(PARTS_DIR):
            self.out.rmtree(PARTS_DIR)  # no empty folder left in the out
