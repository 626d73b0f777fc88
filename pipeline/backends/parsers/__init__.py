"""Face parsers (paper 4.1): label maps of canonical ids for the `segment` stage.

One interface (`base.FaceParser`), one module per backend: the paper's SegFormer (CelebAMask-HQ
labels, mapped to ours by name) and the offline dense-mesh parser. The stage never knows which runs.
"""
from __future__ import annotations

from pipeline.backends.parsers.base import FaceParser


def build_parser(params) -> FaceParser:
    """The backend named by `params.backend` (a `SegmentParams`), not yet set up."""
    if params.backend == "mesh":
        from pipeline.backends.parsers.mesh_parser import MeshParser

        return MeshParser(params)
    if params.backend == "segformer":
        from pipeline.backends.parsers.segformer import SegformerParser

        return SegformerParser(params)
    raise ValueError(f"unknown segment backend {params.backend!r}")
