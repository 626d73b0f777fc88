"""Release-schema shards at a chosen size from the two public-domain portraits, for the GPU
test and the training benchmark: the loader then decodes, masks and augments real JPEGs of the
release's size, as it does in a real run. Uses the test suite's fake ingest (three faces) and
the classical stand-in sets (`stages/dev_shards.py`)."""
from __future__ import annotations

from pathlib import Path

from pipeline.config.dev_shards import DevShardsParams
from pipeline.config.runner import RunnerParams
from pipeline.runner import Runner
from pipeline.shards import write_shards


def make_release_shards(root: Path, image_size: int = 1024, n_expressive: int = 4, n_relit: int = 5) -> Path:
    from stages.dev_shards import DevSetStage, iter_set_samples, list_items
    from tests.conftest import make_fake_ingest

    root = Path(root)
    ingest = make_fake_ingest(root / "ingest", size=image_size)
    params = DevShardsParams(ingest_dir=str(ingest), out_dir=str(root / "sets"), shard_dir=str(root / "shards"),
                             n_expressive=n_expressive, n_relit=n_relit, image_size=image_size, sets_per_shard=1)
    Runner(RunnerParams(workers=0, progress=False), seed=0).run(DevSetStage(params), list_items(params), params.out_dir)
    ids = sorted(p.name for p in (root / "sets" / "sets").iterdir())
    write_shards(iter_set_samples(root / "sets" / "sets", ids), params.shard_dir, "train", 1)
    return Path(params.shard_dir)
