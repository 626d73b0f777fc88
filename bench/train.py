"""Training throughput of the product at 576 px: `train.loop.train` (PiQModel.loss, Adam, the
loader on release-schema shards, effective batch 64), beside the UNet-only floor measured in
the same run, and the model FLOP utilisation.

    python -m bench.train                 # GPU: SDXL architecture, random weights
    python -m bench.train --tiny          # CPU smoke run of the same code (tiny model, 64 px)

End to end = what `piq train` does per optimizer step: decode and augment in DataLoader
workers, source / target latents from the `piq latents` cache (or all three encoded by the
frozen VAE when a configuration has no cache), the driving image encoded, cached text
embeddings, UNet forward + backward with fp32 master weights under bf16 autocast, Adam, with
gradient accumulation to the effective batch. The rate is the loop's own steady-state figure
(what the bar shows and metrics.json reports; the first step, with compilation, is printed
apart). The UNet-only floor is forward + backward (+ Adam per effective batch) of the very UNet
the run trained (compiled, with the checkpointing it chose) on random latents of that shape:
end-to-end / floor is what everything else costs. MFU = samples/s x FLOP per sample / the
H200's dense bf16 peak (989 TFLOP/s); FLOP per sample = 3 UNet forwards' worth (forward +
backward) of 6.38 TFLOP at 4 x 72 x 216, 4 with checkpointing (the forward is recomputed).
"""
from __future__ import annotations

import argparse
import dataclasses
import gc
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pipeline.device import device_name, is_cuda
from pipeline.config.data import DataParams
from pipeline.config.train import TrainParams


SDXL_FORWARD_TFLOP = 6.38  # one UNet forward at 4 x 72 x 216 (three 576 px latents side by side), FACTS.md
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4}  # dense bf16 tensor-core peak (SXM); MFU is relative to it


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    batch: int
    checkpointing: bool | str = "auto"
    compile: str = "regional"
    latents: bool = True
    fp8: bool = False
    channels_last: bool = False
    rng_device: str = "auto"
    compile_mode: str = "default"
    encode_ahead: bool = False


CONFIGS = [
    Config("shipped GPU defaults: latent cache, checkpointing auto, regional compile, b16", 16),
    Config("no latent cache (all three encoded per step), checkpointing auto, regional, b16", 16, latents=False),
    Config("latent cache, checkpointing auto, regional, driving encoded ahead on a side stream (encode_ahead), b16", 16,
           encode_ahead=True),
    Config("latent cache, checkpointing auto, regional, draws on the CPU (rng_device cpu), b16", 16, rng_device="cpu"),
    Config("latent cache, checkpointing on, regional, b16", 16, checkpointing=True),
    Config("latent cache, checkpointing auto, eager, b16", 16, compile="none"),
    Config("latent cache, checkpointing auto, full compile (one graph), b16", 16, compile="full"),
    Config("latent cache, checkpointing auto, regional, max-autotune, b16", 16, compile_mode="max-autotune-no-cudagraphs"),
    Config("latent cache, checkpointing auto, regional + fp8, b16", 16, fp8=True),
]


def build_model(tiny: bool, resolution: int):
    from train.backbones import tiny_components
    from train.model import PiQModel

    if tiny:
        comps = tiny_components("sdxl")
    else:
        from bench.sdxl import full_components

        with torch.device("cuda"):
            comps = full_components()
    return PiQModel(comps, "spatial", resolution)


def train_params(cfg: Config, tmp: Path, steps: int, effective: int, workers: int | None) -> TrainParams:
    return TrainParams(batch_size=cfg.batch, effective_batch=effective, max_steps=steps, lr=1e-5,
                       mixed_precision="bf16" if is_cuda() else "fp32",
                       gradient_checkpointing=cfg.checkpointing, compile=cfg.compile, fp8=cfg.fp8,
                       channels_last=cfg.channels_last, rng_device=cfg.rng_device, compile_mode=cfg.compile_mode,
                       encode_ahead=cfg.encode_ahead, checkpoint_every=10**9, keep_checkpoints=0, validate_every=10**9,
                       log_every=10**9, checkpoint_dir=str(tmp / "ckpt"), reports_dir=str(tmp / "reports"),
                       num_workers=workers)


def make_cache(args, shards: Path, data: DataParams, root: Path) -> str:
    """`piq latents`'s writer on the bench shards with the bench model's VAE (same seed)."""
    from pipeline.release.reader import resolve_shards
    from stages.latents import write_cache
    from train.latents import vae_fingerprint

    model = build_model(args.tiny, data.resolution)
    vae = model.comps.vae
    vae_hash = vae_fingerprint(vae)
    if is_cuda():
        vae.to(dtype=torch.bfloat16)
    t0 = time.perf_counter()
    manifest = write_cache(vae.eval(), vae_hash, resolve_shards(shards), data.resolution, root, batch=16)
    print(f"latent cache: {manifest['entries']} images x 2 mirrors in {time.perf_counter() - t0:.1f} s "
          f"(VAE hash {vae_hash[:12]}...)", flush=True)
    _free(model)
    return vae_hash


