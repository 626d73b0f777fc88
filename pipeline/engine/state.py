"""A stage's on-disk progress: an append-only table of finished items, written after their files.

Layout under a stage's out_dir (a local path or an fsspec URL, pipeline/engine/outdir.py):

    <files the stage made>              written by the workers, each atomically
    _state/fingerprint.json             what the outputs depend on; a mismatch wipes the state
    _state/parts/<writer>-<seq>.jsonl   records of one batch of finished items, one file per batch,
                                        written atomically after the batch's files (append-only)
    _state/records.parquet              the parts compacted at the end of a run (and those a killed
                                        run left, when the next one opens), sorted by item id
    _state/consolidated.json            which item list the tables below were made from
    manifest.parquet, rejects.parquet   consolidated from the records at the end of a run
    stats.json                          written last: the run is complete

A record is the only proof that an item is finished. A crash (of the driver or of any worker,
at any moment) leaves at worst files without a record: those items are redone and their files
overwritten, so nothing half-written ever counts and nothing recorded is ever redone. A part
that is unreadable or cut short (a copy interrupted, a foreign non-atomic filesystem) loses only
its unreadable lines: their items are redone. Duplicate records of one item (a worker that died
after recording, whose batch was retried elsewhere) collapse to one: done wins over a reject.

Nothing here holds every record at once: compaction is an external merge (pipeline/engine/spill.py),
the finished ids are looked up in the sorted compacted table row group by row group
(`FinishedIds`), so the driver's memory does not grow with the number of items.
"""
from __future__ import annotations

import bisect
import hashlib
import json
import os
import sys
import uuid
import warnings
from typing import Any, Iterable, Iterator

from pipeline.engine.outdir import OutDir, json_default
from pipeline.engine.spill import ExternalSort, dedup_last, merge_sorted, rebatch

STATE_DIR = "_state"
PARTS_DIR = f"{STATE_DIR}/parts"
RECORDS_TABLE = f"{STATE_DIR}/records.parquet"
CONSOLIDATED = f"{STATE_DIR}/consolidated.json"
FINGERPRINT_FILE = f"{STATE_DIR}/fingerprint.json"
OUTPUT_TABLES = ("manifest.parquet", "rejects.parquet", "stats.json")
# Reject codes that a later run tries again: the cause may have been fixed (a flaky disk, a
# model that ran out of memory). Codes raised by a stage for bad input are final.
RETRYABLE_CODES = frozenset({"stage_error", "worker_died", "write_error"})
RECORDS_ROW_GROUP = 8192  # rows per row group of records.parquet: what resuming decodes at once
RECORD_COLUMNS = ("item_id", "status", "code", "detail", "attempts", "files", "rows")
# order of one item's records: a done record wins, else the latest (the compacted table's rows
# come before any part's; parts are read in name order)
RECORD_ORDER = [("item_id", "ascending"), ("_done", "ascending"), ("_order", "ascending")]
PARTS_ORDER_BASE = 1 << 40  # `_order` of the first part record: after every compacted row
FINISHED_CACHE_GROUPS = 4  # row groups of finished ids a `FinishedIds` keeps decoded


def record_schema() -> Any:
    import pyarrow as pa

    return pa.schema([(c, pa.int64() if c == "attempts" else pa.string()) for c in RECORD_COLUMNS])


