"""The one device and dtype resolver: what `device: auto` and `dtype: bf16` mean on this machine.

Every model backend (stages, training, sampling, evaluation) goes through these functions, so
"auto" means the same everywhere (CUDA when visible, else the CPU), an explicit `cuda` without a
GPU is a clear error instead of a crash deep inside a model, and half precision is never used on
a CPU (CPU bf16/fp16 convolutions are slow and gain nothing).
"""
from __future__ import annotations

from typing import Any

DTYPE_NAMES = ("bf16", "fp16", "fp32")


def device_name(device: str | None = "auto") -> str:
    """`auto` or None -> "cuda" when a CUDA device is visible, else "cpu"; other names pass
    through after a check that a requested CUDA device exists."""
    import torch

    if device in (None, "", "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device is {device} but no CUDA device is visible")
    return str(device)


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
