"""The photo commands timed as a user runs them (issue 24, item 6): each command in a fresh
process from the shell (cold: imports, model loading, the work), beside the same command run a
second time inside one process (warm: the work alone), on 1 core and on 2 cores.

    python -m bench.photo_commands                    # markdown table (docs/BENCHMARKS.md)
    python -m bench.photo_commands --cores 1 --photos 1mp --commands faces verify

Photos: the corpus group photo (tests/fixtures/corpus.group_photo: four real people composed
side by side, 1280 x 886, 1.1 MP) and the same at 4200 x 2907 (12.2 MP); REF: obama_lectern.jpg
from the corpus (Obama is face 0 of the group). Commands: `piq faces`, `piq replace` by identity
and with `--face 0` (`--method classical`), `piq verify` (on that replace's output), `piq
best-take` on 3 shots (the corpus burst: tests/fixtures/corpus.blink_burst, 1 MP only).
Cores: `taskset -c 0` / `-c 0,1`. Wall clock, and the CPU seconds of the process (its children's
rusage) beside it: on a shared machine the wall clock includes waiting for a core.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
COMMANDS = ("faces", "replace-identity", "replace-face", "verify", "best-take")


def _piq() -> list[str]:
    script = Path(sys.executable).with_name("piq")
    return [str(script)] if script.exists() else [sys.executable, "-m", "pipeline.commands.piq"]


def make_inputs(root: Path) -> dict[str, Path]:
    from tests.fixtures.corpus import CORPUS, blink_burst, group_photo

    out = {"ref": CORPUS / "obama_lectern.jpg"}
    for name, width in (("1mp", 1280), ("12mp", 4200)):
        out[name] = root / f"group_{name}.jpg"
        Image.fromarray(group_photo(width)).save(out[name], "JPEG", quality=92)
    for k, rgb in enumerate(blink_burst()):
        out[f"shot_{k}"] = root / f"shot_{k}.jpg"
        Image.fromarray(rgb).save(out[f"shot_{k}"], "JPEG", quality=92)
    return out


def argv(command: str, photo: Path, files: dict[str, Path], root: Path) -> list[str]:
    out = root / f"out_{photo.stem}.jpg"
    if command == "faces":
        return ["faces", str(photo)]
    if command == "replace-identity":
        return ["replace", str(photo), "--driving", str(files["ref"]), "-o", str(out), "--method", "classical"]
    if command == "replace-face":
        return ["replace", str(photo), "--driving", str(files["ref"]), "-o", str(out), "--method", "classical",
                "--face", "0"]
    if command == "verify":
        if not out.exists():
            subprocess.run(_piq() + argv("replace-face", photo, files, root), cwd=REPO, capture_output=True, check=True)
        return ["verify", str(out)]
    if command == "best-take":
        return ["best-take", *(str(files[f"shot_{k}"]) for k in range(3)), "-o", str(root / "best.jpg")]
    raise ValueError(command)


def cold(args: list[str], cores: str) -> tuple[float, float, int]:
    """(wall s, CPU s, exit code) of `piq ARGS` in a fresh process pinned to `cores`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    got = subprocess.run(["taskset", "-c", cores, *_piq(), *args], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if got.returncode not in (0, 1):
        print(got.stderr, file=sys.stderr)
    return wall, cpu, got.returncode


WARM = """
import sys, time, resource
from pipeline.commands.piq import main
args = sys.argv[1:]
main(args)                                  # warm-up: imports, models
r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
main(args)
r1 = resource.getrusage(resource.RUSAGE_SELF)
print(f"WARM {time.perf_counter() - t:.3f} {(r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime):.3f}", file=sys.stderr)
"""


def warm(args: list[str], cores: str) -> tuple[float, float]:
    """(wall s, CPU s) of the command's second run inside one process pinned to `cores`."""
    got = subprocess.run(["taskset", "-c", cores, sys.executable, "-c", WARM, *args], cwd=REPO, capture_output=True,
                         text=True)
    line = [x for x in got.stderr.splitlines() if x.startswith("WARM ")]
    if not line:
        print(got.stderr[-2000:], file=sys.stderr)
        return float("nan"), float("nan")
    _, wall, cpu = line[-1].split()
    return float(wall), float(cpu)


def main(argv_: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cores", nargs="+", default=["1", "2"], choices=["1", "2"])
    ap.add_argument("--photos", nargs="+", default=["1mp", "12mp"], choices=["1mp", "12mp"])
    ap.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=COMMANDS)
    ap.add_argument("--repeats", type=int, default=1, help="cold runs per cell (median)")
    ap.add_argument("--no-warm", action="store_true")
    args = ap.parse_args(argv_)
    if not shutil.which("taskset"):
        raise SystemExit("taskset (util-linux) is needed to pin the commands to 1 or 2 cores")
    root = Path(tempfile.mkdtemp(prefix="piq-bench-"))
    try:
        files = make_inputs(root)
        load = os.getloadavg()[0]
        print(f"load average at start: {load:.1f}; {os.cpu_count()} CPUs", file=sys.stderr)
        print("| command | photo | cores | cold wall s | cold CPU s | warm wall s | warm CPU s |")
        print("|---|---|---:|---:|---:|---:|---:|")
        for command in args.commands:
            for photo_name in args.photos:
                if command == "best-take" and photo_name != "1mp":
                    continue
                photo = files[photo_name]
                for n in args.cores:
                    cores = "0" if n == "1" else "0,1"
                    cmd = argv(command, photo, files, root)
                    runs = [cold(cmd, cores) for _ in range(args.repeats)]
                    wall, cpu = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
                    ww, wc = (float("nan"), float("nan")) if args.no_warm else warm(cmd, cores)
                    label = "best-take (3 shots)" if command == "best-take" else command
                    print(f"| {label} | {'1.1 MP, 4 faces' if photo_name == '1mp' else '12.2 MP, 4 faces'} | {n} | "
                          f"{wall:.1f} | {cpu:.1f} | {ww:.2f} | {wc:.2f} |", flush=True)
        print(f"load average at end: {os.getloadavg()[0]:.1f}", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
