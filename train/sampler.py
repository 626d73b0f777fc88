"""`load_sampler`: the one way the trained pipeline is loaded for inference.

`piq sample`, `piq evaluate` (eval/baselines/piq.py) and the photo tool all load the model here,
so they see the same dtype, speed levers and preprocessing.
"""
from __future__ import annotations

import torch

from pipeline.config.train import SampleParams
from train.model import resolve_dtype
from train.pipeline import PiQPerfectPipeline
from train.speed import enable_gpu_defaults, resolve_compile


def load_sampler(sp: SampleParams, device: str | None = None) -> PiQPerfectPipeline:
    """The trained pipeline on the accelerator in `sample.dtype` (fp32 on a CPU), with the speed
    levers of params applied (`sample.compile: auto` = whole-UNet compile with CUDA graphs on a
    GPU, nothing on a CPU)."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if torch.device(device).type == "cuda":
        enable_gpu_defaults()
    dtype = resolve_dtype(sp.dtype, device)
    pipe = PiQPerfectPipeline.from_pretrained(sp.model_dir, local_files_only=True, torch_dtype=dtype).to(device)
    on_gpu = torch.device(device).type == "cuda"
    compile_mode = resolve_compile(sp.compile, device, on_gpu="full")
    pipe.optimize(compile=compile_mode, fuse_qkv=sp.fuse_qkv, channels_last=sp.channels_last and on_gpu,
                  fp8=sp.fp8 and on_gpu)
    pipe.set_progress_bar_config(disable=True)
    return pipe
