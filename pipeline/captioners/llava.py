"""LLaVA-1.5 captions (paper 3.2, B.3): `LlavaForConditionalGeneration` and its processor from a
local folder (e.g. llava-hf/llava-1.5-7b-hf, downloaded by the user), the paper's instruction,
greedy decoding, bf16 on a GPU.

What the shared prompt buys: every image gets the same instruction and (at the processor's fixed
336 px) the same number of image tokens, so all sequences of a batch have one length: no padding,
no attention mask holes, and positions identical across the batch. That lets generation run with
a *static* KV cache of a fixed shape (`cache_implementation="static"`, `caption.static_cache`); on
CUDA, transformers then compiles the one-token decode step (torch.compile, CUDA graphs,
`generation_config.compile_config`), which removes the per-layer launch overhead that dominates
eager decoding. The compiled graph is reused by every batch of the same size; a last, smaller
batch is padded up to `batch_size` with copies of its first image so no recompile happens.
(The image comes right after "USER: ", so the shared text prefix is too short for a prefix cache
to pay; a serving engine such as vLLM does not install beside our torch.)
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.annotate import resolve_device
from pipeline.captioners.base import Caption, Captioner
from pipeline.stage import Reject

# LLaVA-1.5's conversation format, for processors saved without a chat template.
FALLBACK_TEMPLATE = "USER: <image>\n{instruction} ASSISTANT:"


class LlavaCaptioner(Captioner):
    name = "llava"

    def __init__(self, params) -> None:
        self.params = params
        self._model = None
        self._processor = None
        self._prompt: str | None = None

    def __getstate__(self) -> dict:
        return {"params": self.params, "_model": None, "_processor": None, "_prompt": None}

    def setup(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        p = self.params
        folder = Path(p.llava_dir)
        if not (folder / "config.json").is_file():
            raise FileNotFoundError(f"caption.llava_dir {folder} has no config.json (a LLaVA folder)")
        device, dtype = resolve_device(p.device, p.dtype)
        model = LlavaForConditionalGeneration.from_pretrained(folder, local_files_only=True, dtype=dtype)
        self._model = model.to(device).eval()
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        processor.tokenizer.padding_side = "left"  # generation appends on the right
        if processor.tokenizer.pad_token is None:
            processor.tokenizer.pad_token = processor.tokenizer.eos_token or processor.tokenizer.unk_token
        self._processor = processor
        self._prompt = self.build_prompt(processor, p.instruction)

    @staticmethod
    def build_prompt(processor, instruction: str) -> str:
        """The instruction in the checkpoint's own chat format (LLaVA-1.5's when it has none)."""
        if getattr(processor, "chat_template", None):
            conversation = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]
            return processor.apply_chat_template(conversation, add_generation_prompt=True)
        return FALLBACK_TEMPLATE.format(instruction=instruction)

    @property
    def prompt(self) -> str:
        self.setup()
        return self._prompt

    def generate(self, images: Sequence[np.ndarray]) -> list[str]:
        """Greedy captions of a batch (the raw generated text, stripped)."""
        import torch

        self.setup()
        p, model = self.params, self._model
        n = len(images)
        batch = list(images)
        if p.static_cache and model.device.type == "cuda" and n < p.batch_size:
            batch += [images[0]] * (p.batch_size - n)  # one shape for the compiled decode step
        inputs = self._processor(images=batch, text=[self._prompt] * len(batch), return_tensors="pt", padding=True)
        inputs = {k: v.to(model.device) for k, v in inputs.items()}
        inputs["pixel_values"] = inputs["pixel_values"].to(model.dtype)
        kwargs = {"cache_implementation": "static"} if p.static_cache else {}
        with torch.inference_mode():
            out = model.generate(**inputs, do_sample=False, max_new_tokens=p.max_new_tokens, **kwargs)
        new = out[:n, inputs["input_ids"].shape[1] :]
        return [t.strip() for t in self._processor.batch_decode(new, skip_special_tokens=True)]

    def caption(self, images: Sequence[np.ndarray], seeds: Sequence[int]) -> list[Caption | Reject]:
        texts = self.generate(images)
        return [Caption(t) if t else Reject("empty_caption", "the model generated no text") for t in texts]
