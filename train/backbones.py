"""Backbone components: the real SDXL / SD1.5 from a local folder, or tiny random ones.

Both paths give the same `Components`. The real path reads the diffusers folder layout
(`unet/`, `vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`, and for SDXL `text_encoder_2/`,
`tokenizer_2/`) with `local_files_only=True`: nothing is ever downloaded. The tiny path builds
small models of the same families in code, for CPU runs of the sample, the tests and the
ablation plumbing; its tokenizer is a byte-level CLIP tokenizer with no merges.

Weight files: each component's dtype variant is detected from the files present
(`pipeline.weight_files.hf_folders.find_weights`): plain `diffusion_pytorch_model.safetensors` /
`model.safetensors` when there, else the variant there, so the common SDXL download of
`*.fp16.safetensors` only loads, and so does a folder mixing fp16 and full-precision
components. The UNet is upcast to fp32 master weights either way. A missing, renamed or
mis-shaped weight is a `WeightsFormatError` naming the file (never a random weight).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Literal, Optional

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from pipeline.weight_files.hf_folders import find_weights, inspect_folder, load_checked, read_config
from pipeline.weight_files.checks import ComponentCheck, WeightsFormatError, failed_check, offline_check, register_check

Family = Literal["sdxl", "sd15"]
TINY_MAX_TOKENS = 32


@dataclasses.dataclass
class Components:
    family: Family
    unet: UNet2DConditionModel
    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    scheduler: DDPMScheduler
    text_encoder_2: Optional[CLIPTextModelWithProjection] = None
    tokenizer_2: Optional[CLIPTokenizer] = None


ACCEPTED = ("a diffusers pipeline folder (stable-diffusion-xl-base-1.0 / stable-diffusion-v1-5): unet/, vae/, "
            "text_encoder/, tokenizer/, scheduler/ (+ text_encoder_2/, tokenizer_2/ for SDXL), each model folder with "
            "config.json and its weights in plain or fp16-variant file names (*.fp16.safetensors)",)


class BackboneError(WeightsFormatError):
    """A pretrained folder that cannot give the model asked for; raised before any weight loads."""

    def __init__(self, path: str | Path, found: str) -> None:
        super().__init__(path, ACCEPTED, found)


# subfolder -> files of which one must be there
REQUIRED = {
    "unet": ("config.json",), "vae": ("config.json",), "text_encoder": ("config.json",),
    "tokenizer": ("vocab.json", "tokenizer.json"), "scheduler": ("scheduler_config.json",),
}
REQUIRED_SDXL = {"text_encoder_2": ("config.json",), "tokenizer_2": ("vocab.json", "tokenizer.json")}
# model components: subfolder -> class
MODELS = {"unet": UNet2DConditionModel, "vae": AutoencoderKL, "text_encoder": CLIPTextModel}
MODELS_SDXL = {"text_encoder_2": CLIPTextModelWithProjection}


def model_parts(family: Family) -> dict[str, type]:
    return {**MODELS, **(MODELS_SDXL if family == "sdxl" else {})}


def check_pretrained(family: Family, folder: str | Path, concat: str = "spatial") -> None:
    """Read only the folder's config files and file names: every component the family needs is
    there with its weights, the UNet is of that family and its `in_channels` fits `concat`.
    Cheap, so it runs before any weight is read or any GPU memory is taken."""
    folder = Path(folder)
    if not folder.is_dir():
        raise BackboneError(folder, "train.pretrained_dir does not exist (weights are never downloaded)")
    needed = {**REQUIRED, **(REQUIRED_SDXL if family == "sdxl" else {})}
    missing = [f"{sub}/ ({' or '.join(files)})" for sub, files in needed.items()
               if not any((folder / sub / f).is_file() for f in files)]
    if missing:
        raise BackboneError(folder, f"is not a complete {family} folder in the diffusers layout: missing "
                            + ", ".join(missing))
    for sub in model_parts(family):
        find_weights(folder / sub, ACCEPTED)  # no weights file / missing shards: named here
    unet = read_config(folder / "unet", ACCEPTED)
    latent = read_config(folder / "vae", ACCEPTED).get("latent_channels", 4)
    is_sdxl = unet.get("addition_embed_type") == "text_time"
    if is_sdxl != (family == "sdxl"):
        raise BackboneError(folder / "unet", f"is {'an SDXL' if is_sdxl else 'not an SDXL'} UNet but train.backbone is {family}")
    allowed = {latent} if concat == "spatial" else {latent, 3 * latent}
    if unet.get("in_channels") not in allowed:
        raise BackboneError(folder / "unet", f"has in_channels={unet.get('in_channels')}, which does not fit "
                            f"train.concat={concat} (needs {' or '.join(map(str, sorted(allowed)))} with a "
                            f"{latent}-channel VAE)")


def _pretrained_vae(folder: Path) -> AutoencoderKL:
    return load_checked(AutoencoderKL, folder / "vae", ACCEPTED)


def build_vae(family: Family, pretrained_dir: str | None, seed: int = 0, concat: str = "spatial") -> AutoencoderKL:
    """The VAE `build_components` would give, without loading the UNet and text encoders
    (`piq latents` needs only the VAE; the same weights, so the same fingerprint)."""
    if pretrained_dir:
        check_pretrained(family, pretrained_dir, concat)
        return _pretrained_vae(Path(pretrained_dir))
    return tiny_components(family, seed).vae


def load_pretrained(family: Family, folder: str | Path, concat: str = "spatial") -> Components:
    """Real weights from a local diffusers-layout folder (e.g. a copy of SDXL base 1.0), checked
    first by `check_pretrained`. Loaded on the CPU in the stored precision; `PiQModel.place`
    moves and casts them."""
    check_pretrained(family, folder, concat)
    folder = Path(folder)
    kw = {"local_files_only": True}
    comps = Components(
        family=family,
        unet=load_checked(UNet2DConditionModel, folder / "unet", ACCEPTED, dtype=torch.float32),
        vae=_pretrained_vae(folder),
        text_encoder=load_checked(CLIPTextModel, folder / "text_encoder", ACCEPTED),
        tokenizer=CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer", **kw),
        scheduler=DDPMScheduler.from_pretrained(folder, subfolder="scheduler", **kw),
    )
    if family == "sdxl":
        comps.text_encoder_2 = load_checked(CLIPTextModelWithProjection, folder / "text_encoder_2", ACCEPTED)
        comps.tokenizer_2 = CLIPTokenizer.from_pretrained(folder, subfolder="tokenizer_2", **kw)
    return comps


def save_components(comps: Components, folder: str | Path) -> None:
    """Write components in the layout `load_pretrained` reads (used by tests and tools)."""
    folder = Path(folder)
    for name in ("unet", "vae", "text_encoder", "tokenizer", "scheduler", "text_encoder_2", "tokenizer_2"):
        part = getattr(comps, name)
        if part is not None:
            part.save_pretrained(folder / name)


def _byte_vocab() -> dict[str, int]:
    """CLIP's byte-to-unicode alphabet, plain and word-final, plus the two special tokens."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            codes.append(256 + extra)
            extra += 1
    chars = [chr(c) for c in codes]
    vocab = {c: i for i, c in enumerate(chars)}
    vocab.update({c + "</w>": len(chars) + i for i, c in enumerate(chars)})
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab


