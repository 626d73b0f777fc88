"""The paper configuration end to end, stage by stage, with every paper backend selected: the
acceptance run of issue 29. On a bare GPU machine it runs in three commands of at most ten
minutes (`bench/gpu_acceptance.sh 1`, `2`, `3`); on a CPU with tiny models it is a dry run
(`python -m bench.gpu_acceptance --work /tmp/acc --phase all --scale smoke`).

What it does, in a work copy of the repository (`--work`; the checkout is not touched):
1. merges configs/paper.yaml into the copy's params.yaml with the weights root `--weights`
   (`piq params --profile ... --write`), then the run-length values of `--scale` on top
   (RUN_LENGTH, SCALES: fewer steps than 25,000, no checkpoints); writes random weights in every
   backend's published layout there (bench/paper_weights.py: full size with `--full`, else
   tiny) and runs `piq models check` on them, which must pass;
2. runs dvc.yaml's stages in order, each by its own command (`dvc repro -s <stage>` where DVC is
   installed, else the stage's `cmd` from dvc.yaml: the same command `dvc repro` runs), and per
   stage records the wall time, the GPU memory's peak (NVML, the whole device, above the idle
   level), the items it made and their rate, the product's own figures beside them
   (reports/<stage>/timing.json, reports/train/metrics.json + timing.json, ...), the progress
   bar's last value (parsed from the stage's stderr) and the disk its outputs take;
3. projects each stage to the paper's scale (25,000 neutral faces -> 525,000 images; 25,000
   training steps at effective batch 64; 5,000 evaluation pairs per test set) on 1 GPU and on
   8 (linear: the data stages run one Ray actor per GPU, training data-parallel), and prints a
   table. Everything goes to `<work>/acceptance/results.json` (read by the next phase) and
   `<work>/acceptance/table.txt`.

Phases (one device command each): 1 = params; the data stages' weights (LivePortrait, LLaVA,
SegFormer, NeuralGaffer) and `piq models check --only` them; ingest .. shard. 2 = SDXL's and the
evaluation's weights and their check; latents, train, distill. 3 = sample, evaluate, the table.
`--phase all` runs all three. Each backend's weights are checked before the first stage that
loads them, so the data stages' 22 GB can be deleted before two exported SDXL pipelines are
written (bench/gpu_acceptance.sh does, on a 64 GB disk).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PHASES: dict[int, list[str]] = {
    1: ["ingest", "drivers", "animate", "caption", "segment", "relight", "shard"],
    2: ["latents", "train", "distill"],
    3: ["sample", "evaluate"],
}
PAPER = {"faces": 25_000, "images_per_face": 21, "train_steps": 25_000, "effective_batch": 64,
         "eval_pairs": 2 * 5_000, "driver_clips": 200, "distill_steps": 2_000,
         "train_share": 0.9}  # paper: 5% ID and 5% OOD test identities held out of training

# An acceptance run is not a 25,000-step training: these values bound its length (any scale).
# Ray is not carried to the GPU machine (its wheel alone is larger than what travels), so every
# stage runs in-process (`runner.workers: 0`; the model stages' own `workers` too).
RUN_LENGTH: dict[str, Any] = {
    "runner.workers": 0, "caption.workers": 0, "segment.workers": 0, "relight.workers": 0,
    # transformers' compiled decode step compiles per batch shape (64 and the remainder), for an unmeasured time
    # each: eager decoding keeps the first command inside its ten minutes (docs/BENCHMARKS.md)
    "caption.static_cache": False,
    "train.max_steps": 4, "train.keep_checkpoints": 0, "train.log_every": 1,
    "distill.max_steps": 3, "distill.effective_batch": 4,
    "sample.num_pairs": 4,
    "evaluate.num_pairs": 4,
    # IP-Adapter (baseline A.1) is not written by bench/paper_weights.py: left out
    "evaluate.methods": ["source", "paste", "poisson", "classical", "liveportrait", "piq"],
    "evaluate.ipadapter_dir": None, "evaluate.ipadapter_sdxl_dir": None,
}
# How much of the embedded sample runs (the models and their settings stay the paper's).
SCALES: dict[str, dict[str, Any]] = {
    "sample": {},  # the whole sample: 6 accepted clips x 2 faces, 21 images a face
    # one face per clip, 11 images a face: fits a 10-minute device command with NeuralGaffer's 50 steps
    "lean": {"ingest.keep_per_video": 1, "animate.per_face": 10},
    # the CPU dry run with tiny models: 3 clips, 3 images a face, a few steps of everything
    "smoke": {"ingest.keep_per_video": 1, "animate.per_face": 2, "drivers.size": 128,
              "data.resolution": 64, "train.batch_size": 2, "train.effective_batch": 2, "train.max_steps": 2,
              "train.mixed_precision": "fp32", "distill.batch_size": 1, "distill.effective_batch": 1,
              "distill.max_steps": 1, "distill.teacher_steps": 8, "distill.gradient_checkpointing": False,
              "sample.num_pairs": 1, "sample.num_inference_steps": 2, "evaluate.num_pairs": 2,
              "evaluate.num_inference_steps": 2, "relight.num_inference_steps": 2, "relight.resolution": 64, "caption.max_new_tokens": 8,
              "evaluate.methods": ["source", "piq"], "drivers.frames": 2},
}
SMOKE_CLIPS = ("v0001", "v0003", "v0004")  # one identity for training, one with two clips for test_ood


def log(msg: str) -> None:
    print(msg, flush=True)


# --- the work copy and its params ------------------------------------------------------------

def make_work_copy(work: Path) -> None:
    """The repository's files (not data/, models/, caches, the stage reports) at `work`."""
    skip = {".git", "data", "models", "checkpoints", ".cache", "test-output", ".venv", ".whl", ".gpu", ".pytest_cache",
            "__pycache__", "weights", "dvc_plots"}
    work.mkdir(parents=True, exist_ok=True)
    for entry in REPO.iterdir():
        if entry.name in skip or entry.name == "reports":
            continue
        dest = work / entry.name
        if entry.is_dir():
            shutil.copytree(entry, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
        else:
            shutil.copy2(entry, dest)
    (work / "reports").mkdir(exist_ok=True)
    if shutil.which("git") and not (work / ".git").exists():
        env = {**os.environ, "GIT_AUTHOR_NAME": "acceptance", "GIT_AUTHOR_EMAIL": "a@a",
               "GIT_COMMITTER_NAME": "acceptance", "GIT_COMMITTER_EMAIL": "a@a"}
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "acceptance copy"]):
            subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)


