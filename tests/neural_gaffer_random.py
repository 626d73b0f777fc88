"""NeuralGaffer folders with random weights, in the released layout, for tests and benchmarks.

`full=True` gives the real architecture (Zero123-XL's Stable Diffusion 1.x UNet widened to 16
input channels, the SD VAE, CLIP ViT-L/14 with its 768-d projection): the GPU benchmark times
it without the weights. `full=False` is a tiny model of the same classes that runs on a CPU in
a second. Both are saved with `save_pretrained` and loaded back through the product's path.
"""
from __future__ import annotations

import json
from pathlib import Path


def _configs(full: bool) -> dict:
    if full:
        return {
            "unet": dict(sample_size=32, in_channels=16, out_channels=4, layers_per_block=2,
                         block_out_channels=(320, 640, 1280, 1280), cross_attention_dim=768, attention_head_dim=8,
                         down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                         up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3),
            "vae": dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2,
                        block_out_channels=(128, 256, 512, 512), sample_size=256,
                        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4),
            "clip": dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                         image_size=224, patch_size=14, projection_dim=768),
        }
    return {
        "unet": dict(sample_size=8, in_channels=16, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                     cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8,
                     down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                     up_block_types=("UpBlock2D", "CrossAttnUpBlock2D")),
        "vae": dict(in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, block_out_channels=(16, 32, 32),
                    norm_num_groups=8, sample_size=32, down_block_types=("DownEncoderBlock2D",) * 3,
                    up_block_types=("UpDecoderBlock2D",) * 3),
        "clip": dict(hidden_size=32, intermediate_size=37, num_hidden_layers=1, num_attention_heads=4, image_size=32,
                     patch_size=8, projection_dim=32),
    }


def build_random_components(full: bool = False, seed: int = 0):
    """(unet, vae, image_encoder, scheduler) with random weights."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    cfg = _configs(full)
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(**cfg["unet"])
    vae = AutoencoderKL(**cfg["vae"])
    encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg["clip"]))
    # Zero123's scheduler: SD's scaled-linear betas, no sample clipping, epsilon prediction.
    scheduler = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False,
                              set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
    return unet, vae, encoder, scheduler


def save_random_folder(folder: str | Path, full: bool = False, seed: int = 0, unet=None) -> Path:
    """Write a NeuralGaffer folder (unet/ vae/ image_encoder/ scheduler/ model_index.json)."""
    folder = Path(folder)
    built_unet, vae, encoder, scheduler = build_random_components(full, seed)
    (unet if unet is not None else built_unet).save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    encoder.save_pretrained(folder / "image_encoder")
    scheduler.save_pretrained(folder / "scheduler")
    index = {"_class_name": "Neural_Gaffer_StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"],
             "vae": ["diffusers", "AutoencoderKL"], "image_encoder": ["transformers", "CLIPVisionModelWithProjection"],
             "scheduler": ["diffusers", "DDIMScheduler"]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=1) + "\n")
    return folder
