"""LLaVA-1.5 captions (paper 3.2, B.3): `LlavaForConditionalGeneration` and its processor from a
local folder (e.g. llava-hf/llava-1.5-7b-hf, downloaded by the user), the paper's instruction,
greedy decoding, bf16 on a GPU.

What the shared prompt buys: every image gets the same instruction and (at the processor's fixed
336 px) the same number of image tokens, so the prompt is tokenized once (at setup) and tiled
over the batch: no per-batch tokenization, no padding, no attention-mask holes, positions
identical across the batch. Pixels are preprocessed on the model's device
(`pipeline.engine.annotate.pixel_batch`, the image processor's own sizes and statistics). That lets generation run with
a *static* KV cache of a fixed shape (`cache_implementation="static"`, `caption.static_cache`); on
CUDA, transformers then compiles the one-token decode step (torch.compile, CUDA graphs,
`generation_config.compile_config`), which removes the per-layer launch overhead that dominates
eager decoding. The compiled graph is reused by every batch of the same size; a last, smaller
batch is padded up to `batch_size` with copies of its first image so no recompile happens.
(The image comes right after "USER: ", so the shared text prefix is too short for a prefix cache
to pay; a serving engine such as vLLM does not install beside our torch.)

The folder as published (llava-hf/llava-1.5-7b-hf): config.json, model-0000N-of-00003.safetensors
with model.safetensors.index.json (key names of the original conversion: `language_model.model.*`,
`vision_tower.vision_model.*`, `multi_modal_projector.*`, which transformers renames at load),
tokenizer files, preprocessor_config.json. A missing shard, a renamed key or a wrong shape is a
`WeightsFormatError` naming the file, found on the CPU before the model reaches the GPU.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np

from pipeline.engine.annotate import pixel_batch
from pipeline.device import is_cuda, resolve_device
from pipeline.backends.captioners.base import Caption, Captioner
from pipeline.weight_files.hf_folders import TRANSFORMERS_FORMATS, inspect_folder, load_checked, read_config
from pipeline.rejection import Reject
from pipeline.weight_files.checks import ComponentCheck, WeightsFormatError, failed_check, offline_check, register_check

# LLaVA-1.5's conversation format, for processors saved without a chat template.
FALLBACK_TEMPLATE = "USER: <image>\n{instruction} ASSISTANT:"

ACCEPTED = (TRANSFORMERS_FORMATS[0] + " of a LlavaForConditionalGeneration (LLaVA-1.5), with its tokenizer "
            "(tokenizer.json or tokenizer.model) and preprocessor_config.json (or a processor_config.json holding the "
            "image processor, as transformers 5 writes it)",)
RELEASE = ("huggingface.co/llava-hf/llava-1.5-7b-hf: config.json, generation_config.json, model-0000*-of-00003.safetensors, "
           "model.safetensors.index.json, tokenizer.json, tokenizer.model, tokenizer_config.json, special_tokens_map.json, "
           "preprocessor_config.json (+ chat_template.json) into caption.llava_dir/")
LAYOUT = """caption.llava_dir/                     (huggingface.co/llava-hf/llava-1.5-7b-hf)
  config.json, generation_config.json   LlavaForConditionalGeneration
  model-00001-of-00003.safetensors ...  + model.safetensors.index.json (or one model.safetensors; fp16 variant accepted)
  tokenizer.json | tokenizer.model, tokenizer_config.json, special_tokens_map.json
  preprocessor_config.json              CLIPImageProcessor (336 px); chat_template.json optional"""


def check_processor_files(folder: Path) -> None:
    """The processor's files are there (the model files are checked by `pipeline.weight_files.hf_folders`)."""
    if not any((folder / name).is_file() for name in ("tokenizer.json", "tokenizer.model")):
        raise WeightsFormatError(folder, ACCEPTED, "no tokenizer.json or tokenizer.model")
    if (folder / "processor_config.json").is_file():  # transformers 5 writes the image processor in there
        if "image_processor" in read_config(folder, ACCEPTED, "processor_config.json"):
            return
    read_config(folder, ACCEPTED, "preprocessor_config.json")


