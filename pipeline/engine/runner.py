"""Map a `Stage` over items: in-process or on Ray actors, with retries, rejects and resumption.

The runner is the only place that knows about parallelism. Items go to workers in tasks of
several items (sized so that one task takes about `runner.task_seconds`); a worker runs the
stage, writes the items' files into the stage's out_dir itself (atomically; a local path or an
fsspec URL every node reaches), then appends the task's records to the stage's records table
(pipeline/engine/state.py) and returns only a short acknowledgement per item. The driver never holds
output bytes; its memory does not grow with them. An item is finished once its record exists;
items that have one are skipped, so a run killed at any moment (driver or worker, kill -9)
resumes where it stopped and loses nothing it had finished. Seeds depend only on (params seed,
stage, item id), so results do not depend on the number of workers, the order of completion or
the attempt. Timings go to `<runner.reports_dir>/<stage>/timing.json`, outside the DVC outs.
"""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import traceback
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Sized

from tqdm import tqdm

from pipeline import quiet
from pipeline.engine.cluster import check_cluster_auth
from pipeline.config.runner import RunnerParams
from pipeline.engine.item_feed import ItemFeed
from pipeline.engine.manifest import consolidate, up_to_date
from pipeline.engine.outdir import OutDir, OutDirError
from pipeline.rejection import Reject
from pipeline.engine.stage import Item, ItemContext, Output, Stage, item_seed
from pipeline.engine.state import RecordWriter, StageState, done_record, reject_record, without_local_paths
from pipeline.engine.timing import write_timing


REPLACEMENT_START_S = 120.0  # how long a replacement worker may take to start (model load included)


@dataclasses.dataclass(frozen=True)
class Outcome:
    """What one attempt at one item came to. kind: done | rejected | error."""

    kind: str
    output: Output | None = None
    code: str = ""
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class Ack:
    """A worker's answer for one item: recorded (done / rejected) or failed (error, to retry)."""

    item_id: str
    kind: str
    code: str = ""
    detail: str = ""


@dataclasses.dataclass(frozen=True)
class TaskResult:
    """A task's answer: how many items it had, the failed ones (errors, to retry; every other
    item was recorded), how long it took, where it ran. Short on purpose: it is what crosses
    from the worker to the driver per task."""

    count: int
    failed: list[Ack]
    seconds: float
    node: str


def _limit_threads(threads: int) -> None:
    """Threads of torch / OpenCV in this process, so N workers do not fight over the same cores.
    Only libraries already imported are touched (importing torch costs seconds and ~400 MB);
    OMP_NUM_THREADS covers those imported later, and the video reader's decoder threads
    (pipeline/media/video.py reads it for every clip it opens)."""
    os.environ["OMP_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(threads)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(threads)


def _error_detail(err: BaseException) -> str:
    return without_local_paths(f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=6)}")


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
        return Outcome("error", code="stage_error", detail=_error_detail(err))


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
        return [Outcome("error", code="stage_error", detail=_error_detail(err)) for _ in items]
    outcomes = []
    for result in results:
        if isinstance(result, Reject):
            outcomes.append(Outcome("rejected", code=result.code, detail=result.detail))
        elif isinstance(result, Output):
            outcomes.append(Outcome("done", output=result))
        else:
            outcomes.append(Outcome("error", code="stage_error", detail=f"process_batch gave {type(result).__name__}"))
    return outcomes


