"""`piq release remove`: take a person (or one clip) out of a built release, on request.

    piq release remove --participant p0001 --reason "asked by e-mail, ticket 12"
    piq release remove --video v0004 --reason "uploaded without consent"

The request is first appended to the ledger (`removals.csv`, params `removals`), which ingest
and shard read, so a later `dvc repro` keeps the person out. Then the release is rewritten in an
order that never leaves an index naming a sample that is not in its shard:

1. a journal (`<release>/.removal.json`: every shard to rewrite and the keys to drop) is written;
2. each affected shard's new tar is written beside it under a temporary name (the same
   TarWriter settings as `piq shard`, the kept samples in their order: their bytes unchanged);
3. the split's `index.json` is rewritten without the dropped keys (every key it lists is still
   in the old tar and in the new one);
4. the new tars replace the old ones (rename) with their `.stats.json`; a shard left with no set
   is deleted; then `sets.parquet`, the stage manifest, the card and `stats.json`;
5. the journal is deleted.

An interrupted removal is finished by the next `piq release remove` (any arguments, or
`--resume` alone): the journal names what is left, and each step is idempotent. Every shard
that held none of the person's sets is not touched (byte for byte). An id that the release,
the ledger, the ingest manifest and the metadata CSV do not know is refused (exit 2, nothing
written); one already in the ledger and absent from the release is a no-op.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.release.card import release_metas, write_card
from pipeline.engine.manifest import write_frame
from pipeline.release.reader import INDEX_FILE
from pipeline.release.removals import LedgerError, append_entry, read_ledger
from pipeline.release.shards import iter_raw_samples, sample_digest, shard_stats, tar_bytes
from pipeline.release.splits import SPLITS
from pipeline.engine.outdir import atomic_write_bytes, atomic_write_json

JOURNAL = ".removal.json"


class RemovalError(ValueError):
    """A request that cannot be carried out (unknown id, no release)."""


def _new_tar(out: Path, split: str, name: str) -> Path:
    return out / split / f".{name}.removal-new"


def _known_ids(kind: str, params: Any) -> set[str]:
    """Ids of `kind` the pipeline's inputs know (ingest manifest, metadata CSV)."""
    column = "participant_id" if kind == "participant" else "video_id"
    known: set[str] = set()
    manifest = Path(params.shard.ingest_dir) / "manifest.parquet"
    if manifest.is_file():
        known |= set(pd.read_parquet(manifest, columns=[column])[column].astype(str))
    csv_path = Path(params.ingest.metadata_csv)
    if csv_path.is_file():
        meta = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
        if column in meta:
            known |= {v.strip() for v in meta[column]}
    return known


def plan_removal(out: Path, kind: str, ident: str) -> dict[str, Any]:
    """The journal of a removal: {"kind", "id", "shards": {"<split>/<name>": [keys]}}."""
    field = "participant_id" if kind == "participant" else "video_id"
    drop = {m["set_id"] for m in release_metas(out) if str(m.get(field)) == ident}
    shards: dict[str, list[str]] = {}
    for split in SPLITS:
        index_path = out / split / INDEX_FILE
        if index_path.is_file():
            for entry in json.loads(index_path.read_text())["shards"]:
                keys = sorted(drop & set(entry["keys"]))
                if keys:
                    shards[f"{split}/{entry['name']}"] = keys
    return {"kind": kind, "id": ident, "shards": shards}


