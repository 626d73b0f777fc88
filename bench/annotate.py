"""Benchmark of the annotation stages: offline backends per CPU core, model backends on a GPU.

    python bench/annotate.py [--images 6] [--size 1024] [--workers 0 2] [--skip-relight]
    python bench/annotate.py --device cuda [--what llava segformer] [--llava-batches 1 16 64]
                             [--seg-batches 1 32 64 128] [--modes eager static] [--compile] [--stage-images 256]
    python bench/annotate.py --tiny      (the GPU code on a CPU with tiny models: a smoke test, not a figure)

CPU: images/s of the offline backends through the stages' entry points (`stages.caption.run`,
`stages.segment.run`, and `bench.relight.bench_cpu` for relight's `sh`), the runner in-process
with one thread (= one core), then on N Ray actors, on 1024 px portraits in the layout of
data/animate. mediapipe's own graph threads are not limited by the runner.

GPU (`--device cuda`): random weights of the real sizes in bf16 (weights do not change the cost):
- LLaVA-1.5-7B (CLIP ViT-L/14 at 336 px, 576 image tokens + the paper's instruction, Llama-2-7B
  sized decoder), greedy, exactly `--new-tokens` (128) new tokens (EOS disabled), through
  `LlavaCaptioner.generate` (1024 px images in, preprocessing on the GPU included), batch 1 vs
  batched, `eager` (dynamic KV cache) and `static` (static KV cache; transformers compiles the
  decode step on CUDA; the first call per batch size compiles and is excluded).
- SegFormer-B5 (depths 3/6/40/3, widths 64/128/320/512, 768-d decoder, 19 labels) at 512 px
  through `SegformerParser.parse` (1024 px uint8 images in, label maps at 1024 px out, on the
  host), batch 1 vs batched; plus the bare forward at 512 px for comparison with FACTS.md;
  `--compile` repeats it with `segment.compile` (torch.compile of the forward); `--stage-images N`
  then runs N 1024 px JPEGs through `piq segment`'s own path (folder saved and loaded, PNGs
  written, one in-process worker: JPEG decode and PNG encode on one CPU core included).
Aims per H100 (issue 10): captions >= 50/s, SegFormer >= 500 images/s; ratios are printed.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

CAPTION_AIM, SEGFORMER_AIM = 50.0, 500.0


def bench_cpu(images: int = 6, size: int = 1024, workers: Sequence[int] = (0,), relight: bool = True) -> dict[str, float]:
    """images/s (and per core) of the offline caption, segment (and relight) backends."""
    from pipeline.config.caption import CaptionParams
    from pipeline.config.runner import RunnerParams
    from pipeline.config.segment import SegmentParams
    from pipeline.engine.runner import init_ray
    from stages import caption, segment
    from tests.fixtures.relight_inputs import make_fake_annotate_inputs

    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        faces = (("astronaut", False), ("hopper", False), ("astronaut", True))
        per_face = max(1, -(-images // len(faces)))
        animate, _ = make_fake_annotate_inputs(work / "in", size=size, faces=faces, images=per_face, with_labels=False)
        n = len(faces) * per_face
        print(f"offline annotation input: {n} images of {size} px")
        ray_started = False
        for count in workers:
            if count and not ray_started:
                t0 = time.perf_counter()
                init_ray(RunnerParams(workers=max(workers)))
                ray_started = True
                print(f"ray start-up (excluded): {time.perf_counter() - t0:.1f} s")
            runner = RunnerParams(workers=count, threads_per_worker=1, progress=False)
            label = "in-process" if count == 0 else f"ray x{count}"
            for stage, module, params in (
                ("caption attributes", caption, CaptionParams(input_dir=str(animate), out_dir=str(work / f"cap{count}"), preview=False)),
                ("segment mesh", segment, SegmentParams(input_dir=str(animate), out_dir=str(work / f"seg{count}"), preview=False)),
            ):
                start = time.perf_counter()
                stats = module.run(params, runner, seed=0).stats
                seconds = time.perf_counter() - start
                results[f"{stage} {label}"] = n / seconds
                print(f"{stage:>18} {label:>10}: {seconds:6.1f} s  {n / seconds:6.2f} images/s  "
                      f"{n / seconds / max(count, 1):6.2f} images/s/core  ({stats['done']} done, {stats['rejected']} refused)")
    if relight:
        from bench.relight import bench_cpu as relight_cpu

        for label, rate in relight_cpu(images, 5, size, workers).items():
            results[f"relight sh {label}"] = rate
    return results


def _sync(cuda: bool) -> None:
    if cuda:
        import torch

        torch.cuda.synchronize()


def _portraits(n: int, size: int) -> list[np.ndarray]:
    """The two public-domain portraits at `size` px, alternating (random pixels where the
    packages that ship them are missing, as on a bare GPU image: the cost is the same)."""
    try:
        from tests.fixtures.relight_inputs import portrait_crop

        base = [portrait_crop("astronaut", size)[0], portrait_crop("hopper", size)[0]]
    except (ImportError, FileNotFoundError, OSError):
        rng = np.random.default_rng(0)
        base = [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(2)]
    return [base[i % 2] for i in range(n)]


def bench_llava(batches: Sequence[int], modes: Sequence[str], new_tokens: int, size: int, repeats: int, tiny: bool) -> dict:
    import torch

    from pipeline.backends.captioners.llava import LlavaCaptioner
    from tests.fixtures.llava_random import build_random_llava
    from pipeline.config.caption import CaptionParams

    cuda = not tiny
    t0 = time.perf_counter()
    model, processor = build_random_llava(full=cuda, dtype=torch.bfloat16 if cuda else None)
    if cuda:
        model = model.to("cuda")
    model.generation_config.eos_token_id = None  # always exactly `new_tokens` tokens
    n_params = sum(p.numel() for p in model.parameters()) / 1e9
    where = torch.cuda.get_device_name() if cuda else "CPU (--tiny: a tiny model, figures mean nothing)"
    print(f"LLaVA-1.5 architecture, random weights, {model.dtype}, {n_params:.2f} B parameters on {where} "
          f"(built in {time.perf_counter() - t0:.0f} s); {new_tokens} new tokens, {size} px images in")
    rates: dict[tuple[str, int], float] = {}
    for mode in modes:
        for batch in batches:
            params = CaptionParams(backend="llava", llava_dir="(in memory)", batch_size=batch, max_new_tokens=new_tokens,
                                   static_cache=mode == "static", device="cuda" if cuda else "cpu")
            captioner = LlavaCaptioner.from_model(params, model, processor)
            images = _portraits(batch, size)
            try:
                if cuda:
                    torch.cuda.reset_peak_memory_stats()
                t0 = time.perf_counter()
                captioner.generate(images)  # warm-up (static: compiles the decode step for this shape)
                _sync(cuda)
                warm = time.perf_counter() - t0
                start = time.perf_counter()
                for _ in range(repeats):
                    captioner.generate(images)
                _sync(cuda)
            except Exception as err:  # noqa: BLE001 - report and go on with the other configurations
                print(f"llava {mode:>6} batch {batch:>3}: failed: {type(err).__name__}: {str(err)[:300]}")
                if cuda:
                    torch.cuda.empty_cache()
                continue
            seconds = (time.perf_counter() - start) / repeats
            fell_back = ("  (static cache FAILED, fell back to dynamic: see the warning)"
                         if mode == "static" and not captioner._static else "")
            rates[(mode, batch)] = batch / seconds
            peak = f"  peak {torch.cuda.max_memory_allocated() / 2**30:5.1f} GiB" if cuda else ""
            print(f"llava {mode:>6} batch {batch:>3}: {seconds:7.2f} s/call  {batch / seconds:7.2f} captions/s  "
                  f"{batch * new_tokens / seconds:8.0f} tokens/s  (first call {warm:.1f} s){peak}{fell_back}")
            if cuda:
                torch._dynamo.reset()
    for mode in modes:
        if (mode, 1) in rates and len(batches) > 1:
            best = max((b for b in batches if (mode, b) in rates), key=lambda b: rates[(mode, b)])
            print(f"ratio llava {mode} batch {best} / batch 1: {rates[(mode, best)] / rates[(mode, 1)]:.2f}")
    if not rates:
        return rates
    best = max(rates, key=rates.get)
    print(f"ratio best llava ({best[0]}, batch {best[1]}) / aim {CAPTION_AIM:.0f} captions/s: {rates[best] / CAPTION_AIM:.2f}")
    return rates


def random_segformer_b5(tiny: bool):
    from transformers import SegformerConfig, SegformerForSemanticSegmentation, SegformerImageProcessor

    labels = ["background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
              "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"]
    if tiny:
        config = SegformerConfig(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
                                 decoder_hidden_size=16, num_labels=19)
        size = 64
    else:
        config = SegformerConfig(depths=[3, 6, 40, 3], hidden_sizes=[64, 128, 320, 512], num_attention_heads=[1, 2, 5, 8],
                                 decoder_hidden_size=768, num_labels=19)
        size = 512
    config.id2label = dict(enumerate(labels))
    config.label2id = {n: i for i, n in enumerate(labels)}
    return SegformerForSemanticSegmentation(config).eval(), SegformerImageProcessor(size={"height": size, "width": size})


def bench_segformer(batches: Sequence[int], size: int, repeats: int, tiny: bool, compile_too: bool = False,
                    stage_images: int = 0) -> dict:
    """images/s of `SegformerParser.parse` per batch size (eager, then compiled with --compile),
    the bare forward beside it, then `stage_images` images through `piq segment`'s path."""
    import torch

    from pipeline.config.segment import SegmentParams
    from pipeline.backends.parsers.segformer import SegformerParser

    cuda = not tiny
    model, image_processor = random_segformer_b5(tiny)
    if cuda:
        model = model.to("cuda", torch.bfloat16)
        torch.backends.cudnn.benchmark = True
    n_params = sum(p.numel() for p in model.parameters()) / 1e6
    res = image_processor.size["height"]
    where = torch.cuda.get_device_name() if cuda else "CPU (--tiny: a tiny model, figures mean nothing)"
    print(f"SegFormer-B5 architecture, random weights, {model.dtype}, {n_params:.1f} M parameters, {res} px, on {where}")
    rates: dict[tuple[str, int], float] = {}
    bare: dict[tuple[str, int], float] = {}
    for mode in ("eager", "compiled") if compile_too else ("eager",):
        params = SegmentParams(backend="segformer", segformer_dir="(in memory)", compile=mode == "compiled")
        parser = SegformerParser.from_model(params, model, image_processor)  # compiled: wraps model.forward
        for batch in batches:
            images = _portraits(batch, size)
            try:
                parser.parse(images)  # warm-up (compiled: compiles this shape)
                _sync(cuda)
                start = time.perf_counter()
                for _ in range(repeats):
                    maps = parser.parse(images)
                _sync(cuda)
                seconds = (time.perf_counter() - start) / repeats
                x = torch.randn(batch, 3, res, res, device=model.device, dtype=model.dtype)
                with torch.inference_mode():
                    model(pixel_values=x)
                    _sync(cuda)
                    start = time.perf_counter()
                    for _ in range(repeats):
                        model(pixel_values=x)
                    _sync(cuda)
                fwd = (time.perf_counter() - start) / repeats
            except Exception as err:  # noqa: BLE001 - report and go on with the other batch sizes
                print(f"segformer {mode} batch {batch:>3}: failed: {type(err).__name__}: {str(err)[:300]}")
                if cuda:
                    torch.cuda.empty_cache()
                continue
            rates[(mode, batch)], bare[(mode, batch)] = batch / seconds, batch / fwd
            print(f"segformer {mode:>8} batch {batch:>3}: parse {seconds * 1000:8.1f} ms  {batch / seconds:7.1f} images/s "
                  f"({size} px in, {maps[0].shape[0]} px maps out)   bare forward {batch / fwd:7.1f} images/s")
    if not rates:
        return rates
    for mode in ("eager", "compiled"):
        mine = {b: r for (m, b), r in rates.items() if m == mode}
        if 1 in mine and len(mine) > 1:
            best = max(mine, key=mine.get)
            print(f"ratio segformer {mode} batch {best} / batch 1: {mine[best] / mine[1]:.2f}")
    best = max(rates, key=rates.get)
    print(f"ratio best segformer parse ({best[0]}, batch {best[1]}) / aim {SEGFORMER_AIM:.0f} images/s: "
          f"{rates[best] / SEGFORMER_AIM:.2f}; best bare forward {max(bare.values()) / SEGFORMER_AIM:.2f}")
    if stage_images:
        bench_segment_stage(model, image_processor, stage_images, size, max(b for _, b in rates), cuda)
    return rates


