"""The IP-Adapter baseline loads through its real path: a tiny random SDXL img2img pipeline, a
tiny CLIP vision encoder and two IP-Adapter-Plus weight files in the h94/IP-Adapter layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from eval.baselines import build_method
from eval.baselines.ipadapter import ADAPTERS
from eval.data import Triplet
from pipeline.config.evaluate import EvaluateParams

HIDDEN, QUERIES, FF = 64, 4, 256  # resampler width (one 64-d head), queries, feed-forward width


def plus_adapter(unet, embed_dims: int, seed: int) -> dict[str, torch.Tensor]:
    """Random IP-Adapter-Plus weights in the original (Resampler) key layout."""
    g = torch.Generator().manual_seed(seed)

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.02

    out_dims = unet.config.cross_attention_dim
    sd = {"image_proj.latents": r(1, QUERIES, HIDDEN), "image_proj.proj_in.weight": r(HIDDEN, embed_dims),
          "image_proj.proj_in.bias": r(HIDDEN), "image_proj.proj_out.weight": r(out_dims, HIDDEN),
          "image_proj.proj_out.bias": r(out_dims), "image_proj.norm_out.weight": torch.ones(out_dims),
          "image_proj.norm_out.bias": r(out_dims)}
    for i in range(4):
        p = f"image_proj.layers.{i}"
        sd.update({f"{p}.0.norm1.weight": torch.ones(HIDDEN), f"{p}.0.norm1.bias": r(HIDDEN),
                   f"{p}.0.norm2.weight": torch.ones(HIDDEN), f"{p}.0.norm2.bias": r(HIDDEN),
                   f"{p}.0.to_q.weight": r(HIDDEN, HIDDEN), f"{p}.0.to_kv.weight": r(2 * HIDDEN, HIDDEN),
                   f"{p}.0.to_out.weight": r(HIDDEN, HIDDEN), f"{p}.1.0.weight": torch.ones(HIDDEN),
                   f"{p}.1.0.bias": r(HIDDEN), f"{p}.1.1.weight": r(FF, HIDDEN), f"{p}.1.3.weight": r(HIDDEN, FF)})
    key_id = 1
    widths = unet.config.block_out_channels
    for name in unet.attn_processors:
        if name.endswith("attn1.processor"):
            continue
        block = name.split(".")[0]
        hidden = (widths[-1] if block == "mid_block" else
                  list(reversed(widths))[int(name.split(".")[1])] if block == "up_blocks" else widths[int(name.split(".")[1])])
        sd[f"ip_adapter.{key_id}.to_k_ip.weight"] = r(hidden, out_dims)
        sd[f"ip_adapter.{key_id}.to_v_ip.weight"] = r(hidden, out_dims)
        key_id += 2
    return sd


def make_weights(root: Path) -> tuple[Path, Path]:
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLImg2ImgPipeline

    from train.backbones import tiny_components

    comps = tiny_components("sdxl", seed=1)
    sdxl = root / "sdxl"
    StableDiffusionXLImg2ImgPipeline(comps.vae, comps.text_encoder, comps.text_encoder_2, comps.tokenizer, comps.tokenizer_2,
                                     comps.unet, EulerDiscreteScheduler.from_config(comps.scheduler.config)).save_pretrained(sdxl)
    ip = root / "IP-Adapter"
    torch.manual_seed(0)
    enc = CLIPVisionModelWithProjection(CLIPVisionConfig(hidden_size=32, intermediate_size=37, num_hidden_layers=2,
                                                         num_attention_heads=2, image_size=32, patch_size=8, projection_dim=16))
    enc.save_pretrained(ip / "models" / "image_encoder")
    (ip / "sdxl_models").mkdir(parents=True)
    for k, name in enumerate(ADAPTERS):
        save_file(plus_adapter(comps.unet, 32, seed=k), str(ip / "sdxl_models" / name))
    return ip, sdxl


def test_ipadapter_runs_from_its_published_layout(tmp_path):
    ip, sdxl = make_weights(tmp_path)
    p = EvaluateParams(ipadapter_dir=str(ip), ipadapter_sdxl_dir=str(sdxl), ipadapter_steps=4, ipadapter_resolution=32)
    method = build_method("ipadapter", p)
    scales = {tuple(proc.scale) for proc in method.pipe.unet.attn_processors.values() if hasattr(proc, "scale")}
    assert scales == {(0.5, 0.6)}  # paper A.1: source ("style") 0.5, driving ("face") 0.6
    rng = np.random.default_rng(0)
    src, drv = (rng.integers(0, 256, (48, 48, 3), dtype=np.uint8) for _ in range(2))
    out = method.run([Triplet("p0", src, drv, drv, drv)])
    assert out[0].shape == (48, 48, 3) and out[0].dtype == np.uint8
    again = method.run([Triplet("p0", src, drv, drv, drv)])
    assert np.array_equal(out[0], again[0])  # seeded
