"""Which keys of a params section decide outputs, and which are run-time settings only.

A run-time key changes how a stage runs (workers, batch sizes, devices, GPU shares, compile
flags, previews, progress, where the outputs go, how long training lasts), never what an item
comes out as. Each section's dataclass marks those fields with `runtime(default)`; every other
field decides outputs. Fingerprints (the runner's per-stage state, the trainer's resume check)
take `output_params(section)`, so changing `caption.workers` or `segment.batch_size` redoes
nothing, while changing a threshold redoes every item. One mechanism for every section: a new
section only marks its run-time fields.
"""
from __future__ import annotations

import dataclasses
from typing import Any

RUNTIME = "piq_runtime"


def runtime(default: Any = dataclasses.MISSING, *, default_factory: Any = dataclasses.MISSING) -> Any:
    """A dataclass field that is a run-time setting (kept out of fingerprints)."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={RUNTIME: True})


def runtime_keys(cls: Any) -> frozenset[str]:
    """Names of the run-time fields of a params dataclass (or instance)."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get(RUNTIME))


def output_params(obj: Any) -> Any:
    """`obj` as plain data without its run-time fields, recursively through nested dataclasses,
    lists, tuples and dicts: what a fingerprint hashes."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: output_params(getattr(obj, f.name)) for f in dataclasses.fields(obj)
                if not f.metadata.get(RUNTIME)}
    if isinstance(obj, (list, tuple)):
        return type(obj)(output_params(v) for v in obj)
    if isinstance(obj, dict):
        return {k: output_params(v) for k, v in obj.items()}
    return obj
