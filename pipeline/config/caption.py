"""Parameters of the `caption` stage (paper 3.2 and B.3: LLaVA-1.5 captions of every image)."""
from __future__ import annotations

import dataclasses

from pipeline.config.keys import runtime

# Paper B.3, verbatim.
PAPER_INSTRUCTION = (
    "Describe this real-world image and its style as a long detailed caption. Include details about the "
    "person's facial expression and describe face attributes. Ignore the background and clothing information "
    "for the caption."
)


@dataclasses.dataclass(frozen=True)
class CaptionParams:
    """Which captioner runs; see params.yaml (paper values beside each key) and docs/DATA.md."""

    input_dir: str = "data/animate"
    out_dir: str = runtime("data/caption")
    backend: str = "attributes"             # attributes (offline) | llava (paper)
    # --- llava backend --------------------------------------------------------------------------
    llava_dir: str | None = None            # folder of a LLaVA-1.5 checkpoint in transformers' layout
    instruction: str = PAPER_INSTRUCTION
    max_new_tokens: int = 128
    batch_size: int = runtime(64)           # images per generate call
    static_cache: bool = runtime(True)      # static KV cache; on CUDA transformers then compiles the decode step
    device: str = runtime("auto")           # auto | cuda | cpu
    dtype: str = "bf16"                     # bf16 | fp16 | fp32 (fp32 on a CPU)
    num_gpus: float = runtime(1.0)          # GPUs per Ray actor (model backends)
    workers: int | None = runtime(None)     # Ray actors; null = every core (attributes) or one per GPU share
    preview: bool = runtime(True)           # out_dir/preview.jpg: one face's images with their captions

    def validate(self) -> None:
        if self.backend not in ("attributes", "llava"):
            raise ValueError("caption.backend must be attributes or llava")
        if self.backend == "llava" and not self.llava_dir:
            raise ValueError("caption.llava_dir must name the model folder when backend is llava")
        if self.max_new_tokens < 1 or self.batch_size < 1:
            raise ValueError("caption.max_new_tokens and caption.batch_size must be >= 1")
        if not self.instruction.strip():
            raise ValueError("caption.instruction must not be empty")
        if self.device not in ("auto", "cuda", "cpu") or self.dtype not in ("bf16", "fp16", "fp32"):
            raise ValueError("caption.device must be auto/cuda/cpu and caption.dtype bf16/fp16/fp32")
        if self.num_gpus < 0 or (self.workers is not None and self.workers < 0):
            raise ValueError("caption.num_gpus and caption.workers must be >= 0")
