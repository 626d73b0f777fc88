"""`PiQPerfectPipeline`: sampling with a trained PiQPerfect model (paper A.1).

Source and driving images are encoded once and enter every step clean; only the target part of
the canvas is denoised. Classifier-free guidance follows the paper: the negative branch has the
empty prompt and a zeroed driving image. "Zeroed" here means an all-black image (every pixel
0, i.e. -1 in the model's [-1, 1] range) passed through the VAE: this is exactly what the
trainer's mask produces where it removes everything, so the negative branch is "no driving
face" in the language the model was trained on. Both branches run in one batched forward.

Speed levers that need no retraining (train/step_plan.py: guidance on an interval of noise
levels or every k-th step, so the other steps run the conditional branch alone; DeepCache,
train/deep_cache.py) are call arguments, so the defaults give the paper's output. The distilled
student of `piq distill` is the same pipeline class with a DDIM scheduler, called unguided.
"""
from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Union

import numpy as np
import PIL.Image
import torch
from diffusers import AutoencoderKL, DiffusionPipeline, UNet2DConditionModel
from diffusers.utils import BaseOutput
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from pipeline.device import is_cuda
from pipeline.faces.crop import resize_square
from train.backbones import Components
from train.conditioning import encode_text, predict_target
from train.data import to_tensor
from train.step_plan import make_plan

ImageInput = Union[torch.Tensor, np.ndarray, PIL.Image.Image, Sequence[Union[np.ndarray, PIL.Image.Image]]]


@dataclasses.dataclass
class PiQPerfectOutput(BaseOutput):
    images: Union[list[PIL.Image.Image], np.ndarray, torch.Tensor]


def to_model_input(images: ImageInput, resolution: int) -> torch.Tensor:
    """PIL / uint8 HWC arrays / float tensors in [-1, 1] -> (B, 3, R, R) float in [-1, 1].
    Images are converted as training converts them (`train.data.to_tensor`); a tensor of
    another size is resized by the same rule (`resize_square`, on its float values)."""
    if isinstance(images, torch.Tensor):
        out = images if images.ndim == 4 else images[None]
        if out.shape[-1] != resolution or out.shape[-2] != resolution:
            hwc = out.permute(0, 2, 3, 1).float().cpu().numpy()
            out = torch.stack([torch.from_numpy(np.ascontiguousarray(resize_square(x, resolution))) for x in hwc])
            out = out.permute(0, 3, 1, 2).to(images.device, images.dtype)
    else:
        items = images if isinstance(images, (list, tuple)) else [images]
        # training's conversion (train.data.to_tensor): the model sees what it was trained on
        out = torch.stack([to_tensor(np.asarray(item.convert("RGB") if isinstance(item, PIL.Image.Image) else item,
                                                np.uint8), resolution) for item in items])
    return out.clamp(-1, 1)


