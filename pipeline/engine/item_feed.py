"""The items of one run, read from the stage lazily in chunks, so the driver's memory does not
grow with their number.

A stage may hand the runner a list or a generator. The feed takes `CHUNK` items at a time,
drops those already finished (`pipeline.engine.state.FinishedIds`: a lookup in the sorted records
table, no set of all ids in memory), and hands the rest out in tasks; a failed item comes back
as a retry, which goes out before new items. What the run needs of all the items at its end
(their ids with their positions, to check for duplicates and to put the manifest in the
stage's order; the digest that says which item list a consolidation was made from) is a
running sha256 and the (id, position) pairs spilled to local scratch as sorted runs
(`pipeline.engine.spill.ExternalSort`): the driver holds one chunk, whatever the number of items.
"""
from __future__ import annotations

import itertools
from collections import deque
from typing import Any, Callable, Iterable, Iterator

from pipeline.engine.spill import ExternalSort
from pipeline.engine.stage import Item
from pipeline.engine.state import ItemsDigest

CHUNK = 8192  # items read from the stage at once (one membership test per chunk)


class DuplicateItems(ValueError):
    """Two items of one run share an id: seeds, records and file names would collide."""

    def __init__(self, stage: str, ids: list[str]) -> None:
        super().__init__(f"{stage}: duplicate item ids {sorted(ids)[:5]}")


class ItemFeed:
    """Pending (item, attempt) pairs of one run, produced on demand from the stage's items.

    `finished`: the ids that must not be redone (`StageState.finished()`, or None: nothing is).
    `on_skip(n)` is told how many items of each chunk were already finished (progress).
    `close()` removes the spilled ids."""

    def __init__(self, items: Iterable[Item], finished: Any, stage: str, on_skip: Callable[[int], None] | None = None,
                 chunk: int | None = None) -> None:
        self._source: Iterator[Item] = iter(items)
        self._finished = finished if finished else None
        self._stage, self._on_skip, self._chunk = stage, on_skip, chunk or CHUNK
        self._ids = ExternalSort([("item_id", "ascending")])
        self._digest = ItemsDigest()
        self._new: deque[Item] = deque()
        self._retries: deque[tuple[Item, int]] = deque()
        self._exhausted = False
        self.total = 0
        self.skipped = 0

    def _read_chunk(self) -> None:
        import numpy as np
        import pyarrow as pa

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
        self._ids.add(pa.table({"item_id": arr, "position": pa.array(
            np.arange(self.total, self.total + len(ids), dtype=np.int64))}))
        self.total += len(ids)
        if self._finished is None:
            self._new.extend(chunk)
            return
        done = self._finished.contains(arr)
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

    def sorted_ids(self) -> Iterator[Any]:
        """Every item's (item_id, position) as a stream of arrow tables sorted by id (after
        `drain`); `position` is the item's place in the stage's order."""
        return self._ids.sorted()

    def check_unique(self) -> None:
        """Duplicates across chunks (those within one chunk were refused when it was read): equal
        neighbours in the sorted stream of ids."""
        import pyarrow.compute as pc

        previous = None
        for table in self.sorted_ids():
            ids = table["item_id"].combine_chunks()
            if previous is not None and ids[0].as_py() == previous:
                raise DuplicateItems(self._stage, [previous])
            if len(ids) > 1:
                same = pc.equal(ids.slice(0, len(ids) - 1), ids.slice(1))
                if pc.any(same).as_py():
                    raise DuplicateItems(self._stage, sorted(set(ids.slice(1).filter(same).to_pylist()))[:5])
            previous = ids[-1].as_py()

    def close(self) -> None:
        self._ids.close()
