"""`evaluate` section: test sets, metrics backends and baselines (paper 4.2, A.1, A.2)."""
from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from pipeline.config.keys import runtime

METHOD_NAMES = ("source", "paste", "poisson", "classical", "ipadapter", "liveportrait", "piq")


@dataclasses.dataclass(frozen=True)
class EvaluateParams:
    id_shards: tuple[str, ...] = ("data/shards/test_id", "data/shards/test_ood")
    ood_shards: tuple[str, ...] = ("data/shards/test_ood",)
    user_triplets: tuple[str, ...] = ()
    testset_dir: str = runtime("data/eval")
    out_dir: str = runtime("reports/eval")
    num_pairs: int = 5000
    resolution: Optional[int] = None  # scoring size; null = the model's (test sets are made at the model's)
    seed: int = 0
    batch_size: int = runtime(8)
    device: str | None = runtime(None)
    methods: tuple[str, ...] = METHOD_NAMES
    align_landmarks: Literal["five", "mesh"] = "mesh"
    identity_encoder: Literal["auto", "arcface", "dlib"] = "auto"
    identity_weights: str | None = None
    inception_weights: str | None = None
    lpips_alexnet_weights: str | None = None
    motion_backend: Literal["auto", "mesh", "3dmm"] = "auto"
    motion_3dmm_dir: str | None = None
    motion_pose: Literal["angles", "angles_translation"] = "angles"
    model_dir: str = "models/piq"
    num_inference_steps: int = 50
    guidance_scale: float = 1.5
    ipadapter_dir: str | None = None
    ipadapter_sdxl_dir: str | None = None
    ipadapter_scale_source: float = 0.5
    ipadapter_scale_driving: float = 0.6
    ipadapter_guidance: float = 3.0
    ipadapter_steps: int = 30
    ipadapter_strength: float = 0.9
    ipadapter_negative_noise: float = 0.5
    ipadapter_resolution: int = 1024
    liveportrait_dir: str | None = None  # null: animate.liveportrait_dir
    grid_pairs: int = 8

    def validate(self) -> None:
        unknown = [m for m in self.methods if m not in METHOD_NAMES]
        if unknown:
            raise ValueError(f"evaluate.methods: unknown {unknown}; known: {list(METHOD_NAMES)}")
        if self.num_pairs < 1 or self.batch_size < 1 or (self.resolution is not None and self.resolution < 32) \
                or self.grid_pairs < 0:
            raise ValueError("evaluate.num_pairs, batch_size >= 1, resolution >= 32 (or null), grid_pairs >= 0")
        if not 0 < self.ipadapter_strength <= 1:
            raise ValueError("evaluate.ipadapter_strength must be in (0, 1]")
