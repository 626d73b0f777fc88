"""Shared vocabulary for the paper models' published weights.

Every paper-model backend loads files that users download from a public release. Two things are
common to all of them and live here, once:

- `WeightsFormatError`: the one error a backend raises for a file that is present but cannot be
  used (truncated, corrupt, another format, a renamed key, a wrong shape, a missing component).
  Its message always names the file, the formats the backend accepts and what was found, so a
  user can fix the folder without reading our code. It is raised before any GPU memory is taken.
- `ComponentCheck` and the check registry behind `piq models check`: each backend module
  registers a function that inspects its configured files (layout, config files, tensor names
  and shapes, dtype variants) without loading anything onto a GPU, and says what it found.
  `piq models layout` prints each registered backend's expected layout.

Backends register with `@register_check("section.component", layout=...)`; `pipeline.commands.models_check`
imports the modules named in `CHECK_MODULES` so that their checks register, then runs them all.
A check whose paper backend params.yaml does not select returns `offline_check(...)`: an `ok`
line naming the offline default in use (nothing to download); `failed_check(...)` builds the
`FAIL` line from a `WeightsFormatError`. Hugging Face folders (diffusers / transformers) have
their own helpers in `pipeline.weight_files.hf_folders` (variants, shards, header checks, checked loads).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence


class WeightsFormatError(ValueError):
    """A weights file or folder that is present but not in a format the backend accepts."""

    def __init__(self, path: str | Path, accepted: Sequence[str], found: str) -> None:
        self.path = str(path)
        self.accepted = tuple(accepted)
        self.found = found
        formats = "; ".join(self.accepted) if self.accepted else "(none)"
        super().__init__(f"{self.path}: {found}. Accepted formats: {formats}.")


@dataclasses.dataclass(frozen=True)
class ComponentCheck:
    """One line of `piq models check`: a component, the backend params.yaml selects for it, the
    file or folder configured, whether it can load, and what was found or what to do."""

    component: str          # e.g. "evaluate.identity" or "segment.segformer"
    backend: str            # the backend selected in params.yaml
    path: str | None        # the configured file or folder (None: nothing configured)
    ok: bool                # the selected backend can load what is there
    detail: str             # what was found, or what is wrong
    release: str = ""       # where the public release lives and which files to put where

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        where = self.path or "(not configured)"
        text = f"{mark} {self.component} [{self.backend}] {where}: {self.detail}"
        if not self.ok and self.release:
            text += f"\n       get: {self.release}"
        return text


@dataclasses.dataclass(frozen=True)
class RegisteredCheck:
    """A backend's inspection function and the layout it expects (for `piq models layout`)."""

    name: str
    check: Callable[[Any], Iterable[ComponentCheck]]   # takes the resolved Params
    layout: str


_REGISTRY: dict[str, RegisteredCheck] = {}


def register_check(name: str, layout: str) -> Callable[[Callable], Callable]:
    """Register `fn(params) -> Iterable[ComponentCheck]` under `name` with its expected layout."""

    def wrap(fn: Callable) -> Callable:
        _REGISTRY[name] = RegisteredCheck(name=name, check=fn, layout=layout)
        return fn

    return wrap


def registered_checks() -> Mapping[str, RegisteredCheck]:
    return dict(_REGISTRY)


def failed_check(component: str, backend: str, path: str | Path | None, error: Exception,
                 release: str = "") -> ComponentCheck:
    """The `FAIL` line of a component whose files raised `error`: the file (relative to the
    configured `path`) and what was wrong; the accepted formats are left to `release` and
    `piq models layout`, so the line stays readable."""
    detail = str(error)
    if isinstance(error, WeightsFormatError):
        base = str(path).rstrip("/") if path else ""
        file = error.path
        if base and file.startswith(base + "/"):
            file = file[len(base) + 1:]
        elif base and file.rstrip("/") == base:
            file = ""
        detail = f"{file}: {error.found}" if file else error.found
    return ComponentCheck(component, backend, str(path) if path else None, False, detail, release)


def offline_check(component: str, backend: str, what: str) -> ComponentCheck:
    """The `ok` line of a component whose selected backend is the offline default: its weights
    come with a pip package or it is a classical method, so nothing is to be downloaded."""
    return ComponentCheck(component, backend, None, True,
                          f"offline default ({what}); nothing to download")


def tensor_shapes(path: str | Path, accepted: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in a `.safetensors` or torch `.pth`/`.pt`/`.bin` file,
    read on the CPU without keeping the values (safetensors: header only; torch: memory-mapped).

    A truncated or corrupt file raises `WeightsFormatError` naming it and `accepted`.
    """
    path = Path(path)
    if not path.is_file():
        raise WeightsFormatError(path, accepted, "no such file")
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as handle:
                return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
        import torch

        try:
            obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError:
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except WeightsFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - any reader failure is a format problem of this file
        raise WeightsFormatError(path, accepted, f"could not be read ({type(exc).__name__}: {exc})") from exc
    return _flatten_shapes(obj, path, accepted)


def _flatten_shapes(obj: Any, path: Path, accepted: Sequence[str], prefix: str = "") -> dict[str, tuple[int, ...]]:
    import torch

    if isinstance(obj, torch.Tensor):
        return {prefix.rstrip("."): tuple(obj.shape)}
    if isinstance(obj, Mapping):
        out: dict[str, tuple[int, ...]] = {}
        for key, value in obj.items():
            if isinstance(value, (torch.Tensor, Mapping)):
                out.update(_flatten_shapes(value, path, accepted, f"{prefix}{key}."))
        return out
    raise WeightsFormatError(path, accepted, f"holds a {type(obj).__name__}, not a state dict")


def compare_shapes(
    path: str | Path,
    found: Mapping[str, tuple[int, ...]],
    expected: Mapping[str, tuple[int, ...]],
    accepted: Sequence[str],
    limit: int = 5,
) -> None:
    """Raise `WeightsFormatError` if `found` (names -> shapes) differs from `expected`, naming
    the first `limit` missing, unexpected and mis-shaped tensors."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    wrong = [f"{k} {tuple(found[k])} (expected {tuple(expected[k])})" for k in expected
             if k in found and tuple(found[k]) != tuple(expected[k])]
    problems = []
    for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
        if items:
            more = f" and {len(items) - limit} more" if len(items) > limit else ""
            problems.append(f"{label}: {', '.join(items[:limit])}{more}")
    if problems:
        raise WeightsFormatError(path, accepted, "; ".join(problems))
