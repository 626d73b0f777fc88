"""Captioners (paper 3.2, B.3): a detailed caption of every image for the `caption` stage.

One interface (`base.Captioner`), one module per backend: the paper's LLaVA-1.5 (loaded from a
local folder) and the offline captioner that writes what it measures on the face and the light.
"""
from __future__ import annotations

from pipeline.backends.captioners.base import Caption, Captioner


def build_captioner(params) -> Captioner:
    """The backend named by `params.backend` (a `CaptionParams`), not yet set up."""
    if params.backend == "attributes":
        from pipeline.backends.captioners.attributes import AttributeCaptioner

        return AttributeCaptioner(params)
    if params.backend == "llava":
        from pipeline.backends.captioners.llava import LlavaCaptioner

        return LlavaCaptioner(params)
    raise ValueError(f"unknown caption backend {params.backend!r}")


__all__ = ["Caption", "Captioner", "build_captioner"]
