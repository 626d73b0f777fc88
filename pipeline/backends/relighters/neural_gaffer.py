"""NeuralGaffer (Jin et al., NeurIPS 2024): relighting by an image-conditioned latent diffusion model.

The model is Zero123-style Stable Diffusion at 256 px: the UNet sees 16 channels, the noisy
latent concatenated with three VAE latents (the input image, the target environment map as
normalised HDR, and as LDR; both maps rotated into the camera frame and squeezed to a square),
and cross-attends to the CLIP image embedding of the input (one token). Classifier-free
guidance drops all four conditions to zero at once; DDIM, 50 steps, guidance 3.

The model comes as its two published pieces, each in its own release layout, named in params.yaml
(nothing is assembled by hand):

    relight.neural_gaffer_dir: the Zero123-XL base (Hugging Face kxic/zero123-xl, diffusers layout)
      model_index.json, unet/ (8 input channels), vae/, image_encoder/ (CLIPVisionModelWithProjection),
      scheduler/, feature_extractor/, cc_projection/ (the last two unused by NeuralGaffer);
      weights as published (*.bin) or as safetensors
    relight.neural_gaffer_checkpoint: the released fine-tuned UNet (coast01/Neural_Gaffer
      neural_gaffer_res256_ckpt.zip, unzipped): the `neural_gaffer_res256/` folder (its newest
      `checkpoint-<step>/` is used) or one `checkpoint-<step>/` folder; the accelerate checkpoint's
      model file (model.safetensors or pytorch_model.bin) is the 16-channel UNet state dict

As the official script does, the base UNet's conv_in is widened from 8 to 16 inputs (new ones
zero) and the released state dict is loaded into it strictly. A folder whose unet/ already has 16
inputs (a converted NeuralGaffer) needs no checkpoint. Every file is checked on the CPU first
(config present, tensor names and shapes against the architecture its config describes): a
missing component, a renamed key, a wrong shape or a truncated file is a
`pipeline.weight_files.checks.WeightsFormatError` naming the file, before any GPU memory is taken.

Sampling follows the official pipeline with one generator per item (the official script passes a
list): the initial noise, then the posterior SAMPLE of each condition latent (input image, HDR
map, LDR map, in that order) are drawn from the item's generator; the latents are not scaled by
the VAE's scaling factor (Zero123's convention).

For a face, the mask's box is cropped square, the background inside the crop is made white
(NeuralGaffer was trained on objects on white), the crop is relit at `resolution` and pasted
back; the stage keeps only the masked pixels.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from pipeline.device import resolve_device
from pipeline.config.relight import RelightParams
from pipeline.faces.crop import resize_square
from pipeline.faces.geometry import SquareCrop, square_crop
from pipeline.backends.relighters.base import Relighter
from pipeline.backends.relighters.envmaps import EnvLight, sample
from pipeline.weight_files.checks import ComponentCheck, WeightsFormatError, compare_shapes, register_check, tensor_shapes

REQUIRED_PARTS: tuple[str, ...] = ("unet", "vae", "image_encoder", "scheduler")
UNET_IN_CHANNELS = 16  # noisy latent + image latent + HDR map latent + LDR map latent
BASE_IN_CHANNELS = 8   # Zero123: noisy latent + image latent
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
CHECKPOINT_FILES = ("model.safetensors", "pytorch_model.bin")  # accelerate's save_state names
BASE_ACCEPTED = ("the Zero123-XL diffusers folder as published (kxic/zero123-xl: unet/ vae/ image_encoder/ "
                 "scheduler/, weights *.bin or *.safetensors), or a NeuralGaffer folder whose unet/ has 16 inputs",)
CKPT_ACCEPTED = ("the released NeuralGaffer checkpoint (coast01/Neural_Gaffer neural_gaffer_res256_ckpt.zip, "
                 "unzipped): neural_gaffer_res256/checkpoint-<step>/model.safetensors or pytorch_model.bin, "
                 "a 16-input-channel UNet state dict",)
RELEASE = ("base: https://huggingface.co/kxic/zero123-xl (the whole repository) -> relight.neural_gaffer_dir; "
           "fine-tuned UNet: https://huggingface.co/coast01/Neural_Gaffer neural_gaffer_res256_ckpt.zip, unzipped "
           "-> relight.neural_gaffer_checkpoint")


def _weights(part_dir: Path) -> list[Path]:
    return sorted(p for p in part_dir.glob("*") if p.suffix in (".safetensors", ".bin") and p.is_file())


def _config(path: Path) -> dict:
    if not path.is_file():
        raise WeightsFormatError(path, BASE_ACCEPTED, "missing")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise WeightsFormatError(path, BASE_ACCEPTED, f"is not a JSON config ({exc})") from exc


def check_folder(folder: str | Path) -> Path:
    """Refuse a base folder that lacks a required part, naming every missing file at once."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsFormatError(folder, BASE_ACCEPTED, "no such folder (relight.neural_gaffer_dir)")
    missing = []
    for part in REQUIRED_PARTS:
        config = "scheduler_config.json" if part == "scheduler" else "config.json"
        if not (folder / part / config).is_file():
            missing.append(f"{part}/{config}")
        elif part != "scheduler" and not _weights(folder / part):
            missing.append(f"{part}/ weights (*.safetensors or *.bin)")
    if missing:
        raise WeightsFormatError(folder, BASE_ACCEPTED, f"incomplete: missing {', '.join(missing)}")
    return folder