def dumps(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=json_default, separators=(",", ":"))


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
        if kept and self.part_names():
            self.compact()  # a run that was killed: its parts join the table, so resuming reads one sorted file
        return kept

    def wipe(self) -> None:
        """Remove every output of earlier runs: the files their records name, the records, and
        the consolidated tables (records read a row group / a part at a time)."""
        for table in self._sources(("files",)):
            for files in table["files"].to_pylist():
                for rel in json.loads(files):
                    self.out.remove(rel)
        self.out.rmtree(STATE_DIR)
        for name in OUTPUT_TABLES:
            self.out.remove(name)

    # --- reading -----------------------------------------------------------------------------

    def part_names(self) -> list[str]:
        return [n for n in self.out.listdir(PARTS_DIR) if n.endswith(".jsonl")]

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

    def _compacted_file(self) -> Any:
        """The compacted table opened for reading row group by row group (its footer read, no
        row), or None when there is none or it is unreadable (its items are then redone)."""
        if not self.out.exists(RECORDS_TABLE):
            return None
        import pyarrow.parquet as pq

        try:
            # a local file is opened by path (pyarrow reads it by ranges and closes it itself)
            return pq.ParquetFile(self.out.path(RECORDS_TABLE) if self.out.local else self.out.open_read(RECORDS_TABLE))
        except Exception as err:  # noqa: BLE001 - a damaged table: its items are redone
            self._warn_unreadable(err)
            return None

    def _warn_unreadable(self, err: BaseException) -> None:
        warnings.warn(f"{self.out.path(RECORDS_TABLE)} is unreadable ({type(err).__name__}: {err}); "
                      "its items count as unfinished and are redone", stacklevel=3)

    def compacted(self, columns: tuple[str, ...]) -> Iterator[Any]:
        """The compacted table's `columns`, one row group at a time (sorted by item id); a row
        group that cannot be decoded ends the stream with a warning (the rest is redone)."""
        parquet = self._compacted_file()
        if parquet is None:
            return
        schema = record_schema()
        try:
            for g in range(parquet.num_row_groups):
                group = parquet.read_row_group(g, columns=list(columns), use_threads=False)
                yield group.cast(pa_select(schema, columns))
        except Exception as err:  # noqa: BLE001
            self._warn_unreadable(err)
        finally:
            parquet.close(force=True)

    def _parts(self, columns: tuple[str, ...], names: list[str] | None = None) -> Iterator[Any]:
        """The records of the parts (`names`, default all), one arrow table per part."""
        import pyarrow as pa

        schema = pa_select(record_schema(), columns)
        for name in self.part_names() if names is None else names:
            records = self._part(name)
            if records:
                yield pa.Table.from_pylist([{c: r[c] for c in columns} for r in records], schema=schema)

    def _sources(self, columns: tuple[str, ...]) -> Iterator[Any]:
        """Every record as stored (compacted rows, then parts), duplicates and all."""
        yield from self.compacted(columns)
        yield from self._parts(columns)

    def merged(self, parts: list[str] | None = None) -> Iterator[Any]:
        """Every item's record, one row per item, sorted by item id, as a stream of arrow
        tables (a done record wins, else the latest: `RECORD_ORDER`): the compacted table merged
        with the parts (`parts`, default all) sorted on local scratch, so the memory it takes
        does not depend on the number of records (pipeline/engine/spill.py)."""
        import numpy as np
        import pyarrow as pa
        import pyarrow.compute as pc

        def ordered(tables: Iterator[Any], base: int) -> Iterator[Any]:
            for table in tables:
                n = table.num_rows
                yield table.append_column("_done", pc.equal(table["status"], "done")).append_column(
                    "_order", pa.array(np.arange(base, base + n, dtype=np.int64)))
                base += n

        with ExternalSort(RECORD_ORDER) as pending:
            for table in ordered(self._parts(RECORD_COLUMNS, parts), PARTS_ORDER_BASE):
                pending.add(table)
            sources = [ordered(self.compacted(RECORD_COLUMNS), 0), pending.sorted()]
            for table in dedup_last(merge_sorted(sources, "item_id", pending.sort), "item_id", pending.sort):
                yield table.drop_columns(["_done", "_order"])

    def table(self) -> Any:
        """Every item's record as one table (`merged` whole: for small stages and tests)."""
        import pyarrow as pa

        tables = list(self.merged())
        return pa.concat_tables(tables) if tables else record_schema().empty_table()

    def load(self) -> dict[str, dict[str, Any]]:
        """Every item's record as a dict by item id (small stages and tests)."""
        return {r["item_id"]: r for r in self.table().to_pylist()}

    def finished(self) -> "FinishedIds":
        """The ids a new run must not redo: final records of the compacted table (`open`
        compacts the parts a killed run left)."""
        return FinishedIds(self)

    # --- compaction ----------------------------------------------------------------------------

    def compact(self) -> None:
        """Merge the parts into the compacted table (streamed, one row group at a time), then
        drop them. A crash in between leaves the old table and the parts: nothing is lost."""
        parts = self.part_names()
        self._write(rebatch(self.merged(parts), RECORDS_ROW_GROUP))
        self._drop_parts(parts)

    def compact_table(self, table: Any) -> None:
        """Write `table` (from `table()`) as the compacted records, then drop the parts."""
        parts = self.part_names()
        self._write(rebatch([table], RECORDS_ROW_GROUP))
        self._drop_parts(parts)

    def _write(self, groups: Iterable[Any]) -> None:
        import pyarrow.parquet as pq

        schema = record_schema()
        with self.out.writing(RECORDS_TABLE) as fh:
            with pq.ParquetWriter(fh, schema, compression="zstd") as writer:
                wrote = False
                for group in groups:
                    writer.write_table(group.cast(schema), row_group_size=RECORDS_ROW_GROUP)
                    wrote = True
                if not wrote:
                    writer.write_table(schema.empty_table(), row_group_size=RECORDS_ROW_GROUP)

    def _drop_parts(self, parts: list[str]) -> None:
        for name in parts:
            self.out.remove(f"{PARTS_DIR}/{name}")
        if not self.out.listdir(PARTS_DIR):
            self.out.rmtree(PARTS_DIR)  # no empty folder left in the out


