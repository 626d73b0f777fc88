"""Text embeddings and SDXL micro-conditioning, shared by the trainer and the sampler.

Micro-conditioning choice: SDXL is told the size of the image it draws through
`add_time_ids = (orig_h, orig_w, crop_top, crop_left, target_h, target_w)`. The UNet draws the
whole canvas, so we pass the canvas's true size in pixels: (R, 3R) for spatial concatenation of
three R x R images, (R, R) for channel concatenation, with no crop. Telling it "R x R" while it
draws an R x 3R canvas would contradict what it sees; using the canvas size keeps the
pretrained prior about wide images coherent. Sampler and trainer must agree: both call here.
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from typing import Optional, Sequence

import torch

from pipeline.device import is_cuda
from train.backbones import Components
from train.layout import ConcatMode, join, target_part


def time_ids(resolution: int, concat: ConcatMode, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    width = 3 * resolution if concat == "spatial" else resolution
    return _time_ids_row(resolution, width, torch.device(device), dtype).expand(batch, 6)


@functools.lru_cache(maxsize=32)
def _time_ids_row(resolution: int, width: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """Made once per (size, device, dtype): `torch.tensor(list, device=cuda)` is a blocking host
    copy, which in every UNet call made the host wait for the GPU to finish all queued work. A
    plain tensor (not an inference tensor, whatever mode the first caller runs in), read only."""
    with torch.inference_mode(False), torch.no_grad():
        return torch.tensor([resolution, width, 0, 0, resolution, width], dtype=dtype).to(device)


def _tokens(tokenizer, captions: Sequence[str], device: torch.device) -> torch.Tensor:
    ids = tokenizer(
        list(captions), padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    ).input_ids
    if is_cuda(device):  # pinned: the copy does not wait for the GPU's queue
        ids = ids.pin_memory()
    return ids.to(device, non_blocking=True)


@torch.no_grad()
def encode_text(comps: Components, captions: Sequence[str], device: torch.device) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """(prompt_embeds, pooled) as the family expects: SDXL concatenates the penultimate hidden
    states of both encoders and pools from the second; SD1.5 uses the last hidden state."""
    if comps.family == "sd15":
        return comps.text_encoder(_tokens(comps.tokenizer, captions, device))[0], None
    out1 = comps.text_encoder(_tokens(comps.tokenizer, captions, device), output_hidden_states=True)
    out2 = comps.text_encoder_2(_tokens(comps.tokenizer_2, captions, device), output_hidden_states=True)
    embeds = torch.cat([out1.hidden_states[-2], out2.hidden_states[-2]], dim=-1)
    return embeds, out2.text_embeds


class TextCache:
    """Caption -> (embeds, pooled) on the given device, least recently used first out, at most
    `max_entries` captions (`train.text_cache_size`): the encoders are frozen, so a repeated
    caption (the empty one of caption dropout, a set's shared caption) is encoded once, while a
    release with a unique caption per image (LLaVA, ~525k at paper scale, ~0.3 MB each for
    SDXL) cannot grow GPU memory without bound. 0 disables caching."""

    def __init__(self, comps: Components, device: torch.device, max_entries: int = 4096) -> None:
        self.comps, self.device, self.max_entries = comps, device, max_entries
        self._cache: OrderedDict[str, tuple[torch.Tensor, Optional[torch.Tensor]]] = OrderedDict()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._cache)

    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        missing = sorted({c for c in captions if c not in self._cache})
        self.misses += sum(c in missing for c in captions)
        self.hits += len(captions) - sum(c in missing for c in captions)
        fresh: dict[str, tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
        if missing:
            embeds, pooled = encode_text(self.comps, missing, self.device)
            # clones: a view would keep the whole batch's storage alive as long as one entry stays
            fresh = {c: (embeds[i].clone(), None if pooled is None else pooled[i].clone()) for i, c in enumerate(missing)}
        rows = [fresh[c] if c in fresh else self._cache[c] for c in captions]
        for c in dict.fromkeys(captions):  # mark used (most recent last), then admit the new ones
            if c in self._cache:
                self._cache.move_to_end(c)
            elif self.max_entries > 0:
                self._cache[c] = fresh[c]
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        embeds = torch.stack([r[0] for r in rows])
        pooled = None if self.comps.family == "sd15" else torch.stack([r[1] for r in rows])
        return embeds, pooled


def unet_kwargs(family: str, embeds: torch.Tensor, pooled: Optional[torch.Tensor], resolution: int,
                concat: ConcatMode) -> dict:
    """Keyword arguments of the UNet call for this family (`sdxl` adds micro-conditioning)."""
    kwargs = {"encoder_hidden_states": embeds}
    if family == "sdxl":
        ids = time_ids(resolution, concat, embeds.shape[0], embeds.device, embeds.dtype)
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled, "time_ids": ids}
    return kwargs


def predict_target(unet, family: str, source: torch.Tensor, driving: torch.Tensor, noisy_target: torch.Tensor,
                   t: torch.Tensor, embeds: torch.Tensor, pooled: Optional[torch.Tensor], resolution: int,
                   concat: ConcatMode) -> torch.Tensor:
    """The UNet's prediction for the target latent from [source | driving | noisy target]: the
    one place where trainer, validation grids and sampler build the UNet call, so they cannot
    drift apart (latents are cast to the UNet's dtype; under autocast that is a no-op)."""
    dtype = next(unet.parameters()).dtype  # unet may be a DDP wrapper, which has no .dtype
    x = join(source.to(dtype), driving.to(dtype), noisy_target.to(dtype), concat)
    kwargs = unet_kwargs(family, embeds.to(dtype), None if pooled is None else pooled.to(dtype), resolution, concat)
    return target_part(unet(x, t, **kwargs).sample, concat)
