"""Build the animator `animate.backend` names (the stage never knows which one runs)."""
from __future__ import annotations

from pipeline.animators.base import Animator
from pipeline.config.animate import AnimateParams


def build_animator(params: AnimateParams) -> Animator:
    if params.backend == "mesh":
        from pipeline.animators.mesh import MeshAnimator

        return MeshAnimator()
    if params.backend == "liveportrait":
        if not params.liveportrait_dir:
            raise ValueError("animate.backend is liveportrait but animate.liveportrait_dir is not set "
                             "(a folder with the official base_models/ and retargeting_models/ checkpoints)")
        from pipeline.animators.liveportrait import LivePortraitAnimator
        from pipeline.device import device_name

        device = device_name(params.device)
        return LivePortraitAnimator(params.liveportrait_dir, device, batch_size=params.batch_size)
    raise ValueError(f"unknown animate.backend {params.backend!r} (mesh | liveportrait)")