def released_checkpoint(path: str | Path) -> Path:
    """The model file of the released accelerate checkpoint: `path` is a `checkpoint-<step>/`
    folder, or a folder holding them (the newest step is used), or the model file itself."""
    path = Path(path)
    if path.is_file():
        return path
    if not path.is_dir():
        raise WeightsFormatError(path, CKPT_ACCEPTED, "no such file or folder (relight.neural_gaffer_checkpoint)")
    steps = []
    for d in path.glob("checkpoint-*"):
        m = re.fullmatch(r"checkpoint-(\d+)", d.name)
        if m and d.is_dir():
            steps.append((int(m.group(1)), d))
    candidates = [path] + [d for _, d in sorted(steps, reverse=True)]
    for d in candidates:
        for name in CHECKPOINT_FILES:
            if (d / name).is_file():
                return d / name
    raise WeightsFormatError(path, CKPT_ACCEPTED, f"holds no checkpoint-<step>/{' or '.join(CHECKPOINT_FILES)}")


def _meta_shapes(module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}


def expected_shapes(folder: Path, part: str, in_channels: int | None = None) -> dict[str, tuple[int, ...]]:
    """Tensor names and shapes of a component as its config describes it (built on meta)."""
    import torch

    config_path = folder / part / "config.json"
    config = _config(config_path)
    try:
        with torch.device("meta"):
            if part == "image_encoder":
                from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

                return _meta_shapes(CLIPVisionModelWithProjection(CLIPVisionConfig(**{
                    k: v for k, v in config.items() if k not in ("architectures", "transformers_version")})))
            from diffusers import AutoencoderKL, UNet2DConditionModel

            cls = UNet2DConditionModel if part == "unet" else AutoencoderKL
            if in_channels is not None:
                config = {**config, "in_channels": in_channels}
            return _meta_shapes(cls.from_config(config))
    except WeightsFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - a config the class cannot build from
        raise WeightsFormatError(config_path, BASE_ACCEPTED, f"describes no {part} ({type(exc).__name__}: {exc})") from exc


