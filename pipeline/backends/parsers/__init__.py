"""Face parsers (paper 4.1): label maps of canonical ids for the `segment` stage.

One interface (`base.FaceParser`), one module per backend: the paper's SegFormer (CelebAMask-HQ
labels, mapped to ours by name) and the offline dense-mesh parser. The stage never knows which runs.
"""
from __future__ import annotations

from pipeline.backends.parsers.base import FaceParser
from pipeline.registry import Registry

PARSERS: Registry[FaceParser] = Registry("segment.backend", FaceParser, {
    "mesh": "pipeline.backends.parsers.mesh_parser:MeshParser",
    "segformer": "pipeline.backends.parsers.segformer:SegformerParser",
})


def build_parser(params) -> FaceParser:
    """The backend named by `params.backend` (a `SegmentParams`), not yet set up."""
    return PARSERS.build(params.backend, params)