class PiQPerfectPipeline(DiffusionPipeline):
    """unet, vae, text encoder(s), tokenizer(s), scheduler; `concat` and `resolution` in its config."""

    model_cpu_offload_seq = "text_encoder->text_encoder_2->unet->vae"
    _optional_components = ["text_encoder_2", "tokenizer_2"]

    def __init__(self, unet: UNet2DConditionModel, vae: AutoencoderKL, text_encoder: CLIPTextModel,
                 tokenizer: CLIPTokenizer, scheduler, text_encoder_2: Optional[CLIPTextModelWithProjection] = None,
                 tokenizer_2: Optional[CLIPTokenizer] = None, concat: str = "spatial", resolution: int = 576) -> None:
        super().__init__()
        self.register_modules(unet=unet, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, scheduler=scheduler,
                              text_encoder_2=text_encoder_2, tokenizer_2=tokenizer_2)
        self.register_to_config(concat=concat, resolution=resolution)

    @property
    def components_view(self) -> Components:
        return Components(self.family, self.unet, self.vae, self.text_encoder, self.tokenizer, self.scheduler,
                          self.text_encoder_2, self.tokenizer_2)

    @property
    def family(self) -> str:
        return "sdxl" if self.text_encoder_2 is not None else "sd15"

    def optimize(self, compile: str = "none", fuse_qkv: bool = False, channels_last: bool = False,
                 fp8: bool = False, cuda_graphs: bool = True, deep_cache: bool = False) -> "PiQPerfectPipeline":
        """Apply the speed levers of `train/speed.py` to the UNet (and the VAE's layout). Call
        after `.to(device)`; compiling happens at the first call (printed by the benchmark).
        With `deep_cache` the full and the shallow pass (train/deep_cache.py) are compiled as
        two graphs instead of the UNet's forward."""
        from train.deep_cache import DeepCacheUNet
        from train.speed import compile_unet, enable_fp8_inference

        if fuse_qkv:
            self.unet.fuse_qkv_projections()
        if channels_last:
            self.unet.to(memory_format=torch.channels_last)
            self.vae.to(memory_format=torch.channels_last)
        if fp8:
            enable_fp8_inference(self.unet)
        graphs = cuda_graphs and is_cuda(self.device)
        if deep_cache:
            self._deep_cache = DeepCacheUNet(self.unet)
            if compile != "none":
                self._deep_cache.compile_passes(graphs)
        else:
            compile_unet(self.unet, compile, cuda_graphs=graphs)
        return self

    @property
    def deep_cache_compiled(self) -> bool:
        cache = getattr(self, "_deep_cache", None)
        return cache is not None and cache.compiled and cache.unet is self.unet

    def _deep_cache_unet(self):
        from train.deep_cache import DeepCacheUNet

        if getattr(self, "_deep_cache", None) is None or self._deep_cache.unet is not self.unet:
            self._deep_cache = DeepCacheUNet(self.unet)
        return self._deep_cache

    def preprocess(self, images: ImageInput) -> torch.Tensor:
        """The model's own input conversion (`to_model_input` at its resolution): what every
        source and driving image goes through before the VAE, as in training."""
        return to_model_input(images, self.config.resolution)

    def replace_crops(self, sources: Sequence[np.ndarray], drivings: Sequence[np.ndarray], prompts: Sequence[str],
                      seed: int, **sampling) -> list[np.ndarray]:
        """uint8 square crops in, uint8 crops out: the model's replacement of each source face
        by its driving face, each result at its source crop's size (`resize_square` both ways,
        training's rule). The one way the photo tool and the evaluation run the model;
        `sampling`: `__call__`'s keyword arguments (steps, guidance, levers); the initial noise
        comes from a CPU generator seeded with `seed`."""
        generator = torch.Generator().manual_seed(seed)
        out = self(list(sources), list(drivings), list(prompts), generator=generator, output_type="np",
                   **sampling).images
        return [resize_square(o, s.shape[0]) for o, s in zip(out, sources)]

    @torch.no_grad()
    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        images = images.to(device=self.device, dtype=self.vae.dtype)
        return self.vae.encode(images).latent_dist.mode().float() * self.vae.config.scaling_factor

    @torch.no_grad()
    def __call__(self, source: ImageInput, driving: ImageInput, prompt: Union[str, Sequence[str]] = "",
                 num_inference_steps: int = 50, guidance_scale: float = 1.5,
                 generator: Optional[torch.Generator] = None, output_type: str = "pil",
                 guidance_interval: Optional[Sequence[float]] = None, guidance_every: int = 1,
                 deep_cache_interval: int = 1) -> PiQPerfectOutput:
        """Sample target images. The defaults are the paper's (A.1); `guidance_interval`,
        `guidance_every` and `deep_cache_interval` are the speed levers of `train/step_plan.py`.
        The initial noise depends on `generator` only, so every variant starts from the same noise."""
        res, concat = self.config.resolution, self.config.concat
        src_px, drv_px = self.preprocess(source), self.preprocess(driving)
        batch = src_px.shape[0]
        if drv_px.shape[0] != batch:
            raise ValueError(f"{batch} source image(s) but {drv_px.shape[0]} driving image(s)")
        prompts = [prompt] * batch if isinstance(prompt, str) else list(prompt)
        if len(prompts) != batch:
            raise ValueError(f"{batch} image pair(s) but {len(prompts)} prompt(s)")
        guided = guidance_scale != 1.0
        comps = self.components_view
        if guided:  # negative branch first: empty prompt, all-black driving image; one encode call each
            latents_in = self.encode_images(torch.cat([src_px, drv_px, torch.full_like(drv_px, -1.0)]))
            src, drv, zero_drv = latents_in.chunk(3)
            embeds, pooled = encode_text(comps, [""] + prompts, self.device)
            neg = [0] * batch
            embeds = torch.cat([embeds[neg], embeds[1:]])
            pooled = None if pooled is None else torch.cat([pooled[neg], pooled[1:]])
            src, drv = torch.cat([src, src]), torch.cat([zero_drv, drv])
        else:
            src, drv = self.encode_images(torch.cat([src_px, drv_px])).chunk(2)
            embeds, pooled = encode_text(comps, prompts, self.device)

        self.scheduler.set_timesteps(num_inference_steps, device=self.device)
        plan = make_plan(self.scheduler, self.scheduler.timesteps, guidance_scale, guidance_interval, guidance_every,
                         deep_cache_interval)
        # through the DeepCache wrapper when `optimize(deep_cache=True)` compiled its passes (its
        # full pass is the UNet's forward) or when this call skips deep blocks
        net = self._deep_cache_unet() if deep_cache_interval > 1 or self.deep_cache_compiled else self.unet
        shape = (batch, self.vae.config.latent_channels, *src.shape[-2:])
        latents = torch.randn(shape, generator=generator, device=torch.device("cpu"), dtype=torch.float32)
        latents = latents.to(self.device) * self.scheduler.init_noise_sigma
        both = (src, drv, embeds, pooled)
        cond_only = tuple(None if x is None else x[-batch:] for x in both)  # the conditional branch is the second half
        for i, t in enumerate(self.progress_bar(self.scheduler.timesteps)):
            step_guided = plan.guided[i]
            s, d, e, p = both if step_guided else cond_only
            noisy = torch.cat([latents, latents]) if step_guided else latents
            noisy = self.scheduler.scale_model_input(noisy, t)
            if net is not self.unet:
                net.use_full = plan.full[i]
            pred = predict_target(net, self.family, s, d, noisy, t, e, p, res, concat).float()
            if step_guided:
                uncond, cond = pred.chunk(2)
                pred = uncond + guidance_scale * (cond - uncond)
            latents = self.scheduler.step(pred, t, latents, generator=generator).prev_sample
        images = self.vae.decode(latents.to(self.vae.dtype) / self.vae.config.scaling_factor).sample
        images = (images.float().clamp(-1, 1) + 1) / 2
        if output_type == "pt":
            return PiQPerfectOutput(images)
        arrays = (images.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        if output_type == "np":
            return PiQPerfectOutput(arrays)
        return PiQPerfectOutput([PIL.Image.fromarray(a) for a in arrays])
