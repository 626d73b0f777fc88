"""The one device and dtype resolver: what `device: auto` and `dtype: bf16` mean on this machine.

Every model backend (stages, training, sampling, evaluation) goes through these functions, so
"auto" means the same everywhere (CUDA when visible, else the CPU), an explicit `cuda` without a
GPU is a clear error instead of a crash deep inside a model, and half precision is never used on
a CPU (CPU bf16/fp16 convolutions are slow and gain nothing).
"""
from __future__ import annotations

import os
from typing import Any

DTYPE_NAMES = ("bf16", "fp16", "fp32")


def device_name(device: str | None = "auto") -> str:
    """`auto` or None -> "cuda" when a CUDA device is visible, else "cpu"; other names pass
    through after a check that a requested CUDA device exists."""
    if device in (None, "", "auto"):
        return "cuda" if is_cuda() else "cpu"
    if str(device).startswith("cuda") and not is_cuda():
        raise RuntimeError(f"device is {device} but no CUDA device is visible")
    return str(device)


def is_cuda(device: Any = "auto") -> bool:
    """Whether `device` is a CUDA device: a name (`cuda`, `cuda:1`) or a torch.device by its
    type; `auto` or None by what `device_name` resolves it to on this machine (whether a CUDA
    device is visible). Every "is this a GPU" check of the project asks here."""
    import torch

    if device is None or (isinstance(device, str) and device in ("", "auto")):
        return torch.cuda.is_available()
    return torch.device(device).type == "cuda"


def fix_cpu_threads(threads: int) -> int:
    """On a CPU-only machine, run torch's intra-op work on a fixed number of threads and return
    it: `threads` (params' `cpu_threads`) shared out among the processes a launcher started on
    this host (`LOCAL_WORLD_SIZE`, set by `accelerate launch` / torchrun), at least one each. On
    a GPU machine change nothing and return 0.

    Why fixed: a float sum split over N threads is added in another order than over M threads,
    so the tiny CPU model trained with torch's default (the core count, or whatever
    OMP_NUM_THREADS a parent process left: the runner sets it to 1 for its in-process workers,
    and a test suite's `dvc repro` inherited it) gave other weights, samples and metrics than a
    clean clone. With the count fixed, the same params give the same bytes on any machine of the
    same instruction set, loaded or not (measured: docs/BENCHMARKS.md).

    Why shared out: oneDNN's convolutions wait for their threads in a spin barrier. Two training
    processes of two threads each on two cores ran the same two steps in 16 s when the scheduler
    happened to place them well and in 190-660 s inside a test suite (every rank at 100% CPU on
    one `pause` loop of the barrier), and CI ran out of time on it."""
    import torch

    if is_cuda():
        return 0
    threads = max(1, threads // local_processes())
    torch.set_num_threads(threads)
    return threads


def local_processes() -> int:
    """How many processes a launcher started on this host (`LOCAL_WORLD_SIZE`); 1 without one."""
    try:
        return max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    except ValueError:
        return 1


def resolve_dtype(name: str, device: Any) -> Any:
    """torch dtype for `name` (bf16 | fp16 | fp32 | auto) on `device`: auto = bf16 on CUDA;
    always fp32 on a CPU."""
    import torch

    table = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
    if name != "auto" and name not in table:
        raise ValueError(f"unknown dtype {name!r}; known: auto, {', '.join(DTYPE_NAMES)}")
    kind = torch.device(device).type
    if name == "auto":
        return torch.bfloat16 if kind == "cuda" else torch.float32
    return torch.float32 if kind == "cpu" else table[name]


def resolve_device(device: str | None, dtype: str) -> tuple[Any, Any]:
    """(torch.device, torch.dtype) for a model backend's `device` and `dtype` params."""
    import torch

    name = device_name(device)
    return torch.device(name), resolve_dtype(dtype, name)