def smoke_metadata(work: Path) -> str:
    """A metadata csv of SMOKE_CLIPS only (the other clips are then `missing_metadata`, cheap)."""
    lines = (work / "samples" / "metadata.csv").read_text().splitlines()
    keep = [lines[0]] + [line for line in lines[1:] if line.split(",")[0] in SMOKE_CLIPS]
    path = work / "acceptance" / "metadata_smoke.csv"
    path.write_text("\n".join(keep) + "\n")
    return str(path)


def run_overrides(scale: str, work: Path) -> dict[str, Any]:
    over = {**RUN_LENGTH, **SCALES[scale]}
    if scale == "smoke":
        over["ingest.metadata_csv"] = smoke_metadata(work)
    return over


# --- measuring a stage -----------------------------------------------------------------------

class GpuPeak:
    """The device's used memory (NVML, all processes) sampled every 50 ms in a thread; `peak`
    is the highest reading above the level before the stage started. None without NVML/GPU."""

    def __init__(self) -> None:
        self.handle = None
        try:
            import pynvml

            pynvml.nvmlInit()
            self.handle = pynvml.nvmlDeviceGetHandleByIndex(0)
            self._read = lambda: pynvml.nvmlDeviceGetMemoryInfo(self.handle).used
        except Exception:  # no NVML, no GPU: nothing to record
            self.handle = None
        self.base = self.top = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> "GpuPeak":
        if self.handle is not None:
            self.base = self.top = self._read()
            self._thread = threading.Thread(target=self._poll, daemon=True)
            self._thread.start()
        return self

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            self.top = max(self.top, self._read())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    @property
    def peak_gib(self) -> float | None:
        return None if self.handle is None else round((self.top - self.base) / 2**30, 2)


