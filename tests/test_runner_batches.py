"""Batched stages on the runner: `process_batch` gets up to `batch_size` items; a Reject stays
with its item; an exception fails the batch and its items are retried one by one."""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import ClassVar

import pandas as pd
import pytest

from pipeline.config.runner import RunnerParams
from pipeline.rejection import Reject
from pipeline.engine.runner import Runner
from pipeline.engine.stage import Item, ItemContext, Output, item_seed
from tests.fixtures.toy_stages import SquareStage


@dataclasses.dataclass
class BatchSquareStage(SquareStage):
    """SquareStage whose batches record their sizes and fail whole when they hold a 'poison' item."""

    batch_size: int = 3
    name: ClassVar[str] = "batch_square"
    manifest_columns: ClassVar[dict[str, str]] = {**SquareStage.manifest_columns, "batch": "int64"}

    def process_batch(self, items: list[Item], ctxs: list[ItemContext]) -> list[Output | Reject]:
        if any(i.id.startswith("poison") for i in items):
            raise RuntimeError("one bad item sinks the batch")
        results = super().process_batch(items, ctxs)
        for r in results:
            if isinstance(r, Output):
                r.rows[0]["batch"] = len(items)
        return results

    def process(self, item: Item, ctx: ItemContext) -> Output:
        if item.id.startswith("poison"):
            raise Reject("poisoned", "refused on its own")
        out = super().process(item, ctx)
        out.rows[0]["batch"] = 1
        return out


@pytest.mark.parametrize("workers", [0, 2])
def test_batches_rejects_and_per_item_retry(tmp_path: Path, workers: int) -> None:
    items = [Item(f"n{i}", {"value": i}) for i in range(7)]
    items.insert(4, Item("neg", {"value": -1}))
    items.append(Item("poison", {"value": 3}))
    stats = Runner(RunnerParams(workers=workers, progress=False), seed=7).run(BatchSquareStage(), items, tmp_path).stats
    assert stats["done"] == 7 and stats["reject_codes"] == {"negative_value": 1, "poisoned": 1}
    out = pd.read_parquet(tmp_path / "manifest.parquet").sort_values("value")
    assert out.square.tolist() == [v * v for v in range(7)]
    assert set(out.batch) == {3, 1}  # first two batches whole; the poisoned batch's items redone alone
    # seeds are per item, whatever batch an item ran in
    assert out.seed.tolist() == [item_seed(7, "batch_square", f"n{v}") for v in range(7)]
