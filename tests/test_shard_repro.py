"""`dvc repro` of the `shard` stage on upstream outputs in the release layouts: verified shards,
an index per split and a card; a second run does nothing. (The upstream stages are placed by
the test so the stage runs alone: `--single-item`.)"""
from __future__ import annotations

import json

import pytest

from tests.fixtures.portraits import make_fake_ingest
from tests.fixtures.release import make_upstream
from tests.fixtures.dvc_copy import sh

pytestmark = pytest.mark.slow


def test_repro_shard_then_verify_then_nothing(clone) -> None:
    root, env = clone
    ingest = make_fake_ingest(root / "data" / "ingest", size=64)
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    make_upstream(root / "data", ingest, n_expressive=2, n_relit=2, size=64)
    first = sh(["dvc", "repro", "--single-item", "shard"], root, env)
    assert "Running stage 'shard'" in first
    out = root / "data" / "shards"
    stats = json.loads((root / "reports" / "shard_stats.json").read_text())
    assert stats["complete"] and sum(s["sets"] for s in stats["splits"].values()) == 3
    assert (out / "README.md").exists() and all((out / s / "index.json").exists() for s in ("train", "test_id", "test_ood"))
    assert "all good" in sh(["piq", "shards", "verify", "data/shards"], root, env)
    second = sh(["dvc", "repro", "--single-item", "shard"], root, env)
    assert "Running stage" not in second, second
