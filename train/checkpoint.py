"""Training checkpoints that resume exactly: weights, optimizer, EMA, every RNG, the data
stream's position and the loss history. A checkpoint directory is written under a temporary
name and renamed, so a crash never leaves a half checkpoint that looks complete."""
from __future__ import annotations

import errno
import random
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from pipeline.device import is_cuda

PREFIX = "step-"


def checkpoint_dirs(root: str | Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith(PREFIX)), key=lambda p: int(p.name[len(PREFIX):]))


def latest(root: str | Path) -> Optional[Path]:
    dirs = checkpoint_dirs(root)
    return dirs[-1] if dirs else None


class CheckpointSpaceError(OSError):
    """Not enough disk for a checkpoint; the previous checkpoints are intact."""


def state_bytes(obj: Any) -> int:
    """Bytes of the tensors in a (nested) checkpoint state: what torch.save will write, give or
    take the pickled metadata. An SDXL UNet with fp32 Adam state is about 30 GB."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(state_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(state_bytes(v) for v in obj)
    return 0


def _space_error(root: Path, need: int, free: int) -> CheckpointSpaceError:
    return CheckpointSpaceError(
        errno.ENOSPC, f"checkpoint needs about {need / 2**30:.1f} GiB but {root} has {free / 2**30:.1f} GiB free; "
        f"the previous checkpoint is intact. Free space, lower train.keep_checkpoints or point "
        f"train.checkpoint_dir at a larger disk")


def _out_of_space(err: BaseException) -> bool:
    """ENOSPC, or torch's zip writer reporting it ("PytorchStreamWriter failed writing file")."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return True
    text = str(err)
    return "No space left" in text or "file write failed" in text or "failed writing file" in text


def save(root: str | Path, step: int, state: dict[str, Any], keep: int) -> Path:
    """Write `state` (torch-serialisable) as checkpoint `step`, keep the newest `keep`. Space is
    checked first, and a write that still fails for space removes its partial file: in both
    cases the previous checkpoints stay as they were."""
    root = Path(root)
    final = root / f"{PREFIX}{step:08d}"
    tmp = root / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    need = state_bytes(state)
    free = shutil.disk_usage(tmp).free
    if need > free:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _space_error(root, need, free)
    try:
        torch.save(state, tmp / "state.pt")
    except (OSError, RuntimeError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if not _out_of_space(err):
            raise
        raise _space_error(root, need, shutil.disk_usage(root).free) from err
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    for old in checkpoint_dirs(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load(path: str | Path) -> dict[str, Any]:
    return torch.load(Path(path) / "state.pt", map_location="cpu", weights_only=False)


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    return {"generator": generator.get_state(), "torch": torch.get_rng_state(), "numpy": np.random.get_state(),
            "python": random.getstate(), "cuda": torch.cuda.get_rng_state_all() if is_cuda() else None}


def restore_rng(state: dict[str, Any], generator: torch.Generator) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and is_cuda():
        torch.cuda.set_rng_state_all(state["cuda"])


def discard(root: str | Path) -> None:
    """Remove every checkpoint under `root`."""
    for path in checkpoint_dirs(root):
        shutil.rmtree(path, ignore_errors=True)
