"""Benchmark of the release shards: writing and reading them beside a plain copy of the same
bytes on the same disk, the training stream with 0, 1 and 2 DataLoader workers, and opening a
large shard through the tar offset index (what `piq browse` does).

    python bench/shards.py [--sets 24] [--size 1024] [--n-expressive 20] [--n-relit 5]
                           [--resolution 576] [--batches 12] [--big-gb 1.0] [--dir /tmp]

Input: one identity set made with the classical stand-ins at `--size` px (1 + n_expressive
images, their label maps, n_relit relit variants each: a paper-size set is 147 files, ~19 MB at
1024 px), copied under `--sets` face ids of `--sets / 2` participants, in the upstream layouts
`piq shard` reads. All timings are through the product's entry points (`stages.shard.build_release`,
`pipeline.release.reader.release_dataset`, `train.data.make_train_loader`, `pipeline.release.shards.tar_offsets`).
Page cache is not dropped: every figure is warm-cache, the ratios compare like with like.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipeline.config.data import DataParams  # noqa: E402
from pipeline.config.runner import RunnerParams  # noqa: E402
from pipeline.release.reader import release_dataset, resolve_shards  # noqa: E402
from pipeline.release.shards import decode_sample, tar_offsets, read_range  # noqa: E402
from stages.shard import build_release  # noqa: E402
from tests.fixtures.portraits import make_fake_ingest  # noqa: E402
from tests.fixtures.release import make_upstream, shard_params  # noqa: E402
from train.data import make_train_loader  # noqa: E402

STAGES = ("animate", "caption", "segment", "relight")


def replicate(root: Path, ingest: Path, n_sets: int) -> Path:
    """The one made set copied under `n_sets` face ids (2 clips per participant)."""
    out = root / "many"
    frames = {s: pd.read_parquet(root / s / "manifest.parquet") for s in STAGES}
    faces = pd.read_parquet(ingest / "manifest.parquet")
    face0 = faces.iloc[0]["face_id"]
    rows = {s: [] for s in STAGES}
    ingest_rows = []
    (out / "ingest" / "faces").mkdir(parents=True)
    for k in range(n_sets):
        video, person = f"b{k:04d}", f"q{k // 2:04d}"
        face = f"{video}-f000000"
        src = faces.iloc[0].to_dict()
        shutil.copyfile(ingest / src["path"], out / "ingest" / "faces" / f"{face}.jpg")
        ingest_rows.append({**src, "face_id": face, "video_id": video, "participant_id": person, "item_id": video,
                            "path": f"faces/{face}.jpg"})
        for s in STAGES:
            if (root / s / "sets" / face0).is_dir():
                shutil.copytree(root / s / "sets" / face0, out / s / "sets" / face)
            for r in frames[s][frames[s]["face_id"] == face0].to_dict("records"):
                r = {**r, "face_id": face}
                if "path" in r:
                    r["path"] = r["path"].replace(face0, face)
                if s == "animate":
                    r.update(participant_id=person, video_id=video)
                rows[s].append(r)
    pd.DataFrame(ingest_rows).to_parquet(out / "ingest" / "manifest.parquet", index=False)
    (out / "ingest" / "stats.json").write_text(json.dumps({"complete": True}))
    for s in STAGES:
        pd.DataFrame(rows[s]).to_parquet(out / s / "manifest.parquet", index=False)
        shutil.copyfile(root / s / "rejects.parquet", out / s / "rejects.parquet")
        (out / s / "stats.json").write_text(json.dumps({"complete": True}))
    return out


def tree_bytes(paths: list[Path]) -> int:
    return sum(p.stat().st_size for p in paths)


def timed(fn, *args, **kw) -> tuple[float, object]:
    start = time.perf_counter()
    value = fn(*args, **kw)
    return time.perf_counter() - start, value


def stream_bytes(urls: list[str]) -> int:
    return sum(len(v) for sample in release_dataset(urls) for v in sample.fields.values())


def read_files(paths: list[Path]) -> int:
    return sum(len(p.read_bytes()) for p in paths)


def samples_per_s(params: DataParams, split: Path, workers: int, batch: int, batches: int) -> float:
    loader, _ = make_train_loader(params, split, batch, seed=0, num_workers=workers)
    it = iter(loader)
    next(it)  # workers started, first window read
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch / (time.perf_counter() - start)


def big_shard(path: Path, gigabytes: float, n_expressive: int, n_relit: int) -> int:
    """A shard of about `gigabytes` of random members in the release layout (members ~130 KB,
    like 1024 px JPEGs), written with webdataset's TarWriter."""
    import webdataset as wds

    rng = np.random.default_rng(0)
    blob = rng.integers(0, 256, 140_000, dtype=np.uint8).tobytes()
    per_set = (n_expressive + 1) * (n_relit + 1) * len(blob)
    n_sets = max(1, int(gigabytes * 1e9 // per_set))
    with wds.TarWriter(str(path), encoder=False, mtime=0) as sink:
        for k in range(n_sets):
            fields = {"meta.json": b"{}"}
            for i in range(n_expressive + 1):
                fields[f"i{i:02d}.jpg"] = blob
                fields[f"i{i:02d}.seg.png"] = blob[:20_000]
                fields.update({f"i{i:02d}.r{r}.jpg": blob for r in range(1, n_relit + 1)})
            sink.write({"__key__": f"b{k:04d}-f000000", **fields})
    return path.stat().st_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=24)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--n-expressive", type=int, default=20)
    parser.add_argument("--n-relit", type=int, default=5)
    parser.add_argument("--resolution", type=int, default=576)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--batches", type=int, default=12)
    parser.add_argument("--big-gb", type=float, default=1.0, help="size of the shard opened through the offset index (0: skip)")
    parser.add_argument("--dir", default=None, help="scratch folder (default: the system's temp folder)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        work = Path(tmp)
        print(f"# {args.sets} sets of {1 + args.n_expressive} images at {args.size} px, {args.n_relit} relit each; "
              f"{os.cpu_count()} cores; scratch {work}")
        ingest = make_fake_ingest(work / "seed" / "ingest", size=args.size)
        make_upstream(work / "seed", ingest, n_expressive=args.n_expressive, n_relit=args.n_relit, size=args.size)
        up = replicate(work / "seed", ingest, args.sets)
        files = sorted(p for s in STAGES for p in (up / s / "sets").rglob("*") if p.is_file())
        mb = tree_bytes(files) / 1e6
        # -- writing -----------------------------------------------------------------------------
        os.sync()  # both writes end with their bytes on disk: the runner fsyncs each tar, the copy syncs at the end
        copy_s, _ = timed(lambda: ([shutil.copytree(up / s / "sets", work / "plain" / s) for s in STAGES], os.sync()))
        p = shard_params(up, up / "ingest", out_dir=str(work / "release"), target_shard_bytes=200_000_000,
                         test_id_fraction=0.0, test_ood_fraction=0.0)
        runner = RunnerParams(workers=0, progress=False, fsync=True, reports_dir=str(work / "reports"))
        write_s, stats = timed(build_release, p, runner, 0)
        shard_mb = stats["splits"]["train"]["bytes"] / 1e6
        # the runner's part: read the set files, tar them, write tar + stats atomically (its timing report)
        tar_s = json.loads((work / "reports" / "shard" / "timing.json").read_text())["seconds"]
        print(f"write: shards {shard_mb / tar_s:8.1f} MB/s ({shard_mb:.0f} MB in {stats['splits']['train']['shards']} shards, "
              f"{tar_s:.2f} s; whole stage with plan, index and card {write_s:.2f} s) | plain copy {mb / copy_s:8.1f} MB/s "
              f"| ratio {copy_s / tar_s:.2f}")
        # -- reading -----------------------------------------------------------------------------
        urls = [r.url for r in resolve_shards(work / "release" / "train")]
        plain = sorted(p for p in (work / "plain").rglob("*") if p.is_file())
        stream_bytes(urls), read_files(plain)  # warm both the same way
        read_s, n_read = timed(stream_bytes, urls)
        plain_s, n_plain = timed(read_files, plain)
        print(f"read:  shards {n_read / 1e6 / read_s:8.1f} MB/s (webdataset stream) | plain files {n_plain / 1e6 / plain_s:8.1f} MB/s "
              f"({len(plain)} files) | ratio {plain_s / read_s:.2f}")
        # -- training stream ---------------------------------------------------------------------
        params = DataParams(resolution=args.resolution, pairs_per_set=4, shuffle_sets=8)
        rates = {w: samples_per_s(params, work / "release" / "train", w, args.batch, args.batches) for w in (0, 1, 2)}
        sample = next(iter(release_dataset(urls[:1])))
        eager_s, _ = timed(decode_sample, sample.key, sample.fields)
        print(f"train stream ({args.resolution} px, batch {args.batch}): " +
              " | ".join(f"{w} workers {r:6.2f} samples/s" for w, r in rates.items()) +
              f" | ratio 2/0 workers {rates[2] / rates[0]:.2f}; decoding a whole set eagerly takes {eager_s:.3f} s "
              f"({(1 + args.n_expressive) * (2 + args.n_relit)} images) vs ~4 images per pair")
        # -- opening a large shard ------------------------------------------------------------------
        if args.big_gb > 0:
            big = work / "big.tar"
            size = big_shard(big, args.big_gb, args.n_expressive, args.n_relit)
            open_s, offsets = timed(tar_offsets, big)
            key = next(iter(offsets))
            first_s, data = timed(read_range, big, *offsets[key]["i00.jpg"])
            print(f"browse open: {size / 1e9:.2f} GB shard, {sum(len(v) for v in offsets.values())} members listed in "
                  f"{open_s * 1000:.0f} ms, first image read in {first_s * 1000:.1f} ms")


if __name__ == "__main__":
    main()