class LlavaCaptioner(Captioner):
    name = "llava"
    worker_local = ("_model", "_processor", "_prompt", "_ids")

    def __init__(self, params) -> None:
        self.params = params
        self._model = None
        self._processor = None
        self._prompt: str | None = None
        self._ids = None
        self._static = bool(params.static_cache)

    def setup(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoProcessor, LlavaForConditionalGeneration

        p = self.params
        folder = Path(p.llava_dir)
        read_config(folder, ACCEPTED)
        check_processor_files(folder)
        device, dtype = resolve_device(p.device, p.dtype)
        model = load_checked(LlavaForConditionalGeneration, folder, ACCEPTED, dtype=dtype)  # on the CPU
        processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
        self._attach(model.to(device).eval(), processor)

    @classmethod
    def from_model(cls, params, model, processor) -> "LlavaCaptioner":
        """A captioner around a model already in memory (bench/annotate.py's random 7B model)."""
        captioner = cls(params)
        captioner._attach(model, processor)
        return captioner

    def _attach(self, model, processor) -> None:
        self._model, self._processor = model, processor
        self._prompt = self.build_prompt(processor, self.params.instruction)
        self._encode_prompt()

    def _encode_prompt(self) -> None:
        """Token ids of the prompt with its image tokens expanded, computed once (all images
        share them)."""
        ip = self._processor.image_processor
        crop = getattr(ip, "crop_size", None) or ip.size
        side = int(crop["height"] if isinstance(crop, dict) else getattr(crop, "height", None) or 336)
        dummy = np.zeros((side, side, 3), np.uint8)
        enc = self._processor(images=[dummy], text=[self._prompt], return_tensors="pt")
        self._ids = enc["input_ids"].to(self._model.device)

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
        if self._static and is_cuda(model.device) and n < p.batch_size:
            batch += [images[0]] * (p.batch_size - n)  # one shape for the compiled decode step
        with torch.inference_mode():
            pixels = pixel_batch(batch, self._processor.image_processor, model.device, model.dtype)
            ids = self._ids.expand(len(batch), -1)
            inputs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=pixels,
                          do_sample=False, max_new_tokens=p.max_new_tokens)
            if self._static:
                try:
                    out = model.generate(**inputs, cache_implementation="static")
                except (RuntimeError, TypeError, ValueError, AssertionError) as err:
                    if isinstance(err, torch.OutOfMemoryError):
                        raise
                    # a transformers / torch pair whose compiled static path breaks for this
                    # model: say so once and keep captioning with the dynamic cache
                    warnings.warn(f"caption.static_cache: generation failed ({type(err).__name__}: {err}); "
                                  "using the dynamic KV cache from now on", RuntimeWarning, stacklevel=2)
                    self._static = False
            if not self._static:
                out = model.generate(**inputs)
        new = out[:n, ids.shape[1] :]
        return [t.strip() for t in self._processor.batch_decode(new, skip_special_tokens=True)]

    def caption(self, images: Sequence[np.ndarray], seeds: Sequence[int]) -> list[Caption | Reject]:
        texts = self.generate(images)
        return [Caption(t) if t else Reject("empty_caption", "the model generated no text") for t in texts]


@register_check("caption.llava", layout=LAYOUT)
def check(params) -> list[ComponentCheck]:
    """`piq models check`: the LLaVA folder when `caption.backend` is llava."""
    p = params.caption
    if p.backend != "llava":
        return [offline_check("caption.llava", p.backend, "words for the measured expression, pose, gaze and light")]
    from transformers import LlavaForConditionalGeneration

    try:
        check_processor_files(Path(p.llava_dir))
        found = inspect_folder(p.llava_dir, LlavaForConditionalGeneration, ACCEPTED)
    except WeightsFormatError as exc:
        return [failed_check("caption.llava", "llava", p.llava_dir, exc, RELEASE)]
    return [ComponentCheck("caption.llava", "llava", p.llava_dir, True, found)]