def _free(*objs) -> None:
    """Release GPU memory between configurations (the caller drops its own references)."""
    del objs
    gc.collect()
    if is_cuda():
        torch._dynamo.reset()  # compiled graphs hold the old model; the on-disk Inductor cache stays
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def end_to_end(cfg: Config, args, shards: Path, data: DataParams, cache: tuple[Path, str] | None):
    """The loop's own figures (`LoopResult.throughput`) for this configuration, and the model
    it trained (compiled, with the checkpointing it chose) for the floor."""
    from pipeline.release.reader import resolve_shards
    from train.data import make_train_loader
    from train.latents import open_cache
    from train.loop import make_accelerator, train

    with tempfile.TemporaryDirectory() as tmp:
        tp = train_params(cfg, Path(tmp), args.steps + 1, args.effective, args.workers)
        model = build_model(args.tiny, data.resolution)
        latents = open_cache(str(cache[0]), cache[1], data.resolution, resolve_shards(shards)) if cfg.latents else None
        loader, stream = make_train_loader(data, shards, cfg.batch, seed=0, num_workers=args.workers, latents=latents)
        accelerator = make_accelerator(tp)
        t0 = time.perf_counter()
        result = train(model, loader, stream, tp, 0, accelerator)
        out = {**result.throughput, "wall_s": time.perf_counter() - t0, "workers": loader.num_workers}
        model.unet = accelerator.unwrap_model(model.unet)
        accelerator.free_memory()  # drops the optimizer (its Adam state) and the wrapper
    del loader, stream, result, accelerator
    gc.collect()
    return out, model


def loader_rate(args, shards: Path, data: DataParams, cache: tuple[Path, str] | None, batch: int, n: int = 12) -> float:
    """samples/s of the DataLoader alone (decode, augment, cache reads), after its first batch."""
    from pipeline.release.reader import resolve_shards
    from train.data import make_train_loader
    from train.latents import open_cache

    latents = open_cache(str(cache[0]), cache[1], data.resolution, resolve_shards(shards)) if cache else None
    loader, _ = make_train_loader(data, shards, batch, seed=0, num_workers=args.workers, latents=latents)
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    for _ in range(n):
        next(it)
    return n * batch / (time.perf_counter() - t0)


def unet_floor(model, cfg: Config, args, resolution: int) -> float:
    """samples/s of forward + backward of the same (compiled) UNet alone on random inputs, Adam
    once per effective batch: the end-to-end run's model, with the checkpointing it chose."""
    device = device_name()
    unet = model.unet.train()
    opt = torch.optim.Adam(unet.parameters(), lr=1e-5, fused=device == "cuda")
    lat = resolution // 8 if not args.tiny else resolution // 4
    cfg_u = unet.config
    b, accum = cfg.batch, args.effective // cfg.batch
    x = torch.randn(b, 4, lat, 3 * lat, device=device)
    target = torch.randn(b, 4, lat, lat, device=device)
    kw = {"encoder_hidden_states": torch.randn(b, 77, cfg_u.cross_attention_dim, device=device),
          "added_cond_kwargs": {
              "text_embeds": torch.randn(b, cfg_u.projection_class_embeddings_input_dim - 6 * cfg_u.addition_time_embed_dim,
                                         device=device),
              "time_ids": torch.tensor([resolution, 3 * resolution, 0, 0, resolution, 3 * resolution], device=device,
                                       dtype=torch.float32).expand(b, 6)}}
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

    def step() -> None:
        for _ in range(accum):
            with autocast:
                out = unet(x, torch.randint(0, 1000, (b,), device=device), **kw).sample
                loss = F.mse_loss(out[..., 2 * lat:].float(), target)
            loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    step()
    sync()
    t0 = time.perf_counter()
    for _ in range(args.floor_steps):
        step()
    sync()
    return b * accum * args.floor_steps / (time.perf_counter() - t0)


def driving_encode_ms(model, cfg: Config, resolution: int, n: int = 5) -> float:
    """ms of one micro-step's driving-image encode alone (`batch` images through the run's frozen
    VAE, compiled and in the dtype the run used): the part of the step a latent cache cannot
    remove, since the driving face is augmented per step."""
    from train.latents import encode_moments

    device = model.device
    images = torch.rand(cfg.batch, 3, resolution, resolution, device=device) * 2 - 1
    sync = torch.cuda.synchronize if is_cuda(device) else (lambda: None)
    encode_moments(model.comps.vae, images, model.vae_chunk)  # warm-up (compiled in the run already)
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        encode_moments(model.comps.vae, images, model.vae_chunk)
    sync()
    return (time.perf_counter() - t0) / n * 1000


