"""Parameters of the model, the training loop (paper 4.1, table 2) and the sampler (A.1)."""
from __future__ import annotations

import dataclasses
from typing import Literal, Optional, Union

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
    # auto: off if a measured trial step without it (plus Adam's state) fits in memory_headroom of the GPU
    gradient_checkpointing: Union[bool, Literal["auto"]] = runtime("auto")
    memory_headroom: float = runtime(0.95)  # share of GPU memory `auto` lets the predicted peak take
    frozen_dtype: Literal["auto", "bf16", "fp16", "fp32"] = "auto"  # VAE + text encoders; auto: bf16 on GPU, fp32 on CPU
    vae_chunk: int = runtime(16)  # images per VAE encode call (3 per sample: source, driving, target)
    compile: Literal["auto", "none", "regional", "full"] = runtime("auto")  # auto: regional on GPU, none on CPU
    # torch.compile's mode for what `compile` compiles: default, or max-autotune-no-cudagraphs (kernel choices
    # benchmarked while compiling: a longer first step)
    compile_mode: Literal["default", "max-autotune-no-cudagraphs"] = runtime("default")
    channels_last: bool = runtime(False)
    fp8: bool = False  # torchao Float8Linear for large linears (Hopper); fp32 master weights kept
    ema_decay: Optional[float] = None
    checkpoint_every: int = runtime(500)
    keep_checkpoints: int = runtime(2)
    log_every: int = runtime(10)
    validate_every: int = runtime(500)
    num_workers: Optional[int] = runtime(None)  # DataLoader workers; null = up to 8 on a GPU machine, 0 on a CPU
    # not run-time: cached latents are drawn from stored fp16 moments in one draw (train/latents.py)
    latents_dir: Optional[str] = None  # `piq latents` cache of source/target latents; null = encode all three per step
    text_cache_size: int = runtime(4096)  # captions whose embeddings stay on the GPU (least recently used out); 0 = none
    # where the loop draws noise, timesteps and posterior samples: auto = the training device (no host sync per
    # micro-step on a GPU), cpu = a CPU generator (the draws of runs before issue 18); decides a GPU run's weights
    rng_device: Literal["auto", "cpu"] = "auto"
    # the next micro-step's driving images encoded on a side CUDA stream during this one's UNet (train/encode_ahead.py)
    encode_ahead: bool = runtime(False)

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

@dataclasses.dataclass(frozen=True)
class SampleParams:
    """Paper A.1: 50 denoising steps, guidance 1.5; negative branch = empty prompt + zeroed driving.
    The speed levers (train/step_plan.py, train/deep_cache.py) default to the paper's output,
    except DeepCache N=2: its deviation from the paper's output was measured small (PSNR 53.8 dB
    on the SDXL architecture, 68.7 dB on the trained tiny model; docs/BENCHMARKS.md) for 1.75x
    the speed; `deep_cache_interval: 1` is the paper's exact sampling. `mode: fast` samples the
    distilled few-step student of `piq distill` instead."""

    model_dir: str = "models/piq"
    out_dir: str = runtime("reports/samples")
    shards: tuple[str, ...] = ("data/shards/test_id", "data/shards/test_ood")  # test pairs (missing splits skipped)
    num_inference_steps: int = 50
    guidance_scale: float = 1.5
    num_pairs: int = 4
    batch_size: int = runtime(4)
    seed: int = 0
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"  # whole pipeline on a GPU; always fp32 on a CPU
    compile: Literal["auto", "none", "regional", "full"] = runtime("auto")  # auto: full + CUDA graphs on GPU, none on CPU
    compile_cache_dir: Optional[str] = runtime(".cache/torchinductor")  # inductor's on-disk cache; null: torch's default
    fuse_qkv: bool = runtime(True)
    channels_last: bool = runtime(True)
    fp8: bool = False  # torchao per-row FP8 linears (Hopper)
    guidance_interval: Optional[tuple[float, float]] = None  # CFG only for sigma in (lo, hi]; null = every step
    guidance_every: int = 1  # CFG on every k-th step only
    deep_cache_interval: int = 2  # DeepCache: whole UNet every N-th step, shallow pass between; 1 = off (paper)
    mode: Literal["paper", "fast"] = "paper"  # fast: the distilled student (`piq distill`)
    fast_model_dir: str = "models/piq-fast"
    fast_steps: int = 4

    def validate(self) -> None:
        if self.num_inference_steps < 1 or self.num_pairs < 1 or self.batch_size < 1 or self.fast_steps < 1:
            raise ValueError("sample.num_inference_steps, num_pairs, batch_size, fast_steps must be >= 1")
        if self.guidance_every < 1 or self.deep_cache_interval < 1:
            raise ValueError("sample.guidance_every and sample.deep_cache_interval must be >= 1")
        if self.guidance_interval is not None and not 0 <= self.guidance_interval[0] < self.guidance_interval[1]:
            raise ValueError("sample.guidance_interval must be [lo, hi] with 0 <= lo < hi (or null)")

    @property
    def levers(self) -> dict:
        """The step-plan keyword arguments of `PiQPerfectPipeline.__call__` for `mode: paper`."""
        return {"num_inference_steps": self.num_inference_steps, "guidance_scale": self.guidance_scale,
                "guidance_interval": self.guidance_interval, "guidance_every": self.guidance_every,
                "deep_cache_interval": self.deep_cache_interval}


@dataclasses.dataclass(frozen=True)
class DistillParams:
    """`piq distill`: a few-step student of the trained model (phased trajectory distillation,
    guidance folded in), trained with the training loop on the training shards."""

    teacher_dir: str = "models/piq"
    out_dir: str = "models/piq-fast"
    reports_dir: str = "reports/distill"
    checkpoint_dir: str = "checkpoints/distill"
    student_steps: int = 4  # DDIM steps of the student (trailing spacing)
    teacher_steps: int = 48  # teacher DDIM steps per trajectory (a multiple of student_steps)
    guidance_scale: float = 1.5  # folded into the student: the teacher's guided trajectory is the target
    batch_size: int = 4
    effective_batch: int = 8
    max_steps: int = 20
    lr: float = 1.0e-4
    mixed_precision: Literal["fp32", "bf16", "fp16"] = "bf16"
    gradient_checkpointing: bool = False
    compile: Literal["auto", "none", "regional", "full"] = "auto"

    def validate(self) -> None:
        if self.student_steps < 1 or self.teacher_steps % self.student_steps:
            raise ValueError("distill.teacher_steps must be a positive multiple of distill.student_steps")
        if self.batch_size < 1 or self.effective_batch < self.batch_size or self.max_steps < 1:
            raise ValueError("distill.batch_size >= 1, <= effective_batch; max_steps >= 1")
