"""Training throughput of the product at 576 px: `train.loop.train` (PiQModel.loss, Adam, the
loader on release-schema shards), beside the UNet-only floor measured in the same run.

    python -m bench.train                 # GPU: SDXL architecture, random weights
    python -m bench.train --tiny          # CPU smoke run of the same code (tiny model, 64 px)

End to end = what `piq train` does per step: decode and augment the pair in DataLoader workers,
encode source / driving / target with the frozen VAE (bf16, in chunks), cached text embeddings,
UNet forward + backward with fp32 master weights under bf16 autocast, Adam. The UNet-only floor
is forward + backward + Adam of the same UNet on random latents of the same shape, with the same
levers: the ratio end-to-end / floor is the overhead of everything else.
"""
from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from pipeline.config.data import DataParams
from pipeline.config.train import TrainParams


@dataclasses.dataclass(frozen=True)
class Config:
    name: str
    batch: int
    checkpointing: bool = True
    compile: str = "none"
    fp8: bool = False
    channels_last: bool = False


CONFIGS = [
    Config("eager, b16, checkpointing", 16),
    Config("regional compile, b16, checkpointing", 16, compile="regional"),
    Config("regional compile + fp8, b16, checkpointing", 16, compile="regional", fp8=True),
    Config("regional compile + fp8, b8, no checkpointing", 8, checkpointing=False, compile="regional", fp8=True),
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


def train_params(cfg: Config, tmp: Path, steps: int) -> TrainParams:
    return TrainParams(batch_size=cfg.batch, effective_batch=cfg.batch, max_steps=steps, lr=1e-5,
                       mixed_precision="bf16" if torch.cuda.is_available() else "fp32",
                       gradient_checkpointing=cfg.checkpointing, compile=cfg.compile, fp8=cfg.fp8,
                       channels_last=cfg.channels_last, checkpoint_every=10**9, keep_checkpoints=0, validate_every=10**9,
                       log_every=10**9, checkpoint_dir=str(tmp / "ckpt"), reports_dir=str(tmp / "reports"))


def end_to_end(cfg: Config, args, shards: Path, data: DataParams) -> dict:
    """samples/s of `train.loop.train` (first step excluded: compilation and warm-up)."""
    from train.data import make_train_loader
    from train.loop import make_accelerator, train

    with tempfile.TemporaryDirectory() as tmp:
        tp = train_params(cfg, Path(tmp), args.steps + 1)
        model = build_model(args.tiny, data.resolution)
        loader, stream = make_train_loader(data, shards, cfg.batch, seed=0, num_workers=args.workers)
        t0 = time.perf_counter()
        result = train(model, loader, stream, tp, 0, make_accelerator(tp))
        out = {**result.throughput, "wall_s": time.perf_counter() - t0}
    del model
    return out


def unet_floor(cfg: Config, args, resolution: int) -> float:
    """samples/s of forward + backward + Adam of the UNet alone, same levers, random inputs."""
    from train.loop import prepare_for_speed

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = build_model(args.tiny, resolution)
    model.place(device)
    if cfg.checkpointing:
        model.unet.enable_gradient_checkpointing()
    tp = train_params(cfg, Path("."), 1)
    prepare_for_speed(model, tp, torch.device(device))
    unet = model.unet.train()
    opt = torch.optim.Adam(unet.parameters(), lr=1e-5, fused=device == "cuda")
    lat = resolution // 8 if not args.tiny else resolution // 4
    cfg_u = unet.config
    b = cfg.batch
    x = torch.randn(b, 4, lat, 3 * lat, device=device)
    target = torch.randn(b, 4, lat, lat, device=device)
    kw = {"encoder_hidden_states": torch.randn(b, 77, cfg_u.cross_attention_dim, device=device),
          "added_cond_kwargs": {"text_embeds": torch.randn(b, cfg_u.projection_class_embeddings_input_dim - 6 * cfg_u.addition_time_embed_dim, device=device),
                                "time_ids": torch.tensor([resolution, 3 * resolution, 0, 0, resolution, 3 * resolution], device=device, dtype=torch.float32).expand(b, 6)}}
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda")

    def step() -> None:
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
    for _ in range(args.steps):
        step()
    sync()
    rate = b * args.steps / (time.perf_counter() - t0)
    del model, unet, opt
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per configuration (after 1 warm-up)")
    parser.add_argument("--workers", type=int, default=3, help="DataLoader workers of the end-to-end runs")
    parser.add_argument("--only", nargs="*", help="substrings of configuration names to run")
    args = parser.parse_args()
    from bench.release_sample import make_release_shards

    resolution = 64 if args.tiny else 576
    data = DataParams(resolution=resolution, pairs_per_set=64)
    if torch.cuda.is_available():
        from train.speed import enable_gpu_defaults

        enable_gpu_defaults()  # as `piq train` does (make_accelerator)
    configs = [c for c in CONFIGS if not args.only or any(s in c.name for s in args.only)]
    if args.tiny:
        configs = [dataclasses.replace(c, batch=2, compile="none", fp8=False) for c in configs[:1]]
    name = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    print(f"device {name}, torch {torch.__version__}, {'tiny model 64 px' if args.tiny else 'SDXL architecture, 576 px'}; "
          f"{args.steps} timed steps after 1 warm-up, {args.workers} loader workers")
    with tempfile.TemporaryDirectory() as tmp:
        shards = make_release_shards(Path(tmp), image_size=128 if args.tiny else 1024, n_expressive=4, n_relit=5)
        for cfg in configs:
            try:
                floor = unet_floor(cfg, args, resolution)
                torch.cuda.empty_cache() if torch.cuda.is_available() else None
                e2e = end_to_end(cfg, args, shards, data)
            except torch.OutOfMemoryError:
                print(f"{cfg.name:48s} out of memory")
                torch.cuda.empty_cache()
                continue
            except Exception as err:  # noqa: BLE001 - one lever failing (e.g. fp8 without torchao) must not stop the rest
                print(f"{cfg.name:48s} failed: {type(err).__name__}: {str(err)[:200]}")
                continue
            torch.cuda.empty_cache() if torch.cuda.is_available() else None
            rate = e2e["samples_per_s"]
            print(f"{cfg.name:48s} end-to-end {rate:6.2f} samples/s  UNet-only {floor:6.2f}  ratio {rate / floor:.2f}  "
                  f"peak {e2e.get('peak_gpu_mem_gib', float('nan')):5.1f} GiB  (run incl. compile {e2e['wall_s']:.0f} s)",
                  flush=True)


if __name__ == "__main__":
    main()
