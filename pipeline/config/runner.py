"""How the stage runner executes: workers, retries, where Ray runs."""
from __future__ import annotations

import dataclasses

from pipeline.config.keys import runtime


@dataclasses.dataclass(frozen=True)
class RunnerParams:
    """Execution settings shared by every item-parallel stage.

    workers: Ray actors per stage (each holds its own copy of the stage's models). 0 runs
        in-process without Ray (debugging, tests). When RAY_ADDRESS is set the runner joins
        that cluster instead of starting a local Ray.
    retries: extra attempts for an item whose stage raised an unexpected exception. A `Reject`
        (bad input) is never retried: it is recorded at once with its reason code.
    threads_per_worker: torch/OpenCV threads inside one worker, so N workers do not fight
        over the same cores.
    max_in_flight_per_worker: tasks queued per actor (keeps workers busy between round trips).
    items_per_task: items sent to a worker at once; 0 = sized automatically so that one task
        takes about `task_seconds` (whole batches of the stage's batch_size). A task's items are
        recorded together, after all their files: the unit that a crash can cost.
    task_seconds: the target duration of an automatically sized task.
    fsync: flush every output file to the disk before its record (survives a power loss, not
        only a killed process; slower on many small files).
    reports_dir: where `<stage>/timing.json` goes (wall-clock figures, outside the DVC outs);
        "" writes none.
    Every key is a run-time setting: none enters a stage's fingerprint.
    """

    workers: int = runtime(2)
    retries: int = runtime(2)
    threads_per_worker: int = runtime(1)
    max_in_flight_per_worker: int = runtime(2)
    progress: bool = runtime(True)
    items_per_task: int = runtime(0)
    task_seconds: float = runtime(1.0)
    fsync: bool = runtime(False)
    reports_dir: str = runtime("reports")

    def validate(self) -> None:
        if self.workers < 0:
            raise ValueError("runner.workers must be >= 0")
        if self.retries < 0:
            raise ValueError("runner.retries must be >= 0")
        if self.items_per_task < 0 or self.task_seconds <= 0:
            raise ValueError("runner.items_per_task must be >= 0 (0 = automatic) and runner.task_seconds > 0")
        if self.threads_per_worker < 1 or self.max_in_flight_per_worker < 1:
            raise ValueError("runner.threads_per_worker and max_in_flight_per_worker must be >= 1")
