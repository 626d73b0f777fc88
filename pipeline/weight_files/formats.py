"""Telling weights files apart by their bytes, without running or unpickling anything.

- ONNX: a protobuf (no magic number): recognised by its `.onnx` suffix and read by onnxruntime;
- TorchScript: a zip archive holding `*/code/` and `*/constants.pkl`;
- torch.save: a zip archive holding `*/data.pkl` and no code (or a legacy pickle);
- anything else: not a weights file we know.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Sequence

from pipeline.weight_files.checks import WeightsFormatError

PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def torch_file_kind(path: str | Path, accepted: Sequence[str]) -> str:
    """"torchscript" or "state_dict" for a torch file; `WeightsFormatError` otherwise (missing,
    empty, truncated zip, not a torch file)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFormatError(path, accepted, "no such file")
    if path.stat().st_size == 0:
        raise WeightsFormatError(path, accepted, "the file is empty")
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError) as exc:
            raise WeightsFormatError(path, accepted, f"a damaged zip archive ({exc})") from exc
        if bad is not None:
            raise WeightsFormatError(path, accepted, f"a damaged zip archive (bad CRC in {bad})")
        if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
            return "torchscript"
        if any(n.endswith("data.pkl") for n in names):
            return "state_dict"
        raise WeightsFormatError(path, accepted, "a zip archive that is neither TorchScript nor torch.save output")
    with open(path, "rb") as handle:
        head = handle.read(2)
    if head in PICKLE_MAGIC:
        return "state_dict"  # legacy (pre-1.6) torch.save format
    if head == b"PK":
        raise WeightsFormatError(path, accepted, "a truncated zip archive")
    raise WeightsFormatError(path, accepted, f"not a torch file (starts with {head!r})")


def load_state_dict(path: str | Path, accepted: Sequence[str]) -> dict:
    """A torch.save file's object on the CPU with `weights_only=True` (no code runs)."""
    import torch

    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a format problem of this file
        raise WeightsFormatError(path, accepted, f"could not be read as a state dict ({type(exc).__name__}: {exc})") from exc


def strip_prefix(state: dict, prefix: str = "module.") -> dict:
    """Drop a prefix every key carries (a DataParallel-wrapped save)."""
    if state and all(isinstance(k, str) and k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return state
