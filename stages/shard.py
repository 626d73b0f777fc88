"""`piq shard`: the released WebDataset shards, split by identity, with an index and a card.

Reads the manifests of ingest, animate, caption, segment and relight (docs/DATA.md). The plan
(pipeline/release/reader/plan.py: main process, no image decoding) joins them into one record per identity set, refuses a set
that misses a required part (reason codes in docs/DATA.md), assigns every participant to
train / test_id / test_ood (pipeline/release/splits.py), orders each split's sets by a seeded hash
and packs them into shards of about `target_shard_bytes`. Each shard is then one runner item:
a pure function that reads its sets' files and returns the tar (webdataset's TarWriter, fixed
member metadata: byte-identical for the same inputs) and its stats; the runner writes the tar
under a temporary name, renames it, then the stats, then its record. Refused sets are items
too (they raise their `Reject`), so they land in rejects.parquet with their reason.

After the shards (pipeline/release/reader/index.py): per split `index.json` (names, keys, counts, bytes, sha256) and
`sets.parquet` (one row per image: pose, expression, captions; for the card and the browser),
the dataset card `README.md` with its histograms, and `stats.json` last.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
import sys
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from pipeline.release.card import write_card
from pipeline.config.runner import RunnerParams
from pipeline.config.shard import ShardParams
from pipeline.config.params import load_params
from pipeline.rejection import Reject
from pipeline.release.removals import read_ledger
from pipeline.engine.runner import Runner, end_main
from pipeline.release.shards import sample_digest, shard_stats, tar_bytes
from pipeline.release.splits import SPLITS
from pipeline.engine.stage import Item, ItemContext, Output, Stage
from pipeline.engine.outdir import atomic_write_json
from pipeline.release.index import index_keys, write_indexes
from pipeline.release.plan import plan_release


@dataclasses.dataclass
class ShardStage(Stage):
    """One shard -> its tar and stats (bytes). Refused sets raise their reason."""

    params: ShardParams
    plan_digest: str = ""  # in the fingerprint: changed inputs rebuild the shards
    name: ClassVar[str] = "shard"
    manifest_columns: ClassVar[dict[str, str]] = {"shard": "string", "split": "string", "set_ids": "object",
                                                  "n_samples": "int64", "bytes": "int64", "sha256": "string"}

    def process(self, item: Item, ctx: ItemContext) -> Output:
        if "reject" in item.data:
            raise Reject(*item.data["reject"])
        samples = []
        for rec in item.data["sets"]:
            fields = {field: Path(path).read_bytes() for field, path in rec["files"]}
            fields.update({field: text.encode() for field, text in rec.get("texts", [])})
            fields["meta.json"] = json.dumps(rec["meta"], indent=1, sort_keys=True).encode()
            samples.append((rec["set_id"], fields))
        data = tar_bytes(samples)
        stats = {**shard_stats(f"{item.id}.tar", samples, data), "split": item.data["split"],
                 "sample_sha256": {key: sample_digest(fields) for key, fields in samples}}
        split = item.data["split"]
        files = {f"{split}/{item.id}.tar": data,
                 f"{split}/{item.id}.stats.json": json.dumps(stats, indent=1, sort_keys=True).encode()}
        row = {"shard": item.id, "split": split, "set_ids": stats["keys"], "n_samples": len(samples),
               "bytes": len(data), "sha256": stats["sha256"]}
        return Output(rows=[row], files=files)


def build_release(p: ShardParams, runner: RunnerParams, seed: int, removals: str | Path | None = None) -> dict[str, Any]:
    """Plan, write the shards (resumably), then the indexes, the card and stats.json last."""
    out = Path(p.out_dir)
    plan = plan_release(p, removals)
    for split, why in plan.empty.items():  # said before the long part, so a user can stop and change the rule
        print(f"shard: {split} will be empty: {why}", file=sys.stderr, flush=True)
    for tmp in out.glob("*/.*.tmp-*"):  # what a killed writer left under a temporary name
        tmp.unlink()
    summary = Runner(runner, seed).run(ShardStage(p, plan.digest()), plan.items(), out)
    (out / "stats.json").unlink(missing_ok=True)  # complete only once the index and card exist
    for split in SPLITS:  # tars that an earlier plan wrote and this one does not name
        for stale in sorted((out / split).glob("*.tar")) if (out / split).is_dir() else []:
            if stale.stem not in plan.shards:
                stale.unlink()
                stale.with_suffix(".stats.json").unlink(missing_ok=True)
    splits = write_indexes(out, plan)
    released = {k for split in SPLITS for k in index_keys(out / split)}
    write_card(out, [plan.sets[k]["meta"] for k in sorted(released)], splits, pd.read_parquet(out / "rejects.parquet"),
               plan.empty, len(read_ledger(removals).entries))
    stats = {**summary.stats, "splits": splits, "images_per_set": plan.n_images, "relit_per_image": plan.n_relit,
             "sets_refused": dict(sorted(Counter(c for c, _ in plan.refused.values()).items())),
             "sets_withheld": plan.withheld, "removals_in_ledger": len(read_ledger(removals).entries),
             "empty_splits": dict(sorted(plan.empty.items()))}
    atomic_write_json(out / "stats.json", stats)
    return stats


def main(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    stats = build_release(params.shard, params.runner, params.seed, params.removals)
    report = Path(args.report)
    report.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(params.shard.out_dir) / "stats.json", report)
    per_split = ", ".join(f"{k} {v['sets']} sets / {v['shards']} shards" for k, v in stats["splits"].items())
    return end_main(stats, f"shard: {per_split}; sets refused: {stats['sets_refused']} -> {params.shard.out_dir}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", default="reports/shard_stats.json", help="where to copy stats.json (stats without timings)")
