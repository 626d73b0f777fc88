"""The SDXL base UNet architecture (random weights) and PiQPerfect-shaped inputs, for benchmarks.

Config values are SDXL base 1.0's `unet/config.json`, written out so no download is needed.
A 576 px image is a 72 x 72 latent; spatial concatenation makes the UNet input 4 x 72 x 216.
"""
from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel

SDXL_UNET = dict(
    sample_size=128, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
    transformer_layers_per_block=(1, 2, 10), attention_head_dim=(5, 10, 20), cross_attention_dim=2048,
    use_linear_projection=True, addition_embed_type="text_time", addition_time_embed_dim=256,
    projection_class_embeddings_input_dim=2816, norm_num_groups=32,
)
TINY_UNET = dict(
    sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
    attention_head_dim=(2, 4), cross_attention_dim=32, use_linear_projection=True, addition_embed_type="text_time",
    addition_time_embed_dim=8, projection_class_embeddings_input_dim=6 * 8 + 16, norm_num_groups=8,
)


def build_unet(tiny: bool, device: str, dtype: torch.dtype) -> UNet2DConditionModel:
    return UNet2DConditionModel(**(TINY_UNET if tiny else SDXL_UNET)).to(device=device, dtype=dtype)


def inputs(unet: UNet2DConditionModel, batch: int, latent: int, device: str, dtype: torch.dtype) -> dict:
    """UNet inputs for `batch` canvases of 3 latents side by side, with SDXL conditioning."""
    cfg = unet.config
    pooled = cfg.projection_class_embeddings_input_dim - 6 * cfg.addition_time_embed_dim
    res = latent * 8
    return {
        "sample": torch.randn(batch, 4, latent, 3 * latent, device=device, dtype=dtype),
        "timestep": torch.randint(0, 1000, (batch,), device=device),
        "encoder_hidden_states": torch.randn(batch, 77, cfg.cross_attention_dim, device=device, dtype=dtype),
        "added_cond_kwargs": {
            "text_embeds": torch.randn(batch, pooled, device=device, dtype=dtype),
            "time_ids": torch.tensor([res, 3 * res, 0, 0, res, 3 * res], device=device, dtype=dtype).expand(batch, 6),
        },
    }
