"""`piq models check` and `piq models layout`: are the paper models' published weights in place?

`check` reads params.yaml and, for every learned component, inspects the folder or file the
selected backend would load: layout, config files, tensor names and shapes, dtype variants,
from file headers only (nothing is loaded onto a GPU, no weight values are read). It prints one
line per component: `ok` with what was found, or `FAIL` with what is wrong and, under it, where
the public release lives and which files go where. It exits 1 when a selected backend cannot
load, so a multi-hour GPU job can be gated on it. A component whose backend is the offline
default prints an `ok` line saying so (its weights come with a pip package; nothing to download).

`layout` prints the folder layout each backend expects.

The inspections live beside the backends (`@pipeline.weight_files.checks.register_check`); this module
only imports the modules of `CHECK_MODULES` so that they register, runs them and prints.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Iterable

from pipeline.weight_files.checks import ComponentCheck, WeightsFormatError, offline_check, registered_checks

# Modules holding a `@register_check` (train, annotate stages, evaluation), in pipeline order.
CHECK_MODULES: tuple[str, ...] = (
    "pipeline.backends.animators.liveportrait.checkpoints",   # animate.liveportrait
    "pipeline.backends.captioners.llava",                     # caption.llava
    "pipeline.backends.parsers.segformer",                    # segment.segformer
    "pipeline.backends.relighters.neural_gaffer",             # relight.neural_gaffer
    "train.backbones",                               # train.backbone (SDXL / SD1.5)
    "pipeline.faces.identity",                       # evaluate.identity (ArcFace)
    "eval.metrics.fid",                              # evaluate.fid (Inception)
    "eval.metrics.lpips",                            # evaluate.lpips (AlexNet)
    "eval.metrics.motion",                           # evaluate.motion (3DMM)
    "eval.baselines.ipadapter",                      # evaluate.ipadapter (baseline)
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["check", "layout"], help="check: inspect the configured files; "
                        "layout: print what each backend expects")
    parser.add_argument("--only", nargs="+", default=None, metavar="PREFIX",
                        help="components whose name starts with one of these (e.g. train evaluate.fid)")


def load_checks():
    """Import every module of `CHECK_MODULES` (so their checks register) and return the registry."""
    for module in CHECK_MODULES:
        importlib.import_module(module)
    return registered_checks()


def _selected(names: Iterable[str], only: list[str] | None) -> list[str]:
    return [n for n in names if not only or any(n == o or n.startswith(o.rstrip(".") + ".") for o in only)]


def _not_selected_line(name: str, params) -> ComponentCheck:
    """For a check that returned nothing (its paper backend is not selected): the offline line."""
    section = getattr(params, name.split(".")[0], None)
    backend = getattr(section, "backend", None) or "offline"
    return offline_check(name, str(backend), f"{name.split('.')[0]}.backend is {backend}")


def run_checks(params, only: list[str] | None = None) -> list[ComponentCheck]:
    """Every registered check's lines; a check that raises is one FAIL line naming the error."""
    lines: list[ComponentCheck] = []
    registry = load_checks()
    for name in _selected(registry, only):
        try:
            found = list(registry[name].check(params))
        except (WeightsFormatError, OSError, ValueError) as exc:
            found = [ComponentCheck(name, "?", None, False, f"the check failed: {type(exc).__name__}: {exc}")]
        lines.extend(found or [_not_selected_line(name, params)])
    return lines


def main(args: argparse.Namespace) -> int:
    if args.action == "layout":
        registry = load_checks()
        for name in _selected(registry, args.only):
            print(f"[{name}]\n{registry[name].layout}\n")
        return 0
    from pipeline.config.params import load_params

    params = load_params(args.params)
    lines = run_checks(params, args.only)
    for line in lines:
        print(line.line())
    failed = sum(not line.ok for line in lines)
    print(f"{len(lines) - failed} ok, {failed} failing" + (": a selected backend cannot load" if failed else ""),
          file=sys.stderr)
    return 1 if failed else 0