def mfu(rate: float, checkpointing: bool) -> float:
    if not is_cuda():
        return float("nan")
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in name), None)
    if peak is None:
        return float("nan")
    return rate * SDXL_FORWARD_TFLOP * (4 if checkpointing else 3) / peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--steps", type=int, default=4, help="timed optimizer steps per configuration (after 1 warm-up)")
    parser.add_argument("--floor-steps", type=int, default=1, help="timed optimizer steps of the UNet-only floor (after 1)")
    parser.add_argument("--effective", type=int, default=64, help="effective batch (accumulation = effective / batch)")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default: the product's)")
    parser.add_argument("--copies", type=int, default=4, help="repeat the 3-set bench split this often (more loader workers)")
    parser.add_argument("--only", nargs="*", help="substrings of configuration names to run")
    parser.add_argument("--budget-s", type=float, default=1e9,
                        help="start no further configuration once this many seconds have passed (the first always runs)")
    args = parser.parse_args()
    from bench.release_sample import make_release_shards, replicate_shards

    began = time.perf_counter()
    resolution = 64 if args.tiny else 576
    data = DataParams(resolution=resolution, pairs_per_set=64)
    if is_cuda():
        from train.speed import enable_gpu_defaults, enable_training_allocator

        enable_gpu_defaults()  # as `piq train` does (make_accelerator)
        enable_training_allocator()
    configs = [c for c in CONFIGS if not args.only or any(s in c.name for s in args.only)]
    if args.tiny:
        args.effective = 4
        configs = [dataclasses.replace(c, batch=2, compile="none", fp8=False) for c in configs[:2]]
    name = torch.cuda.get_device_name() if is_cuda() else "cpu"
    print(f"device {name}, torch {torch.__version__}, {'tiny model 64 px' if args.tiny else 'SDXL architecture, 576 px'}; "
          f"effective batch {args.effective}; {args.steps} timed steps after 1 warm-up", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        shards = make_release_shards(Path(tmp), image_size=128 if args.tiny else 1024, n_expressive=4, n_relit=5)
        replicate_shards(shards, args.copies)
        cache = (Path(tmp) / "latents", make_cache(args, shards, data, Path(tmp) / "latents"))
        for use in (None, cache):
            print(f"loader alone ({'cache' if use else 'no cache'}): "
                  f"{loader_rate(args, shards, data, use, 16 if not args.tiny else 2):.1f} samples/s", flush=True)
        ran = 0
        for cfg in configs:
            if ran and time.perf_counter() - began > args.budget_s:
                print(f"{cfg.name}: not run (bench budget of {args.budget_s:.0f} s spent)", flush=True)
                continue
            model = None
            try:
                e2e, model = end_to_end(cfg, args, shards, data, cache)
                ckpt = bool(e2e["gradient_checkpointing"])
                floor = unet_floor(model, cfg, args, resolution)
                encode = driving_encode_ms(model, cfg, resolution)
            except torch.OutOfMemoryError:
                print(f"{cfg.name}: out of memory", flush=True)
                model = None
                _free()
                continue
            except Exception as err:  # noqa: BLE001 - one lever failing (e.g. fp8 without torchao) must not stop the rest
                print(f"{cfg.name}: failed: {type(err).__name__}: {str(err)[:300]}", flush=True)
                model = None
                _free()
                continue
            model = None
            _free()
            ran += 1
            rate = e2e["samples_per_s"]
            print(f"{cfg.name}\n    end-to-end {rate:6.2f} samples/s  UNet-only {floor:6.2f}  ratio {rate / floor:.2f}  "
                  f"MFU {mfu(rate, ckpt):.1%} (floor {mfu(floor, ckpt):.1%})  checkpointing {'on' if ckpt else 'off'}  "
                  f"peak {e2e.get('peak_gpu_mem_gib', float('nan')):5.1f} GiB\n    first step {e2e['first_step_s']:.1f} s "
                  f"(compiling {e2e['compile_s']:.1f} s), {e2e['timed_steps']} timed steps in {e2e['steady_s']:.1f} s, "
                  f"{e2e['workers']} loader workers, latent cache {e2e['latent_cache_hits']} hits / "
                  f"{e2e['latent_cache_misses']} misses, {e2e['driving_encoded_ahead']} driving batches encoded ahead; "
                  f"{e2e['gradient_checkpointing_reason']}\n    driving images' "
                  f"VAE encode alone {encode:.1f} ms per micro-step of {cfg.batch}, {encode / (1000 * cfg.batch / rate):.1%} "
                  f"of the end-to-end micro-step ({1000 * cfg.batch / rate:.0f} ms; UNet-only {1000 * cfg.batch / floor:.0f} ms)",
                  flush=True)


if __name__ == "__main__":
    main()
