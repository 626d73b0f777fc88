"""LivePortrait (Guo et al. 2024) as our own PyTorch modules, loading the official checkpoints."""
from __future__ import annotations

from .config import LivePortraitConfig

__all__ = ["LivePortraitAnimator", "LivePortraitConfig"]


def __getattr__(name: str):
    if name == "LivePortraitAnimator":  # imported lazily: it pulls in mediapipe and OpenCV
        from .animator import LivePortraitAnimator

        return LivePortraitAnimator
    raise AttributeError(name)
