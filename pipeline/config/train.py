"""Parameters of the model, the training loop (paper 4.1, table 2) and the sampler (A.1)."""
from __future__ import annotations

import dataclasses
from typing import Literal, Optional

from pipeline.config.keys import runtime


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """backbone: `sdxl` (paper) or `sd15` (ablation). With `pretrained_dir` null, a tiny random
    model of that family is built in code (CPU runs, tests, ablation plumbing); with a folder in
    the diffusers layout (unet/, vae/, text_encoder/, tokenizer/, [text_encoder_2/,
    tokenizer_2/], scheduler/) the real weights are loaded from it, offline."""

    backbone: Literal["sdxl", "sd15"] = "sdxl"
    pretrained_dir: Optional[str] = None
    concat: Literal["spatial", "channel"] = "spatial"
    out_dir: str = runtime("models/piq")
    reports_dir: str = runtime("reports/train")
    checkpoint_dir: str = runtime("checkpoints/train")
    batch_size: int = 4
    effective_batch: int = 64
    max_steps: int = runtime(25000)
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    mixed_precision: Literal["fp32", "bf16", "fp16"] = "bf16"  # not "no": YAML 1.1 reads it as false
    gradient_checkpointing: bool = True
    frozen_dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # VAE + text encoders; auto: bf16 on GPU, fp32 on CPU
    vae_chunk: int = runtime(16)  # images per VAE encode call (3 per sample: source, driving, target)
    compile: Literal["auto", "none", "regional", "full"] = runtime("auto")  # auto: regional on GPU, none on CPU
    channels_last: bool = runtime(False)
    fp8: bool = False  # torchao Float8Linear for large linears (Hopper); fp32 master weights kept
    ema_decay: Optional[float] = None
    checkpoint_every: int = runtime(500)
    keep_checkpoints: int = runtime(2)
    log_every: int = runtime(10)
    validate_every: int = runtime(500)
    num_workers: Optional[int] = runtime(None)  # DataLoader workers; null = up to 8 on a GPU machine, 0 on a CPU

    def validate(self) -> None:
        if self.batch_size < 1 or self.effective_batch < self.batch_size:
            raise ValueError("train.batch_size must be >= 1 and <= train.effective_batch")
        if self.max_steps < 1 or self.checkpoint_every < 1 or self.log_every < 1 or self.validate_every < 1:
            raise ValueError("train.max_steps, checkpoint_every, log_every, validate_every must be >= 1")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ValueError("train.ema_decay must be in (0, 1) or null")
        if self.keep_checkpoints < 0:
            raise ValueError("train.keep_checkpoints must be >= 0 (0 = write none)")
        if self.vae_chunk < 1:
            raise ValueError("train.vae_chunk must be >= 1")


@dataclasses.dataclass(frozen=True)
class SampleParams:
    """Paper A.1: 50 denoising steps, guidance 1.5; negative branch = empty prompt + zeroed driving."""

    model_dir: str = "models/piq"
    out_dir: str = runtime("reports/samples")
    num_inference_steps: int = 50
    guidance_scale: float = 1.5
    num_pairs: int = 4
    batch_size: int = runtime(4)
    seed: int = 0
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"  # whole pipeline on a GPU; always fp32 on a CPU
    compile: Literal["auto", "none", "regional", "full"] = runtime("auto")  # auto: full + CUDA graphs on GPU, none on CPU
    fuse_qkv: bool = runtime(True)
    channels_last: bool = runtime(True)
    fp8: bool = False  # torchao per-row FP8 linears (Hopper)

    def validate(self) -> None:
        if self.num_inference_steps < 1 or self.num_pairs < 1 or self.batch_size < 1:
            raise ValueError("sample.num_inference_steps, num_pairs, batch_size must be >= 1")
