"""The one reader (pipeline.release.reader, on webdataset.WebDataset): local folders, file:/http:/pipe:
URLs and brace patterns give the same sets and the same training batches; a training pair decodes
only the images it uses; exact resume through DataLoader workers."""
from __future__ import annotations

import dataclasses
import functools
import itertools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.config.data import DataParams
from pipeline.release.reader import iter_sets, resolve_shards
from pipeline.release.shards import LazySetSample, decode_sample, finished_shards, iter_raw_samples
from train.data import make_train_loader

P = DataParams(resolution=32, pairs_per_set=4, shuffle_sets=2)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def http_release(tiny_release: Path):
    """The release served over HTTP by a server this test starts on a free local port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(tiny_release)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _batches(loader, n: int) -> list[dict]:
    return list(itertools.islice(loader, n))


def _same(a: list[dict], b: list[dict]) -> bool:
    return all(x["set_id"] == y["set_id"] and x["caption"] == y["caption"] and torch.equal(x["driving"], y["driving"])
               and torch.equal(x["source"], y["source"]) for x, y in zip(a, b))


def test_sets_read_over_http_equal_the_local_ones(tiny_shards: Path, http_release: str) -> None:
    local = {k: decode_sample(k, f) for shard in finished_shards(tiny_shards) for k, f in iter_raw_samples(shard)}
    remote = list(iter_sets(f"{http_release}/train/train-{{000000..000002}}.tar"))
    assert [s.key for s in remote] == [r.keys[0] for r in resolve_shards(tiny_shards)]
    for sample in remote:
        assert isinstance(sample, LazySetSample)
        want = local[sample.key]
        assert sample.meta == want.meta
        assert all(np.array_equal(sample.images[i], want.images[i]) for i in want.images)
        assert all(np.array_equal(sample.relit[i][1], want.relit[i][1]) for i in want.relit)


def test_training_batches_are_the_same_from_every_kind_of_source(tiny_shards: Path, http_release: str) -> None:
    reference = _batches(make_train_loader(P, tiny_shards, 4, seed=5, num_workers=0)[0], 5)
    paths = [str(p) for p in finished_shards(tiny_shards)]
    sources = [
        ({"shards": f"{http_release}/train/train-{{000000..000002}}.tar"}),
        ({"shards": f"{http_release}/train/index.json"}),
        ({"shards": f"file:{tiny_shards}/train-{{000000..000002}}.tar"}),
        ({"shards": [f"pipe:cat {p}" for p in paths], "index": str(tiny_shards / "index.json")}),
        ({"shards": str(tiny_shards / "index.json")}),
    ]
    for source in sources:
        loader, _ = make_train_loader(P, source["shards"], 4, seed=5, num_workers=0, index=source.get("index"))
        assert _same(_batches(loader, 5), reference), source


def test_a_pair_decodes_only_the_images_it_uses(tiny_shards: Path, monkeypatch) -> None:
    import pipeline.release.shards as shards_module

    calls: list[str] = []
    real = shards_module.decode_image
    monkeypatch.setattr(shards_module, "decode_image", lambda data, what="image": calls.append(what) or real(data, what))
    loader, _ = make_train_loader(dataclasses.replace(P, pairs_per_set=1, shuffle_sets=1), tiny_shards, 1, seed=0,
                                  num_workers=0)
    for batch in itertools.islice(loader, 3):  # one batch at a time, so `calls` holds this pair's decodes
        s, t = batch["source_index"][0], batch["target_index"][0]
        used = {f"{s}.jpg", f"{t}.jpg", f"{t}.seg.png"}
        assert set(calls) - used <= {f"{t}.r1.jpg", f"{t}.r2.jpg"} and len(calls) <= 4, calls
        calls.clear()


def test_exact_resume_with_dataloader_workers(tiny_shards: Path) -> None:
    p = dataclasses.replace(P, pairs_per_set=3)
    straight = _batches(make_train_loader(p, tiny_shards, 2, seed=9, num_workers=2)[0], 9)
    loader, stream = make_train_loader(p, tiny_shards, 2, seed=9, num_workers=2)
    it = iter(loader)
    first = [next(it) for _ in range(5)]
    state = stream.state_dict()
    del it
    assert state["consumed"] == 10 and state["workers"] == 2
    assert _same(first, straight[:5])
    loader2, stream2 = make_train_loader(p, tiny_shards, 2, seed=9, num_workers=2)
    stream2.load_state_dict(state)
    resumed = _batches(loader2, 4)
    assert [b["set_id"] for b in resumed] == [b["set_id"] for b in straight[5:9]]
    assert _same(resumed, straight[5:9]), "the resumed stream continues with the very next batch"


def test_batches_mix_identities(tiny_shards: Path) -> None:
    loader, _ = make_train_loader(dataclasses.replace(P, shuffle_sets=3), tiny_shards, 6, seed=1, num_workers=0)
    batches = _batches(loader, 4)
    assert max(len(set(b["set_id"])) for b in batches) >= 2, "pairs of a window are interleaved"


def test_resume_with_other_workers_restarts_the_epoch_with_a_warning(tiny_shards: Path) -> None:
    p = dataclasses.replace(P, pairs_per_set=2)
    loader, stream = make_train_loader(p, tiny_shards, 2, seed=4, num_workers=0)
    _batches(loader, 5)  # 10 items: epoch 0 has 3 sets x 2 pairs = 6, so epoch 1 is reached
    state = stream.state_dict()
    loader2, stream2 = make_train_loader(p, tiny_shards, 2, seed=4, num_workers=2)
    with pytest.warns(UserWarning, match="restarting epoch 1"):
        stream2.load_state_dict(state)
    assert len(_batches(loader2, 2)) == 2