def pa_select(schema: Any, columns: tuple[str, ...]) -> Any:
    import pyarrow as pa

    return pa.schema([schema.field(c) for c in columns])


class FinishedIds:
    """Membership of item ids in the compacted table's final records (done, or refused for good),
    without holding them: the table is sorted by item id, so each row group's min / max (from
    the parquet footer) says which groups a chunk of ids can hit; only those groups' ids are
    decoded (a few kept). Items handed in id order touch each group about once; in any order
    the cost per chunk is bounded by the number of groups, and memory stays flat."""

    def __init__(self, state: StageState) -> None:
        self._file = state._compacted_file()
        self._state = state
        self._ranges: list[tuple[int, str | None, str | None]] = []  # (row group, min id, max id)
        self._cache: dict[int, Any] = {}
        if self._file is not None:
            col = self._file.schema_arrow.get_field_index("item_id")
            for g in range(self._file.num_row_groups):
                meta = self._file.metadata.row_group(g)
                if meta.num_rows == 0:
                    continue
                stats = meta.column(col).statistics
                if stats is not None and stats.has_min_max:
                    self._ranges.append((g, stats.min, stats.max))
                else:
                    self._ranges.append((g, None, None))

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def _group(self, g: int) -> Any:
        import pyarrow as pa
        import pyarrow.compute as pc

        if g not in self._cache:  # final = done, or refused for a reason a rerun would not change
            try:
                t = self._file.read_row_group(g, columns=["item_id", "status", "code"], use_threads=False)
                final = pc.or_(pc.equal(t["status"], "done"),
                               pc.invert(pc.is_in(t["code"], value_set=pa.array(sorted(RETRYABLE_CODES)))))
                ids = t["item_id"].filter(final).combine_chunks().cast(pa.string())
            except Exception as err:  # noqa: BLE001 - a damaged group: its items are redone
                self._state._warn_unreadable(err)
                ids = pa.array([], pa.string())
            if len(self._cache) >= FINISHED_CACHE_GROUPS:
                self._cache.pop(next(iter(self._cache)))
            self._cache[g] = ids
        return self._cache[g]

    def contains(self, ids: Any) -> Any:
        """A numpy bool mask: which of `ids` (a pyarrow string array) are finished."""
        import numpy as np
        import pyarrow.compute as pc

        mask = np.zeros(len(ids), dtype=bool)
        if not self._ranges or not len(ids):
            return mask
        keys = sorted(ids.to_pylist())
        for g, lo, hi in self._ranges:
            if lo is not None:
                k = bisect.bisect_left(keys, lo)
                if k == len(keys) or keys[k] > hi:
                    continue
            mask |= pc.is_in(ids, value_set=self._group(g)).to_numpy(zero_copy_only=False)
        return mask

    def close(self) -> None:
        if self._file is not None:
            self._file.close(force=True)
            self._file = None
        self._cache.clear()
