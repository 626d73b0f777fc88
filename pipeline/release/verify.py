"""`piq shards verify DIR`: re-read every sample of a release and say exactly what is broken.

DIR is a release folder (its split folders are checked) or one split folder. For each shard the
index lists: the file exists, its size and sha256 match the index, the tar reads to its end,
every sample the index lists is there with the schema's members (the images, label maps and
relit variants its meta.json announces), its bytes match the index's per-sample sha256, its
meta.json parses and names it, and every image and label map decodes to a consistent size with
canonical label ids. Each problem names the shard and, where it lies inside one, the sample.
Exit status 1 when anything is wrong.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor
import tarfile
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from pipeline.labels import LABEL_NAMES
from pipeline.release.reader import INDEX_FILE
from pipeline.release.shards import ShardError, check_sample, decode_image, sample_digest

CHUNK = 1 << 20


def expected_fields(meta: dict[str, Any]) -> set[str]:
    n, k = int(meta["n_expressive"]) + 1, int(meta["n_relit"])
    fields = {"meta.json"}
    for i in range(n):
        fields |= {f"i{i:02d}.jpg", f"i{i:02d}.txt", f"i{i:02d}.seg.png", *(f"i{i:02d}.r{r}.jpg" for r in range(1, k + 1))}
    return fields


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(CHUNK):
            digest.update(block)
    return digest.hexdigest()


def _samples(path: Path, problems: list[str]) -> Iterator[tuple[str, dict[str, bytes]]]:
    """(key, fields) in file order; a tar that breaks adds a problem naming the sample it broke in."""
    key, fields = None, {}
    try:
        with tarfile.open(path, "r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                k, _, field = member.name.partition(".")
                if k != key and key is not None:
                    yield key, fields
                    fields = {}
                key = k
                data = tar.extractfile(member).read()
                if len(data) != member.size:
                    raise tarfile.ReadError(f"{member.name}: {len(data)} of {member.size} bytes")
                fields[field] = data
    except (tarfile.TarError, OSError, EOFError) as err:
        where = f"sample {key}: " if key else ""
        problems.append(f"{path.name}: {where}the tar breaks here ({type(err).__name__}: {err})")
        return  # the broken sample is not yielded: it is incomplete
    if key is not None:
        yield key, fields


def check_sample_content(key: str, fields: dict[str, bytes], expected_sha: str | None) -> list[str]:
    """What is wrong with one sample ([] when nothing)."""
    problems = []
    try:
        check_sample(key, fields)
        meta = json.loads(fields["meta.json"])
    except (ShardError, json.JSONDecodeError, UnicodeDecodeError) as err:
        return [str(err)]
    if meta.get("set_id") != key:
        problems.append(f"meta.json names set {meta.get('set_id')!r}")
    try:
        want = expected_fields(meta)
    except (KeyError, TypeError, ValueError) as err:
        return problems + [f"meta.json lacks n_expressive / n_relit ({err})"]
    missing, extra = sorted(want - set(fields)), sorted(set(fields) - want)
    if missing:
        problems.append(f"missing member(s) {missing}")
    if extra:
        problems.append(f"unexpected member(s) {extra}")
    if expected_sha and sample_digest(fields) != expected_sha:
        problems.append("content differs from the index (sha256)")
    captions = {img.get("index"): img.get("caption") for img in meta.get("images", []) if isinstance(img, dict)}
    for field in sorted(f for f in fields if f.endswith(".txt")):
        if fields[field].decode("utf-8", "replace") != captions.get(field.split(".")[0]):
            problems.append(f"{field}: differs from meta.json's caption")
    size = None
    for field in sorted(f for f in fields if f != "meta.json" and not f.endswith(".txt")):
        try:
            img = decode_image(fields[field], field)
        except ShardError as err:
            problems.append(f"{field}: {err}")
            continue
        hw = img.shape[:2]
        size = size or hw
        if hw != size or hw[0] != hw[1]:
            problems.append(f"{field}: size {hw[1]}x{hw[0]}, the set's images are {size[1]}x{size[0]} (square)")
        if field.endswith(".seg.png") and (img.ndim != 2 or int(np.max(img)) >= len(LABEL_NAMES)):
            problems.append(f"{field}: not a label map of canonical ids (max {int(np.max(img))})")
    return problems


def verify_shard(folder: Path, entry: dict[str, Any]) -> tuple[list[str], int]:
    """(problems, samples read) of one shard the index lists."""
    name, problems = entry["name"], []
    path = folder / name
    if not path.exists():
        return [f"{name}: missing shard (listed in {INDEX_FILE})"], 0
    size = path.stat().st_size
    if size != entry["bytes"]:
        problems.append(f"{name}: {size} bytes, the index says {entry['bytes']} (truncated or appended)")
    elif _file_sha256(path) != entry["sha256"]:
        problems.append(f"{name}: sha256 differs from the index")
    digests = entry.get("sample_sha256", {})
    seen = []
    for key, fields in _samples(path, problems):
        seen.append(key)
        problems += [f"{name}: sample {key}: {p}" for p in check_sample_content(key, fields, digests.get(key))]
    problems += [f"{name}: sample {key}: listed in the index, not in the shard" for key in entry["keys"] if key not in seen]
    return problems, len(seen)


def verify_split(folder: Path, workers: int = 1) -> tuple[list[str], int, int]:
    """(problems, shards checked, samples checked) of one split folder; shards in parallel
    processes when `workers` > 1 (decoding every image of a paper-size release is CPU-bound)."""
    index_path = folder / INDEX_FILE
    if not index_path.exists():
        return [f"{folder}: no {INDEX_FILE}"], 0, 0
    entries = json.loads(index_path.read_text())["shards"]
    listed = {e["name"] for e in entries}
    problems = [f"{extra}: not in {INDEX_FILE}" for extra in sorted(p.name for p in folder.glob("*.tar") if p.name not in listed)]
    if workers > 1 and len(entries) > 1:
        with ProcessPoolExecutor(min(workers, len(entries))) as pool:
            results = list(pool.map(verify_shard, [folder] * len(entries), entries))
    else:
        results = [verify_shard(folder, e) for e in entries]
    for p, _ in results:
        problems += p
    return problems, len(entries), sum(n for _, n in results)


def split_folders(root: Path) -> list[Path]:
    if (root / INDEX_FILE).exists():
        return [root]
    return sorted(p.parent for p in root.glob(f"*/{INDEX_FILE}"))


def verify(root: Path, workers: int = 1) -> tuple[list[str], int, int]:
    folders = split_folders(root)
    if not folders:
        return [f"{root}: no {INDEX_FILE} here or in its sub-folders (not a release)"], 0, 0
    problems, shards, samples = [], 0, 0
    for folder in folders:
        p, s, n = verify_split(folder, workers)
        problems += [f"{folder.name}/{x}" for x in p]
        shards, samples = shards + s, samples + n
    return problems, shards, samples


def empty_splits(root: Path) -> list[tuple[str, str]]:
    """(split folder, why) of every split under `root` whose index lists no shard (the shard
    stage writes the reason into index.json's `empty`)."""
    out = []
    for folder in split_folders(root):
        index = json.loads((folder / INDEX_FILE).read_text())
        if not index.get("shards"):
            out.append((str(folder), index.get("empty") or "its index lists no shard"))
    return out


def main(args: argparse.Namespace) -> int:
    if args.action != "verify":
        print(f"piq shards: unknown action {args.action!r} (try: piq shards verify DIR)", file=sys.stderr)
        return 2
    problems, shards, samples = verify(Path(args.dir), args.workers or os.cpu_count() or 1)
    for line in problems:
        print(f"BROKEN {line}")
    for folder, why in empty_splits(Path(args.dir)):
        print(f"EMPTY {folder}: no sample in this split ({why})")
    verdict = f"{len(problems)} problem(s)" if problems else "all good"
    print(f"verify: {shards} shards, {samples} samples read in {args.dir}: {verdict}")
    return 1 if problems else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=["verify"], help="verify: re-read, decode and checksum every sample")
    parser.add_argument("dir", help="a release folder (data/shards) or one split folder")
    parser.add_argument("--workers", type=int, default=0, help="processes checking shards in parallel (0 = one per core)")