BAR_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*(item|it|samples?)/s")
BAR_INVERSE = re.compile(r"(\d+(?:\.\d+)?)\s*s/(item|it)")
BAR_SAMPLES = re.compile(r"samples_s=(\d+(?:\.\d+)?)")
EVAL_LINE = re.compile(r"evaluate (\S+): (\S+): (\d+) pairs in (\d+(?:\.\d+)?) s")


def bar_last(text: str) -> dict | None:
    """The last progress-bar figure the stage printed (tqdm redraws with carriage returns):
    training's `samples_s=`, else the runner's items/s."""
    segments = re.split(r"[\r\n]", text)
    for seg in reversed(segments):
        m = BAR_SAMPLES.search(seg)
        if m:
            return {"samples_per_s": float(m.group(1)), "line": seg.strip()[-160:]}
        m = BAR_RATE.search(seg)
        if m and "|" in seg:
            return {"items_per_s": float(m.group(1)), "line": seg.strip()[-160:]}
        m = BAR_INVERSE.search(seg)
        if m and "|" in seg:
            return {"items_per_s": round(1 / float(m.group(1)), 4) if float(m.group(1)) else None,
                    "line": seg.strip()[-160:]}
    return None


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _rows(path: Path) -> int | None:
    try:
        import pyarrow.parquet as pq

        return pq.ParquetFile(path).metadata.num_rows
    except Exception:
        return None


