"""The contract between a stage and the runner.

A stage is a pure function of an item and its params: it returns the rows it adds to its
manifest and the files it made (as bytes), or raises `Reject` with a reason code for bad
input. It knows nothing of Ray, DVC, retries or resumption: the runner owns those. The runner
in the worker that ran the item writes its files into the stage's out_dir (atomically) and
records the item after them, so that a killed run resumes where it stopped; only a short answer
goes back to the driver. Returning bytes rather than writing files keeps stages pure and lets
the same stage write to a local folder, a shared filesystem or an object store.

What a stage declares: `name`, `manifest_columns`, `process` (and optionally `process_batch`,
`batch_size`, `resources`, `setup`), the attributes holding per-worker models in
`worker_local`, and, in its params dataclass, which keys are run-time only (`runtime()`,
pipeline/config/keys.py). Its code fingerprint comes from the import graph of its module.
"""
from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, ClassVar

from pipeline.config.keys import output_params
from pipeline.rejection import Reject
from pipeline.engine.worker_state import WorkerLocal


@dataclasses.dataclass(frozen=True)
class Item:
    """One unit of work: a stable id (used for seeds, resumption, file names) and its data."""

    id: str
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ItemContext:
    """What the runner tells a stage about this call. `seed` is the same on every attempt."""

    seed: int
    attempt: int = 0


@dataclasses.dataclass
class Output:
    """What one item produced: manifest rows and files (path relative to the stage's out_dir)."""

    rows: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    files: dict[str, bytes] = dataclasses.field(default_factory=dict)


class Stage(WorkerLocal):
    """Base class of item-parallel stages.

    Subclasses set `name`, implement `process`, and may load models in `setup` (called once per
    worker, after the stage object has been shipped there), name the attributes holding those
    models in `worker_local` (they are not pickled, pipeline/engine/worker_state.py) and declare
    `manifest_columns` so an empty manifest still has its schema.
    """

    name: ClassVar[str] = "stage"
    manifest_columns: ClassVar[dict[str, str]] = {}
    # Modules the stage runs without importing them by name (importlib with a computed name);
    # everything it imports is found from the import graph (pipeline/engine/codegraph.py).
    code_modules: ClassVar[tuple[str, ...]] = ()

    def setup(self) -> None:
        """Load models or other per-worker state. Default: nothing."""

    def process(self, item: Item, ctx: ItemContext) -> Output:
        raise NotImplementedError

    # Items the runner hands to `process_batch` at once (model backends batch on a GPU).
    batch_size: int = 1

    def process_batch(self, items: list[Item], ctxs: list[ItemContext]) -> list[Output | Reject]:
        """One result per item: its Output, or the Reject it earned (returned, not raised, so
        one bad image does not sink its batch). An exception fails the whole batch; the runner
        then retries its items one by one through `process`. Default: `process` per item."""
        results: list[Output | Reject] = []
        for item, ctx in zip(items, ctxs):
            try:
                results.append(self.process(item, ctx))
            except Reject as rej:
                results.append(rej)
        return results

    def fingerprint(self) -> dict[str, Any]:
        """What decides the outputs besides the item: finished items made under another
        fingerprint are stale and are redone. Default: the stage's dataclass fields without
        their run-time keys (pipeline/config/keys.py: workers, batch sizes, devices, previews
        change nothing made) and a digest of the code its module runs, found from the import
        graph, because DVC reruns a stage whose code changed but keeps persistent outs, and
        results of the old code must not be reused then."""
        return {"fields": output_params(self), "code": code_digest(type(self), self.code_modules)}


def item_seed(root_seed: int, stage: str, item_id: str) -> int:
    """A 63-bit seed that depends only on (root seed, stage, item id): the same on retries,
    resumption and any worker count."""
    digest = hashlib.blake2b(f"{root_seed}/{stage}/{item_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def code_digest(cls: type, modules: tuple[str, ...] = ()) -> str:
    """Digest of every project module that `cls`'s module (and `modules`) import, transitively."""
    from pipeline.engine import codegraph

    return codegraph.code_digest((cls.__module__, *modules))
