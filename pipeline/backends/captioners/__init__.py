"""Captioners (paper 3.2, B.3): a detailed caption of every image for the `caption` stage.

One interface (`base.Captioner`), one module per backend: the paper's LLaVA-1.5 (loaded from a
local folder) and the offline captioner that writes what it measures on the face and the light.
"""
from __future__ import annotations

from pipeline.backends.captioners.base import Caption, Captioner
from pipeline.registry import Registry

CAPTIONERS: Registry[Captioner] = Registry("caption.backend", Captioner, {
    "attributes": "pipeline.backends.captioners.attributes:AttributeCaptioner",
    "llava": "pipeline.backends.captioners.llava:LlavaCaptioner",
})


def build_captioner(params) -> Captioner:
    """The backend named by `params.backend` (a `CaptionParams`), not yet set up."""
    return CAPTIONERS.build(params.backend, params)


__all__ = ["CAPTIONERS", "Caption", "Captioner", "build_captioner"]
