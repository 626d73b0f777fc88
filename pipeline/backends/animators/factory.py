"""Build the animator `animate.backend` names (the stage never knows which one runs)."""
from __future__ import annotations

from pipeline.backends.animators.base import Animator
from pipeline.config.animate import AnimateParams
from pipeline.registry import Registry

ANIMATORS: Registry[Animator] = Registry("animate.backend", Animator, {
    "mesh": "pipeline.backends.animators.mesh_animator:from_params",
    "liveportrait": "pipeline.backends.animators.liveportrait.animator:from_params",
})


def build_animator(params: AnimateParams) -> Animator:
    return ANIMATORS.build(params.backend, params)
