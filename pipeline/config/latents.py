"""Parameters of `piq latents`: the precomputed VAE latents of the training images (issue 18).

The VAE is the training backbone's (train.backbone / train.pretrained_dir), the resolution is
data.resolution and the shards are data.shards: the cache must match what `piq train` reads,
and `train/latents.py` refuses one that does not.
"""
from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class LatentsParams:
    out_dir: str = "data/latents/train"
    batch_size: int = 16  # images per VAE call (each is encoded as it is and mirrored: 2 x this per call)
    device: Literal["auto", "cuda", "cpu"] = "auto"
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"  # of the VAE on a GPU (fp32 on a CPU); training's frozen VAE runs bf16

    def validate(self) -> None:
        if self.batch_size < 1:
            raise ValueError("latents.batch_size must be >= 1")
