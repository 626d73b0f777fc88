"""Speed levers for the UNet, each a params switch (docs/BENCHMARKS.md gives their effect).

- `compile`: `regional` compiles each repeated block (transformer blocks, ResNet blocks) on its
  own: the graphs are small and shared by every instance of a block shape, so compiling takes
  tens of seconds instead of minutes, and gradient checkpointing keeps working around them.
  `full` compiles the whole UNet as one graph (best for sampling, with CUDA graphs).
- `channels_last`: NHWC memory layout for the convolutions.
- `fuse_qkv`: one matmul for attention's q, k and v (inference only: training would update the
  fused copy and leave the exported q/k/v weights stale).
- `fp8`: FP8 matmuls on Hopper through torchao (training: Float8Linear with dynamic scaling and
  fp32 master weights; inference: per-row FP8 weights and activations). Only large linear layers
  are converted; small ones lose more to the scaling than they gain.
"""
from __future__ import annotations

import math
from typing import Literal, Optional

import torch

from pipeline.device import is_cuda

CompileMode = Literal["auto", "none", "regional", "full"]
FP8_MIN_FEATURES = 640  # linear layers narrower than this (SDXL's smallest attention width) stay bf16


def resolve_compile(mode: CompileMode, device: torch.device | str, on_gpu: str = "regional") -> str:
    """`auto` = `on_gpu` on CUDA (regional for training, full for sampling), none on a CPU
    (compiling the tiny CPU model costs more than it saves)."""
    if mode == "auto":
        return on_gpu if is_cuda(device) else "none"
    return mode


def repeated_blocks(unet: torch.nn.Module) -> list[torch.nn.Module]:
    """The UNet's repeated building blocks: transformer blocks and ResNet blocks."""
    from diffusers.models.attention import BasicTransformerBlock
    from diffusers.models.resnet import ResnetBlock2D

    return [m for m in unet.modules() if isinstance(m, (BasicTransformerBlock, ResnetBlock2D))]


def compile_unet(unet: torch.nn.Module, mode: str, *, cuda_graphs: bool = False,
                 inductor_mode: Optional[str] = None) -> None:
    """Compile in place (`nn.Module.compile`), so state-dict keys, `save_pretrained` and the
    module type stay as they are. `inductor_mode` is torch.compile's `mode` (None = its
    default; `max-autotune-no-cudagraphs` benchmarks kernel choices for each matmul and
    reduction while compiling: longer compiles, possibly faster steps)."""
    if mode == "none":
        return
    import torch._dynamo

    # every block shape is its own graph: SDXL has ~20 distinct (block, shape) pairs
    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    if mode == "regional":
        for block in repeated_blocks(unet):
            block.compile(fullgraph=True, dynamic=False, mode=inductor_mode)
    elif mode == "full":
        unet.compile(fullgraph=True, dynamic=False, mode="reduce-overhead" if cuda_graphs else inductor_mode)
    else:
        raise ValueError(f"unknown compile mode {mode!r} (auto | none | regional | full)")


def enable_training_allocator() -> None:
    """Expandable allocator segments for training (less fragmentation: a step that fits by the
    allocated bytes `gradient_checkpointing: auto` measures also fits by the reserved ones),
    unless PYTORCH_CUDA_ALLOC_CONF says otherwise. Not for the sampler's CUDA graphs."""
    import os

    if "PYTORCH_CUDA_ALLOC_CONF" in os.environ or "PYTORCH_ALLOC_CONF" in os.environ:
        return
    setter = getattr(torch._C, "_accelerator_setAllocatorSettings", None) or torch.cuda.memory._set_allocator_settings
    try:
        setter("expandable_segments:True")
    except (AttributeError, RuntimeError):  # pragma: no cover - older torch
        pass


def enable_gpu_defaults() -> None:
    """cuDNN autotuning (fixed shapes: every step has the same convolutions) and TF32 for any
    fp32 matmul left outside autocast."""
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True


def _fp8_filter(module: torch.nn.Module, name: str) -> bool:
    if not isinstance(module, torch.nn.Linear):
        return False
    dims = (module.in_features, module.out_features)
    return min(dims) >= FP8_MIN_FEATURES and all(d % 16 == 0 for d in dims)


def _torchao():
    try:
        import torchao  # noqa: F401
    except ImportError as err:  # pragma: no cover - depends on the install
        raise RuntimeError("fp8: true needs torchao (pip install torchao) and a Hopper-class GPU") from err


def enable_fp8_training(unet: torch.nn.Module) -> int:
    """Swap large nn.Linear layers for torchao's Float8Linear (dynamic tensor-wise scaling, fp32
    master weights kept). Returns how many layers were converted."""
    _torchao()
    from torchao.float8 import convert_to_float8_training

    before = sum(isinstance(m, torch.nn.Linear) for m in unet.modules())
    convert_to_float8_training(unet, module_filter_fn=_fp8_filter)
    return before - sum(type(m) is torch.nn.Linear for m in unet.modules())


def enable_fp8_inference(unet: torch.nn.Module) -> None:
    """Per-row FP8 weights and dynamically quantised activations for large linear layers."""
    _torchao()
    from torchao.quantization import Float8DynamicActivationFloat8WeightConfig, PerRow, quantize_

    quantize_(unet, Float8DynamicActivationFloat8WeightConfig(granularity=PerRow()), filter_fn=_fp8_filter)


def compile_seconds() -> float:
    """Seconds this process has spent compiling so far (TorchDynamo tracing + Inductor, the
    forward graphs and the backward graphs AOTAutograd compiles at the first backward), from
    torch's own compile-time counters; 0 when nothing was compiled."""
    try:
        from torch._dynamo.utils import compilation_time_metrics
    except ImportError:  # pragma: no cover - depends on the torch version
        return math.nan
    total = sum(compilation_time_metrics.get("_compile.compile_inner", []))
    backward = [k for k in compilation_time_metrics if "bw_compiler" in k]
    return total + sum(sum(compilation_time_metrics[k]) for k in backward)
