"""Reading a release: the one place training and evaluation open shards, on `webdataset.WebDataset`.

A release split is a folder of `<split>-NNNNNN.tar` beside an `index.json` (shard names,
sample keys and counts, bytes, sha256; written by `piq shard`). It can be named as:

- a local folder (`data/shards/train`), or its `index.json`;
- a URL or path of shards, with brace patterns: `file:/d/train-{000000..000009}.tar`,
  `http://host/train/train-{000000..000009}.tar` (read through curl by webdataset);
  the `index.json` beside them is read for the keys;
- `pipe:` URLs (`pipe:aws s3 cp s3://b/train-000000.tar -`): pass `index=` (a path or URL
  of the index), since a command has no folder to look beside.

`release_dataset(urls)` is the single WebDataset pipeline: it streams the given shards in the
given order and yields `LazySetSample`s (images decoded on first access). Shuffling across
shards and splitting by rank and DataLoader worker are done by the caller choosing `urls`
(train/data.py draws a seeded permutation per epoch), so a stream is a pure function of
(seed, epoch, part) and can be resumed exactly.
"""
from __future__ import annotations

import dataclasses
import json
import posixpath
from pathlib import Path
from typing import Any, Iterator, Sequence

import webdataset as wds
from webdataset.shardlists import expand_urls

from pipeline.release.shards import LazySetSample, finished_shards

INDEX_FILE = "index.json"


@dataclasses.dataclass(frozen=True)
class ShardRef:
    """One shard of a release: where it is read from and the keys it holds, in file order."""

    url: str
    keys: tuple[str, ...]
    bytes: int = 0
    sha256: str = ""


def _is_url(source: str) -> bool:
    return "://" in source or source.startswith(("pipe:", "file:"))


def _read_json(url: str) -> Any:
    with wds.gopen(url, "rb") as fh:
        return json.loads(fh.read())


def _join(base: str, name: str) -> str:
    return str(Path(base) / name) if not _is_url(base) else posixpath.join(base, name)


def _dirname(url: str) -> str:
    return str(Path(url).parent) if not _is_url(url) else posixpath.dirname(url)


def refs_from_index(index_url: str, names: Sequence[str] | None = None, base: str | None = None) -> list[ShardRef]:
    """The shards an index lists (or only `names`, in that order), located beside the index
    unless `base` is given."""
    try:
        index = _read_json(index_url)
    except Exception as err:  # noqa: BLE001 - gopen raises OSError, ValueError or curl's exit status
        raise FileNotFoundError(f"cannot read the release index {index_url}: {err}") from err
    base = _dirname(index_url) if base is None else base
    entries = {e["name"]: e for e in index["shards"]}
    if names is None:
        names = [e["name"] for e in index["shards"]]
    missing = [n for n in names if n not in entries]
    if missing:
        raise FileNotFoundError(f"{index_url} does not list {missing[:3]}{'...' if len(missing) > 3 else ''}")
    return [ShardRef(_join(base, n), tuple(entries[n]["keys"]), int(entries[n]["bytes"]), entries[n]["sha256"])
            for n in names]


def resolve_shards(source: str | Path | Sequence[str | Path], index: str | None = None) -> list[ShardRef]:
    """The shards named by `source` (see the module docstring), with their keys."""
    if not isinstance(source, (str, Path)):
        urls = [str(s) for s in source]
        if not urls:
            raise FileNotFoundError("an empty list of shards")
        if index is None and all(not _is_url(u) and Path(u).with_suffix(".stats.json").exists() for u in urls):
            return [_local_ref(Path(u)) for u in urls]
        return _refs_for_urls(urls, index)
    source = str(source)
    if not _is_url(source) and Path(source).is_dir():
        if (Path(source) / INDEX_FILE).exists():
            return refs_from_index(str(Path(source) / INDEX_FILE))
        shards = finished_shards(source)
        if not shards:
            raise FileNotFoundError(f"no finished shards in {source} (run `piq shard`, or name a split folder "
                                    f"such as data/shards/train)")
        return [_local_ref(p) for p in shards]
    if source.endswith(".json"):
        return refs_from_index(source)
    return _refs_for_urls(expand_urls(source), index)


def empty_split_refusal(source: str | Path | Sequence[str | Path], command: str) -> str | None:
    """One line refusing to run `command` on a local split folder (or its index.json) that holds
    no set, naming why and the params key to change (from the index's `empty`); None otherwise."""
    if not isinstance(source, (str, Path)) or _is_url(str(source)):
        return None
    path = Path(source)
    index = path / INDEX_FILE if path.is_dir() else path
    if index.name != INDEX_FILE or not index.is_file():
        return None
    data = json.loads(index.read_text())
    if data.get("shards"):
        return None
    why = data.get("empty") or "its index lists no shard"
    return (f"{command}: the split {index.parent} is empty, nothing to train on: {why}. Change the split rule "
            f"(shard.hold_out_min_identities, shard.test_id_fraction, shard.test_ood_fraction in params.yaml) and "
            f"rerun `piq shard`, or point data.shards at a split with sets")


def _local_ref(path: Path) -> ShardRef:
    stats = json.loads(path.with_suffix(".stats.json").read_text())
    return ShardRef(str(path), tuple(stats["keys"]), int(stats.get("bytes", 0)), stats.get("sha256", ""))


def _refs_for_urls(urls: list[str], index: str | None) -> list[ShardRef]:
    if index is None:
        if urls[0].startswith("pipe:"):
            raise ValueError("pipe: URLs need index=<path or URL of the split's index.json>")
        index = _join(_dirname(urls[0]), INDEX_FILE)
    names = [_shard_name(u) for u in urls]
    refs = refs_from_index(index, names)
    return [dataclasses.replace(ref, url=url) for ref, url in zip(refs, urls)]


def _shard_name(url: str) -> str:
    """`train-000003.tar` of a path, a URL or a pipe: command that names it."""
    tars = [t for t in url.split() if t.endswith(".tar")] if url.startswith("pipe:") else [url]
    if not tars:
        raise ValueError(f"{url!r} names no .tar file")
    return posixpath.basename(tars[-1])


def _to_set(sample: dict[str, Any]) -> LazySetSample:
    fields = {k: v for k, v in sample.items() if not k.startswith("__")}
    return LazySetSample(sample["__key__"], fields)


def release_dataset(urls: Sequence[str]) -> wds.WebDataset:
    """Stream the shards `urls` in this order as `LazySetSample`s. No shuffling or splitting
    here: the caller passes the shards of its part, in its order."""
    return wds.WebDataset(list(urls), shardshuffle=False, nodesplitter=None, workersplitter=None,
                          empty_check=False).map(_to_set)


def iter_sets(source: str | Path | Sequence[str | Path], index: str | None = None) -> Iterator[LazySetSample]:
    """Every set of a release split, in index order (evaluation, tools)."""
    refs = resolve_shards(source, index)
    yield from release_dataset([r.url for r in refs])
