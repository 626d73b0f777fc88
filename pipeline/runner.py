"""Map a `Stage` over items: in-process or on Ray actors, with retries, rejects and resumption.

The runner is the only place that knows about parallelism. For every item it either records
the stage's outputs (files first, then a record) or a reject with a reason code; items that
already have a record are skipped, so a run killed at any moment resumes where it stopped and
loses nothing it had finished. Seeds depend only on (params seed, stage, item id), so results
do not depend on the number of workers, the order of completion or the attempt.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
import traceback
from collections import deque
from pathlib import Path
from typing import Any, Sequence

from tqdm import tqdm

from pipeline.config.runner import RunnerParams
from pipeline.manifest import consolidate
from pipeline.stage import Item, ItemContext, Output, Reject, Stage, item_seed
from pipeline.state import StageState


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one attempt at one item came to. kind: done | rejected | error."""

    kind: str
    output: Output | None = None
    code: str = ""
    detail: str = ""


def _limit_threads(threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:  # pragma: no cover
        pass


def attempt(stage: Stage, item: Item, ctx: ItemContext) -> Outcome:
    """Run the stage on one item, turning every exception into an Outcome."""
    try:
        output = stage.process(item, ctx)
        if not isinstance(output, Output):
            raise TypeError(f"{stage.name}.process returned {type(output).__name__}, not Output")
        return Outcome("done", output=output)
    except Reject as rej:
        return Outcome("rejected", code=rej.code, detail=rej.detail)
    except Exception as err:  # noqa: BLE001 - any failure of one item must not stop the stage
        tb = traceback.format_exc(limit=6)
        return Outcome("error", code="stage_error", detail=f"{type(err).__name__}: {err}\n{tb}")


def attempt_batch(stage: Stage, items: list[Item], ctxs: list[ItemContext]) -> list[Outcome]:
    """`stage.process_batch` over several items; one Outcome per item. An exception makes every
    item of the batch an error (each is then retried on its own)."""
    if len(items) == 1:
        return [attempt(stage, items[0], ctxs[0])]
    try:
        results = stage.process_batch(items, ctxs)
        if len(results) != len(items):
            raise ValueError(f"{stage.name}.process_batch returned {len(results)} results for {len(items)} items")
    except Exception as err:  # noqa: BLE001
        detail = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=6)}"
        return [Outcome("error", code="stage_error", detail=detail) for _ in items]
    outcomes = []
    for result in results:
        if isinstance(result, Reject):
            outcomes.append(Outcome("rejected", code=result.code, detail=result.detail))
        elif isinstance(result, Output):
            outcomes.append(Outcome("done", output=result))
        else:
            outcomes.append(Outcome("error", code="stage_error", detail=f"process_batch gave {type(result).__name__}"))
    return outcomes


class _Worker:
    """Holds one stage instance (and its loaded models) inside a Ray actor."""

    def __init__(self, stage: Stage, threads: int) -> None:
        _limit_threads(threads)
        self.stage = stage
        self.stage.setup()

    def run(self, item: Item, ctx: ItemContext) -> Outcome:
        return attempt(self.stage, item, ctx)

    def run_batch(self, items: list[Item], ctxs: list[ItemContext]) -> list[Outcome]:
        return attempt_batch(self.stage, items, ctxs)


@dataclasses.dataclass
class RunSummary:
    stage: str
    stats: dict[str, Any]
    skipped: int
    processed: int


