"""Relighters: new lighting of the face and hair of an image under environment maps (paper 4.1, A.1).

One interface (`base.Relighter`), one module per backend: the paper's NeuralGaffer (a diffusion
model loaded from a local folder) and the offline spherical-harmonic ratio relighter. The
`relight` stage draws the lights (`envmaps`), builds the mask and composites; it never knows
which backend runs.
"""
from __future__ import annotations

from pipeline.backends.relighters.base import Relighter


def build_relighter(params) -> Relighter:
    """The backend named by `params.backend` (a `RelightParams`), not yet set up."""
    if params.backend == "sh":
        from pipeline.backends.relighters.sh import SHRelighter

        return SHRelighter(params)
    if params.backend == "neural_gaffer":
        from pipeline.backends.relighters.neural_gaffer import NeuralGafferRelighter

        return NeuralGafferRelighter(params)
    raise ValueError(f"unknown relight backend {params.backend!r}")
