"""Parameters of `piq dev-shards`: release-schema shards from the ingest faces, with classical
stand-ins for the animate, segment, relight and caption stages of later milestones."""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class DevShardsParams:
    ingest_dir: str = "data/ingest"
    out_dir: str = "data/dev_sets"
    shard_dir: str = "data/dev_shards"
    split: str = "train"
    n_expressive: int = 4
    n_relit: int = 5
    image_size: int = 256
    sets_per_shard: int = 4
    max_rotate_deg: float = 12.0
    max_shift: float = 0.05
    jpeg_quality: int = 92

    def validate(self) -> None:
        if not 1 <= self.n_expressive <= 99:
            raise ValueError("dev_shards.n_expressive must be within [1, 99]")
        if not 0 <= self.n_relit <= 9:
            raise ValueError("dev_shards.n_relit must be within [0, 9]")
        if self.image_size < 16 or self.sets_per_shard < 1:
            raise ValueError("dev_shards.image_size must be >= 16 and sets_per_shard >= 1")
        if "-" in self.split or "." in self.split:
            raise ValueError("dev_shards.split must not contain '-' or '.'")
