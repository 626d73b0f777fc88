"""External sorting of arrow tables: sorted runs spilled to a local scratch folder, merged back in
key order a bounded number of rows at a time.

What the runner's driver must see of every item at the end of a run (the records table
deduplicated, the item ids to check for duplicates and to join with their records, the manifest
in the stage's item order) goes through here, so the driver's peak memory is set by `RUN_ROWS` /
`RUN_BYTES` and `MERGE_ROWS`, not by the number of items: at paper scale (~525k items a stage)
the driver holds about what it holds for 10k.

A merge step takes from every run the rows whose key is <= the smallest "last key" of the runs'
current batches (the frontier: no row still unread can sort before it), sorts those together
and hands them on: vectorised (arrow compute), one step per batch read. Rows of one key may be
split across two consecutive steps (a run's batch ending at the frontier key); consumers that
group by key (`dedup_last`) carry the last key over.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any, Callable, Iterable, Iterator

RUN_ROWS = 8192  # rows buffered before they are sorted and spilled as one run (<= the smallest stage measured: 10k)
RUN_BYTES = 16 << 20  # ... or this many bytes of arrow buffers, whichever comes first
MERGE_ROWS = 8192  # rows read at once over all runs of one merge
MAX_FANIN = 64  # runs merged at once; more are first merged in groups into longer runs
SPILL_CHUNK = 256  # rows per record batch of a spilled run (the read granularity)


def rebatch(tables: Iterable[Any], rows: int) -> Iterator[Any]:
    """The rows of `tables`, in order, as tables of exactly `rows` rows (the last one shorter)."""
    import pyarrow as pa

    held: list[Any] = []
    n = 0
    for table in tables:
        held.append(table)
        n += table.num_rows
        while n >= rows:
            whole = pa.concat_tables(held)
            yield whole.slice(0, rows)
            rest = whole.slice(rows)
            held, n = ([rest] if rest.num_rows else []), rest.num_rows
    if n:
        yield pa.concat_tables(held)


class Scratch:
    """A private folder under `scratch` (the system's temp folder by default), made on first
    use, for tables written as Arrow IPC files; `close` removes it."""

    def __init__(self, scratch: str | None = None) -> None:
        self._scratch = scratch
        self._dir: str | None = None
        self._n = 0

    def write(self, tables: Iterable[Any]) -> str:
        """Write the tables (one schema) as one file; returns its path (`read_run` reads it)."""
        import pyarrow as pa

        if self._dir is None:
            self._dir = tempfile.mkdtemp(prefix="piq-spill-", dir=self._scratch)
        path = os.path.join(self._dir, f"run-{self._n:06d}.arrow")
        self._n += 1
        writer = None
        try:
            for table in tables:
                if writer is None:
                    writer = pa.ipc.new_file(path, table.schema)
                writer.write_table(table, max_chunksize=SPILL_CHUNK)
        finally:
            if writer is not None:
                writer.close()
        return path

    def close(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None


class ExternalSort:
    """Tables added in any order come back as one stream sorted by `sort_keys` (pyarrow
    `sort_indices` keys; the first names the merge key). Spilled runs are Arrow IPC files in a
    private folder under `scratch` (the system's temp folder by default), removed by `close`.
    Every added table must have the same schema. `sorted()` may be called more than once."""

    def __init__(self, sort_keys: list[tuple[str, str]], scratch: str | None = None, run_rows: int | None = None,
                 run_bytes: int | None = None) -> None:
        self.sort_keys = sort_keys
        self.key = sort_keys[0][0]
        self.run_rows, self.run_bytes = run_rows or RUN_ROWS, run_bytes or RUN_BYTES
        self._scratch = Scratch(scratch)
        self._held: list[Any] = []
        self._held_rows = self._held_bytes = 0
        self._runs: list[str] = []
        self.rows = 0

    def add(self, table: Any) -> None:
        if not table.num_rows:
            return
        self._held.append(table)
        self._held_rows += table.num_rows
        self._held_bytes += table.nbytes
        self.rows += table.num_rows
        if self._held_rows >= self.run_rows or self._held_bytes >= self.run_bytes:
            self._spill()

    def sort(self, table: Any) -> Any:
        import pyarrow.compute as pc

        return table.take(pc.sort_indices(table, sort_keys=self.sort_keys))

    def _spill(self) -> None:
        import pyarrow as pa

        if not self._held:
            return
        table = self.sort(pa.concat_tables(self._held))
        self._held, self._held_rows, self._held_bytes = [], 0, 0
        self._runs.append(self._scratch.write([table]))

    def sorted(self) -> Iterator[Any]:
        """Every added row as a stream of tables of at most ~`MERGE_ROWS` rows, sorted by the
        first sort key; rows that tie on it are in full sort order within one table, but one
        key's rows may be split over two consecutive tables (see `dedup_last`)."""
        if not self._runs:  # everything still in memory (a small run): no file at all
            if self._held:
                import pyarrow as pa

                yield from rebatch([self.sort(pa.concat_tables(self._held))], MERGE_ROWS)
            return
        self._spill()
        while len(self._runs) > MAX_FANIN:  # merge groups into longer runs until one merge will do
            groups = [self._runs[k : k + MAX_FANIN] for k in range(0, len(self._runs), MAX_FANIN)]
            self._runs = [self._scratch.write(self._merge(group)) for group in groups]
            for path in (p for group in groups for p in group):
                os.remove(path)
        yield from self._merge(self._runs)

    def _merge(self, runs: list[str]) -> Iterator[Any]:
        per_run = max(SPILL_CHUNK, MERGE_ROWS // max(len(runs), 1))
        yield from merge_sorted([read_run(path, per_run) for path in runs], self.key, self.sort)

    def close(self) -> None:
        self._scratch.close()
        self._runs, self._held = [], []

    def __enter__(self) -> "ExternalSort":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def read_run(path: str, rows: int) -> Iterator[Any]:
    """A spilled run, `rows` rows at a time (batches of `SPILL_CHUNK` read one by one)."""
    import pyarrow as pa

    with pa.OSFile(path, "rb") as fh:
        reader = pa.ipc.open_file(fh)
        batches = (reader.get_batch(k) for k in range(reader.num_record_batches))
        yield from rebatch((pa.Table.from_batches([b]) for b in batches), rows)


def merge_sorted(sources: list[Iterator[Any]], key: str, sort: Callable[[Any], Any]) -> Iterator[Any]:
    """k-way merge of streams of tables, each sorted by column `key`; `sort(table)` orders the
    rows a step takes (ties between runs broken by the caller's full sort keys)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if len(sources) == 1:
        yield from sources[0]
        return
    heads: dict[int, Any] = {}

    def refill(i: int) -> None:
        for table in sources[i]:
            if table.num_rows:
                heads[i] = table
                return
        heads.pop(i, None)

    for i in range(len(sources)):
        refill(i)
    while heads:
        frontier = min(t[key][-1].as_py() for t in heads.values())
        taken = []
        for i in list(heads):
            table = heads[i]
            n = pc.sum(pc.less_equal(table[key], pa.scalar(frontier, table.schema.field(key).type))).as_py() or 0
            if n:
                taken.append(table.slice(0, n))
            if n == table.num_rows:
                refill(i)
            elif n:
                heads[i] = table.slice(n)
        yield sort(pa.concat_tables(taken))


def dedup_last(tables: Iterable[Any], key: str, sort: Callable[[Any], Any]) -> Iterator[Any]:
    """Of each run of equal `key` values in a sorted stream, the last row (the sort keys decide
    which one that is); a group split across two tables of the stream counts once (the row held
    over from the previous table is sorted in with the next one's rows of its key)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    carry = None
    for table in tables:
        if carry is not None and table.num_rows:
            same = table[key][0].as_py() == carry[key][0].as_py()
            table = pa.concat_tables([carry, table])
            if same:
                table = sort(table)
        n = table.num_rows
        if n == 0:
            continue
        ids = table[key].combine_chunks()
        last = pc.not_equal(ids.slice(0, n - 1), ids.slice(1)) if n > 1 else pa.array([], pa.bool_())
        keep = pa.concat_arrays([last, pa.array([False])])  # the last row: held until its group ends
        carry = table.slice(n - 1)
        out = table.filter(keep)
        if out.num_rows:
            yield out
    if carry is not None:
        yield carry
