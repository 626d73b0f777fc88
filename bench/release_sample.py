"""Release-schema shards at a chosen size from the two public-domain portraits, for the GPU
test and the training benchmark: the loader then decodes, masks and augments real JPEGs of the
release's size, as it does in a real run. Uses the test suite's fake ingest (three faces),
upstream outputs made with the classical stand-ins (`tests/release_fixtures.py`) and the real
`shard` stage; returns the train split folder (one set per shard)."""
from __future__ import annotations

import json
from pathlib import Path


def make_release_shards(root: Path, image_size: int = 1024, n_expressive: int = 4, n_relit: int = 5) -> Path:
    from tests.conftest import make_fake_ingest
    from tests.release_fixtures import build_release

    root = Path(root)
    ingest = make_fake_ingest(root / "ingest", size=image_size)
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    release = build_release(root, ingest, n_expressive=n_expressive, n_relit=n_relit, size=image_size,
                            max_sets_per_shard=1, test_id_fraction=0.0, test_ood_fraction=0.0)
    return release / "train"
