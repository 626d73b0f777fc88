"""Release-schema shards at a chosen size from the two public-domain portraits, for the GPU
test and the training benchmark: the loader then decodes, masks and augments real JPEGs of the
release's size, as it does in a real run. Uses the test suite's fake ingest (three faces),
upstream outputs made with the classical stand-ins (`tests/fixtures/release.py`) and the real
`shard` stage; returns the train split folder (one set per shard)."""
from __future__ import annotations

import json
from pathlib import Path


def make_release_shards(root: Path, image_size: int = 1024, n_expressive: int = 4, n_relit: int = 5) -> Path:
    from tests.fixtures.portraits import make_fake_ingest
    from tests.fixtures.release import build_release

    root = Path(root)
    ingest = make_fake_ingest(root / "ingest", size=image_size)
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    release = build_release(root, ingest, n_expressive=n_expressive, n_relit=n_relit, size=image_size,
                            max_sets_per_shard=1, test_id_fraction=0.0, test_ood_fraction=0.0)
    return release / "train"


def replicate_shards(split: Path, copies: int) -> Path:
    """The split with its shards repeated `copies` times under new shard names (same sets and
    bytes), so a benchmark's loader can run as many DataLoader workers as a real release of
    many sets allows (each worker needs shards of its own; three sets cap it at three)."""
    import shutil

    split = Path(split)
    index = json.loads((split / "index.json").read_text())
    originals = list(index["shards"])
    for c in range(1, copies):
        for k, entry in enumerate(originals):
            name = f"{split.name}-{c * len(originals) + k:06d}.tar"
            shutil.copyfile(split / entry["name"], split / name)
            shutil.copyfile(split / entry["name"].replace(".tar", ".stats.json"), split / name.replace(".tar", ".stats.json"))
            index["shards"].append({**entry, "name": name})
    index.update(n_shards=len(index["shards"]), n_samples=sum(e["samples"] for e in index["shards"]),
                 bytes=sum(e["bytes"] for e in index["shards"]))
    (split / "index.json").write_text(json.dumps(index, indent=1))
    return split
