"""Bookkeeping cost of the stage runner: a stage that does nothing but make one file per item.

    python -m bench.runner [--sizes 10000 100000] [--modes local ray] [--file-kb 20] [--dir /tmp]

For every (mode, items) the run goes through the product's entry point (`pipeline.engine.runner.Runner.run`)
in a fresh subprocess, so `ru_maxrss` is that run's driver peak: in-process (`runner.workers: 0`)
and on 2 Ray workers (Ray's start-up excluded: `ray.init` is timed apart). Then the finished
largest stage is run again (resume, nothing to do), and the largest size is repeated with 10x
larger files (driver memory must not grow with output bytes). The floor is the same files written
by a bare loop (atomic write + rename, no runner): what the disk allows on this machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import ClassVar

REPO = Path(__file__).resolve().parents[1]


sys.path.insert(0, str(REPO))

from pipeline.engine.stage import Item, ItemContext, Output, Stage  # noqa: E402


@dataclasses.dataclass
class NoopStage(Stage):
    """One `file_kb` KB file and one manifest row per item; no work."""

    file_kb: int = 20
    name: ClassVar[str] = "noop"
    manifest_columns: ClassVar[dict[str, str]] = {"n": "int64"}

    def process(self, item: Item, ctx: ItemContext) -> Output:
        return Output(rows=[{"n": item.data["n"]}], files={f"out/{item.id}.bin": bytes(self.file_kb * 1024)})


def one(mode: str, n: int, file_kb: int, out: str) -> dict:
    """One run in this process; returns its figures."""
    from pipeline.config.runner import RunnerParams
    from pipeline.engine.runner import Runner, init_ray

    params = RunnerParams(workers=0 if mode == "local" else 2, progress=False)
    ray_s = 0.0
    if mode == "ray":
        t = time.perf_counter()
        init_ray(params)
        ray_s = time.perf_counter() - t
    items = (Item(f"i{k:07d}", {"n": k}) for k in range(n))  # streamed, as a stage may hand them
    t = time.perf_counter()
    summary = Runner(params, seed=1).run(NoopStage(file_kb=file_kb), items, out)
    wall = time.perf_counter() - t
    return {"mode": mode, "items": n, "file_kb": file_kb, "wall_s": round(wall, 3), "items_per_s": round(n / wall, 1),
            "processed": summary.processed, "skipped": summary.skipped, "ray_init_s": round(ray_s, 2),
            "driver_peak_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "load": round(os.getloadavg()[0], 2)}


def floor(n: int, file_kb: int, out: Path) -> dict:
    """The same files written by a bare loop: write a temp name, rename (no runner, no records)."""
    (out / "out").mkdir(parents=True, exist_ok=True)
    data = bytes(file_kb * 1024)
    t = time.perf_counter()
    for k in range(n):
        final = out / "out" / f"i{k:07d}.bin"
        tmp = final.with_name(f".{final.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, final)
    wall = time.perf_counter() - t
    return {"mode": "floor", "items": n, "file_kb": file_kb, "wall_s": round(wall, 3), "items_per_s": round(n / wall, 1),
            "load": round(os.getloadavg()[0], 2)}


def subprocess_one(mode: str, n: int, file_kb: int, out: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "bench.runner", "--one", mode, str(n), str(file_kb), str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    ap.add_argument("--modes", nargs="+", default=["local", "ray"])
    ap.add_argument("--file-kb", type=int, default=20)
    ap.add_argument("--dir", default=tempfile.gettempdir())
    ap.add_argument("--no-big-files", action="store_true", help="skip the 10x file size run")
    ap.add_argument("--one", nargs=4, metavar=("MODE", "N", "KB", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        mode, n, kb, out = args.one
        print(json.dumps(one(mode, int(n), int(kb), out)))
        return
    root = Path(tempfile.mkdtemp(prefix="bench-runner-", dir=args.dir))
    print(f"cpus={os.cpu_count()} load={os.getloadavg()[0]:.2f} file={args.file_kb} KB dir={root}")
    results = []
    try:
        big = max(args.sizes)
        results.append(floor(big, args.file_kb, root / "floor"))
        print(json.dumps(results[-1]), flush=True)
        shutil.rmtree(root / "floor")
        for mode in args.modes:
            for n in args.sizes:
                out = root / f"{mode}-{n}"
                results.append(subprocess_one(mode, n, args.file_kb, out))
                print(json.dumps(results[-1]), flush=True)
                if n == big:
                    resumed = subprocess_one(mode, n, args.file_kb, out)
                    resumed["mode"] = f"{mode} resume"
                    results.append(resumed)
                    print(json.dumps(results[-1]), flush=True)
                shutil.rmtree(out)
        if not args.no_big_files:
            mode = args.modes[-1]
            n = min(args.sizes)
            out = root / f"{mode}-{n}-big"
            results.append(subprocess_one(mode, n, args.file_kb * 10, out))
            print(json.dumps(results[-1]), flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    base = {r["mode"]: r["items_per_s"] for r in results if r["items"] == big and r.get("file_kb") == args.file_kb}
    print(f"\nload at end={os.getloadavg()[0]:.2f}")
    print("| run | items | file | wall | items/s | x floor | driver peak | load |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        ratio = r["items_per_s"] / base["floor"] if r["items"] == big and "floor" in base else float("nan")
        print(f"| {r['mode']} | {r['items']:,} | {r['file_kb']} KB | {r['wall_s']:.2f} s | {r['items_per_s']:,.0f} | "
              f"{ratio:.2f} | {r.get('driver_peak_mib', '-')} MiB | {r['load']:.1f} |")


if __name__ == "__main__":
    main()
