"""Training triplets streamed from the release shards (paper 3.2: pairs within a set).

Shards are read through `pipeline.release.reader.release_dataset` (webdataset), so `data.shards` may be
a local split folder, an index, a brace pattern of paths or http(s) URLs, or `pipe:` commands.

`PairStream` walks the shards epoch after epoch. In epoch e the shards are permuted by a
generator seeded with (seed, e) and split between the parts of the run (rank x DataLoader
worker) with no overlap: by shard when there are at least as many shards as parts, by set
otherwise. A part's sets are taken in windows of `data.shuffle_sets`; each set gives
`pairs_per_set` (source, target) pairs, and the pairs of a window come out in a seeded order,
so a batch mixes identities. Item i of (epoch, part) draws its randomness from a generator
seeded with (seed, epoch, part, i) alone, and decodes only the images it uses (source, target,
the target's label map and at most one relit variant): a set stays raw bytes until then.

Exact resume: `state_dict()` counts the items the main process has received; with DataLoader
workers the batches arrive from worker 0, 1, ..., W-1 in turn, so `load_state_dict` tells each
new worker which part it plays and how many of that part's items were consumed, and the
resumed stream continues with the very next batch. This holds for the same batch size, number
of workers and world size; if one of them changed, the stream restarts at the beginning of the
epoch reached (with a warning). Skipping costs no decoding and whole shards before the resume
point are not opened.

Batches (the trainer's contract): `source`, `driving`, `target`: float (B, 3, R, R) in [-1, 1];
`caption`: list[str] ("" when dropped); `set_id`, `source_index`, `target_index`: list[str].
With a latent cache (`train.latents_dir`, made by `piq latents`) `source_moments` and
`target_moments` hold the cached VAE posterior parameters (B, 8, R/8, R/8) and `source` /
`target` are None; where the cache lacks an image, that row's moments are None and its pixels
are given instead (lists then, see `collate_triplets`). The driving image is always pixels: it
is augmented per item.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from pipeline.device import is_cuda
from pipeline.config.data import DataParams
from pipeline.release.reader import ShardRef, release_dataset, resolve_shards
from pipeline.release.shards import SetSample
from pipeline.faces.crop import resize_square
from pipeline.faces.driving_image import driving_image
from train.latents import LatentCache


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
    """uint8 RGB -> (3, R, R) in [-1, 1], resized by the project's one rule (`resize_square`)."""
    rgb = resize_square(rgb, resolution)
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 127.5 - 1.0


class _Mirrored(Sequence):
    """Relit variants mirrored on access (a pair flip), still decoded one at a time."""

    def __init__(self, variants: Sequence[np.ndarray]) -> None:
        self._variants = variants

    def __getitem__(self, i):  # type: ignore[override]
        return np.ascontiguousarray(self._variants[i][:, ::-1])

    def __len__(self) -> int:
        return len(self._variants)


def _mirror(rgb: np.ndarray, flip: bool) -> np.ndarray:
    return np.ascontiguousarray(rgb[:, ::-1]) if flip else rgb


def make_triplet(sample: SetSample, p: DataParams, rng: np.random.Generator,
                 latents: Optional[LatentCache] = None) -> dict[str, Any]:
    """One training triplet. With a `LazySetSample` only the images used are decoded. With a
    latent cache, source and target come as cached VAE moments (`source_moments`,
    `target_moments`) and are not decoded; an image the cache lacks comes as pixels with its
    moments None, and the model encodes it (and counts it)."""
    source, target = choose_pair(sample, p, rng)
    flip = p.pair_flip_prob > 0 and bool(rng.random() < p.pair_flip_prob)  # drawn only when enabled
    variants = sample.relit.get(target, [])
    driving, _ = driving_image(_mirror(sample.images[target], flip), _Mirrored(variants) if flip else variants,
                               _mirror(sample.labels[target], flip), p, rng)
    caption = "" if rng.random() < p.caption_dropout else sample.caption(target)
    item: dict[str, Any] = {"driving": to_tensor(driving, p.resolution), "caption": caption, "set_id": sample.key,
                            "source_index": source, "target_index": target}
    for role, index in (("source", source), ("target", target)):
        moments = None if latents is None else latents.get(sample.key, index, flip)
        item[role] = None if moments is not None else to_tensor(_mirror(sample.images[index], flip), p.resolution)
        if latents is not None:
            item[f"{role}_moments"] = moments
    return item


