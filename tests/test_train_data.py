"""Training triplets: pairs within sets, the driving image, caption dropout, determinism, resume, splits."""
from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import numpy as np
import torch

from pipeline.config.data import DataParams
from pipeline.labels import INNER_FACE, LABEL_IDS
from pipeline.release.shards import decode_sample, finished_shards, iter_raw_samples
from train.data import PairStream, make_train_loader
from pipeline.faces.driving_image import driving_image

P = DataParams(resolution=64, pairs_per_set=4)


def first_sample(shards: Path):
    key, raw = next(iter_raw_samples(finished_shards(shards)[0]))
    return decode_sample(key, raw)


def take(stream: PairStream, n: int) -> list[dict]:
    return list(itertools.islice(iter(stream), n))


def test_pairs_stay_within_a_set_and_differ(tiny_shards: Path) -> None:
    for item in take(PairStream(P, finished_shards(tiny_shards), seed=1), 36):
        assert item["source_index"] != item["target_index"]
        assert item["source"].shape == (3, 64, 64) and item["source"].min() >= -1 and item["source"].max() <= 1
        assert item["set_id"].startswith("v")


def test_driving_is_the_eroded_inner_face_only(tiny_shards: Path) -> None:
    sample = first_sample(tiny_shards)
    target, labels = sample.images["i01"], sample.labels["i01"]
    plain = dataclasses.replace(P, augment=False, relight=False, hair_prob=0.0, neck_prob=0.0)
    for seed in range(5):
        driving, variant = driving_image(target, sample.relit["i01"], labels, plain, np.random.default_rng(seed))
        inner = np.isin(labels, [LABEL_IDS[n] for n in INNER_FACE])
        assert variant == 0
        assert driving[~inner].max() == 0, "nothing outside the inner face"
        kept = driving.any(axis=2)
        assert kept.sum() <= inner.sum() and np.array_equal(driving[kept], target[kept])
    whole = dataclasses.replace(P, inner_face=False)
    driving, _ = driving_image(target, sample.relit["i01"], labels, whole, np.random.default_rng(0))
    assert np.array_equal(driving, target)


def test_relight_picks_lighting_variants(tiny_shards: Path) -> None:
    sample = first_sample(tiny_shards)
    args = (sample.images["i01"], sample.relit["i01"], sample.labels["i01"])
    on = {driving_image(*args, dataclasses.replace(P, augment=False), np.random.default_rng(s))[1] for s in range(40)}
    off = {driving_image(*args, dataclasses.replace(P, relight=False), np.random.default_rng(s))[1] for s in range(40)}
    assert on == {0, 1, 2} and off == {0}


def test_caption_dropout_rate(tiny_shards: Path) -> None:
    items = take(PairStream(dataclasses.replace(P, augment=False), finished_shards(tiny_shards), seed=3), 1200)
    dropped = sum(item["caption"] == "" for item in items) / len(items)
    assert abs(dropped - 0.1) < 3 * (0.1 * 0.9 / len(items)) ** 0.5 + 1e-9


def test_same_seed_same_batches_and_exact_resume(tiny_shards: Path) -> None:
    loader_a, _ = make_train_loader(P, tiny_shards, 4, seed=5)
    loader_b, _ = make_train_loader(P, tiny_shards, 4, seed=5)
    straight = list(itertools.islice(loader_a, 9))  # crosses an epoch boundary (3 sets x 4 pairs)
    again = list(itertools.islice(loader_b, 9))
    for a, b in zip(straight, again):
        assert torch.equal(a["driving"], b["driving"]) and a["caption"] == b["caption"]
    loader_c, stream_c = make_train_loader(P, tiny_shards, 4, seed=5)
    it = iter(loader_c)
    for _ in range(4):
        next(it)
    state = stream_c.state_dict()
    loader_d, stream_d = make_train_loader(P, tiny_shards, 4, seed=5)
    stream_d.load_state_dict(state)
    resumed = list(itertools.islice(loader_d, 5))
    for a, b in zip(straight[4:], resumed):
        assert a["set_id"] == b["set_id"] and torch.equal(a["driving"], b["driving"]) and torch.equal(a["target"], b["target"])


def test_ranks_and_workers_partition_an_epoch(tiny_shards: Path) -> None:
    shards = finished_shards(tiny_shards)
    stream = PairStream(P, shards, seed=0)
    everything = [key for _, key in stream.epoch_sets(0, 0, 1)]
    for parts in (2, 3, 4):
        seen = [key for part in range(parts) for _, key in stream.epoch_sets(0, part, parts)]
        assert sorted(seen) == sorted(everything), f"{parts} parts must cover the epoch once"
    # through real DataLoader workers: 2 ranks x 1 worker, then 1 rank x 2 workers; 3 sets each time
    for ranks, workers in ((2, 1), (1, 2)):
        sets = []
        for rank in range(ranks):
            loader, _ = make_train_loader(dataclasses.replace(P, pairs_per_set=1), shards, 1, seed=0, rank=rank,
                                          world_size=ranks, num_workers=workers if workers > 1 else 0)
            per_rank = 2 if rank == 0 else 1  # shard split: rank 0 holds two of the three shards
            sets += [b["set_id"][0] for b in itertools.islice(loader, per_rank if ranks == 2 else 3)]
        assert sorted(sets) == sorted(everything), (ranks, workers, sets)