class Runner:
    """Runs stages under one `RunnerParams` and root seed."""

    def __init__(self, params: RunnerParams, seed: int) -> None:
        self.params = params
        self.seed = seed

    def run(self, stage: Stage, items: Sequence[Item], out_dir: str | Path) -> RunSummary:
        started = time.time()
        ids = [item.id for item in items]
        if len(set(ids)) != len(ids):
            dupes = sorted({i for i in ids if ids.count(i) > 1})
            raise ValueError(f"{stage.name}: duplicate item ids {dupes[:5]}")
        state = StageState(Path(out_dir))
        state.open({"stage": stage.name, "seed": self.seed, **stage.fingerprint()})
        (state.out_dir / "stats.json").unlink(missing_ok=True)  # not complete until rewritten
        finished = state.finished()
        pending = [item for item in items if item.id not in finished]
        bar = tqdm(
            total=len(items), initial=len(items) - len(pending), desc=stage.name, unit="item",
            disable=not self.params.progress, file=sys.stderr,
        )
        try:
            if pending:
                if self.params.workers == 0:
                    self._run_local(stage, pending, state, bar)
                else:
                    self._run_ray(stage, pending, state, bar)
        finally:
            bar.close()
        stats = consolidate(state, stage.name, ids, stage.manifest_columns, started)
        return RunSummary(stage.name, stats, skipped=len(items) - len(pending), processed=len(pending))

    def _ctx(self, stage: Stage, item: Item, attempt_no: int) -> ItemContext:
        return ItemContext(seed=item_seed(self.seed, stage.name, item.id), attempt=attempt_no)

    def _record(self, state: StageState, item: Item, outcome: Outcome, attempts: int) -> None:
        if outcome.kind == "done":
            assert outcome.output is not None
            state.write_done(item.id, outcome.output.rows, outcome.output.files, attempts)
        else:
            state.write_reject(item.id, outcome.code, outcome.detail, attempts)

    def _run_local(self, stage: Stage, pending: list[Item], state: StageState, bar: tqdm) -> None:
        _limit_threads(self.params.threads_per_worker)
        stage.setup()
        size = max(int(getattr(stage, "batch_size", 1) or 1), 1)
        for start in range(0, len(pending), size):
            chunk = pending[start : start + size]
            outcomes = attempt_batch(stage, chunk, [self._ctx(stage, item, 0) for item in chunk])
            for item, outcome in zip(chunk, outcomes):
                attempt_no = 0
                while outcome.kind == "error" and attempt_no < self.params.retries:
                    attempt_no += 1
                    outcome = attempt(stage, item, self._ctx(stage, item, attempt_no))
                self._record(state, item, outcome, attempt_no + 1)
                bar.update(1)

    def _run_ray(self, stage: Stage, pending: list[Item], state: StageState, bar: tqdm) -> None:
        import ray

        init_ray(self.params)
        resources = dict(getattr(stage, "resources", None) or {"num_cpus": 1})
        actor_cls = ray.remote(**resources)(_Worker)
        n_actors = min(self.params.workers, len(pending))
        actors = [actor_cls.remote(stage, self.params.threads_per_worker) for _ in range(n_actors)]
        queue: deque[tuple[Item, int]] = deque((item, 0) for item in pending)
        # ref -> ([(item, attempt)], actor index); first attempts go in batches, retries alone
        in_flight: dict[Any, tuple[list[tuple[Item, int]], int]] = {}
        load = [0] * n_actors
        cap = self.params.max_in_flight_per_worker
        size = max(int(getattr(stage, "batch_size", 1) or 1), 1)
        try:
            while queue or in_flight:
                while queue and min(load) < cap:
                    idx = load.index(min(load))
                    batch = [queue.popleft()]
                    while queue and len(batch) < size and batch[0][1] == 0 and queue[0][1] == 0:
                        batch.append(queue.popleft())
                    items = [item for item, _ in batch]
                    ctxs = [self._ctx(stage, item, attempt_no) for item, attempt_no in batch]
                    ref = actors[idx].run_batch.remote(items, ctxs)
                    in_flight[ref] = (batch, idx)
                    load[idx] += 1
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                ref = ready[0]
                batch, idx = in_flight.pop(ref)
                load[idx] -= 1
                try:
                    outcomes = ray.get(ref)
                except ray.exceptions.RayActorError as err:
                    # The worker process died (segfault, OOM kill): replace it, retry the items.
                    actors[idx] = actor_cls.remote(stage, self.params.threads_per_worker)
                    outcomes = [Outcome("error", code="worker_died", detail=str(err)[:2000])] * len(batch)
                except ray.exceptions.RayTaskError as err:
                    outcomes = [Outcome("error", code="stage_error", detail=str(err)[:2000])] * len(batch)
                for (item, attempt_no), outcome in zip(batch, outcomes):
                    if outcome.kind == "error" and attempt_no < self.params.retries:
                        queue.append((item, attempt_no + 1))
                        continue
                    self._record(state, item, outcome, attempt_no + 1)
                    bar.update(1)
        finally:
            for actor in actors:
                ray.kill(actor)


def init_ray(params: RunnerParams) -> None:
    """Join the cluster at RAY_ADDRESS, or start a local Ray sized to `params.workers`."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    env = {"OMP_NUM_THREADS": str(params.threads_per_worker), "TOKENIZERS_PARALLELISM": "false"}
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=True)
        return
    # Local workers see the driver's import path, so stages defined outside installed
    # packages (notebooks, tests) can be shipped to them.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    ray.init(
        num_cpus=max(params.workers, 1),
        include_dashboard=False,
        runtime_env={"env_vars": env},
        log_to_driver=True,
        configure_logging=False,
    )