def bench_segment_stage(model, image_processor, images: int, size: int, batch: int, cuda: bool) -> float:
    """The product path: the model saved as a folder, loaded by `piq segment`'s code, JPEGs read
    and PNG label maps written by the runner in-process (one actor's worth of CPU)."""
    from pipeline.config.runner import RunnerParams
    from pipeline.config.segment import SegmentParams
    from stages.segment import run
    from tests.fixtures.relight_inputs import make_fake_annotate_inputs

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model.save_pretrained(work / "segformer")
        image_processor.save_pretrained(work / "segformer")
        faces = (("astronaut", False), ("hopper", False))
        per_face = max(1, -(-images // len(faces)))
        animate, _ = make_fake_annotate_inputs(work / "in", size=size, faces=faces, images=per_face, with_labels=False)
        n = len(faces) * per_face
        params = SegmentParams(input_dir=str(animate), out_dir=str(work / "out"), backend="segformer",
                               segformer_dir=str(work / "segformer"), batch_size=batch,
                               device="cuda" if cuda else "cpu", preview=False)
        start = time.perf_counter()
        stats = run(params, RunnerParams(workers=0, progress=False), seed=0).stats
        seconds = time.perf_counter() - start
        print(f"segment segformer stage (piq segment path, in-process, batch {batch}, model load included): {n} images "
              f"in {seconds:.1f} s = {n / seconds:.1f} images/s ({stats['done']} done, {stats['rejected']} refused)")
        return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--tiny", action="store_true", help="the GPU benchmark's code on a CPU with tiny models (smoke test)")
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--size", type=int, default=1024, help="side of the input images (data/animate: 1024)")
    parser.add_argument("--workers", type=int, nargs="+", default=[0], help="CPU: 0 = in-process; N = N Ray actors")
    parser.add_argument("--skip-relight", action="store_true")
    parser.add_argument("--what", nargs="+", default=["llava", "segformer"], choices=["llava", "segformer"])
    parser.add_argument("--llava-batches", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--modes", nargs="+", default=["eager", "static"], choices=["eager", "static"])
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--seg-batches", type=int, nargs="+", default=[1, 32, 64, 128])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--compile", action="store_true", help="GPU: also time SegFormer with torch.compile")
    parser.add_argument("--stage-images", type=int, default=0, help="GPU: images through `piq segment`'s path (0 = skip)")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if args.device == "cuda" or args.tiny:
        if args.device == "cuda":
            import torch

            torch.backends.cuda.matmul.allow_tf32 = True
        if "segformer" in args.what:
            bench_segformer(args.seg_batches if not args.tiny else [1, 2], args.size, args.repeats, args.tiny,
                            args.compile and not args.tiny, args.stage_images)
        if "llava" in args.what:
            bench_llava(args.llava_batches if not args.tiny else [1, 2], args.modes, args.new_tokens if not args.tiny else 4,
                        args.size, args.repeats if not args.tiny else 1, args.tiny)
    else:
        bench_cpu(args.images, args.size, args.workers, relight=not args.skip_relight)


if __name__ == "__main__":
    main()
