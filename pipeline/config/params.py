"""params.yaml -> typed, frozen dataclasses.

params.yaml is the single source of configuration. It is parsed strictly: an unknown key, a
missing key without a default, or a value of the wrong type is a `ParamsError` naming the
dotted path, because a silently ignored typo in an ablation (`dvc exp run -S train.conact=...`)
wastes a GPU day. Each section's dataclass lives in `pipeline/config/<section>.py`.
"""
from __future__ import annotations

import dataclasses
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

import yaml

from pipeline.config.animate import AnimateParams, DriversParams
from pipeline.config.app import AppParams
from pipeline.config.best_take import BestTakeParams
from pipeline.config.caption import CaptionParams
from pipeline.config.data import DataParams
from pipeline.config.evaluate import EvaluateParams
from pipeline.config.ingest import IngestParams
from pipeline.config.latents import LatentsParams
from pipeline.config.relight import RelightParams
from pipeline.config.provenance import ProvenanceParams
from pipeline.config.replace import ReplaceParams
from pipeline.config.runner import RunnerParams
from pipeline.config.segment import SegmentParams
from pipeline.config.shard import ShardParams
from pipeline.config.train import DistillParams, SampleParams, TrainParams

T = TypeVar("T")

DEFAULT_PARAMS_PATH = Path("params.yaml")


class ParamsError(ValueError):
    """A params.yaml value that does not fit its dataclass."""


@dataclasses.dataclass(frozen=True)
class Params:
    """The whole params.yaml. One attribute per top-level section."""

    seed: int
    runner: RunnerParams
    ingest: IngestParams
    drivers: DriversParams
    animate: AnimateParams
    shard: ShardParams
    data: DataParams
    train: TrainParams
    sample: SampleParams
    relight: RelightParams
    segment: SegmentParams
    caption: CaptionParams
    evaluate: EvaluateParams
    distill: DistillParams = dataclasses.field(default_factory=DistillParams)
    replace: ReplaceParams = ReplaceParams()
    best_take: BestTakeParams = BestTakeParams()
    app: AppParams = AppParams()  # piq app: what one session may hold (issue 25)
    provenance: ProvenanceParams = ProvenanceParams()   # C2PA content credentials of the photo tool (issue 26)
    latents: LatentsParams = dataclasses.field(default_factory=LatentsParams)  # piq latents (issue 18)
    removals: str = "removals.csv"  # the removal ledger (pipeline/release/removals.py): people and clips kept out of every build
    cpu_threads: int = 2  # torch threads of train / distill / sample / evaluate on a CPU (pipeline.device.fix_cpu_threads)


def _check_scalar(tp: Any, value: Any, path: str) -> Any:
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{path}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{path}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ParamsError(f"{path}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{path}: expected a string, got {value!r}")
        return value
    raise ParamsError(f"{path}: unsupported field type {tp!r}")


def coerce(tp: Any, value: Any, path: str) -> Any:
    """Check `value` against the annotation `tp` and convert lists to tuples (frozen)."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, path)
    if origin is Literal:
        if value not in get_args(tp):
            raise ParamsError(f"{path}: expected one of {list(get_args(tp))}, got {value!r}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce(arg, value, path)
            except ParamsError as err:
                errors.append(str(err))
        raise ParamsError("; ".join(errors))
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ParamsError(f"{path}: expected a list, got {value!r}")
        args = get_args(tp)
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = [coerce(args[0], v, f"{path}[{i}]") for i, v in enumerate(value)]
        elif origin is tuple and args:
            if len(args) != len(value):
                raise ParamsError(f"{path}: expected {len(args)} values, got {len(value)}")
            items = [coerce(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value))]
        else:
            elem = args[0] if args else Any
            items = [coerce(elem, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items)
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{path}: expected a mapping, got {value!r}")
        _, vt = get_args(tp) or (Any, Any)
        return {str(k): coerce(vt, v, f"{path}.{k}") for k, v in value.items()}
    return _check_scalar(tp, value, path)


def from_dict(cls: type[T], data: Any, path: str = "") -> T:
    """Build dataclass `cls` from a mapping, refusing unknown and missing keys."""
    where = path or "params"
    if not isinstance(data, dict):
        raise ParamsError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ParamsError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, field in fields.items():
        sub = f"{path}.{name}" if path else name
        if name in data:
            kwargs[name] = coerce(hints[name], data[name], sub)
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise ParamsError(f"{sub}: missing")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        try:
            validate()
        except ValueError as err:
            raise ParamsError(f"{where}: {err}") from err
    return obj


def load_params(path: str | Path = DEFAULT_PARAMS_PATH) -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: no such params file (run from the repository root or pass --params)")
    with path.open() as fh:
        data = yaml.safe_load(fh) or {}
    return from_dict(Params, data)


def section_dict(section: Any) -> dict[str, Any]:
    """A section as plain data (for fingerprints and manifests)."""
    return dataclasses.asdict(section)
