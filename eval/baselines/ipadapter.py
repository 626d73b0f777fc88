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
Absent -> `Unavailable`, and the report lists the method with that reason. Present but unusable
(a truncated file, an adapter for another UNet or image encoder, a renamed key) ->
`WeightsFormatError` naming the file, before anything reaches the GPU. The SDXL folder may hold
`*.fp16.safetensors` only, or mix them with full-precision files: each component is loaded with
the variant its files carry (`pipeline.weight_files.hf_folders`), then handed to the img2img pipeline.
"""
from __future__ import annotations

import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from eval.baselines import Unavailable
from eval.data import Triplet
from pipeline.weight_files.hf_folders import inspect_folder, load_checked, meta_model, read_config
from pipeline.weight_files.checks import (ComponentCheck, WeightsFormatError, compare_shapes, failed_check, register_check,
                              tensor_shapes)

ADAPTERS = ("ip-adapter-plus_sdxl_vit-h.safetensors", "ip-adapter-plus-face_sdxl_vit-h.safetensors")
ACCEPTED = ("h94/IP-Adapter's IP-Adapter-Plus SDXL .safetensors (image_proj.* Resampler + ip_adapter.N.to_k_ip / "
            "to_v_ip for every cross-attention of the SDXL UNet), models/image_encoder/ a CLIP vision model folder",)
RELEASE = ("huggingface.co/h94/IP-Adapter: sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors, "
           "sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors, models/image_encoder/ (config.json, model.safetensors) "
           "into evaluate.ipadapter_dir/; huggingface.co/stabilityai/stable-diffusion-xl-base-1.0 (*.fp16.safetensors "
           "are enough) into evaluate.ipadapter_sdxl_dir/")
LAYOUT = """evaluate.ipadapter_dir/                (huggingface.co/h94/IP-Adapter)
  sdxl_models/ip-adapter-plus_sdxl_vit-h.safetensors
  sdxl_models/ip-adapter-plus-face_sdxl_vit-h.safetensors
  models/image_encoder/config.json + model.safetensors   (CLIP ViT-H/14; fp16 variant accepted)
evaluate.ipadapter_sdxl_dir/           (stabilityai/stable-diffusion-xl-base-1.0, diffusers layout)
  model_index.json, unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/, scheduler/
  plain or *.fp16.safetensors weights, detected per component"""


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


def sdxl_parts() -> dict[str, type]:
    from train.backbones import model_parts

    return model_parts("sdxl")


def check_adapters(ip: Path, sdxl: Path) -> list[str]:
    """Both adapter files against the SDXL UNet and the image encoder their configs describe
    (headers only): the Resampler's input width is the encoder's, one `to_k_ip` / `to_v_ip` pair
    per cross-attention with that layer's shapes (keys numbered over all attention processors,
    as the original training code saves them)."""
    from diffusers import UNet2DConditionModel

    unet = meta_model(UNet2DConditionModel, sdxl / "unet", ACCEPTED)
    width = read_config(ip / "models" / "image_encoder", ACCEPTED).get("hidden_size")
    modules = dict(unet.named_modules())
    expected = {}
    for index, name in enumerate(unet.attn_processors):
        if name.endswith("attn2.processor"):
            to_k = modules[name[: -len(".processor")]].to_k.weight.shape
            expected[f"ip_adapter.{index}.to_k_ip.weight"] = tuple(to_k)
            expected[f"ip_adapter.{index}.to_v_ip.weight"] = tuple(to_k)
    found = []
    for adapter in ADAPTERS:
        path = ip / "sdxl_models" / adapter
        shapes = tensor_shapes(path, ACCEPTED)
        proj_in = shapes.get("image_proj.proj_in.weight")
        if proj_in is None or "image_proj.latents" not in shapes:
            raise WeightsFormatError(path, ACCEPTED, "has no image_proj.latents / image_proj.proj_in.weight: not an "
                                     "IP-Adapter-Plus (Resampler) file")
        if proj_in[-1] != width:
            raise WeightsFormatError(path, ACCEPTED, f"image_proj.proj_in.weight takes {proj_in[-1]}-d image features "
                                     f"but models/image_encoder has hidden_size {width}")
        compare_shapes(path, {k: v for k, v in shapes.items() if k.startswith("ip_adapter.")}, expected, ACCEPTED)
        found.append(f"{adapter}: {len(shapes)} tensors")
    return found


class IPAdapterBaseline:
    name = "ipadapter"

    def __init__(self, params) -> None:
        ip, sdxl = check_layout(params.ipadapter_dir, params.ipadapter_sdxl_dir)
        from diffusers import StableDiffusionXLImg2ImgPipeline
        from transformers import CLIPImageProcessor, CLIPVisionModelWithProjection

        from pipeline.device import device_name, resolve_dtype

        self.device = device_name("auto")
        dtype = resolve_dtype("fp16", self.device)
        check_adapters(ip, sdxl)
        encoder = load_checked(CLIPVisionModelWithProjection, ip / "models" / "image_encoder", ACCEPTED, dtype=dtype)
        parts = {sub: load_checked(cls, sdxl / sub, dtype=dtype) for sub, cls in sdxl_parts().items()}
        pipe = StableDiffusionXLImg2ImgPipeline.from_pretrained(sdxl, image_encoder=encoder, torch_dtype=dtype,
                                                                local_files_only=True, **parts)
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


@register_check("evaluate.ipadapter", layout=LAYOUT)
def check(params) -> list[ComponentCheck]:
    """`piq models check`: the IP-Adapter baseline's two folders when `evaluate.methods` has it."""
    p = params.evaluate
    name = "evaluate.ipadapter"
    if "ipadapter" not in p.methods:
        return [ComponentCheck(name, "ipadapter", None, True, "not in evaluate.methods; nothing to download")]
    if not p.ipadapter_dir or not p.ipadapter_sdxl_dir:
        return [ComponentCheck(name, "ipadapter", None, True, "the report lists IP-Adapter as "
                               f"unavailable (baseline of table 1; to run it: {RELEASE})")]
    from transformers import CLIPVisionModelWithProjection

    try:
        ip, sdxl = check_layout(p.ipadapter_dir, p.ipadapter_sdxl_dir)
        found = check_adapters(ip, sdxl)
        found.append("image_encoder: " + inspect_folder(ip / "models" / "image_encoder", CLIPVisionModelWithProjection))
        found += [f"{sub}: {inspect_folder(sdxl / sub, cls)}" for sub, cls in sdxl_parts().items()]
    except (Unavailable, WeightsFormatError) as exc:
        return [failed_check(name, "ipadapter", p.ipadapter_dir, exc, RELEASE)]
    return [ComponentCheck(name, "ipadapter", f"{p.ipadapter_dir} + {p.ipadapter_sdxl_dir}", True, "; ".join(found))]
