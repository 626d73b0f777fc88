"""Parameters of the driving library (`drivers`) and the `animate` stage (paper 3.2, B.2)."""
from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from pipeline.config.keys import runtime


@dataclasses.dataclass(frozen=True)
class DriversParams:
    """The driving videos: rendered motion programs (pipeline/backends/animators/programs.py) on a
    public-domain template face, plus an optional folder of real clips, each checked."""

    out_dir: str = runtime("data/drivers")
    clips_dir: Optional[str] = None        # user clips (.mp4/.avi/.mov/.mkv); null = programs only
    frames: int = 12                       # frames per rendered program
    size: int = 256                        # rendered clip size (px)
    fps: int = 12
    subtle_smile_weight: float = 3.0       # paper 3.2: subtle smiles oversampled; weight of those programs
    min_frames: int = 4                    # shorter user clips: "too_short"
    check_frames: int = 6                  # user-clip frames checked for a face ("face_lost", "several_faces")
    max_roll_deg: float = 45.0             # user clips: |head roll| at a checked frame or first->last beyond it: "face_rolled"
    max_yaw_deg: float = 45.0              # user clips: |head turn| likewise: "face_turned"
    programs: tuple[str, ...] = ()         # render only the programs with these labels (ids stay those of the full list); () = all

    def validate(self) -> None:
        if self.frames < 2 or self.min_frames < 2 or self.check_frames < 2:
            raise ValueError("drivers.frames, min_frames and check_frames must be >= 2")
        if self.subtle_smile_weight <= 0:
            raise ValueError("drivers.subtle_smile_weight must be > 0")
        if not (0 < self.max_roll_deg <= 180 and 0 < self.max_yaw_deg <= 180):
            raise ValueError("drivers.max_roll_deg and max_yaw_deg must be within (0, 180]")


@dataclasses.dataclass(frozen=True)
class AnimateParams:
    """Each neutral face animated by `per_face` distinct drivers; the last frame kept."""

    ingest_dir: str = "data/ingest"
    drivers_dir: str = "data/drivers"
    out_dir: str = runtime("data/animate")
    backend: Literal["mesh", "liveportrait"] = "mesh"
    liveportrait_dir: Optional[str] = None  # folder with base_models/*.pth and retargeting_models/*.pth
    device: str = runtime("auto")           # liveportrait: auto | cuda | cpu
    batch_size: int = runtime(8)            # liveportrait: drivers per warp/decode batch
    num_gpus: float = runtime(1.0)          # GPUs per Ray actor for the liveportrait backend
    # --- liveportrait conventions: the official command line's defaults (KwaiVGI/LivePortrait
    # src/config/argument_config.py, crop_config.py, inference_config.py); see docs/STAGES.md ---
    liveportrait_crop: Literal["auto", "landmarks", "mesh"] = "auto"  # auto: liveportrait_dir/landmark.onnx if present
    crop_scale: float = 2.3                 # official scale 2.3
    crop_vx_ratio: float = 0.0              # official vx_ratio 0
    crop_vy_ratio: float = -0.125           # official vy_ratio -0.125 (moves the crop up)
    crop_driving: bool = False              # official flag_crop_driving_video false (non-square clips cropped anyway)
    driving_crop_scale: float = 2.2         # official scale_crop_driving_video 2.2
    driving_crop_vy_ratio: float = -0.1     # official vy_ratio_crop_driving_video -0.1
    mesh_box_ratio: float = 1.15            # ours: mesh box / 203-landmark box (offline crop without landmark.onnx)
    mesh_center_shift: float = 0.05         # ours: the mesh box centre sits this many crop sides higher
    driving_option: Literal["expression-friendly", "pose-friendly"] = "expression-friendly"  # official CLI default
    driving_multiplier: float = 1.0         # official 1.0
    normalize_lip: bool = False             # official CLI flag_normalize_lip false
    lip_normalize_threshold: float = 0.03   # official 0.03
    stitching: bool = True                  # official flag_stitching true
    per_face: int = 20                      # paper: 20 expressive variants per neutral face
    prefer_dissimilar: bool = True          # favour mutually dissimilar drivers within a face
    pool_factor: int = 3                    # prefer_dissimilar: draw per_face x this, keep the most spread out
    jpeg_quality: int = 95
    contact_tile: int = 192                 # contact sheet thumbnail size (px)

    def validate(self) -> None:
        if not 1 <= self.per_face <= 99:
            raise ValueError("animate.per_face must be 1..99 (image indices i01..i99)")
        if self.pool_factor < 1 or self.batch_size < 1:
            raise ValueError("animate.pool_factor and batch_size must be >= 1")
        if min(self.crop_scale, self.driving_crop_scale, self.mesh_box_ratio) <= 0:
            raise ValueError("animate.crop_scale, driving_crop_scale and mesh_box_ratio must be > 0")
        if self.liveportrait_crop not in ("auto", "landmarks", "mesh"):
            raise ValueError("animate.liveportrait_crop must be auto, landmarks or mesh")
        if self.driving_option not in ("expression-friendly", "pose-friendly"):
            raise ValueError("animate.driving_option must be expression-friendly or pose-friendly")
