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


def full_components(family: str = "sdxl", seed: int = 0, dtype: torch.dtype = torch.float32):
    """The whole SDXL base architecture with random weights (UNet, SDXL VAE, CLIP ViT-L and
    OpenCLIP bigG text encoders, Euler-compatible DDPM scheduler), as `train.backbones.Components`.
    The tokenizers are the byte-level ones of the tiny models with SDXL's 77-token length (no
    BPE vocabulary ships offline); their ids fit the real 49,408-entry embedding tables."""
    from diffusers import AutoencoderKL, DDPMScheduler
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from train.backbones import Components, _byte_vocab, tiny_tokenizer

    if family != "sdxl":
        raise ValueError("only the SDXL architecture is written out here")
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512), layers_per_block=2,
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4, norm_num_groups=32,
        sample_size=1024, scaling_factor=0.13025,
    )
    ids = dict(vocab_size=49408, max_position_embeddings=77, bos_token_id=len(_byte_vocab()) - 2,
               eos_token_id=len(_byte_vocab()) - 1, pad_token_id=len(_byte_vocab()) - 1)
    te1 = CLIPTextModel(CLIPTextConfig(hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                                       num_attention_heads=12, hidden_act="quick_gelu", projection_dim=768, **ids))
    te2 = CLIPTextModelWithProjection(CLIPTextConfig(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                                                     num_attention_heads=20, hidden_act="gelu", projection_dim=1280, **ids))
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085,
                              beta_end=0.012, steps_offset=1, timestep_spacing="leading")
    tok = tiny_tokenizer()
    tok.model_max_length = 77
    tok2 = tiny_tokenizer()
    tok2.model_max_length = 77
    unet = UNet2DConditionModel(**SDXL_UNET)
    comps = Components("sdxl", unet, vae, te1, tok, scheduler, te2, tok2)
    for part in (unet, vae, te1, te2):
        part.to(dtype)
    return comps
