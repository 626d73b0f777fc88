"""NeuralGaffer (Jin et al., NeurIPS 2024): relighting by an image-conditioned latent diffusion model.

The model is Zero123-style Stable Diffusion at 256 px: the UNet sees 16 channels, the noisy
latent concatenated with three VAE latents (the input image, the target environment map as
normalised HDR, and as LDR; both maps rotated into the camera frame and squeezed to a square),
and cross-attends to the CLIP image embedding of the input (one token). Classifier-free
guidance drops all four conditions to zero at once; DDIM, 50 steps, guidance 3.

The folder is the diffusers layout of the released pipeline:

    <neural_gaffer_dir>/
      model_index.json          (optional, informative)
      unet/                     UNet2DConditionModel, in_channels 16
      vae/                      AutoencoderKL
      image_encoder/            CLIPVisionModelWithProjection
      scheduler/                DDIMScheduler config
      checkpoint-<step>/        (optional) the released accelerate checkpoint: when unet/ is the
                                8-channel Zero123 base, its conv_in is widened to 16 channels and
                                the checkpoint's weights (model.safetensors or pytorch_model.bin)
                                are loaded into it

For a face, the mask's box is cropped square, the background inside the crop is made white
(NeuralGaffer was trained on objects on white), the crop is relit at `resolution` and pasted
back; the stage keeps only the masked pixels.
"""
from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from pipeline.annotate import resolve_device
from pipeline.config.relight import RelightParams
from pipeline.faces.crop import resize_square
from pipeline.relighters.base import Relighter
from pipeline.relighters.envmaps import EnvLight, sample

REQUIRED_PARTS: tuple[str, ...] = ("unet", "vae", "image_encoder", "scheduler")
UNET_IN_CHANNELS = 16  # noisy latent + image latent + HDR map latent + LDR map latent
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ModelFolderError(FileNotFoundError):
    """The NeuralGaffer folder is missing or lacks parts; the message names what is missing."""