def _strip(found: dict[str, tuple[int, ...]], prefixes: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    out = {}
    for k, v in found.items():
        for prefix in prefixes:
            k = k.removeprefix(prefix)
        out[k] = v
    return out


def inspect_base(folder: str | Path) -> dict[str, str]:
    """Each base component's weights file against its config: part -> what was found. Raises
    `WeightsFormatError` for the first file that does not match."""
    folder = check_folder(folder)
    _config(folder / "scheduler" / "scheduler_config.json")
    found = {}
    for part in ("unet", "vae", "image_encoder"):
        expected = expected_shapes(folder, part)
        files = _weights(folder / part)
        path = next((f for f in files if f.suffix == ".safetensors"), files[0])
        shapes = tensor_shapes(path, BASE_ACCEPTED)
        compare_shapes(path, shapes, expected, BASE_ACCEPTED)
        found[part] = f"{path.name}: {len(shapes)} tensors match {part}/config.json"
    in_ch = _config(folder / "unet" / "config.json").get("in_channels")
    found["unet"] += f" ({in_ch} input channels)"
    return found


def inspect_checkpoint(path: str | Path, base: str | Path) -> str:
    """The released UNet's state dict against the base UNet's config widened to 16 inputs."""
    ckpt = released_checkpoint(path)
    expected = expected_shapes(Path(base), "unet", UNET_IN_CHANNELS)
    shapes = _strip(tensor_shapes(ckpt, CKPT_ACCEPTED), ("module.",))
    compare_shapes(ckpt, shapes, expected, CKPT_ACCEPTED)
    return f"{ckpt.parent.name}/{ckpt.name}: {len(shapes)} tensors, a {UNET_IN_CHANNELS}-input UNet"


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


def _from_pretrained(load, folder: Path, part: str):
    """A diffusers / transformers load on the CPU; any failure names the component's folder."""
    try:
        return load()
    except Exception as exc:  # noqa: BLE001 - e.g. a truncated file the header check could not see
        raise WeightsFormatError(folder / part, BASE_ACCEPTED, f"could not be loaded ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:300]})") from exc


def load_unet(folder: Path, checkpoint: str | Path | None, dtype):
    """The base UNet, widened and loaded with the released checkpoint (checked first)."""
    from diffusers import UNet2DConditionModel

    in_ch = _config(folder / "unet" / "config.json").get("in_channels")
    if checkpoint is None and in_ch != UNET_IN_CHANNELS:
        raise WeightsFormatError(folder / "unet" / "config.json", BASE_ACCEPTED,
                                 f"a {in_ch}-input UNet (the Zero123 base) and relight.neural_gaffer_checkpoint "
                                 "is not set: point it at the released neural_gaffer_res256/ folder")
    if checkpoint is not None:
        inspect_checkpoint(checkpoint, folder)
    unet = _from_pretrained(lambda: UNet2DConditionModel.from_pretrained(
        folder, subfolder="unet", local_files_only=True, torch_dtype=dtype), folder, "unet")
    if checkpoint is None:
        return unet
    ckpt = released_checkpoint(checkpoint)
    if unet.config.in_channels != UNET_IN_CHANNELS:
        widen_conv_in(unet, UNET_IN_CHANNELS)
    try:
        state = {k.removeprefix("module."): v for k, v in _load_state(ckpt).items()}
    except Exception as exc:  # noqa: BLE001 - header fine but data truncated
        raise WeightsFormatError(ckpt, CKPT_ACCEPTED, f"could not be read ({type(exc).__name__}: {exc})") from exc
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
    def from_folder(cls, folder: str | Path, device: str = "auto", dtype: str = "bf16",
                    checkpoint: str | Path | None = None) -> "NeuralGafferModel":
        """The base folder (+ the released checkpoint), checked and loaded on the CPU, then moved."""
        from diffusers import AutoencoderKL, DDIMScheduler
        from transformers import CLIPVisionModelWithProjection

        folder = check_folder(folder)
        inspect_base(folder)
        dev, dt = resolve_device(device, dtype)
        unet = load_unet(folder, checkpoint, dt)
        vae = _from_pretrained(lambda: AutoencoderKL.from_pretrained(
            folder, subfolder="vae", local_files_only=True, torch_dtype=dt), folder, "vae")
        encoder = _from_pretrained(lambda: CLIPVisionModelWithProjection.from_pretrained(
            folder / "image_encoder", local_files_only=True, dtype=dt), folder, "image_encoder")
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

    def _latents(self, images, generators):
        """Condition latents: the VAE posterior's SAMPLE, one draw per item from its generator
        (the official pipeline with a list of generators), unscaled (Zero123's convention)."""
        import torch

        return torch.cat([self.vae.encode(images[i: i + 1].to(self.dtype)).latent_dist.sample(generator=g)
                          for i, g in enumerate(generators)])

    def sample(self, images, env_hdr, env_ldr, *, steps: int = 50, guidance: float = 3.0, generator=None):
        """Relit images (B, 3, R, R) in [0, 1] from inputs, HDR and LDR maps (B, 3, R, R) in [-1, 1].

        `generator`: one `torch.Generator` per item (a single one is shared, drawn in turn). Each
        item's generator draws, in the official order, its initial noise, then the posterior
        samples of its image, HDR and LDR latents."""
        import torch

        with torch.inference_mode():
            images, env_hdr, env_ldr = (t.to(self.device) for t in (images, env_hdr, env_ldr))
            b = images.shape[0]
            gens = list(generator) if isinstance(generator, (list, tuple)) else [generator] * b
            if len(gens) != b:
                raise ValueError(f"{b} items but {len(gens)} generators")
            size = images.shape[-1] // (2 ** (len(self.vae.config.block_out_channels) - 1))
            shape = (1, self.unet.config.out_channels, size, size)
            latents = torch.cat([torch.randn(shape, generator=g, device=g.device if g is not None else self.device,
                                             dtype=torch.float32) for g in gens]).to(self.device)
            latents = latents * self.scheduler.init_noise_sigma
            cond = torch.cat([self._latents(images, gens), self._latents(env_hdr, gens), self._latents(env_ldr, gens)],
                             dim=1)
            emb = self._clip_embed(images)
            cfg = guidance > 1.0
            if cfg:
                cond = torch.cat([torch.zeros_like(cond), cond])
                emb = torch.cat([torch.zeros_like(emb), emb])
            self.scheduler.set_timesteps(steps, device=self.device)
            for t in self.scheduler.timesteps:
                x = torch.cat([latents] * 2) if cfg else latents
                x = self.scheduler.scale_model_input(x, t)
                x = torch.cat([x.to(self.dtype), cond.to(self.dtype)], dim=1)
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


def square_box(mask: np.ndarray, margin: float) -> SquareCrop:
    """The square around the mask's box grown by `margin` per side, at least 8 px (may leave
    the image): the project's square crop rule (`pipeline.faces.geometry.square_crop`, paper
    B.2) of the mask's box at scale 1 + 2 x margin."""
    ys, xs = np.nonzero(mask)
    box = square_crop((xs.min(), ys.min(), xs.max() + 1, ys.max() + 1), 1 + 2 * margin)
    return dataclasses.replace(box, size=max(box.size, 8))


def _overlap(box: SquareCrop, h: int, w: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(image window, crop window) of the part of `box` that lies inside an h x w image."""
    sx0, sy0, sx1, sy1 = max(box.x0, 0), max(box.y0, 0), min(box.x0 + box.size, w), min(box.y0 + box.size, h)
    return (np.s_[sy0:sy1, sx0:sx1], np.s_[sy0 - box.y0 : sy1 - box.y0, sx0 - box.x0 : sx1 - box.x0])


def crop_white(image: np.ndarray, mask: np.ndarray, box: SquareCrop) -> np.ndarray:
    """The square crop with everything outside the mask (and outside the image) white
    (NeuralGaffer's input: an object on white; `extract_crop` pads with image pixels instead)."""
    out = np.full((box.size, box.size, 3), 255, np.uint8)
    inside, window = _overlap(box, *mask.shape)
    keep = mask[inside]
    out[window][keep] = image[inside][keep]
    return out


def uncrop(image: np.ndarray, crop: np.ndarray, box: SquareCrop) -> np.ndarray:
    """`image` with the part of the square `crop` that lies inside it replaced, unblended: the
    inverse of `crop_white`'s window. Not `pipeline.faces.paste`'s paste-back (a feathered
    blend under a mask): the relight stage blends the relit face itself afterwards, with that
    module's `composite` and `feather`."""
    out = image.copy()
    inside, window = _overlap(box, *image.shape[:2])
    out[inside] = crop[window]
    return out


class NeuralGafferRelighter(Relighter):
    name: ClassVar[str] = "neural_gaffer"
    worker_local = ("_model",)

    def __init__(self, params: RelightParams) -> None:
        self.params = params
        self._model: NeuralGafferModel | None = None

    def setup(self) -> None:
        if self._model is None:
            p = self.params
            self._model = NeuralGafferModel.from_folder(p.neural_gaffer_dir, p.device, p.dtype,
                                                        checkpoint=p.neural_gaffer_checkpoint)

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
        out = self.model.sample(img, hdr, ldr, steps=p.num_inference_steps, guidance=p.guidance_scale,
                                generator=item_generators(seed, len(lights), self.model.device))
        relit = (out.permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
        return [uncrop(image, resize_square(r, box.size), box) for r in relit]


def item_generators(seed: int, n: int, device) -> list:
    """One generator per relit variant, each seeded from (seed, its index)."""
    import torch

    states = np.random.SeedSequence(seed % 2**63).spawn(n)
    return [torch.Generator(device=device).manual_seed(int(s.generate_state(1, np.uint64)[0] % 2**63)) for s in states]


LAYOUT = """<relight.neural_gaffer_dir>/          Zero123-XL as published (huggingface.co/kxic/zero123-xl)
  model_index.json
  unet/config.json + diffusion_pytorch_model.bin|.safetensors     (8 input channels)
  vae/config.json + diffusion_pytorch_model.bin|.safetensors
  image_encoder/config.json + pytorch_model.bin|model.safetensors  (CLIPVisionModelWithProjection)
  scheduler/scheduler_config.json
  feature_extractor/, cc_projection/                               (present in the release; unused)
<relight.neural_gaffer_checkpoint>/   the released neural_gaffer_res256_ckpt.zip, unzipped
  checkpoint-<step>/model.safetensors|pytorch_model.bin            (16-input UNet; newest step used)"""


@register_check("relight.neural_gaffer", layout=LAYOUT)
def check_neural_gaffer(params) -> list[ComponentCheck]:
    """The base components and the released UNet, names and shapes from the files (no GPU)."""
    p = params.relight
    if p.backend != "neural_gaffer":
        return []
    if not p.neural_gaffer_dir:
        return [ComponentCheck("relight.neural_gaffer", "neural_gaffer", None, False,
                               "relight.neural_gaffer_dir is not set", RELEASE)]
    lines = []
    try:
        for part, detail in inspect_base(p.neural_gaffer_dir).items():
            lines.append(ComponentCheck(f"relight.neural_gaffer.{part}", "neural_gaffer",
                                        str(Path(p.neural_gaffer_dir) / part), True, detail))
        in_ch = _config(Path(p.neural_gaffer_dir) / "unet" / "config.json").get("in_channels")
    except WeightsFormatError as err:
        return [*lines, ComponentCheck("relight.neural_gaffer.base", "neural_gaffer", err.path, False, err.found,
                                       RELEASE)]
    if not p.neural_gaffer_checkpoint:
        ok = in_ch == UNET_IN_CHANNELS
        lines.append(ComponentCheck("relight.neural_gaffer.checkpoint", "neural_gaffer", None, ok,
                                    "not needed: unet/ already has 16 inputs" if ok else
                                    f"relight.neural_gaffer_checkpoint is not set and unet/ has {in_ch} inputs", RELEASE))
        return lines
    try:
        detail = inspect_checkpoint(p.neural_gaffer_checkpoint, p.neural_gaffer_dir)
        lines.append(ComponentCheck("relight.neural_gaffer.checkpoint", "neural_gaffer",
                                    str(released_checkpoint(p.neural_gaffer_checkpoint)), True, detail))
    except WeightsFormatError as err:
        lines.append(ComponentCheck("relight.neural_gaffer.checkpoint", "neural_gaffer", err.path, False, err.found,
                                    RELEASE))
    return lines
