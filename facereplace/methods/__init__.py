"""Face makers, one file per backend behind one interface (`base.FaceMethod`):

- `classical` (offline default): similarity alignment on the face mesh, Lab colour and
  low-frequency lighting transfer (pipeline/faces/classical_swap.py), Poisson blend;
- `piq`: the trained PiQPerfect pipeline from `replace.model_dir` (paper A.1: 50 steps,
  guidance 1.5), loaded by `train.sampler.load_sampler` with `sample`'s speed levers.
"""
from __future__ import annotations

from facereplace.methods.base import FaceMethod

METHODS = ("classical", "piq")


def build_method(name: str, params, sample=None, device: str | None = None) -> FaceMethod:
    """The method `name` configured from `params` (ReplaceParams) and `sample` (SampleParams:
    dtype and speed levers of the piq pipeline)."""
    if name == "classical":
        from facereplace.methods.classical import ClassicalMethod

        return ClassicalMethod(params)
    if name == "piq":
        from facereplace.methods.piq import PiQMethod

        return PiQMethod(params, sample, device)
    raise ValueError(f"unknown method {name!r}; known: {list(METHODS)}")
