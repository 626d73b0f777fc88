"""Parameters of the driving library (`drivers`) and the `animate` stage (paper 3.2, B.2)."""
from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from pipeline.config.keys import runtime


@dataclasses.dataclass(frozen=True)
class DriversParams:
    """The driving videos: rendered motion programs (pipeline/animators/programs.py) on a
    public-domain template face, plus an optional folder of real clips, each checked."""

    out_dir: str = runtime("data/drivers")
    clips_dir: Optional[str] = None        # user clips (.mp4/.avi/.mov/.mkv); null = programs only
    frames: int = 12                       # frames per rendered program
    size: int = 256                        # rendered clip size (px)
    fps: int = 12
    subtle_smile_weight: float = 3.0       # paper 3.2: subtle smiles oversampled; weight of those programs
    min_frames: int = 4                    # shorter user clips: "too_short"
    check_frames: int = 6                  # user-clip frames checked for a face ("face_lost", "several_faces")

    def validate(self) -> None:
        if self.frames < 2 or self.min_frames < 2 or self.check_frames < 2:
            raise ValueError("drivers.frames, min_frames and check_frames must be >= 2")
        if self.subtle_smile_weight <= 0:
            raise ValueError("drivers.subtle_smile_weight must be > 0")


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