def collate_triplets(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Batches of triplets where an entry may be None (source/target given as cached moments,
    or moments missing from the cache): all-tensor fields are stacked, mixed ones stay lists."""
    out: dict[str, Any] = {}
    for key in items[0]:
        values = [item[key] for item in items]
        if all(isinstance(v, torch.Tensor) for v in values):
            out[key] = torch.stack(values)
        elif all(v is None for v in values):
            out[key] = None
        else:
            out[key] = values
    return out


class PairStream(IterableDataset):
    """An endless, reproducible stream of training triplets for one rank."""

    def __init__(self, params: DataParams, shards: Sequence[ShardRef | Path | str], seed: int, rank: int = 0,
                 world_size: int = 1, latents: Optional[LatentCache] = None) -> None:
        if not shards:
            raise FileNotFoundError("no finished shards to train on (run `piq shard` or set data.shards)")
        refs = [s for s in shards if isinstance(s, ShardRef)]
        self.shards = refs if len(refs) == len(shards) else resolve_shards([str(s) for s in shards])
        self.params, self.seed, self.latents = params, seed, latents
        self.rank, self.world_size = rank, world_size
        self.batch_size, self.workers = 1, 0  # set by make_train_loader
        self.consumed = 0  # items the main process has received, since the start of training
        self._resume: dict[str, int] = {"consumed": 0, "batch_size": 1, "workers": 0, "world_size": world_size}

    # -- resumption ---------------------------------------------------------------------------
    def state_dict(self) -> dict[str, int]:
        return {"consumed": self.consumed, "batch_size": self.batch_size, "workers": self.workers,
                "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.consumed = int(state["consumed"])
        self._resume = {"batch_size": self.batch_size, "workers": self.workers, "world_size": self.world_size,
                        **{k: int(v) for k, v in state.items()}}
        r = self._resume
        if self.consumed and (r["batch_size"], r["workers"], r["world_size"]) != (self.batch_size, self.workers, self.world_size):
            old_workers = max(r["workers"], 1)
            epoch, _ = self._locate(self.rank * old_workers, r["world_size"] * old_workers, self.consumed // old_workers)
            r["restart_epoch"] = epoch
            warnings.warn(f"data stream saved with batch size {r['batch_size']}, {r['workers']} workers, world size "
                          f"{r['world_size']}, resumed with {self.batch_size}, {self.workers}, {self.world_size}: "
                          f"restarting epoch {epoch} instead of resuming exactly", stacklevel=2)

    def _start(self, worker: int, workers: int) -> tuple[int, int]:
        """(part role of this worker, items of that part already consumed)."""
        r = self._resume
        parts = self.world_size * max(workers, 1)
        if "restart_epoch" in r:  # another batch size / workers / world size: the epoch's first item
            part = self.rank * max(workers, 1) + worker
            return worker, sum(self._epoch_items(e, part, parts) for e in range(r["restart_epoch"]))
        if workers == 0:
            return 0, r["consumed"]
        batches = r["consumed"] // r["batch_size"]
        role = (worker + batches) % workers  # the resumed loader's first batch comes from this role
        taken = max(0, (batches - role + workers - 1) // workers)
        return role, taken * r["batch_size"]

    # -- epochs --------------------------------------------------------------------------------
    def epoch_sets(self, epoch: int, part: int, parts: int) -> list[tuple[ShardRef, str]]:
        """(shard, key) of this part's sets in epoch order: split by shard when there are
        enough shards, by set otherwise, so every part gets work and none overlaps."""
        rng = np.random.default_rng([self.seed, epoch])
        shards = [self.shards[i] for i in rng.permutation(len(self.shards))]
        if len(shards) >= parts:
            return [(s, k) for s in shards[part::parts] for k in s.keys]
        return [(s, k) for s in shards for k in s.keys][part::parts]

    def _epoch_items(self, epoch: int, part: int, parts: int) -> int:
        return len(self.epoch_sets(epoch, part, parts)) * self.params.pairs_per_set

    def _locate(self, part: int, parts: int, items: int) -> tuple[int, int]:
        """(epoch, item within it) of the part's `items`-th item."""
        epoch = 0
        while True:
            n = self._epoch_items(epoch, part, parts)
            if n == 0:
                raise ValueError(f"part {part} of {parts} (rank x DataLoader worker) has no set: the shards hold "
                                 f"fewer sets than ranks x workers; use fewer workers")
            if items < n:
                return epoch, items
            items, epoch = items - n, epoch + 1

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (0, 0)
        role, start = self._start(worker, workers)
        parts = self.world_size * max(workers, 1)
        part = self.rank * max(workers, 1) + role
        epoch, skip = self._locate(part, parts, start)
        for item in self._items(epoch, skip, part, parts):
            if info is None:
                self.consumed += 1
            yield item

    def _items(self, epoch: int, skip: int, part: int, parts: int) -> Iterator[dict[str, Any]]:
        per, window = self.params.pairs_per_set, self.params.shuffle_sets
        while True:
            sets = self.epoch_sets(epoch, part, parts)
            first = skip // (window * per)
            samples = self._stream(sets[first * window:])
            i = first * window * per
            for w in range(first, (len(sets) + window - 1) // window):
                chunk = [next(samples) for _ in sets[w * window:(w + 1) * window]]
                slots = [s for s in range(len(chunk)) for _ in range(per)]
                for o in np.random.default_rng([self.seed, epoch, part, w]).permutation(len(slots)):
                    if i >= skip:
                        yield make_triplet(chunk[slots[o]], self.params, np.random.default_rng([self.seed, epoch, part, i]),
                                           self.latents)
                    i += 1
            epoch, skip = epoch + 1, 0

    def _stream(self, sets: list[tuple[ShardRef, str]]) -> Iterator[SetSample]:
        """The given sets, in order, read through webdataset (raw bytes; decoded lazily)."""
        urls: list[str] = []
        for ref, _ in sets:
            if not urls or urls[-1] != ref.url:
                urls.append(ref.url)
        wanted = iter(sets)
        expect = next(wanted, None)
        for sample in release_dataset(urls):
            if expect is None:
                return
            if sample.key != expect[1]:
                continue  # another part's set in a shard split by set, or one before the resume point
            yield sample
            expect = next(wanted, None)
        if expect is not None:
            raise FileNotFoundError(f"set {expect[1]} listed in the index of {expect[0].url} was not found in it: "
                                    f"the shard and its index disagree (run `piq shards verify`)")


class ResumableLoader(DataLoader):
    """A DataLoader that tells its `PairStream` how many items the main process received, which
    is what exact resumption with worker processes needs."""

    def __iter__(self) -> Iterator[Any]:
        stream: PairStream = self.dataset  # type: ignore[assignment]
        for batch in super().__iter__():
            if self.num_workers > 0:
                stream.consumed += len(batch["set_id"])
            yield batch


def default_workers() -> int:
    """DataLoader workers when none are asked for: on a GPU machine, decoding runs beside the
    training step (up to 8 workers, one core left for the main process); on a CPU, in-process."""
    if not is_cuda():
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(0, min(8, cores // max(torch.cuda.device_count(), 1) - 1))


def _worker_init(_: int) -> None:
    cv2.setNumThreads(1)  # one decoding thread per worker; the workers are the parallelism
    torch.set_num_threads(1)


def make_train_loader(params: DataParams, shards: str | Path | Sequence[Path | str], batch_size: int, seed: int,
                      rank: int = 0, world_size: int = 1, num_workers: int | None = None, *,
                      index: str | None = None, latents: Optional[LatentCache] = None) -> tuple[DataLoader, PairStream]:
    """(loader of batches, its stream). `shards`: a split folder, an index, a URL or brace
    pattern, or a list of tar paths/URLs (`index=` for pipe: URLs). `num_workers=None` picks
    `default_workers()`; workers are capped so that every rank x worker gets at least one set.
    `latents`: the checked latent cache (`train.latents.open_cache`) source and target are read from."""
    refs = resolve_shards(shards, index)
    stream = PairStream(params, refs, seed, rank, world_size, latents)
    workers = default_workers() if num_workers is None else num_workers
    n_sets = sum(len(r.keys) for r in refs)
    if workers > 1 and workers * world_size > n_sets:  # every part (rank x worker) needs a set
        workers = max(1, n_sets // world_size)
    stream.batch_size, stream.workers = batch_size, workers
    stream.load_state_dict(stream.state_dict())
    loader = ResumableLoader(stream, batch_size=batch_size, num_workers=workers, persistent_workers=False,
                             pin_memory=is_cuda(), worker_init_fn=_worker_init if workers else None,
                             prefetch_factor=4 if workers else None,
                             collate_fn=collate_triplets if latents is not None else None)
    return loader, stream