def tiny_tokenizer() -> CLIPTokenizer:
    return CLIPTokenizer(vocab=_byte_vocab(), merges=[], model_max_length=TINY_MAX_TOKENS, pad_token="<|endoftext|>")


def _text_config(hidden: int, projection: int | None = None) -> CLIPTextConfig:
    return CLIPTextConfig(
        vocab_size=len(_byte_vocab()), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
        num_attention_heads=2, max_position_embeddings=TINY_MAX_TOKENS, projection_dim=projection or hidden,
        bos_token_id=512, eos_token_id=513, pad_token_id=513,
    )


def tiny_components(family: Family, seed: int = 0) -> Components:
    """Small random models of the family: SDXL-like (two text encoders, `text_time`
    micro-conditioning) or SD1.5-like (one encoder). VAE downsamples by 4."""
    torch.manual_seed(seed)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 32), layers_per_block=1,
        down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3, norm_num_groups=8,
        sample_size=64,
    )
    common = dict(
        sample_size=16, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=8, attention_head_dim=(2, 4),
    )
    scheduler = DDPMScheduler(num_train_timesteps=1000, beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    if family == "sdxl":
        unet = UNet2DConditionModel(
            **common, cross_attention_dim=32, addition_embed_type="text_time", addition_time_embed_dim=8,
            projection_class_embeddings_input_dim=6 * 8 + 16, use_linear_projection=True,
        )
        return Components("sdxl", unet, vae, CLIPTextModel(_text_config(16)), tiny_tokenizer(), scheduler,
                          CLIPTextModelWithProjection(_text_config(16, projection=16)), tiny_tokenizer())
    unet = UNet2DConditionModel(**common, cross_attention_dim=32)
    return Components("sd15", unet, vae, CLIPTextModel(_text_config(32)), tiny_tokenizer(), scheduler)


def build_components(family: Family, pretrained_dir: str | None, seed: int = 0, concat: str = "spatial") -> Components:
    return load_pretrained(family, pretrained_dir, concat) if pretrained_dir else tiny_components(family, seed)


RELEASE = {"sdxl": "huggingface.co/stabilityai/stable-diffusion-xl-base-1.0 (the *.fp16.safetensors files are enough): "
                   "model_index.json, unet/, vae/, text_encoder/, text_encoder_2/, tokenizer/, tokenizer_2/, scheduler/ "
                   "into train.pretrained_dir/",
           "sd15": "huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5 (fp16 variant files are enough): unet/, "
                   "vae/, text_encoder/, tokenizer/, scheduler/ into train.pretrained_dir/"}
LAYOUT = """train.pretrained_dir/                  (stabilityai/stable-diffusion-xl-base-1.0; sd15: stable-diffusion-v1-5)
  unet/config.json + diffusion_pytorch_model.safetensors | diffusion_pytorch_model.fp16.safetensors
  vae/config.json + diffusion_pytorch_model.safetensors | diffusion_pytorch_model.fp16.safetensors
  text_encoder/config.json + model.safetensors | model.fp16.safetensors
  text_encoder_2/config.json + model.safetensors | model.fp16.safetensors      (SDXL only)
  tokenizer/ (vocab.json, merges.txt) and tokenizer_2/ (SDXL only)
  scheduler/scheduler_config.json
  each component's variant is detected from its files; plain names win when both are there"""


@register_check("train.backbone", layout=LAYOUT)
def check(params) -> list[ComponentCheck]:
    """`piq models check`: the backbone folder of `train.pretrained_dir`, one line per component."""
    tp = params.train
    name = f"train.backbone.{tp.backbone}"
    if not tp.pretrained_dir:
        return [offline_check(name, f"tiny-{tp.backbone}", "a small random model of the family built in code, "
                              "for CPU runs; set train.pretrained_dir for the paper's run")]
    try:
        check_pretrained(tp.backbone, tp.pretrained_dir, tp.concat)
    except WeightsFormatError as exc:
        return [failed_check(name, tp.backbone, tp.pretrained_dir, exc, RELEASE[tp.backbone])]
    lines = []
    for sub, cls in model_parts(tp.backbone).items():
        where = str(Path(tp.pretrained_dir) / sub)
        try:
            lines.append(ComponentCheck(f"{name}.{sub}", tp.backbone, where, True, inspect_folder(where, cls, ACCEPTED)))
        except WeightsFormatError as exc:
            lines.append(failed_check(f"{name}.{sub}", tp.backbone, where, exc, RELEASE[tp.backbone]))
    return lines