class TaskRunner:
    """Runs tasks of one stage in one process (a Ray actor, or the driver when in-process):
    stage, then the items' files into the out_dir, then one records part for the task."""

    def __init__(self, stage: Stage, out: OutDir, threads: int, seed: int, node: str = "local") -> None:
        _limit_threads(threads)
        self.stage, self.out, self.node, self.seed = stage, out, node, seed
        self.writer = RecordWriter(out, f"{node}-{os.getpid()}-{os.urandom(3).hex()}")
        self.stage.setup()
        _limit_threads(threads)  # again for what setup() imported

    def run(self, ids: list[str], data: list[dict[str, Any]], attempts: list[int]) -> TaskResult:
        """Items of one task (ids, their data, attempts made so far): first attempts in batches of
        the stage's batch_size, retries alone. Seeds are made here, not in the driver (it stays
        light). An `OutDirError` (full disk, unwritable out_dir) propagates: no retry can fix it."""
        started = time.perf_counter()
        size = max(int(getattr(self.stage, "batch_size", 1) or 1), 1)
        items = [Item(i, d) for i, d in zip(ids, data)]
        ctxs = [ItemContext(seed=item_seed(self.seed, self.stage.name, i), attempt=a) for i, a in zip(ids, attempts)]
        attempts = [a + 1 for a in attempts]
        failed: list[Ack] = []
        records: list[dict[str, Any]] = []
        for start in range(0, len(items), size):
            chunk, chunk_ctx = items[start : start + size], ctxs[start : start + size]
            if any(a > 1 for a in attempts[start : start + size]):
                outcomes = [attempt(self.stage, it, cx) for it, cx in zip(chunk, chunk_ctx)]
            else:
                outcomes = attempt_batch(self.stage, chunk, chunk_ctx)
            for item, outcome, tries in zip(chunk, outcomes, attempts[start : start + size]):
                if outcome.kind == "done":
                    assert outcome.output is not None
                    rel = ""
                    try:
                        for rel, data in outcome.output.files.items():
                            self.out.write_bytes(rel, data)
                    except OSError as err:
                        err = self.out.classify(err, rel)
                        if isinstance(err, OutDirError):
                            raise err from None
                        failed.append(Ack(item.id, "error", "write_error", f"{type(err).__name__}: {err}"))
                        continue
                    records.append(done_record(item.id, outcome.output.rows, outcome.output.files, tries))
                elif outcome.kind == "rejected":
                    records.append(reject_record(item.id, outcome.code, outcome.detail, tries))
                else:
                    failed.append(Ack(item.id, "error", outcome.code, outcome.detail))
        self.writer.write(records)  # after every file of the task: the task's items are now finished
        return TaskResult(len(items), failed, time.perf_counter() - started, self.node)


class _RayTaskRunner(TaskRunner):
    """TaskRunner inside a Ray actor: knows its node."""

    def __init__(self, stage: Stage, out: OutDir, threads: int, seed: int) -> None:
        import ray

        super().__init__(stage, out, threads, seed, node=ray.get_runtime_context().get_node_id()[:8])


@dataclasses.dataclass
class RunSummary:
    stage: str
    stats: dict[str, Any]
    skipped: int
    processed: int
    nodes: dict[str, int] = dataclasses.field(default_factory=dict)  # items recorded per node
    seconds: float = 0.0



def end_main(stats: dict[str, Any], line: str, report: str | Path | None = None, notes: Iterable[str] = ()) -> int:
    """How an item-parallel stage's `main` ends: its stats (without timings) copied to `report`
    where the stage has one (a DVC metric), its one summary line and any notes printed, and its
    exit code: 0 when every item is finished (made or refused), 1 when some are still to do."""
    if report is not None:
        path = Path(report)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(stats, indent=1, sort_keys=True) + "\n")
    print(line)
    for note in notes:
        print(note)
    return 0 if stats["complete"] else 1

