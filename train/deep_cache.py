"""DeepCache (Ma et al., CVPR 2024) for diffusers' `UNet2DConditionModel`, without retraining.

Adjacent denoising steps change the UNet's deep features little. A *full* pass runs the whole
UNet and keeps the feature that enters the last up block (the output of every deeper block);
a *shallow* pass runs only the time embedding, `conv_in`, the first down block and the last up
block (full resolution, no attention in SDXL's layout), reusing that feature. For SDXL at
576 px the shallow pass is a small fraction of the full one.

The two passes are separate functions so each can be compiled into its own CUDA graph
(`compile_passes`). `forward` has the UNet's call signature and returns an object with
`.sample`, so `train.conditioning.predict_target` calls it exactly as it calls the UNet; which
pass runs is set with `use_full` before each step.
"""
from __future__ import annotations

import dataclasses
from typing import Optional

import torch
from diffusers import UNet2DConditionModel


@dataclasses.dataclass
class _Output:
    sample: torch.Tensor


class DeepCacheUNet(torch.nn.Module):
    """Wraps a UNet; `use_full = True` runs (and caches), `False` reuses the cache."""

    def __init__(self, unet: UNet2DConditionModel) -> None:
        super().__init__()
        if unet.config.addition_embed_type not in (None, "text_time") or unet.config.class_embed_type is not None:
            raise ValueError("deep cache supports the SD1.5 / SDXL UNet layouts (no class or image embeddings)")
        self.unet = unet
        self.use_full = True
        self.cache: Optional[torch.Tensor] = None
        self._full, self._shallow = self.full_pass, self.shallow_pass
        self.compiled = False

    @property
    def config(self):
        return self.unet.config

    @property
    def dtype(self) -> torch.dtype:
        return self.unet.dtype

    def compile_passes(self, cuda_graphs: bool) -> None:
        """One compiled graph (and, on CUDA, one CUDA graph per batch size) for each pass."""
        mode = "reduce-overhead" if cuda_graphs else None
        self._full = torch.compile(self.full_pass, fullgraph=True, dynamic=False, mode=mode)
        self._shallow = torch.compile(self.shallow_pass, fullgraph=True, dynamic=False, mode=mode)
        self.compiled = True

    def _embed(self, sample, timestep, encoder_hidden_states, added_cond_kwargs):
        unet = self.unet
        emb = unet.time_embedding(unet.get_time_embed(sample=sample, timestep=timestep), None)
        aug = unet.get_aug_embed(emb=emb, encoder_hidden_states=encoder_hidden_states,
                                 added_cond_kwargs=added_cond_kwargs or {})
        emb = emb + aug if aug is not None else emb
        if unet.time_embed_act is not None:
            emb = unet.time_embed_act(emb)
        return emb

    def _block(self, block, sample, emb, ehs, **kw):
        if getattr(block, "has_cross_attention", False):
            return block(hidden_states=sample, temb=emb, encoder_hidden_states=ehs, **kw)
        return block(hidden_states=sample, temb=emb, **kw)

    def _head(self, sample: torch.Tensor) -> torch.Tensor:
        unet = self.unet
        if unet.conv_norm_out is not None:
            sample = unet.conv_act(unet.conv_norm_out(sample))
        return unet.conv_out(sample)

    def _last_up(self, deep, skips, emb, ehs):
        return self._head(self._block(self.unet.up_blocks[-1], deep, emb, ehs, res_hidden_states_tuple=skips))

    def full_pass(self, sample, timestep, encoder_hidden_states, added_cond_kwargs=None):
        """The UNet's forward (as diffusers computes it, without adapters / ControlNet), also
        returning the input of the last up block."""
        unet = self.unet
        emb = self._embed(sample, timestep, encoder_hidden_states, added_cond_kwargs)
        up_factor = 2 ** unet.num_upsamplers
        forward_size = any(d % up_factor for d in sample.shape[-2:])
        sample = unet.conv_in(sample)
        skips: tuple = (sample,)
        for block in unet.down_blocks:
            sample, res = self._block(block, sample, emb, encoder_hidden_states)
            skips += res
        if unet.mid_block is not None:
            if getattr(unet.mid_block, "has_cross_attention", False):
                sample = unet.mid_block(sample, emb, encoder_hidden_states=encoder_hidden_states)
            else:
                sample = unet.mid_block(sample, emb)
        for block in unet.up_blocks[:-1]:
            n = len(block.resnets)
            res, skips = skips[-n:], skips[:-n]
            size = skips[-1].shape[2:] if forward_size else None
            sample = self._block(block, sample, emb, encoder_hidden_states, res_hidden_states_tuple=res,
                                 upsample_size=size)
        return self._last_up(sample, skips, emb, encoder_hidden_states), sample

    def shallow_pass(self, sample, timestep, encoder_hidden_states, deep, added_cond_kwargs=None):
        """conv_in, the first down block's skip features and the last up block on `deep`."""
        unet = self.unet
        emb = self._embed(sample, timestep, encoder_hidden_states, added_cond_kwargs)
        sample = unet.conv_in(sample)
        _, res = self._block(unet.down_blocks[0], sample, emb, encoder_hidden_states)
        skips = ((sample,) + res)[: len(unet.up_blocks[-1].resnets)]
        return self._last_up(deep, skips, emb, encoder_hidden_states)

    def forward(self, sample, timestep, encoder_hidden_states, added_cond_kwargs=None) -> _Output:
        if self.use_full or self.cache is None:
            out, deep = self._full(sample, timestep, encoder_hidden_states, added_cond_kwargs)
            self.cache = deep.clone()  # a CUDA graph's output buffer is overwritten by its next replay
            return _Output(out)
        deep, batch = self.cache, sample.shape[0]
        if deep.shape[0] != batch:  # CFG batch <-> conditional batch: the conditional half is the last
            deep = deep[-batch:] if deep.shape[0] > batch else torch.cat([deep] * (batch // deep.shape[0]))
        return _Output(self._shallow(sample, timestep, encoder_hidden_states, deep, added_cond_kwargs))
