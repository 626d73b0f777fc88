"""Parameters of the `segment` stage (paper 4.1: SegFormer face parsing, CelebAMask-HQ labels)."""
from __future__ import annotations

import dataclasses

from pipeline.config.keys import runtime


@dataclasses.dataclass(frozen=True)
class SegmentParams:
    """Which face parser runs; see params.yaml (paper values beside each key) and docs/DATA.md."""

    input_dir: str = "data/animate"
    out_dir: str = runtime("data/segment")
    backend: str = "mesh"                   # mesh (offline) | segformer (paper)
    # --- mesh backend ---------------------------------------------------------------------------
    hair_threshold: float = 3.0             # Mahalanobis distance (Lab) of a pixel to the hair colour seed
    neck_threshold: float = 5.0             # Mahalanobis distance (Lab) to the cheeks: skin (neck, ears) below it
    person_threshold: float = 0.5           # selfie-segmentation probability of "person"
    # --- segformer backend ----------------------------------------------------------------------
    segformer_dir: str | None = None        # folder with config.json, model weights, preprocessor_config.json
    batch_size: int = runtime(32)           # images per forward (model backends)
    compile: bool = runtime(False)          # torch.compile the SegFormer forward on CUDA (one compile per batch shape)
    device: str = runtime("auto")           # auto | cuda | cpu
    dtype: str = "bf16"                     # bf16 | fp16 | fp32 (fp32 on a CPU)
    num_gpus: float = runtime(1.0)          # GPUs per Ray actor (model backends)
    workers: int | None = runtime(None)     # Ray actors; null = every core (mesh) or one per GPU share
    preview: bool = runtime(True)           # out_dir/preview.jpg: one face's label maps over its images

    def validate(self) -> None:
        if self.backend not in ("mesh", "segformer"):
            raise ValueError("segment.backend must be mesh or segformer")
        if self.backend == "segformer" and not self.segformer_dir:
            raise ValueError("segment.segformer_dir must name the model folder when backend is segformer")
        if self.batch_size < 1:
            raise ValueError("segment.batch_size must be >= 1")
        if min(self.hair_threshold, self.neck_threshold) <= 0 or not 0 < self.person_threshold < 1:
            raise ValueError("segment thresholds must be > 0 (person_threshold within (0, 1))")
        if self.device not in ("auto", "cuda", "cpu") or self.dtype not in ("bf16", "fp16", "fp32"):
            raise ValueError("segment.device must be auto/cuda/cpu and segment.dtype bf16/fp16/fp32")
        if self.num_gpus < 0 or (self.workers is not None and self.workers < 0):
            raise ValueError("segment.num_gpus and segment.workers must be >= 0")