def check_folder(folder: str | Path) -> Path:
    """Refuse a folder that lacks a required part, naming every missing file at once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ModelFolderError(f"NeuralGaffer folder {folder} does not exist (relight.neural_gaffer_dir)")
    missing = []
    for part in REQUIRED_PARTS:
        config = "scheduler_config.json" if part == "scheduler" else "config.json"
        if not (folder / part / config).is_file():
            missing.append(f"{part}/{config}")
        elif part != "scheduler" and not any((folder / part).glob("*.safetensors")) and not any((folder / part).glob("*.bin")):
            missing.append(f"{part}/ weights (*.safetensors or *.bin)")
    if missing:
        raise ModelFolderError(
            f"NeuralGaffer folder {folder} is incomplete: missing {', '.join(missing)}; expected the diffusers layout "
            f"{'/, '.join(REQUIRED_PARTS)}/ (see pipeline/relighters/neural_gaffer.py)"
        )
    return folder


def released_checkpoint(folder: Path) -> Path | None:
    """The newest `checkpoint-<step>/` weights file of the released accelerate checkpoint."""
    steps = []
    for d in folder.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and d.is_dir():
            steps.append((int(m.group(1)), d))
    for _, d in sorted(steps, reverse=True):
        for name in ("model.safetensors", "pytorch_model.bin"):
            if (d / name).is_file():
                return d / name
    return None


def _load_state(path: Path) -> dict[str, Any]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def widen_conv_in(unet, channels: int) -> None:
    """Zero123 -> NeuralGaffer: conv_in from 8 to `channels` inputs (new ones zero), recorded in
    the config so the model saves and reloads as a 16-channel UNet."""
    import torch

    old = unet.conv_in
    new = torch.nn.Conv2d(channels, old.out_channels, old.kernel_size, old.stride, old.padding,
                          dtype=old.weight.dtype, device=old.weight.device)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, : old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=channels)


def load_unet(folder: Path, dtype):
    from diffusers import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(folder, subfolder="unet", local_files_only=True, torch_dtype=dtype)
    if unet.config.in_channels == UNET_IN_CHANNELS:
        return unet
    ckpt = released_checkpoint(folder)
    if ckpt is None:
        raise ModelFolderError(
            f"{folder}/unet has {unet.config.in_channels} input channels, NeuralGaffer needs {UNET_IN_CHANNELS}; "
            "put the released checkpoint-<step>/ (model.safetensors) beside it or save a converted 16-channel unet/"
        )
    widen_conv_in(unet, UNET_IN_CHANNELS)
    state = _load_state(ckpt)
    state = {k.removeprefix("module."): v for k, v in state.items()}
    unet.load_state_dict(state, strict=True)
    return unet.to(dtype)



@dataclasses.dataclass
class NeuralGafferModel:
    """The four components and the sampling loop of the released pipeline."""

    unet: Any
    vae: Any
    image_encoder: Any
    scheduler: Any

    @classmethod
    def from_folder(cls, folder: str | Path, device: str = "auto", dtype: str = "bf16") -> "NeuralGafferModel":
        from diffusers import AutoencoderKL, DDIMScheduler
        from transformers import CLIPVisionModelWithProjection

        folder = check_folder(folder)
        dev, dt = resolve_device(device, dtype)
        unet = load_unet(folder, dt)
        vae = AutoencoderKL.from_pretrained(folder, subfolder="vae", local_files_only=True, torch_dtype=dt)
        encoder = CLIPVisionModelWithProjection.from_pretrained(folder / "image_encoder", local_files_only=True, dtype=dt)
        scheduler = DDIMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True)
        model = cls(unet.to(dev).eval(), vae.to(dev).eval(), encoder.to(dev).eval(), scheduler)
        for m in (model.unet, model.vae, model.image_encoder):
            m.requires_grad_(False)
        return model

    @property
    def device(self):
        return self.unet.device

    @property
    def dtype(self):
        return self.unet.dtype

    def _clip_embed(self, images):
        """CLIP image embedding (B, 1, D) of images in [-1, 1], OpenAI's preprocessing."""
        import torch
        import torch.nn.functional as F

        size = self.image_encoder.config.image_size
        x = F.interpolate(images.float(), size=(size, size), mode="bicubic", align_corners=True)
        x = (x + 1) / 2
        mean = torch.tensor(CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=x.device).view(1, 3, 1, 1)
        x = ((x - mean) / std).to(self.dtype)
        return self.image_encoder(x).image_embeds.unsqueeze(1)

    def _latent(self, images):
        """Condition latents: the VAE posterior's mode, unscaled (as Zero123 / NeuralGaffer)."""
        return self.vae.encode(images.to(self.dtype)).latent_dist.mode()

    def sample(self, images, env_hdr, env_ldr, *, steps: int = 50, guidance: float = 3.0, generator=None):
        """Relit images (B, 3, R, R) in [0, 1] from inputs, HDR and LDR maps (B, 3, R, R) in [-1, 1]."""
        import torch

        with torch.inference_mode():
            images, env_hdr, env_ldr = (t.to(self.device) for t in (images, env_hdr, env_ldr))
            cond = torch.cat([self._latent(images), self._latent(env_hdr), self._latent(env_ldr)], dim=1)
            emb = self._clip_embed(images)
            cfg = guidance > 1.0
            if cfg:
                cond = torch.cat([torch.zeros_like(cond), cond])
                emb = torch.cat([torch.zeros_like(emb), emb])
            self.scheduler.set_timesteps(steps, device=self.device)
            shape = (images.shape[0], self.unet.config.out_channels, *cond.shape[-2:])
            latents = torch.randn(shape, generator=generator, device=self.device, dtype=torch.float32)
            latents = latents * self.scheduler.init_noise_sigma
            for t in self.scheduler.timesteps:
                x = torch.cat([latents] * 2) if cfg else latents
                x = self.scheduler.scale_model_input(x, t)
                x = torch.cat([x.to(self.dtype), cond], dim=1)
                noise = self.unet(x, t, encoder_hidden_states=emb).sample.float()
                if cfg:
                    uncond, text = noise.chunk(2)
                    noise = uncond + guidance * (text - uncond)
                latents = self.scheduler.step(noise, t, latents).prev_sample
            decoded = self.vae.decode((latents / self.vae.config.scaling_factor).to(self.dtype)).sample
            return (decoded.float() / 2 + 0.5).clamp(0, 1)


