"""Training triplets streamed from the release shards (paper 3.2: pairs within a set).

`PairStream` walks the finished shards epoch after epoch. In epoch e, the sets are split
between ranks (and DataLoader workers) with no overlap, visited in an order drawn from
(seed, e), and each set yields `pairs_per_set` (source, target) pairs, source != target. The
randomness of sample i comes from a generator seeded with (seed, epoch, part, i) alone, so the
stream is reproducible and `load_state_dict({"epoch", "consumed"})` resumes it exactly (with
`num_workers=0`; with workers, resumption restarts the current epoch).

Batches (the trainer's contract): `source`, `driving`, `target`: float (B, 3, R, R) in [-1, 1];
`caption`: list[str] ("" when dropped); `set_id`, `source_index`, `target_index`: list[str].
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipeline.config.data import DataParams
from pipeline.shards import SetSample, decode_sample, finished_shards, iter_raw_samples, read_keys
from train.driving import driving_image


def choose_pair(sample: SetSample, p: DataParams, rng: np.random.Generator) -> tuple[str, str]:
    """A (source, target) of the set; with `prefer_dissimilar`, a target made from another
    driving video than the source when the set has one."""
    indices = sample.indices
    if len(indices) < 2:
        raise ValueError(f"set {sample.key} has {len(indices)} image(s); a pair needs two")
    source = indices[int(rng.integers(len(indices)))]
    targets = [i for i in indices if i != source]
    if p.prefer_dissimilar:
        other = [i for i in targets if sample.driving_video(i) != sample.driving_video(source)]
        targets = other or targets
    return source, targets[int(rng.integers(len(targets)))]


def to_tensor(rgb: np.ndarray, resolution: int) -> torch.Tensor:
    if rgb.shape[0] != resolution or rgb.shape[1] != resolution:
        interp = cv2.INTER_AREA if rgb.shape[0] > resolution else cv2.INTER_CUBIC
        rgb = cv2.resize(rgb, (resolution, resolution), interpolation=interp)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 127.5 - 1.0


def make_triplet(sample: SetSample, p: DataParams, rng: np.random.Generator) -> dict[str, Any]:
    source, target = choose_pair(sample, p, rng)
    driving, _ = driving_image(sample.images[target], sample.relit.get(target, []), sample.labels[target], p, rng)
    caption = "" if rng.random() < p.caption_dropout else sample.caption(target)
    return {
        "source": to_tensor(sample.images[source], p.resolution),
        "driving": to_tensor(driving, p.resolution),
        "target": to_tensor(sample.images[target], p.resolution),
        "caption": caption, "set_id": sample.key, "source_index": source, "target_index": target,
    }


class PairStream(IterableDataset):
    """An endless, reproducible stream of training triplets for one rank."""

    def __init__(self, params: DataParams, shards: Sequence[Path], seed: int, rank: int = 0, world_size: int = 1) -> None:
        if not shards:
            raise FileNotFoundError("no finished shards to train on (run `piq dev-shards` or set data.shards)")
        self.params, self.shards, self.seed = params, list(shards), seed
        self.rank, self.world_size = rank, world_size
        self.epoch, self.consumed = 0, 0
        self._start = (0, 0)

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "consumed": self.consumed}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.consumed = int(state["epoch"]), int(state["consumed"])
        self._start = (self.epoch, self.consumed)

    def epoch_sets(self, epoch: int, part: int, parts: int) -> list[tuple[Path, str]]:
        """(shard, key) of this part's sets in epoch order: split by shard when there are
        enough shards, by set otherwise, so every part gets work and none overlaps."""
        rng = np.random.default_rng([self.seed, epoch])
        shards = [self.shards[i] for i in rng.permutation(len(self.shards))]
        sets = [(s, k) for s in shards for k in read_keys(s)]
        if len(shards) >= parts:
            mine = set(shards[part::parts])
            return [(s, k) for s, k in sets if s in mine]
        return sets[part::parts]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        parts, part = self.world_size * workers, self.rank * workers + worker
        epoch, skip = self._start if workers == 1 else (self._start[0], 0)
        while True:
            self.epoch = epoch
            i = 0
            if not self.epoch_sets(epoch, part, parts):
                raise ValueError(f"part {part} of {parts} (rank x DataLoader worker) has no set: the shards hold "
                                 f"fewer sets than ranks x workers; use fewer workers")
            for shard, keys in _group_by_shard(self.epoch_sets(epoch, part, parts)):
                wanted = set(keys)
                decoded = {k: decode_sample(k, f) for k, f in iter_raw_samples(shard) if k in wanted and not self._skipped(i, keys, k, skip)}
                for key in keys:
                    for _ in range(self.params.pairs_per_set):
                        if i >= skip:
                            rng = np.random.default_rng([self.seed, epoch, part, i])
                            self.consumed = i + 1
                            yield make_triplet(decoded[key], self.params, rng)
                        i += 1
            epoch, skip = epoch + 1, 0
            self.consumed = 0

    def _skipped(self, i: int, keys: list[str], key: str, skip: int) -> bool:
        """True when every pair of `key` in this shard lies before the resume point."""
        last = i + (keys.index(key) + 1) * self.params.pairs_per_set
        return last <= skip


def _group_by_shard(sets: list[tuple[Path, str]]) -> list[tuple[Path, list[str]]]:
    groups: list[tuple[Path, list[str]]] = []
    for shard, key in sets:
        if groups and groups[-1][0] == shard:
            groups[-1][1].append(key)
        else:
            groups.append((shard, [key]))
    return groups


def make_train_loader(params: DataParams, shards: str | Path | Sequence[Path], batch_size: int, seed: int,
                      rank: int = 0, world_size: int = 1, num_workers: int = 0) -> tuple[DataLoader, PairStream]:
    """(loader of batches, its stream). `shards` is a directory or a list of tar paths."""
    paths = finished_shards(shards) if isinstance(shards, (str, Path)) else list(shards)
    stream = PairStream(params, paths, seed, rank, world_size)
    loader = DataLoader(stream, batch_size=batch_size, num_workers=num_workers, persistent_workers=False)
    return loader, stream
