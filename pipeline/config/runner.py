"""How the stage runner executes: workers, retries, where Ray runs."""
from __future__ import annotations

import dataclasses


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
    max_in_flight_per_worker: items queued per actor; bounds memory of returned outputs.
    """

    workers: int = 2
    retries: int = 2
    threads_per_worker: int = 1
    max_in_flight_per_worker: int = 2
    progress: bool = True

    def validate(self) -> None:
        if self.workers < 0:
            raise ValueError("runner.workers must be >= 0")
        if self.retries < 0:
            raise ValueError("runner.retries must be >= 0")
        if self.threads_per_worker < 1 or self.max_in_flight_per_worker < 1:
            raise ValueError("runner.threads_per_worker and max_in_flight_per_worker must be >= 1")
