"""torch's CPU thread count in the torch commands comes from params (`cpu_threads`), not from the
machine or the environment: float sums over N threads differ from sums over M, and a parent
process's OMP_NUM_THREADS (the runner sets 1 for in-process workers) once made a test suite's
`dvc repro` train other weights than a clean clone."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
PROBE = """
import torch
from pipeline.device import fix_cpu_threads
from pipeline.config.params import load_params
inherited = torch.get_num_threads()
fixed = fix_cpu_threads(load_params('params.yaml').cpu_threads)
g = torch.Generator().manual_seed(0)
a, b = torch.randn(257, 1031, generator=g), torch.randn(1031, 263, generator=g)
print(inherited, fixed, torch.get_num_threads(), (a @ b).sum(dim=0).double().sum().item().hex())
"""


def probe(omp: str | None, **extra: str) -> list[str]:
    """Run PROBE with OMP/MKL_NUM_THREADS set to `omp` (None: unset, torch takes the core count)
    and `extra` in its environment."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "LOCAL_WORLD_SIZE")}
    env.update(PYTHONPATH=str(REPO), **extra)
    if omp is not None:
        env.update(OMP_NUM_THREADS=omp, MKL_NUM_THREADS=omp)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fixed count applies to CPU-only machines")
def test_cpu_threads_do_not_depend_on_the_inherited_environment() -> None:
    one, default = probe("1"), probe(None)
    assert one[0] == "1"  # what torch took from the environment
    assert one[1:3] == default[1:3] == ["2", "2"]  # params.yaml's cpu_threads: 2, whatever was inherited
    assert one[3] == default[3], "the same matmul must give the same bits under either environment"


@pytest.mark.skipif(torch.cuda.is_available(), reason="the fixed count applies to CPU-only machines")
def test_processes_of_one_launch_share_the_threads() -> None:
    """Under `accelerate launch --num_processes 2` each process gets cpu_threads / 2: two
    processes of two threads on two cores spun in oneDNN's barriers for minutes."""
    assert probe(None, LOCAL_WORLD_SIZE="2")[1:3] == ["1", "1"]
    assert probe(None, LOCAL_WORLD_SIZE="8")[1:3] == ["1", "1"]  # never fewer than one
    assert probe(None, LOCAL_WORLD_SIZE="1")[1:3] == ["2", "2"]