def du(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if not path.is_dir():
        return 0
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def stage_outs(work: Path, stage: str) -> list[str]:
    spec = yaml.safe_load((work / "dvc.yaml").read_text())["stages"][stage]
    return [next(iter(o)) if isinstance(o, dict) else o for o in spec.get("outs", [])]


def stage_command(work: Path, stage: str) -> str:
    return yaml.safe_load((work / "dvc.yaml").read_text())["stages"][stage]["cmd"]


def product_figures(work: Path, stage: str) -> dict[str, Any]:
    """What the product itself wrote about the run: (units made, the unit, its own figures)."""
    r = work / "reports"
    data = work / "data"
    figures: dict[str, Any] = {}
    timing = _read_json(r / stage / "timing.json")
    if timing:
        figures["timing.json"] = timing
    if stage == "ingest":
        figures.update(units=_rows(data / "ingest" / "manifest.parquet"), unit="faces")
    elif stage == "drivers":
        figures.update(units=_rows(data / "drivers" / "manifest.parquet"), unit="clips")
    elif stage in ("animate", "caption", "segment"):
        figures.update(units=_rows(data / stage / "manifest.parquet"), unit="images")
    elif stage == "relight":
        figures.update(units=_rows(data / stage / "manifest.parquet"), unit="relit images")
    elif stage == "shard":
        stats = _read_json(r / "shard_stats.json") or {}
        figures.update(units=sum(s.get("sets", 0) for s in stats.get("splits", {}).values()) or None, unit="sets",
                       splits=stats.get("splits"))
    elif stage == "latents":
        cache = _read_json(data / "latents" / "train" / "cache.json") or {}
        figures.update(units=cache.get("entries"), unit="train images")
    elif stage in ("train", "distill"):
        metrics = _read_json(r / stage / "metrics.json") or {}
        figures["metrics.json"] = metrics
        params = _read_json(work / "acceptance" / "params.json") or {}
        eff = params.get(stage, {}).get("effective_batch") or metrics.get("effective_batch")
        steps = metrics.get("steps")
        figures.update(units=(steps * eff) if steps and eff else None, unit="samples")
        rate = (timing or {}).get("samples_per_s")
        if isinstance(rate, (int, float)) and math.isfinite(rate) and rate > 0:
            figures["rate"] = rate  # the loop's steady state: first step and pauses left out
    elif stage == "sample":
        figures.update(units=_rows(r / "samples" / "manifest.parquet"), unit="pairs")
    elif stage == "evaluate":
        report = _read_json(r / "eval" / "report.json") or {}
        datasets = report.get("datasets") or {}
        figures["metrics.json"] = _read_json(r / "eval" / "metrics.json")
        figures["methods"] = {ds: {e.get("method"): {"pairs": e.get("pairs"), "seconds": e.get("seconds"),
                                                     "unavailable": e.get("unavailable"),
                                                     "metrics_unavailable": sorted(k for k, m in (e.get("metrics") or {}).items()
                                                                                   if m.get("unavailable"))}
                                   for e in entries if isinstance(e, dict)}
                              for ds, entries in datasets.items() if isinstance(entries, list)}
        pairs = sum(max((e.get("pairs") or 0 for e in entries if isinstance(e, dict)), default=0)
                    for entries in datasets.values() if isinstance(entries, list))
        figures.update(units=pairs or None, unit="pairs")
    return figures


def run_stage(work: Path, stage: str, runner: str, timeout: float) -> dict[str, Any]:
    """Run one stage as `dvc repro` would, with its figures."""
    logs = work / "acceptance" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    cmd = ["dvc", "repro", "-s", stage] if runner == "dvc" else ["bash", "-c", stage_command(work, stage)]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    env["PYTHONPATH"] = os.pathsep.join([str(work), *filter(None, [os.environ.get("PYTHONPATH")])])
    if shutil.which("piq", path=env["PATH"]) is None:  # no console script (not pip-installed): a shim on PATH
        shim = work / "acceptance" / "bin"
        shim.mkdir(exist_ok=True)
        (shim / "piq").write_text(f"#!/bin/sh\nexec {sys.executable} -m pipeline.commands.piq \"$@\"\n")
        (shim / "piq").chmod(0o755)
        env["PATH"] = f"{shim}{os.pathsep}{env['PATH']}"
    log(f"--- {stage}: {' '.join(cmd)}")
    t0 = time.perf_counter()
    with GpuPeak() as gpu, open(logs / f"{stage}.log", "w") as fh:
        try:
            done = subprocess.run(cmd, cwd=work, env=env, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout)
            rc: int | str = done.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = time.perf_counter() - t0
    text = (logs / f"{stage}.log").read_text(errors="replace")
    figures = product_figures(work, stage)
    if stage == "evaluate":  # the stage's own log: seconds per test set and method
        figures["method_seconds"] = {f"{m[1]}:{m[2]}": float(m[4]) for m in EVAL_LINE.finditer(text)}
    units = figures.pop("units", None)
    rate = figures.pop("rate", None) or (round(units / wall, 4) if units and wall > 0 else None)
    result = {
        "stage": stage, "command": " ".join(cmd), "returncode": rc, "wall_s": round(wall, 1),
        "peak_gpu_mem_gib": gpu.peak_gib, "units": units, "unit": figures.pop("unit", None),
        "rate_per_s": rate, "bar_last": bar_last(text),
        "disk_bytes": {o: du(work / o) for o in stage_outs(work, stage)}, "product": figures,
        "log_tail": text[-2500:] if rc != 0 else text[-600:],
    }
    log(f"    {stage}: rc {rc}, {wall:.1f} s, {units} {result['unit']}, rate {rate}, gpu peak {gpu.peak_gib} GiB")
    if rc != 0:
        log(text[-3000:])
    return result


# --- the paper-scale projection --------------------------------------------------------------

def project(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Hours of each stage at the paper's scale on 1 GPU and on 8 (linear), and the disk of its
    outputs, from this run's per-unit time and bytes."""
    stages = results.get("stages", {})
    images = (stages.get("animate") or {}).get("units") or 0
    paper_images = PAPER["faces"] * PAPER["images_per_face"]
    rows = []
    for name, s in stages.items():
        if s.get("returncode") != 0:
            rows.append({"stage": name, "note": f"did not finish ({s.get('returncode')})"})
            continue
        units, wall, rate = s.get("units"), s.get("wall_s"), s.get("rate_per_s")
        disk = sum(s.get("disk_bytes", {}).values())
        note, paper_units, seconds, disk_paper = "", None, None, None
        if name == "ingest" and units:
            paper_units, seconds = PAPER["faces"], wall / units * PAPER["faces"]
            disk_paper = disk / units * PAPER["faces"]
        elif name == "drivers":
            paper_units, seconds, disk_paper = PAPER["driver_clips"], wall, disk
            note = "a fixed library: not scaled"
        elif name in ("animate", "caption", "segment", "relight") and images:
            scale = paper_images / images
            paper_units = (units or 0) * scale
            seconds, disk_paper = wall * scale, disk * scale
            note = "scaled by images (in-process: the model's load included)"
        elif name == "latents" and units:
            scale = paper_images * PAPER["train_share"] / units
            paper_units, seconds, disk_paper = paper_images * PAPER["train_share"], wall * scale, disk * scale
            note = "the training split's images (90%), both mirrors"
        elif name == "shard" and images:
            scale = paper_images / images  # by images: a run's sets may hold fewer than 21 (animate.per_face)
            paper_units, seconds, disk_paper = PAPER["faces"], wall * scale, disk * scale
            note = "scaled by images"
        elif name == "train" and rate:
            paper_units = PAPER["train_steps"] * PAPER["effective_batch"]
            seconds, disk_paper = paper_units / rate, disk
            note = "steady samples/s of the loop; + checkpoints (keep 2: fp32 UNet + Adam state)"
        elif name == "distill" and rate:
            paper_units = PAPER["distill_steps"] * PAPER["effective_batch"]
            seconds, disk_paper = paper_units / rate, disk
            note = "configs/paper.yaml's 2,000 steps at effective batch 64"
        elif name == "sample":
            paper_units, seconds, disk_paper = units, wall, disk
            note = "a preview of sample.num_pairs: not scaled"
        elif name == "evaluate" and units:
            paper_units = PAPER["eval_pairs"]
            seconds, disk_paper = wall / units * paper_units, disk / units * paper_units
            note = "per pair of every method (model loads included)"
        rows.append({"stage": name, "paper_units": round(paper_units) if paper_units else None,
                     "unit": s.get("unit"), "hours_1_gpu": round(seconds / 3600, 2) if seconds is not None else None,
                     "hours_8_gpus": round(seconds / 3600 / 8, 2) if seconds is not None else None,
                     "disk_gb": round(disk_paper / 1e9, 1) if disk_paper is not None else None, "note": note})
    total = [r for r in rows if r.get("hours_1_gpu") is not None]
    if total:
        rows.append({"stage": "total", "hours_1_gpu": round(sum(r["hours_1_gpu"] for r in total), 1),
                     "hours_8_gpus": round(sum(r["hours_8_gpus"] for r in total), 1),
                     "disk_gb": round(sum(r["disk_gb"] or 0 for r in total), 1)})
    return rows


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:,.0f}"
    return str(v)


def table(results: dict[str, Any]) -> str:
    head = results.get("machine", {})
    lines = [f"acceptance run: {head.get('gpu') or 'no GPU'}, torch {head.get('torch')}, scale {results.get('scale')}, "
             f"weights {'full size' if results.get('full') else 'tiny'}, runner {results.get('runner')}"]
    for phase, check in (results.get("models_check") or {}).items():
        lines.append(f"piq models check --only {' '.join(check['only'])} ({phase}): rc {check['returncode']} "
                     f"({check.get('summary', '')})")
    lines.append("")
    lines.append("| stage | rc | wall s | units | rate /s | product's figure | bar's last | peak GPU GiB | outs MB |")
    lines.append("|---|---|---|---|---|---|---|---|---|")
    for name, s in results.get("stages", {}).items():
        prod = s.get("product", {})
        own = prod.get("timing.json", {}) or {}
        figure = own.get("samples_per_s") or own.get("items_per_s")
        bar = s.get("bar_last") or {}
        lines.append(f"| {name} | {s.get('returncode')} | {_fmt(s.get('wall_s'))} | {_fmt(s.get('units'))} {s.get('unit') or ''} "
                     f"| {_fmt(s.get('rate_per_s'))} | {_fmt(figure)} | {_fmt(bar.get('samples_per_s') or bar.get('items_per_s'))} "
                     f"| {_fmt(s.get('peak_gpu_mem_gib'))} | {_fmt(sum(s.get('disk_bytes', {}).values()) / 1e6)} |")
    lines += ["", "Paper scale (25,000 faces -> 525,000 images; 25,000 steps at effective batch 64; 10,000 eval pairs):", "",
              "| stage | paper units | hours, 1 GPU | hours, 8 GPUs (linear) | disk GB | note |", "|---|---|---|---|---|---|"]
    for r in project(results):
        lines.append(f"| {r['stage']} | {_fmt(r.get('paper_units'))} {r.get('unit') or ''} | {_fmt(r.get('hours_1_gpu'))} "
                     f"| {_fmt(r.get('hours_8_gpus'))} | {_fmt(r.get('disk_gb'))} | {r.get('note', '')} |")
    return "\n".join(lines)


# --- the phases ------------------------------------------------------------------------------

def machine() -> dict[str, Any]:
    info: dict[str, Any] = {"python": platform.python_version(), "host": platform.node(), "cores": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__  # no CUDA call here: a context in this process would take GPU memory
    except ImportError:
        pass
    try:
        import pynvml

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(0)
        name = pynvml.nvmlDeviceGetName(handle)
        info.update(gpu=name.decode() if isinstance(name, bytes) else name,
                    gpu_mem_gib=round(pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**30, 1),
                    driver=str(pynvml.nvmlSystemGetDriverVersion()))
    except Exception:  # no NVML, no GPU
        pass
    for mod in ("diffusers", "transformers", "numpy", "mediapipe", "cv2"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception as err:  # a missing or broken package is a finding, not a crash
            info[mod] = f"unavailable: {type(err).__name__}: {err}"[:200]
    return info


# Which backends' weights each phase writes and checks before its stages: the data stages' first,
# the backbone and the evaluation's before training (so phase 1's LLaVA and NeuralGaffer folders,
# 22 GB, can be deleted before two exported SDXL pipelines are written on a 64 GB disk).
WEIGHTS_BY_PHASE: dict[int, list[str]] = {1: ["animate", "caption", "segment", "relight"], 2: ["train", "evaluate"]}


def write_params(args, results: dict[str, Any]) -> None:
    """The copy's params.yaml: configs/paper.yaml under the weights root, then the run's values."""
    import dataclasses

    from pipeline.config.params import load_params
    from pipeline.config.profile import apply, profile_overrides

    work = args.work
    overrides = profile_overrides(work / "configs" / "paper.yaml", weights_root(args))
    overrides.update(run_overrides(args.scale, work))
    apply(work / "params.yaml", overrides, work / "params.yaml")
    results["overrides"] = dict(overrides)
    params = dataclasses.asdict(load_params(work / "params.yaml"))
    (work / "acceptance" / "params.json").write_text(json.dumps(params, indent=1, default=str))


def weights_root(args) -> Path:
    return Path(args.weights or args.work / "weights").resolve()


def prepare_weights(args, results: dict[str, Any], phase: int) -> bool:
    """Write (or reuse) the phase's weights, then `piq models check --only` those components."""
    root = weights_root(args)
    root.mkdir(parents=True, exist_ok=True)
    marker = root / ".written.json"
    written = _read_json(marker) or {}
    wanted = [b for b in WEIGHTS_BY_PHASE.get(phase, []) if written.get(b, {}).get("full") != args.full]
    if wanted:
        from bench.paper_weights import write_paper_weights

        for name, figures in write_paper_weights(root, full=args.full, only=wanted, log=log).items():
            written[name] = {**figures, "full": args.full}
        marker.write_text(json.dumps(written))
    results.setdefault("weights", {}).update(root=str(root), full=args.full, written=written)
    only = WEIGHTS_BY_PHASE.get(phase, [])
    if not only:
        return True
    check = subprocess.run([sys.executable, "-m", "pipeline.commands.piq", "models", "check", "--only", *only], cwd=args.work,
                           capture_output=True, text=True,
                           env={**os.environ, "PYTHONPATH": os.pathsep.join([str(args.work), os.environ.get("PYTHONPATH", "")])})
    last = check.stderr.strip().splitlines()[-1] if check.stderr.strip() else ""
    results.setdefault("models_check", {})[f"phase {phase}"] = {
        "only": only, "returncode": check.returncode, "summary": last, "lines": check.stdout.strip().splitlines()}
    log(check.stdout + check.stderr[-2000:])
    return check.returncode == 0


def run_phase(args, phase: int) -> bool:
    work: Path = args.work
    (work / "acceptance").mkdir(parents=True, exist_ok=True)
    path = work / "acceptance" / "results.json"
    results = _read_json(path) or {"stages": {}}
    results.update(scale=args.scale, full=args.full, machine=machine())
    if phase == 1:
        make_work_copy(work)
        write_params(args, results)
    if not prepare_weights(args, results, phase):
        _save(results, path)
        log("piq models check failed: no stage run")
        return False
    _save(results, path)
    runner = args.runner
    if runner == "auto":
        runner = "dvc" if shutil.which("dvc", path=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}") \
            and (work / ".git").exists() else "cmd"
    results["runner"] = runner
    deadline = time.monotonic() + args.phase_seconds if args.phase_seconds else None
    ok = True
    for stage in PHASES[phase]:
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left < 10:
            results["stages"][stage] = {"stage": stage, "returncode": "not run: phase time spent"}
            ok = False
            continue
        results["stages"][stage] = run_stage(work, stage, runner, timeout=left or 24 * 3600)
        _save(results, path)
        if results["stages"][stage]["returncode"] != 0:
            ok = False
            break
    _save(results, path)
    text = table(results)
    (work / "acceptance" / "table.txt").write_text(text + "\n")
    log(text)
    return ok


def _save(results: dict, path: Path) -> None:
    results["projection"] = project(results)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1, default=str))
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="work copy of the repository (made by phase 1)")
    parser.add_argument("--phase", default="all", choices=["1", "2", "3", "all", "report"])
    parser.add_argument("--full", action="store_true", help="random weights of the published sizes (GPU)")
    parser.add_argument("--scale", default="lean", choices=list(SCALES))
    parser.add_argument("--weights", default=None, help="weights root (default: <work>/weights; reused if written)")
    parser.add_argument("--runner", default="auto", choices=["auto", "dvc", "cmd"],
                        help="dvc: `dvc repro -s <stage>`; cmd: the stage's dvc.yaml command; auto: dvc when installed")
    parser.add_argument("--phase-seconds", type=float, default=None,
                        help="stop starting stages after this long (a device command's limit)")
    parser.add_argument("--out", type=Path, default=None, help="copy results.json and table.txt here")
    args = parser.parse_args(argv)
    args.work = args.work.resolve()
    if args.phase == "report":
        results = _read_json(args.work / "acceptance" / "results.json") or {}
        print(table(results))
        ok = True
    else:
        phases = [1, 2, 3] if args.phase == "all" else [int(args.phase)]
        ok = all(run_phase(args, p) for p in phases)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ("results.json", "table.txt"):
            src = args.work / "acceptance" / name
            if src.is_file():
                shutil.copy2(src, args.out / f"acceptance_{name}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
