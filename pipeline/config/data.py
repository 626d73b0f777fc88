"""Parameters of the training pairs and the driving-image augmentation (paper 3.1, 4.1, A.1)."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DataParams:
    """How (source, driving, target) triplets are drawn from the release shards.

    Ranges are (low, high) pairs; probabilities are per sample. Erosion is given at the
    paper's 1024 px scale and scaled to the stored image size.
    """

    shards: str = "data/shards/train"
    resolution: int = 576
    pairs_per_set: int = 4
    shuffle_sets: int = 8
    prefer_dissimilar: bool = True
    caption_dropout: float = 0.1
    inner_face: bool = True
    relight: bool = True
    augment: bool = True
    hair_prob: float = 0.5
    neck_prob: float = 0.5
    erosion_px: tuple[int, int] = (0, 30)
    jitter_prob: float = 0.8
    brightness: float = 0.3
    contrast: float = 0.3
    saturation: float = 0.3
    hue: float = 0.05
    grayscale_prob: float = 0.1
    flip_prob: float = 0.5
    affine_prob: float = 0.8
    rotate_deg: float = 15.0
    translate: float = 0.1
    scale: tuple[float, float] = (0.85, 1.15)
    # Mirror source, target (and so the driving face cut from it) together. The paper names no
    # augmentation of source/target: 0 keeps its method. `piq latents` caches both mirrors.
    pair_flip_prob: float = 0.0

    def validate(self) -> None:
        for name in ("caption_dropout", "hair_prob", "neck_prob", "jitter_prob", "grayscale_prob", "flip_prob", "affine_prob",
                     "pair_flip_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"data.{name} must be a probability in [0, 1]")
        if self.erosion_px[0] < 0 or self.erosion_px[1] < self.erosion_px[0]:
            raise ValueError("data.erosion_px must be a range 0 <= low <= high")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError("data.scale must be a range 0 < low <= high")
        if self.resolution < 8 or self.pairs_per_set < 1 or self.shuffle_sets < 1:
            raise ValueError("data.resolution must be >= 8, data.pairs_per_set and data.shuffle_sets >= 1")
