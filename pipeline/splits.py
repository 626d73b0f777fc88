"""Identity-disjoint splits: train / test_id / test_ood as a seeded hash of the participant id.

Each participant gets u = blake2b(f"{seed}/split/{participant_id}") mapped to [0, 1): u below
`test_ood_fraction` -> test_ood, below `test_ood_fraction + test_id_fraction` -> test_id, else
train. The value depends on the participant alone, so adding identities never moves an old
one. An OOD pair joins two sets of one person from different clips (paper 5: "the same person
under different conditions"), so a participant hashed to test_ood with sets from fewer than
`ood_min_videos` clips is held in test_id until it has them: it moves between the two test
splits at most, never into or out of train.
"""
from __future__ import annotations

import hashlib

SPLITS = ("train", "test_id", "test_ood")


def split_value(participant_id: str, seed: int) -> float:
    digest = hashlib.blake2b(f"{seed}/split/{participant_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def assign_split(participant_id: str, n_videos: int, seed: int, test_id_fraction: float, test_ood_fraction: float,
                 ood_min_videos: int = 2) -> str:
    u = split_value(participant_id, seed)
    if u < test_ood_fraction:
        return "test_ood" if n_videos >= ood_min_videos else "test_id"
    if u < test_ood_fraction + test_id_fraction:
        return "test_id"
    return "train"