class _TaskSizer:
    """Items per task: whole batches, grown until one task takes about `target` seconds (few
    round trips for cheap items, short tasks and even load for slow ones)."""

    def __init__(self, batch: int, fixed: int, target: float, cap: int = 2048) -> None:
        self.batch, self.fixed, self.target, self.cap = batch, fixed, target, cap
        self.per_item: float | None = None

    def observe(self, result: TaskResult) -> None:
        if result.count:
            rate = result.seconds / result.count
            self.per_item = rate if self.per_item is None else 0.7 * self.per_item + 0.3 * rate

    def size(self) -> int:
        if self.fixed:
            return self.fixed
        if self.per_item is None:
            return self.batch
        n = int(self.target / max(self.per_item, 1e-6))
        return max(self.batch, min(self.cap, n // self.batch * self.batch))


class Runner:
    """Runs stages under one `RunnerParams` and root seed."""

    def __init__(self, params: RunnerParams, seed: int) -> None:
        self.params = params
        self.seed = seed

    def run(self, stage: Stage, items: Iterable[Item], out_dir: str | Path) -> RunSummary:
        """Run `stage` over `items` (a list or a generator: read lazily, in chunks) into `out_dir`."""
        started = time.time()
        address = os.environ.get("RAY_ADDRESS")
        if self.params.workers and address and "ray" not in sys.modules:
            check_cluster_auth(address)  # a cluster this process cannot join: one clear line, nothing written
        out = OutDir(out_dir, fsync=self.params.fsync)
        state = StageState(out)
        state.open({"stage": stage.name, "seed": self.seed, **stage.fingerprint()})
        bar = tqdm(total=len(items) if isinstance(items, Sized) else None, desc=stage.name, unit="item",
                   disable=not self.params.progress, file=sys.stderr)
        finished = state.finished()
        feed = ItemFeed(items, finished, stage.name, on_skip=bar.update)
        nodes: Counter[str] = Counter()
        processed = False
        try:
            try:
                if feed:
                    processed = True
                    out.remove("stats.json")  # not complete until rewritten
                    run = self._run_local if self.params.workers == 0 else self._run_ray
                    run(stage, feed, out, bar, nodes)
                feed.drain()
            finally:
                bar.close()
                finished.close()
            feed.check_unique()
            stats = None if processed else up_to_date(state, feed.digest())
            if stats is None:
                out.remove("stats.json")
                stats = consolidate(state, stage.name, feed.sorted_ids, feed.total, feed.digest(),
                                    stage.manifest_columns)
        finally:
            feed.close()
        summary = RunSummary(stage.name, stats, skipped=feed.skipped, processed=feed.total - feed.skipped,
                             nodes=dict(nodes), seconds=time.time() - started)
        write_timing(self.params.reports_dir, summary, self.params.workers)
        return summary

    def _sizer(self, stage: Stage) -> _TaskSizer:
        batch = max(int(getattr(stage, "batch_size", 1) or 1), 1)
        return _TaskSizer(batch, self.params.items_per_task, self.params.task_seconds)

    @staticmethod
    def _call_args(task: list[tuple[Item, int]]) -> tuple[list, list, list]:
        return [item.id for item, _ in task], [item.data for item, _ in task], [a for _, a in task]

    def _settle(self, task: list[tuple[Item, int]], result: TaskResult, feed: ItemFeed, rejects: RecordWriter,
                bar: tqdm) -> int:
        """Count recorded items, requeue failed ones with attempts left, record the rest as
        (retryable) rejects. Returns how many items were recorded."""
        failed = {ack.item_id: ack for ack in result.failed}
        if result.count != len(task):  # not this task's answer: none of its items counts as recorded
            failed = {item.id: Ack(item.id, "error", "worker_died", "no answer for this item") for item, _ in task}
        final: list[dict[str, Any]] = []
        recorded = len(task) - len(failed)
        if failed:
            for item, attempt_no in task:
                ack = failed.get(item.id)
                if ack is None:
                    continue
                if attempt_no < self.params.retries:
                    feed.retry(item, attempt_no + 1)
                    continue
                final.append(reject_record(item.id, ack.code, ack.detail, attempt_no + 1))
                recorded += 1
        rejects.write(final)
        bar.update(recorded)
        return recorded

    def _run_local(self, stage: Stage, feed: ItemFeed, out: OutDir, bar: tqdm, nodes: Counter) -> None:
        worker = TaskRunner(stage, out, self.params.threads_per_worker, self.seed)
        rejects = RecordWriter(out, f"driver-{os.getpid()}-{os.urandom(3).hex()}")
        sizer = self._sizer(stage)
        while feed:
            task = feed.take(sizer.size())
            result = worker.run(*self._call_args(task))
            sizer.observe(result)
            nodes[result.node] += self._settle(task, result, feed, rejects, bar)

    def _run_ray(self, stage: Stage, feed: ItemFeed, out: OutDir, bar: tqdm, nodes: Counter) -> None:
        import ray

        init_ray(self.params)
        resources = dict(getattr(stage, "resources", None) or {"num_cpus": 1})
        actor_cls = ray.remote(**resources, scheduling_strategy="SPREAD")(_RayTaskRunner)
        threads = self.params.threads_per_worker
        stage_ref = ray.put(stage)
        left = feed.pending_hint()  # a small stage read whole: no more workers than items
        n_actors = self.params.workers if left is None else min(self.params.workers, left)
        actors: list[Any] = [actor_cls.remote(stage_ref, out, threads, self.seed) for _ in range(n_actors)]
        rejects = RecordWriter(out, f"driver-{os.getpid()}-{os.urandom(3).hex()}")
        in_flight: dict[Any, tuple[list[tuple[Item, int]], Any]] = {}  # ref -> (task, actor)
        load: dict[Any, int] = {a: 0 for a in actors}
        sizer = self._sizer(stage)
        cap = self.params.max_in_flight_per_worker
        try:
            while in_flight or feed:
                while load and min(load.values()) < cap and feed:
                    actor = min(load, key=load.get)
                    task = feed.take(sizer.size())
                    ref = actor.run.remote(*self._call_args(task))
                    in_flight[ref] = (task, actor)
                    load[actor] += 1
                if not in_flight:
                    raise RuntimeError(f"{stage.name}: no Ray worker left to run the remaining items "
                                       f"(each needs {resources}; the cluster has {ray.available_resources()})")
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                task, actor = in_flight.pop(ready[0])
                try:
                    result = ray.get(ready[0])
                except ray.exceptions.RayActorError as err:
                    # The worker process or its node died: its unrecorded items are retried.
                    acks = [Ack(item.id, "error", "worker_died", str(err)[:2000]) for item, _ in task]
                    result = TaskResult(len(task), acks, 0.0, "lost")
                    self._replace(actor, actors, load, actor_cls, stage_ref, out, threads, self.seed, resources)
                except ray.exceptions.RayTaskError as err:
                    if isinstance(err.cause, OutDirError):
                        raise OutDirError(*err.cause.args) from None
                    acks = [Ack(item.id, "error", "stage_error", str(err)[:2000]) for item, _ in task]
                    result = TaskResult(len(task), acks, 0.0, "error")
                if actor in load:
                    load[actor] -= 1
                sizer.observe(result)
                recorded = self._settle(task, result, feed, rejects, bar)
                if result.node not in ("lost", "error"):
                    nodes[result.node] += recorded
        finally:
            for actor in actors:
                ray.kill(actor)

    @staticmethod
    def _replace(dead: Any, actors: list, load: dict, actor_cls: Any, stage_ref: Any, out: OutDir, threads: int,
                 seed: int, resources: dict[str, float]) -> None:
        """Drop a dead actor; start a replacement where the cluster still has room for one (a
        lost node's share is not waited for: the surviving workers take its items)."""
        import ray

        if dead not in load:
            return
        del load[dead]
        actors.remove(dead)
        ray.kill(dead)
        free = ray.available_resources()
        need = {"CPU": resources.get("num_cpus", 1), "GPU": resources.get("num_gpus", 0)}
        if not load or all(free.get(k, 0.0) >= v for k, v in need.items() if v):
            new = actor_cls.remote(stage_ref, out, threads, seed)
            # resources can be listed for a moment after their node went: a replacement that
            # cannot start is dropped rather than left holding tasks forever
            ready, _ = ray.wait([new.__ray_ready__.remote()], timeout=REPLACEMENT_START_S)
            if not ready and load:
                ray.kill(new)
                return
            actors.append(new)
            load[new] = 0


def init_ray(params: RunnerParams) -> None:
    """Join the cluster at RAY_ADDRESS, or start a local Ray sized to `params.workers`."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    env = {"OMP_NUM_THREADS": str(params.threads_per_worker), "TOKENIZERS_PARALLELISM": "false"}
    loud = quiet.verbose()  # quiet: workers' output stays in Ray's log files, Ray's notices are off
    if loud:
        env[quiet.VERBOSE_ENV] = "1"
    quiet.apply()
    if address:
        ray.init(address=address, runtime_env={"env_vars": env}, log_to_driver=loud)
        return
    # Local workers see the driver's import path, so stages defined outside installed
    # packages (notebooks, tests) can be shipped to them.
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    ray.init(
        address="local",  # a new local instance: never join a Ray that another program left running here
        num_cpus=max(params.workers, 1),
        include_dashboard=False,
        # Ray starts its workers at nice 15 so that its own daemons stay responsive; on a host
        # shared with other programs (nice 0) that starves the workers: 2 workers on 2 busy cores
        # fell to ~400 items/s while a bare loop wrote ~6,700 files/s (docs/BENCHMARKS.md). The
        # workers are the stage's work: they run at the driver's priority.
        _system_config={"worker_niceness": 0},
        runtime_env={"env_vars": env},
        log_to_driver=loud,
        configure_logging=False,
    )
