"""Benchmark of the ingest stage: frames/s in-process, on 1 Ray worker and on 2, same input.

    python bench/ingest.py [--clips 16] [--candidates 8]

The input is `--clips` metadata rows that all point at the sample's accepted clips (so every
clip runs MTCNN on exactly `--candidates` frames and keeps its best frames). Each
configuration writes to its own temporary out_dir. Wall time includes each worker loading
MTCNN; Ray's own start-up is measured once, separately, and excluded.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import pandas as pd

from pipeline.config.runner import RunnerParams
from pipeline.config.params import load_params
from pipeline.engine.runner import Runner, init_ray
from stages.ingest import IngestStage, list_items

REPO = Path(__file__).resolve().parents[1]


def make_input(work: Path, n_clips: int) -> tuple[Path, list[str]]:
    expected = pd.read_csv(REPO / "samples" / "expected.csv", dtype=str)
    meta = pd.read_csv(REPO / "samples" / "metadata.csv", dtype=str, keep_default_na=False)
    good = meta[meta["video_id"].isin(expected.loc[expected["expected"] == "accept", "video_id"])]
    if good.empty:
        raise SystemExit("no accepted clips in samples/expected.csv")
    rows = [dict(good.iloc[k % len(good)], video_id=f"b{k:04d}") for k in range(n_clips)]
    csv = work / "metadata.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv, sorted(good["file"])


def run(params, csv: Path, out: Path, workers: int, seed: int) -> tuple[float, dict]:
    ingest = dataclasses.replace(params, metadata_csv=str(csv), out_dir=str(out))
    items = [i for i in list_items(ingest) if not i.id.startswith("file:")]
    runner = Runner(RunnerParams(workers=workers, progress=False), seed)
    start = time.perf_counter()
    stats = runner.run(IngestStage(ingest), items, out).stats
    return time.perf_counter() - start, stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--candidates", type=int, default=8)
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    ingest = dataclasses.replace(
        params.ingest, videos_dir=str(REPO / params.ingest.videos_dir), candidates_per_video=args.candidates
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        csv, files = make_input(work, args.clips)
        frames = args.clips * args.candidates
        print(f"input: {args.clips} clips x {args.candidates} candidate frames = {frames} frames, from {files}")
        t0 = time.perf_counter()
        init_ray(RunnerParams(workers=2))
        print(f"ray start-up (excluded): {time.perf_counter() - t0:.1f} s")
        results = {}
        for label, workers in (("in-process", 0), ("ray x1", 1), ("ray x2", 2)):
            seconds, stats = run(ingest, csv, work / label.replace(" ", ""), workers, params.seed)
            results[label] = frames / seconds
            print(f"{label:>10}: {seconds:6.1f} s  {frames / seconds:6.2f} frames/s  ({stats['rows']} faces kept)")
        print(f"ratio ray x2 / ray x1: {results['ray x2'] / results['ray x1']:.2f}")
        print(f"ratio ray x1 / in-process: {results['ray x1'] / results['in-process']:.2f}")


if __name__ == "__main__":
    main()
