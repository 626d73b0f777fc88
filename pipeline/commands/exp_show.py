"""`piq exp show`: `dvc exp show` narrowed to what an ablation compares, so it fits on one screen.

Plain `dvc exp show` prints every params.yaml key that a stage depends on and the hash of every
dep (~420 columns for this pipeline). This command asks DVC for the experiments once as JSON,
then has DVC print only: the experiment's name / rev / creation time, the params whose values
differ between the experiments shown, and every metric of the dvc metrics files (dvc.yaml's
`metrics:`, i.e. `reports/eval/metrics.json`, which holds only the headline figures: see
eval/report.py). Dep and out hashes are hidden. Other arguments go to `dvc exp show` as they are
(`-A`, `--all-branches`, `--rev`, `-n`, `--csv`, `--md`, `--sort-by`, ...); `--json` prints
DVC's JSON with the same selection; `--all-columns` is plain `dvc exp show`.
"""
from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from typing import Any, Iterator, Sequence

# columns that say which experiment a row is: in the table its name (or rev) and time; a CSV
# names the rev, kind and parent in their own columns
ROW_COLUMNS = ("Experiment", "Created")
CSV_ROW_COLUMNS = ("Experiment", "rev", "typ", "Created", "parent")
# options of `dvc exp show` that change how rows are printed, not which rows: left out of the
# JSON query that decides the columns (those in WITH_VALUE take one value)
FORMAT_FLAGS = frozenset({"--csv", "--md", "--json", "--pcp", "--parallel-coordinates-plot", "--open",
                          "--only-changed", "--no-pager"})
FORMAT_WITH_VALUE = frozenset({"--precision", "--sort-by", "--sort-order", "--drop", "--keep", "-o", "--out"})
ALL_COLUMNS = "--all-columns"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["show"], help="the one action: show")
    parser.add_argument("dvc_args", nargs=argparse.REMAINDER,
                        help=f"passed to `dvc exp show` (-A, --rev, -n, --csv, --json, ...); {ALL_COLUMNS}: "
                             "every column (plain `dvc exp show`)")


def dvc(args: Sequence[str], capture: bool = False) -> subprocess.CompletedProcess:
    """`dvc <args>` with this interpreter's DVC (the project's environment)."""
    return subprocess.run([sys.executable, "-m", "dvc", *args], check=False, text=True,
                          capture_output=capture)


def selection_args(args: Sequence[str]) -> list[str]:
    """`args` without the options that only format the output."""
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in FORMAT_FLAGS:
            continue
        if name in FORMAT_WITH_VALUE:
            skip = "=" not in arg
            continue
        kept.append(arg)
    return kept


def rows(entries: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The `data` of every row of `dvc exp show --json` (workspace, baselines, experiments)."""
    for entry in entries:
        if entry.get("data"):
            yield entry["data"]
        for exp in entry.get("experiments") or []:
            yield from rows(exp.get("revs") or [])


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    """{"a": {"b": 1}} -> {"a.b": 1}, as DVC names the columns (lists are values)."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
    return flat


def _section(data: dict[str, Any], kind: str) -> dict[tuple[str, str], Any]:
    """(file, column) -> value of one row's params or metrics."""
    return {(path, col): value for path, body in (data.get(kind) or {}).items()
            for col, value in flatten((body or {}).get("data") or {}).items()}


def headline_columns(entries: list[dict[str, Any]]) -> tuple[list[str], list[str]]:
    """(params that differ between the rows, every metric), each as DVC's column names in
    first-seen order. A param missing from some row counts as differing."""
    data = list(rows(entries))
    params = [_section(d, "params") for d in data]
    metrics = [_section(d, "metrics") for d in data]
    differing: dict[str, None] = {}
    for key in dict.fromkeys(k for p in params for k in p):
        values = {json.dumps(p.get(key, "<missing>"), sort_keys=True) for p in params}
        if len(values) > 1:
            differing[key[1]] = None
    shown = dict.fromkeys(key[1] for m in metrics for key in m)
    return list(differing), list(shown)


def keep_pattern(columns: Sequence[str], row_columns: Sequence[str] = ROW_COLUMNS) -> str:
    """A `--keep` regex for exactly these columns (DVC may prefix a name with `file:`)."""
    names = "|".join(re.escape(c) for c in columns)
    return f"^(?:{'|'.join(row_columns)})$" + (f"|^(?:[^:]+:)?(?:{names})$" if names else "")


def prune(tree: dict[str, Any], keep: set[str], prefix: str = "") -> dict[str, Any]:
    """The nested params `tree` with only the leaves whose dotted names are in `keep`."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            sub = prune(value, keep, name)
            if sub:
                out[key] = sub
        elif name in keep:
            out[key] = value
    return out


def filter_json(entries: list[dict[str, Any]], params: set[str]) -> list[dict[str, Any]]:
    """`dvc exp show --json` with only the differing params and no dep / out hashes."""
    def narrow(data: dict[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in data.items() if k not in ("deps", "outs")}
        out["params"] = {path: {**body, "data": prune(body.get("data") or {}, params)}
                         for path, body in (data.get("params") or {}).items()}
        return out

    def walk(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        result = []
        for entry in items:
            entry = dict(entry)
            if entry.get("data"):
                entry["data"] = narrow(entry["data"])
            if entry.get("experiments"):
                entry["experiments"] = [{**e, "revs": walk(e.get("revs") or [])} for e in entry["experiments"]]
            result.append(entry)
        return result

    return walk(entries)


def main(args: argparse.Namespace) -> int:
    extra = list(args.dvc_args or [])
    if "-h" in extra or "--help" in extra:
        print(__doc__)
        return dvc(["exp", "show", "--help"]).returncode
    if ALL_COLUMNS in extra:
        return dvc(["exp", "show", *[a for a in extra if a != ALL_COLUMNS]]).returncode
    query = dvc(["exp", "show", "--json", *selection_args(extra)], capture=True)
    if query.returncode != 0:
        sys.stderr.write(query.stderr)
        return query.returncode
    entries = json.loads(query.stdout or "[]")
    params, metrics = headline_columns(entries)
    if "--json" in extra:
        print(json.dumps(filter_json(entries, set(params)), indent=1))
        return 0
    row_columns = CSV_ROW_COLUMNS if "--csv" in extra else ROW_COLUMNS
    return dvc(["exp", "show", "--drop", ".*", "--keep", keep_pattern(metrics + params, row_columns),
                *extra]).returncode
