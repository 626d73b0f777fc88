"""Identity-disjoint splits: train / test_id / test_ood as a seeded hash of the participant id.

Each participant gets u = blake2b(f"{seed}/split/{participant_id}") mapped to [0, 1): u below
`test_ood_fraction` -> test_ood, below `test_ood_fraction + test_id_fraction` -> test_id, else
train. The value depends on the participant alone, so adding identities never moves an old
one. An OOD pair joins two sets of one person from different clips (paper 5: "the same person
under different conditions"), so a participant hashed to test_ood with sets from fewer than
`ood_min_videos` clips is held in test_id until it has them: it moves between the two test
splits at most, never into or out of train.

A release with fewer than `hold_out_min_identities` people holds none out: every identity is in
train (a user with one or two people wants a training set, not a test split of everyone).
`split_all` says, for every split that comes out empty, why: identities and clips counted
against the rule, and the params key that would change it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping, Set

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


def split_all(videos: Mapping[str, Set[str]], seed: int, test_id_fraction: float, test_ood_fraction: float,
              ood_min_videos: int = 2, hold_out_min_identities: int = 0) -> tuple[dict[str, str], dict[str, str]]:
    """({participant: split}, {empty split: why}) for participants with their clips' ids."""
    n_people, n_clips = len(videos), sum(len(v) for v in videos.values())
    counted = f"{n_people} identit{'y' if n_people == 1 else 'ies'} ({n_clips} clip{'' if n_clips == 1 else 's'}) in all"
    if n_people < hold_out_min_identities:
        split_of = {pid: "train" for pid in videos}
        held = (f"{counted}, fewer than shard.hold_out_min_identities={hold_out_min_identities}: every identity is kept "
                f"in train (lower that key to hold some out)")
        return split_of, {s: held for s in SPLITS if s != "train"} if n_people else {s: "no identity to release" for s in SPLITS}
    split_of = {pid: assign_split(pid, len(v), seed, test_id_fraction, test_ood_fraction, ood_min_videos)
                for pid, v in videos.items()}
    rule = (f"shard.split_seed={seed}, test_id_fraction={test_id_fraction}, test_ood_fraction={test_ood_fraction}, "
            f"ood_min_videos={ood_min_videos}")
    why: dict[str, str] = {}
    for split in SPLITS:
        if split in split_of.values():
            continue
        if not n_people:
            why[split] = "no identity to release"
        elif split == "train":
            why[split] = (f"{counted}, every one hashed to a test split by {rule}; set shard.hold_out_min_identities "
                          f"above {n_people} to keep them all in train (or change shard.split_seed)")
        elif split == "test_ood":
            multi = sum(len(v) >= ood_min_videos for v in videos.values())
            why[split] = (f"{counted}, {multi} with clips from >= {ood_min_videos} videos; none hashed below "
                          f"test_ood_fraction with enough clips under {rule}")
        else:
            why[split] = f"{counted}, none hashed to test_id under {rule}"
    return split_of, why
