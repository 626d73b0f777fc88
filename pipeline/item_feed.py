"""The items of one run, read from the stage lazily in chunks, so the driver's memory does not
grow with their number.

A stage may hand the runner a list or a generator. The feed takes `CHUNK` items at a time,
drops those already finished (a membership test against the sorted pyarrow array of finished
ids, no Python set of all ids), and hands the rest out in tasks; a failed item comes back as a
retry, which goes out before new items. What the run needs of all the items at its end (their
ids in order for the manifest, the digest that says which item list a consolidation was made
from, the duplicate check) is kept as arrow string arrays and a running sha256: ~12 bytes per
id instead of an `Item` and a set entry each.
"""
from __future__ import annotations

import itertools
from collections import deque
from typing import Any, Callable, Iterable, Iterator

from pipeline.stage import Item
from pipeline.state import ItemsDigest

CHUNK = 8192  # items read from the stage at once (one membership test per chunk)


class DuplicateItems(ValueError):
    """Two items of one run share an id: seeds, records and file names would collide."""

    def __init__(self, stage: str, ids: list[str]) -> None:
        super().__init__(f"{stage}: duplicate item ids {sorted(ids)[:5]}")


class ItemFeed:
    """Pending (item, attempt) pairs of one run, produced on demand from the stage's items.

    `finished`: a pyarrow string array of ids that must not be redone (`StageState.finished`).
    `on_skip(n)` is told how many items of each chunk were already finished (progress)."""

    def __init__(self, items: Iterable[Item], finished: Any, stage: str, on_skip: Callable[[int], None] | None = None,
                 chunk: int = CHUNK) -> None:
        self._source: Iterator[Item] = iter(items)
        self._finished = finished if finished is not None and len(finished) else None
        self._stage, self._on_skip, self._chunk = stage, on_skip, chunk
        self._id_chunks: list[Any] = []
        self._digest = ItemsDigest()
        self._new: deque[Item] = deque()
        self._retries: deque[tuple[Item, int]] = deque()
        self._exhausted = False
        self.total = 0
        self.skipped = 0

    def _read_chunk(self) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        chunk = list(itertools.islice(self._source, self._chunk))
        if not chunk:
            self._exhausted = True
            return
        ids = [item.id for item in chunk]
        if len(set(ids)) != len(ids):  # within the chunk: before any of it runs; across chunks: `check_unique`
            seen: set[str] = set()
            raise DuplicateItems(self._stage, [i for i in ids if i in seen or seen.add(i)])
        self._digest.update(ids)
        arr = pa.array(ids, pa.string())
        self._id_chunks.append(arr)
        self.total += len(ids)
        if self._finished is None:
            self._new.extend(chunk)
            return
        done = pc.is_in(arr, value_set=self._finished).to_numpy(zero_copy_only=False)
        before = len(self._new)
        self._new.extend(item for item, d in zip(chunk, done) if not d)
        skipped = len(chunk) - (len(self._new) - before)
        self.skipped += skipped
        if skipped and self._on_skip is not None:
            self._on_skip(skipped)

    def _fill(self) -> None:
        while not self._new and not self._exhausted:
            self._read_chunk()

    def __bool__(self) -> bool:
        """Whether anything is left to hand out (reads chunks until a pending item turns up)."""
        if self._retries:
            return True
        self._fill()
        return bool(self._new)

    def take(self, size: int) -> list[tuple[Item, int]]:
        """The next task: one retry alone, else up to `size` first attempts."""
        if self._retries:
            return [self._retries.popleft()]
        task: list[tuple[Item, int]] = []
        while len(task) < size:
            self._fill()
            if not self._new:
                break
            task.append((self._new.popleft(), 0))
        return task

    def pending_hint(self) -> int | None:
        """How many items are left when the stage's items have all been read, else None."""
        return len(self._new) + len(self._retries) if self._exhausted else None

    def retry(self, item: Item, attempt: int) -> None:
        self._retries.append((item, attempt))

    def drain(self) -> None:
        """Read the rest of the stage's items (all finished, or nothing left to run) for their ids."""
        while not self._exhausted:
            self._read_chunk()
            if self._new:
                raise RuntimeError(f"{self._stage}: drain() with items still pending")

    def digest(self) -> str:
        return self._digest.hexdigest()

    def ids(self) -> Any:
        """Every item id in the stage's order, as one pyarrow string array (after `drain`)."""
        import pyarrow as pa

        return pa.concat_arrays(self._id_chunks) if self._id_chunks else pa.array([], pa.string())

    def check_unique(self) -> None:
        """Duplicates across chunks (those within one chunk were refused when it was read)."""
        import pyarrow.compute as pc

        ids = self.ids()
        if pc.count_distinct(ids).as_py() == len(ids):
            return
        counts = pc.value_counts(ids)
        repeated = counts.filter(pc.greater(counts.field("counts"), 1)).field("values")
        raise DuplicateItems(self._stage, repeated.to_pylist()[:5])
