"""Parameters of the model, the training loop (paper 4.1, table 2) and the sampler (A.1)."""
from __future__ import annotations

import dataclasses
from typing import Literal, Optional, Union


@dataclasses.dataclass(frozen=True)
class TrainParams:
    """backbone: `sdxl` (paper) or `sd15` (ablation). With `pretrained_dir` null, a tiny random
    model of that family is built in code (CPU runs, tests, ablation plumbing); with a folder in
    the diffusers layout (unet/, vae/, text_encoder/, tokenizer/, [text_encoder_2/,
    tokenizer_2/], scheduler/) the real weights are loaded from it, offline."""

    backbone: Literal["sdxl", "sd15"] = "sdxl"
    pretrained_dir: Optional[str] = None
    concat: Literal["spatial", "channel"] = "spatial"
    out_dir: str = "models/piq"
    reports_dir: str = "reports/train"
    checkpoint_dir: str = "checkpoints/train"
    batch_size: int = 4
    effective_batch: int = 64
    max_steps: int = 25000
    lr: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.0
    mixed_precision: Literal["fp32", "bf16", "fp16"] = "bf16"  # not "no": YAML 1.1 reads it as false
    # auto: off if a measured trial step without it (plus Adam's state) fits in memory_headroom of the GPU
    gradient_checkpointing: Union[bool, Literal["auto"]] = "auto"
    memory_headroom: float = 0.95  # share of GPU memory `auto` lets the predicted peak take
    frozen_dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # VAE + text encoders; auto: bf16 on GPU, fp32 on CPU
    vae_chunk: int = 16  # images per VAE encode call (3 per sample: source, driving, target)
    compile: Literal["auto", "none", "regional", "full"] = "auto"  # auto: regional on GPU, none on CPU
    channels_last: bool = False
    fp8: bool = False  # torchao Float8Linear for large linears (Hopper); fp32 master weights kept
    ema_decay: Optional[float] = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    log_every: int = 10
    validate_every: int = 500
    num_workers: Optional[int] = None  # DataLoader workers; null = up to 8 on a GPU machine, 0 on a CPU
    latents_dir: Optional[str] = None  # `piq latents` cache of source/target latents; null = encode all three per step
    text_cache_size: int = 4096  # captions whose embeddings stay on the GPU (least recently used out); 0 = none

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
        if not 0.1 <= self.memory_headroom <= 1.0:
            raise ValueError("train.memory_headroom must be in [0.1, 1]")
        if self.text_cache_size < 0:
            raise ValueError("train.text_cache_size must be >= 0 (0 = no cache)")


# Train params that change how fast a run goes, how it is logged or how long it lasts, not what
# its weights are: left out of the resume fingerprint (train.loop.config_fingerprint). Every
# other key decides the output. Gradient checkpointing recomputes the same activations and the
# text cache returns the same embeddings, so both are run-time levers; `latents_dir` is not:
# cached latents are drawn from stored fp16 moments in one draw (train/latents.py).
TRAIN_RUNTIME_KEYS = frozenset({
    "max_steps", "checkpoint_every", "keep_checkpoints", "log_every", "validate_every", "out_dir", "reports_dir",
    "checkpoint_dir", "num_workers", "vae_chunk", "compile", "channels_last", "gradient_checkpointing",
    "memory_headroom", "text_cache_size",
})


@dataclasses.dataclass(frozen=True)
class SampleParams:
    """Paper A.1: 50 denoising steps, guidance 1.5; negative branch = empty prompt + zeroed driving."""

    model_dir: str = "models/piq"
    out_dir: str = "reports/samples"
    num_inference_steps: int = 50
    guidance_scale: float = 1.5
    num_pairs: int = 4
    batch_size: int = 4
    seed: int = 0
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"  # whole pipeline on a GPU; always fp32 on a CPU
    compile: Literal["auto", "none", "regional", "full"] = "auto"  # auto: full + CUDA graphs on GPU, none on CPU
    fuse_qkv: bool = True
    channels_last: bool = True
    fp8: bool = False  # torchao per-row FP8 linears (Hopper)

    def validate(self) -> None:
        if self.num_inference_steps < 1 or self.num_pairs < 1 or self.batch_size < 1:
            raise ValueError("sample.num_inference_steps, num_pairs, batch_size must be >= 1")