def finish(out: Path, ledger_path: Path) -> dict[str, Any] | None:
    """Carry out the journal in `out` (steps 2-5 above); None when there is none."""
    journal_path = out / JOURNAL
    if not journal_path.is_file():
        return None
    journal = json.loads(journal_path.read_text())
    by_split: dict[str, dict[str, set[str]]] = {}
    for ref, keys in journal["shards"].items():
        split, name = ref.split("/", 1)
        by_split.setdefault(split, {})[name] = set(keys)
    new_stats: dict[str, dict[str, Any] | None] = {}
    for split, shards in by_split.items():  # step 2: the new tars beside the old ones
        for name, drop in shards.items():
            tmp, tar = _new_tar(out, split, name), out / split / name
            if tar.is_file():
                kept = [(k, f) for k, f in iter_raw_samples(tar) if k not in drop]
                data = tar_bytes(kept) if kept else b""
                atomic_write_bytes(tmp, data)
            elif not tmp.is_file():  # already replaced, or already deleted as empty
                new_stats[f"{split}/{name}"] = _stats_of(out / split / name)
                continue
            data = tmp.read_bytes()
            kept = list(iter_raw_samples(tmp)) if data else []
            new_stats[f"{split}/{name}"] = ({**shard_stats(name, kept, data), "split": split,
                                             "sample_sha256": {k: sample_digest(f) for k, f in kept}} if kept else None)
    for split, shards in by_split.items():  # step 3: the index, listing only keys both tars hold
        index_path = out / split / INDEX_FILE
        index = json.loads(index_path.read_text())
        entries = []
        for entry in index["shards"]:
            if entry["name"] not in shards:
                entries.append(entry)
                continue
            st = new_stats[f"{split}/{entry['name']}"]
            if st is not None:
                entries.append({k: st[k] for k in ("samples", "bytes", "sha256", "keys", "sample_sha256")} | {"name": entry["name"]})
        index.update(n_shards=len(entries), n_samples=sum(e["samples"] for e in entries),
                     bytes=sum(e["bytes"] for e in entries), shards=entries)
        if not entries:
            index["empty"] = "every set was removed on request (removal ledger)"
        atomic_write_json(index_path, index)
    for split, shards in by_split.items():  # step 4: the tars, their stats, the tables
        for name in shards:
            tmp, tar = _new_tar(out, split, name), out / split / name
            st = new_stats[f"{split}/{name}"]
            if tmp.is_file():
                if st is None:
                    tar.unlink(missing_ok=True)
                    tmp.unlink()
                else:
                    tmp.replace(tar)
            stats_path = tar.with_suffix(".stats.json")
            if st is None:
                stats_path.unlink(missing_ok=True)
            else:
                atomic_write_json(stats_path, st)
    _rewrite_tables(out, {k for keys in journal["shards"].values() for k in keys}, len(read_ledger(ledger_path).entries))
    journal_path.unlink()
    return journal


def _stats_of(tar: Path) -> dict[str, Any] | None:
    path = tar.with_suffix(".stats.json")
    return json.loads(path.read_text()) if path.is_file() else None


def _rewrite_tables(out: Path, dropped: set[str], ledger_entries: int) -> None:
    """sets.parquet per split, the stage manifest, the card and stats.json after a removal."""
    splits: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        index_path = out / split / INDEX_FILE
        if not index_path.is_file():
            continue
        index = json.loads(index_path.read_text())
        splits[split] = {"shards": index["n_shards"], "sets": index["n_samples"], "bytes": index["bytes"]}
        sets_path = out / split / "sets.parquet"
        if sets_path.is_file():
            frame = pd.read_parquet(sets_path)
            if frame["set_id"].isin(dropped).any():
                tmp = out / split / ".sets.parquet.tmp"
                write_frame(frame[~frame["set_id"].isin(dropped)], tmp)
                atomic_write_bytes(sets_path, tmp.read_bytes())
                tmp.unlink()
    manifest_path = out / "manifest.parquet"
    if manifest_path.is_file():
        _rewrite_manifest(out, manifest_path)
    rejects = pd.read_parquet(out / "rejects.parquet") if (out / "rejects.parquet").is_file() else pd.DataFrame()
    stats_path = out / "stats.json"
    stats = json.loads(stats_path.read_text()) if stats_path.is_file() else {}
    empty = {s: json.loads((out / s / INDEX_FILE).read_text()).get("empty", "") for s in splits if not splits[s]["shards"]}
    write_card(out, release_metas(out), splits, rejects, empty, ledger_entries)
    if stats:
        stats.update(splits=splits, removals_in_ledger=ledger_entries, empty_splits=dict(sorted(empty.items())))
        atomic_write_json(stats_path, stats)


