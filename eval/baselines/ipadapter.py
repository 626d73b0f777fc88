"""IP-Adapter dual-adapter SDXL baseline (paper appendix A.1).

SDXL img2img from the source (strength 0.9 of 30 steps: the first 3 skipped, 27 run), two
IP-Adapters: "ip-adapter-plus_sdxl_vit-h" on the source image (scale 0.5) and
"ip-adapter-plus-face_sdxl_vit-h" on the driving image (scale 0.6), empty prompt, guidance
3.0; the negative branch of the face adapter is a noisy version of the driving image (the
paper's wording; the noise level is not given: `evaluate.ipadapter_negative_noise`).

Weights, local only (the layout of the h94/IP-Adapter repository and a diffusers SDXL folder):
  <ipadapter_dir>/sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors
  <ipadapter_dir>/sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors
  <ipadapter_dir>/models/image_encoder/            (CLIP ViT-H/14 vision model)
  <ipadapter_sdxl_dir>/                            (stable-diffusion-xl-base-1.0, diffusers layout)
Absent -> `Unavailable`, and the report lists the method with that reason.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from eval.baselines import Unavailable
from eval.data import Triplet

ADAPTERS = ("ip-adapter-plus_sdxl_vit-h.safetensors", "ip-adapter-plus-face_sdxl_vit-h.safetensors")


def check_layout(ipadapter_dir: str | None, sdxl_dir: str | None) -> tuple[Path, Path]:
    if not ipadapter_dir or not sdxl_dir:
        raise Unavailable("evaluate.ipadapter_dir / ipadapter_sdxl_dir not set")
    ip, sdxl = Path(ipadapter_dir), Path(sdxl_dir)
    needed = [ip / "sdxl_models" / a for a in ADAPTERS] + [ip / "models" / "image_encoder" / "config.json",
                                                           sdxl / "model_index.json"]
    missing = [str(p) for p in needed if not p.exists()]
    if missing:
        raise Unavailable(f"IP-Adapter weights absent: {', '.join(missing)}")
    return ip, sdxl


class IPAdapterBaseline:
    name = "ipadapter"

    def __init__(self, params) -> None:
        ip, sdxl = check_layout(params.ipadapter_dir, params.ipadapter_sdxl_dir)
        from diffusers import StableDiffusionXLImg2ImgPipeline
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        from pipeline.device import device_name, resolve_dtype

        self.device = device_name("auto")
        dtype = resolve_dtype("fp16", self.device)
        encoder = CLIPVisionModelWithProjection.from_pretrained(ip / "models" / "image_encoder", torch_dtype=dtype,
                                                                local_files_only=True)
        pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(sdxl, image_encoder=encoder, torch_dtype=dtype,
                                                                local_files_only=True)
        if pipe.feature_extractor is None:  # SDXL base ships none; CLIP preprocessing at the encoder's size
            size = encoder.config.image_size
            pipe.register_modules(feature_extractor=CLIPImageProcessor(size={"shortest_edge": size},
                                                                      crop_size={"height": size, "width": size}))
        pipe.load_ip_adapter(str(ip), subfolder="sdxl_models", weight_name=list(ADAPTERS), image_encoder_folder=None)
        pipe.set_ip_adapter_scale([params.ipadapter_scale_source, params.ipadapter_scale_driving])
        pipe.set_progress_bar_config(disable=True)
        self.pipe = pipe.to(self.device)
        self.p = params
        self.resolution = params.ipadapter_resolution

    def _embeds(self, source, driving, noisy_driving):
        enc = self.pipe.encode_image
        pos_s, neg_s = enc(source, self.device, 1, True)
        pos_d, _ = enc(driving, self.device, 1, True)
        neg_d, _ = enc(noisy_driving, self.device, 1, True)
        import torch

        return [torch.cat([neg_s[None], pos_s[None]]), torch.cat([neg_d[None], pos_d[None]])]

    def run(self, batch: Sequence[Triplet]) -> list[np.ndarray | None]:
        import torch
        from PIL import Image

        outs: list[np.ndarray | None] = []
        for t in batch:
            size = t.source.shape[0]
            pair_seed = zlib.crc32(t.pair_id.encode())  # per pair: independent of batching and order
            gen = torch.Generator().manual_seed(self.p.seed * 1_000_003 + pair_seed)
            rng = np.random.default_rng([self.p.seed, pair_seed])
            noisy = np.clip(t.driving.astype(np.float32) + rng.normal(0, 255 * self.p.ipadapter_negative_noise, t.driving.shape), 0, 255)
            src, drv = Image.fromarray(t.source), Image.fromarray(t.driving)
            res = (self.resolution, self.resolution)
            image = self.pipe(prompt="", image=src.resize(res, Image.Resampling.BICUBIC),
                              ip_adapter_image_embeds=self._embeds(src, drv, Image.fromarray(noisy.astype(np.uint8))),
                              strength=self.p.ipadapter_strength, num_inference_steps=self.p.ipadapter_steps,
                              guidance_scale=self.p.ipadapter_guidance, generator=gen, output_type="np").images[0]
            outs.append(np.asarray(Image.fromarray((image * 255).round().astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)))
        return outs
