"""`load_sampler`: the one way the trained pipeline is loaded for inference.

`piq sample`, `piq evaluate` (eval/baselines/piq.py) and the photo tool all load the model here
and call it with `sampling_kwargs`, so they see the same dtype, speed levers and mode:
`sample.mode: paper` is the trained model with the paper's 50 guided steps (and the step-plan
levers of params); `fast` is the distilled student of `piq distill` (few steps, no guidance).
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from pipeline.config.train import SampleParams
from pipeline.device import device_name, is_cuda, resolve_dtype
from train.piq_pipeline import PiQPerfectPipeline
from train.speed import enable_gpu_defaults, resolve_compile


def use_compile_cache(folder: str | None) -> None:
    """Point inductor's on-disk cache (FX graphs, AOT autograd, Triton kernels) at `folder`,
    so a second run loads compiled code instead of compiling again. An explicit
    TORCHINDUCTOR_CACHE_DIR in the environment wins."""
    if folder and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
        Path(folder).mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(folder).resolve())


def model_folder(sp: SampleParams) -> str:
    return sp.fast_model_dir if sp.mode == "fast" else sp.model_dir


def is_pipeline_folder(folder: str | Path) -> bool:
    """Whether `folder` holds a saved `PiQPerfectPipeline` (its model_index.json)."""
    return (Path(folder) / "model_index.json").is_file()


def sampling_kwargs(sp: SampleParams) -> dict:
    """`PiQPerfectPipeline.__call__` keyword arguments of the mode (steps, guidance, levers)."""
    if sp.mode == "fast":
        return {"num_inference_steps": sp.fast_steps, "guidance_scale": 1.0}
    return sp.levers


def load_sampler(sp: SampleParams, device: str | None = None) -> PiQPerfectPipeline:
    """The trained pipeline of `sample.mode` on the accelerator in `sample.dtype` (fp32 on a
    CPU), with the speed levers of params applied (`sample.compile: auto` = whole-UNet compile
    with CUDA graphs on a GPU, nothing on a CPU; with `deep_cache_interval > 1` the full and the
    shallow pass are compiled as two graphs)."""
    device = device_name(device)
    folder = model_folder(sp)
    if not is_pipeline_folder(folder):
        hint = "piq distill" if sp.mode == "fast" else "piq train"
        raise FileNotFoundError(f"sample.mode {sp.mode}: no trained pipeline at {folder} (run `{hint}`)")
    on_gpu = is_cuda(device)
    if on_gpu:
        enable_gpu_defaults()
    use_compile_cache(sp.compile_cache_dir)
    dtype = resolve_dtype(sp.dtype, device)
    pipe = PiQPerfectPipeline.from_pretrained(folder, local_files_only=True, torch_dtype=dtype).to(device)
    compile_mode = resolve_compile(sp.compile, device, on_gpu="full")
    pipe.optimize(compile=compile_mode, fuse_qkv=sp.fuse_qkv, channels_last=sp.channels_last and on_gpu,
                  fp8=sp.fp8 and on_gpu, deep_cache=sp.mode == "paper" and sp.deep_cache_interval > 1)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def load_replacer(model_dir: str | Path, device: str | None = None, sample: SampleParams | None = None) -> PiQPerfectPipeline:
    """The trained pipeline of `model_dir` for replacing faces in uint8 crops
    (`PiQPerfectPipeline.replace_crops`): the photo tool's and the evaluation's one way to
    load the model, by `load_sampler` with `sample`'s dtype and speed levers (default
    `SampleParams()`)."""
    return load_sampler(dataclasses.replace(sample or SampleParams(), model_dir=str(model_dir)), device)
