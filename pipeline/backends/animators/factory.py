"""Build the animator `animate.backend` names (the stage never knows which one runs)."""
from __future__ import annotations

from pipeline.backends.animators.base import Animator
from pipeline.config.animate import AnimateParams


def build_animator(params: AnimateParams) -> Animator:
    if params.backend == "mesh":
        from pipeline.backends.animators.mesh_animator import MeshAnimator

        return MeshAnimator()
    if params.backend == "liveportrait":
        if not params.liveportrait_dir:
            raise ValueError("animate.backend is liveportrait but animate.liveportrait_dir is not set "
                             "(a folder with the official base_models/ and retargeting_models/ checkpoints)")
        from pipeline.backends.animators.liveportrait import LivePortraitAnimator
        from pipeline.backends.animators.liveportrait.animator import CropOptions, DrivingOptions
        from pipeline.backends.animators.liveportrait.crop import CropRule
        from pipeline.device import device_name

        p = params
        device = device_name(p.device)
        driving = DrivingOptions(p.driving_option, p.driving_multiplier, p.normalize_lip, p.lip_normalize_threshold,
                                 p.stitching)
        crop = CropOptions(mode=p.liveportrait_crop, source=CropRule(p.crop_scale, p.crop_vx_ratio, p.crop_vy_ratio),
                           driving=CropRule(p.driving_crop_scale, 0.0, p.driving_crop_vy_ratio, rotate=False),
                           crop_driving=p.crop_driving, mesh_box_ratio=p.mesh_box_ratio,
                           mesh_center_shift=p.mesh_center_shift)
        return LivePortraitAnimator(p.liveportrait_dir, device, batch_size=p.batch_size, driving=driving, crop=crop)
    raise ValueError(f"unknown animate.backend {params.backend!r} (mesh | liveportrait)")