def _rewrite_manifest(out: Path, path: Path) -> None:
    """The shard stage's manifest rows (one per shard) as the shards now are."""
    frame = pd.read_parquet(path)
    rows = []
    for row in frame.to_dict("records"):
        st = _stats_of(out / row["split"] / f"{row['shard']}.tar")
        if st is not None:
            rows.append({**row, "set_ids": st["keys"], "n_samples": st["samples"], "bytes": st["bytes"], "sha256": st["sha256"]})
    tmp = out / ".manifest.parquet.tmp"
    write_frame(pd.DataFrame(rows, columns=frame.columns).astype(frame.dtypes.to_dict()), tmp)
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()


def remove(out: Path, ledger_path: Path, kind: str | None, ident: str | None, reason: str, params: Any) -> str:
    """Finish any interrupted removal, then remove `kind`/`ident` (when given). Returns what was done."""
    said = []
    resumed = finish(out, ledger_path)
    if resumed:
        said.append(f"finished an interrupted removal of {resumed['kind']} {resumed['id']} "
                    f"({len(resumed['shards'])} shard(s) rewritten)")
    if kind is None or ident is None:
        return "; ".join(said) or "nothing to resume"
    ledger = read_ledger(ledger_path)
    plan = plan_removal(out, kind, ident)
    if not plan["shards"]:
        if ledger.has(kind, ident):
            return "; ".join(said + [f"{kind} {ident} is already in {ledger_path} and absent from {out}: nothing to do"])
        if ident not in _known_ids(kind, params):
            raise RemovalError(f"unknown {kind} {ident!r}: not in the release {out}, the ledger {ledger_path}, "
                               f"{params.shard.ingest_dir}/manifest.parquet or {params.ingest.metadata_csv}; nothing written")
        append_entry(ledger_path, kind, ident, reason)
        return "; ".join(said + [f"{kind} {ident} has no set in {out}; recorded in {ledger_path} so no build includes them"])
    if not ledger.has(kind, ident):
        append_entry(ledger_path, kind, ident, reason)  # first: whatever happens next, rebuilds keep them out
    atomic_write_json(out / JOURNAL, plan)
    finish(out, ledger_path)
    n_sets = len({k for keys in plan["shards"].values() for k in keys})
    return "; ".join(said + [f"removed {kind} {ident}: {n_sets} set(s) from {len(plan['shards'])} shard(s) rewritten: "
                             f"{', '.join(sorted(plan['shards']))}; recorded in {ledger_path}"])


def main(args: argparse.Namespace) -> int:
    from pipeline.config.params import load_params

    if args.action == "digest":
        from pipeline.release.digest import main as digest_main

        return digest_main(args)

    params = load_params(args.params)
    out = Path(args.release or params.shard.out_dir)
    ledger = Path(args.ledger or params.removals)
    kind, ident = ("participant", args.participant) if args.participant else ("video", args.video) if args.video else (None, None)
    if ident is not None and not (args.reason or "").strip():
        print("piq release remove: --reason TEXT is required (it goes into the ledger)", file=sys.stderr)
        return 2
    if ident is None and not args.resume:
        print("piq release remove: name --participant ID or --video ID (or --resume)", file=sys.stderr)
        return 2
    if not any((out / s / INDEX_FILE).is_file() for s in SPLITS):
        print(f"piq release remove: {out} is not a release (no <split>/{INDEX_FILE}); run `piq shard` or pass --release",
              file=sys.stderr)
        return 2
    try:
        print(f"release remove: {remove(out, ledger, kind, ident, args.reason or '', params)}")
    except (RemovalError, LedgerError) as err:
        print(f"piq release remove: {err}", file=sys.stderr)
        return 2
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["remove", "digest"],
                        help="remove: take a person or a clip out of the release; digest: write what the release means "
                             "(pipeline/release/digest.py) to --out")
    parser.add_argument("--out", default="reports/release_digest.json", help="digest: where to write it")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("--participant", help="participant_id whose every set is removed")
    who.add_argument("--video", help="video_id (one clip) whose sets are removed")
    parser.add_argument("--reason", default="", help="why (recorded in the ledger)")
    parser.add_argument("--resume", action="store_true", help="only finish an interrupted removal")
    parser.add_argument("--release", default=None, help="release folder (default: shard.out_dir)")
    parser.add_argument("--ledger", default=None, help="ledger CSV (default: params `removals`)")
