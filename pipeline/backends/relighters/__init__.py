"""Relighters: new lighting of the face and hair of an image under environment maps (paper 4.1, A.1).

One interface (`base.Relighter`), one module per backend: the paper's NeuralGaffer (a diffusion
model loaded from a local folder) and the offline spherical-harmonic ratio relighter. The
`relight` stage draws the lights (`envmaps`), builds the mask and composites; it never knows
which backend runs.
"""
from __future__ import annotations

from pipeline.registry import Registry
from pipeline.backends.relighters.base import Relighter

RELIGHTERS: Registry[Relighter] = Registry("relight.backend", Relighter, {
    "sh": "pipeline.backends.relighters.sh:SHRelighter",
    "neural_gaffer": "pipeline.backends.relighters.neural_gaffer:NeuralGafferRelighter",
})


def build_relighter(params) -> Relighter:
    """The backend named by `params.backend` (a `RelightParams`), not yet set up."""
    return RELIGHTERS.build(params.backend, params)
