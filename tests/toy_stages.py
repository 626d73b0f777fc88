"""Small stages for runner tests. They live in an importable module so Ray workers can load them."""
from __future__ import annotations

import dataclasses
import os
import time
from typing import ClassVar

from pipeline.faces.detect import Face
from pipeline.rejection import Reject
from pipeline.engine.stage import Item, ItemContext, Output, Stage

CALL_LOG_ENV = "PIQ_TEST_CALL_LOG"


@dataclasses.dataclass
class SquareStage(Stage):
    """Squares a number; rejects negatives; fails the first `flaky` attempts of items named flaky*."""

    flaky_attempts: int = 0
    sleep_s: float = 0.0
    name: ClassVar[str] = "square"
    manifest_columns: ClassVar[dict[str, str]] = {"value": "int64", "square": "int64", "seed": "int64"}

    def process(self, item: Item, ctx: ItemContext) -> Output:
        log = os.environ.get(CALL_LOG_ENV)
        if log:
            with open(log, "a") as fh:
                fh.write(f"{item.id}\n")
        if self.sleep_s:
            time.sleep(self.sleep_s)
        value = item.data["value"]
        if value < 0:
            raise Reject("negative_value", f"{value} < 0")
        if item.id.startswith("flaky") and ctx.attempt < self.flaky_attempts:
            raise RuntimeError(f"transient failure on attempt {ctx.attempt}")
        if item.id.startswith("broken"):
            raise ZeroDivisionError("always broken")
        return Output(
            rows=[{"value": value, "square": value * value, "seed": ctx.seed}],
            files={f"out/{item.id}.txt": f"{value * value}\n".encode()},
        )


def items(n: int) -> list[Item]:
    return [Item(f"i{k:03d}", {"value": k}) for k in range(n)]


@dataclasses.dataclass
class BoxStage(Stage):
    """Scales a face box with `pipeline.faces.detect.Face.scaled`: an output decided by a module
    the stage imports (the case of a changed detector that must redo ingest)."""

    name: ClassVar[str] = "boxes"
    manifest_columns: ClassVar[dict[str, str]] = {"box": "object"}

    def process(self, item: Item, ctx: ItemContext) -> Output:
        import numpy as np

        face = Face((1.0, 2.0, 3.0, 4.0), 0.9, np.zeros((5, 2))).scaled(item.data["value"])
        return Output(rows=[{"box": list(face.box)}], files={f"out/{item.id}.txt": f"{face.box}\n".encode()})


@dataclasses.dataclass
class DyingStage(Stage):
    """Items named die*: the first attempt writes half of its output file in place (a worker
    dying mid-write, the worst case: not even under a temporary name) and kills its process."""

    sleep_s: float = 0.0
    name: ClassVar[str] = "dying"
    manifest_columns: ClassVar[dict[str, str]] = {"value": "int64"}

    def process(self, item: Item, ctx: ItemContext) -> Output:
        if self.sleep_s:
            time.sleep(self.sleep_s)
        text = f"{item.data['value'] * 3}\n" * 100
        if item.id.startswith("die") and ctx.attempt == 0:
            path = os.path.join(item.data["out"], "out", f"{item.id}.txt")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as fh:
                fh.write(text[: len(text) // 2])
            os._exit(1)
        return Output(rows=[{"value": item.data["value"]}], files={f"out/{item.id}.txt": text.encode()})
