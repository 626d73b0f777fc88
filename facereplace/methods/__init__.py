"""Face makers, one file per backend behind one interface (`base.FaceMethod`):

- `classical` (offline default): similarity alignment on the face mesh, Lab colour and
  low-frequency lighting transfer (pipeline/faces/classical_swap.py), Poisson blend;
- `piq`: the trained PiQPerfect pipeline from `replace.model_dir` (paper A.1: 50 steps,
  guidance 1.5), loaded by `train.sampler.load_sampler` with `sample`'s speed levers.
"""
from __future__ import annotations

from facereplace.methods.base import FaceMethod
from pipeline.registry import Registry

FACE_METHODS: Registry[FaceMethod] = Registry("method", FaceMethod, {
    "classical": "facereplace.methods.classical:from_params",
    "piq": "facereplace.methods.piq:PiQMethod",
})
METHODS = FACE_METHODS.names()


def build_method(name: str, params, sample=None, device: str | None = None) -> FaceMethod:
    """The method `name` configured from `params` (ReplaceParams) and `sample` (SampleParams:
    dtype and speed levers of the piq pipeline)."""
    return FACE_METHODS.build(name, params, sample, device)
