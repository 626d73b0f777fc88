"""Parameters of the `shard` stage: the released WebDataset shards (design card: "WebDataset
shards, which the SDXL fine-tuning and evaluation stages consume")."""
from __future__ import annotations

import dataclasses

from pipeline.config.keys import runtime


@dataclasses.dataclass(frozen=True)
class ShardParams:
    """Inputs are the out_dirs of the upstream stages; splits are a seeded hash of the
    participant id (docs/DATA.md, "Released WebDataset shards")."""

    ingest_dir: str = "data/ingest"
    animate_dir: str = "data/animate"
    caption_dir: str = "data/caption"
    segment_dir: str = "data/segment"
    relight_dir: str = "data/relight"
    out_dir: str = runtime("data/shards")
    target_shard_bytes: int = 500_000_000
    max_sets_per_shard: int = 0
    split_seed: int = 0
    test_id_fraction: float = 0.05
    test_ood_fraction: float = 0.05
    ood_min_videos: int = 2
    hold_out_min_identities: int = 2

    def validate(self) -> None:
        if self.target_shard_bytes < 1 or self.max_sets_per_shard < 0:
            raise ValueError("shard.target_shard_bytes must be >= 1 and shard.max_sets_per_shard >= 0 (0 = no cap)")
        if not (0.0 <= self.test_id_fraction and 0.0 <= self.test_ood_fraction
                and self.test_id_fraction + self.test_ood_fraction < 1.0):
            raise ValueError("shard.test_id_fraction and test_ood_fraction must be >= 0 and sum to less than 1")
        if self.hold_out_min_identities < 0:
            raise ValueError("shard.hold_out_min_identities must be >= 0 (0 = always split by the fractions)")
        if self.ood_min_videos < 2:
            raise ValueError("shard.ood_min_videos must be >= 2 (OOD pairs join sets of different videos)")