def gaffer_envmaps(light: EnvLight, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(HDR, LDR) conditioning images (size, size, 3) in [0, 1] of a light, as NeuralGaffer's
    preprocessing makes them: the map seen from the camera in its own equirectangular frame
    (azimuth pi at the left edge to -pi at the right, phi = 0 looking towards image right,
    phi = pi/2 behind the subject), squeezed to a square; LDR = clip(L, 0, 1)^(1/2.2), HDR =
    log(1 + 10 L) / max."""
    el = np.pi / 2 - (np.arange(size) + 0.5) * np.pi / size
    phi = np.pi - (np.arange(size) + 0.5) * 2 * np.pi / size
    el, phi = np.meshgrid(el, phi, indexing="ij")
    d = np.stack([np.cos(phi) * np.cos(el), np.sin(el), -np.sin(phi) * np.cos(el)], axis=-1)
    radiance = np.clip(sample(light.radiance, d), 0, None)
    ldr = np.clip(radiance, 0, 1) ** (1 / 2.2)
    hdr = np.log1p(10 * radiance)
    return (hdr / max(float(hdr.max()), 1e-6)).astype(np.float32), ldr.astype(np.float32)


def square_box(mask: np.ndarray, margin: float) -> tuple[int, int, int]:
    """(x0, y0, side) of a square around the mask's box grown by `margin` per side (may leave
    the image)."""
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    side = int(round(max(x1 - x0, y1 - y0) * (1 + 2 * margin)))
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return int(round(cx - side / 2)), int(round(cy - side / 2)), max(side, 8)


def crop_white(image: np.ndarray, mask: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """The square crop with everything outside the mask (and outside the image) white."""
    x0, y0, side = box
    h, w = mask.shape
    out = np.full((side, side, 3), 255, np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    region = image[sy0:sy1, sx0:sx1]
    keep = mask[sy0:sy1, sx0:sx1]
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0][keep] = region[keep]
    return out


def paste(image: np.ndarray, crop: np.ndarray, box: tuple[int, int, int]) -> np.ndarray:
    """`image` with the part of the square `crop` that lies inside it replaced."""
    x0, y0, side = box
    h, w = image.shape[:2]
    out = image.copy()
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    out[sy0:sy1, sx0:sx1] = crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0]
    return out


class NeuralGafferRelighter(Relighter):
    name: ClassVar[str] = "neural_gaffer"

    def __init__(self, params: RelightParams) -> None:
        self.params = params
        self._model: NeuralGafferModel | None = None

    def __getstate__(self) -> dict:
        return {"params": self.params, "_model": None}

    def setup(self) -> None:
        if self._model is None:
            p = self.params
            self._model = NeuralGafferModel.from_folder(p.neural_gaffer_dir, p.device, p.dtype)

    @property
    def model(self) -> NeuralGafferModel:
        self.setup()
        return self._model

    def relight(self, image: np.ndarray, mask: np.ndarray, lights: Sequence[EnvLight], *, seed: int = 0) -> list[np.ndarray]:
        import torch

        p, res = self.params, self.params.resolution
        box = square_box(mask, p.crop_margin)
        crop = crop_white(image, mask, box)
        small = resize_square(crop, res)
        to_tensor = lambda a: torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1).float()  # noqa: E731
        img = (to_tensor(small) / 127.5 - 1).unsqueeze(0).repeat(len(lights), 1, 1, 1)
        maps = [gaffer_envmaps(light, res) for light in lights]
        hdr = torch.stack([to_tensor(h) * 2 - 1 for h, _ in maps])
        ldr = torch.stack([to_tensor(l_) * 2 - 1 for _, l_ in maps])
        gen = torch.Generator(device=self.model.device).manual_seed(seed % (2**63))
        out = self.model.sample(img, hdr, ldr, steps=p.num_inference_steps, guidance=p.guidance_scale, generator=gen)
        relit = (out.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        return [paste(image, resize_square(r, box[2]), box) for r in relit]
