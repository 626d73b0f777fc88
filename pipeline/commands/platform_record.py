"""`piq platform`: the machine and install that wrote dvc.lock, recorded beside it (`dvc.platform.json`).

DVC hashes are bytes; some bytes depend on the CPU. OpenCV (resize, warps, JPEG), mediapipe
(face mesh) and torch (CPU kernels) choose SIMD code paths at run time by the CPU's features
(AVX2, AVX-512, VNNI, AMX ...), and their float results can differ by an ulp between paths;
a pixel rounded the other way changes a JPEG and every hash after it. On one machine a rerun is
bit-identical. So a fresh `dvc repro` can be expected to write the committed dvc.lock byte for
byte only where the CPU's SIMD features, the Python and every installed package (the lock) are
those recorded here; elsewhere tests/test_dvc_repro.py compares the release by meaning
(pipeline/release/digest.py). `piq platform --write` records the current machine (run it when
committing a dvc.lock written here); `piq platform` prints it and whether it matches.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.metadata as md
import json
import platform
import sys
from pathlib import Path
from typing import Any

PLATFORM_FILE = "dvc.platform.json"
LOCK_FILE = "requirements.lock"
# /proc/cpuinfo flags that select different SIMD kernels in OpenCV, XNNPACK (mediapipe) or torch
SIMD_FLAGS = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd",
              "avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")
COMPARED = ("machine", "python", "simd", "torch_cpu_capability", "lock_sha256", "installed_sha256")


def _cpuinfo() -> tuple[str, list[str]]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or "unknown", []
    model = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "unknown")
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return model, sorted(f for f in flags if f in SIMD_FLAGS)


def _installed() -> list[str]:
    """name==version of every installed distribution but this project (an editable install)."""
    names = {}
    for dist in md.distributions():
        name = (dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
        if name and name != "piqperfect":
            names[name] = dist.version
    return [f"{n}=={v}" for n, v in sorted(names.items())]


def fingerprint(repo: Path) -> dict[str, Any]:
    import torch

    model, simd = _cpuinfo()
    lock = repo / LOCK_FILE
    installed = _installed()
    return {
        "cpu_model": model,  # informative only: the features below decide the code paths
        "machine": platform.machine(),
        "python": ".".join(map(str, sys.version_info[:3])),
        "simd": simd,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "lock_sha256": hashlib.sha256(lock.read_bytes()).hexdigest() if lock.is_file() else None,
        "installed_sha256": hashlib.sha256("\n".join(installed).encode()).hexdigest(),
        "installed_packages": len(installed),
    }


def differences(recorded: dict[str, Any] | None, current: dict[str, Any]) -> list[str]:
    """What differs between the recorded platform and this one ([] = byte-for-byte expected)."""
    if recorded is None:
        return [f"no {PLATFORM_FILE} recorded beside dvc.lock"]
    return [f"{k}: {recorded.get(k)!r} there, {current.get(k)!r} here" for k in COMPARED if recorded.get(k) != current.get(k)]


def main(args: argparse.Namespace) -> int:
    repo = Path(".")
    current = fingerprint(repo)
    path = repo / PLATFORM_FILE
    if args.write:
        path.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
        print(f"platform: recorded in {path}")
        return 0
    recorded = json.loads(path.read_text()) if path.is_file() else None
    print(json.dumps(current, indent=1, sort_keys=True))
    diff = differences(recorded, current)
    print("platform: same as the one that wrote dvc.lock: a repro should match it byte for byte" if not diff else
          "platform: differs from the one that wrote dvc.lock (compare by meaning):\n  " + "\n  ".join(diff))
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--write", action="store_true", help=f"record this machine in {PLATFORM_FILE}")
