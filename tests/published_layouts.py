"""Tiny random models written in the file layouts their public releases use (official file
names, config files and key names; random values), and the ways such a download goes bad.

- `face_parsing_folder`: jonathandinu/face-parsing (SegFormer, 19 CelebAMask-HQ labels):
  config.json, model.safetensors, and the legacy `preprocessor_config.json` that names
  `SegformerFeatureExtractor` (written by the transformers 4.2x of its release).
- `llava_hf_folder`: llava-hf/llava-1.5-7b-hf: weights in shards behind
  `model.safetensors.index.json`, keys as that conversion wrote them (`language_model.model.*`,
  `language_model.lm_head.weight`, `vision_tower.vision_model.*`, `multi_modal_projector.*`).
- `diffusers_fp16_folder`: stable-diffusion-xl-base-1.0 / stable-diffusion-v1-5 fetched as
  `*.fp16.safetensors` only (`unet/diffusion_pytorch_model.fp16.safetensors`,
  `text_encoder/model.fp16.safetensors`, ...), optionally with some components in plain files.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

import torch
from safetensors.torch import load_file, save_file

CELEBAMASK = ["background", "skin", "nose", "eye_g", "l_eye", "r_eye", "l_brow", "r_brow", "l_ear", "r_ear",
              "mouth", "u_lip", "l_lip", "hair", "hat", "ear_r", "neck_l", "neck", "cloth"]

# preprocessor_config.json as transformers 4.2x wrote it for a SegformerFeatureExtractor
LEGACY_PROCESSOR = {
    "do_normalize": True, "do_reduce_labels": False, "do_rescale": True, "do_resize": True,
    "feature_extractor_type": "SegformerFeatureExtractor", "image_processor_type": "SegformerFeatureExtractor",
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "resample": 2,
    "rescale_factor": 0.00392156862745098, "size": {"height": 512, "width": 512},
}
# the older form of the same file: `size` an int, `reduce_labels`, no image_processor_type
OLDEST_PROCESSOR = {
    "do_normalize": True, "do_resize": True, "feature_extractor_type": "SegformerFeatureExtractor",
    "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225], "reduce_labels": False,
    "resample": 2, "size": 512,
}

DIFFUSERS_PARTS = {"unet": "diffusion_pytorch_model", "vae": "diffusion_pytorch_model", "text_encoder": "model",
                   "text_encoder_2": "model"}


# SegFormer-B5 (jonathandinu/face-parsing's encoder, nvidia/mit-b5) and a tiny one of the same classes
SEGFORMER_SIZES = {
    "b5": dict(depths=[3, 6, 40, 3], hidden_sizes=[64, 128, 320, 512], num_attention_heads=[1, 2, 5, 8],
               decoder_hidden_size=768),
    "tiny": dict(depths=[1, 1, 1, 1], hidden_sizes=[8, 16, 24, 32], num_attention_heads=[1, 1, 1, 1],
                 decoder_hidden_size=16),
}


def face_parsing_folder(folder: Path, processor: dict | None = LEGACY_PROCESSOR, order: list[str] = CELEBAMASK,
                        winner: str = "nose", side: int | None = None, full: bool = False) -> Path:
    """A SegFormer whose classifier makes `winner` win everywhere, saved as published: tiny, or
    `full` the B5 of the published face parser (its 512 px processor)."""
    from transformers import SegformerConfig, SegformerForSemanticSegmentation

    side = side or (512 if full else 64)
    config = SegformerConfig(num_encoder_blocks=4, **SEGFORMER_SIZES["b5" if full else "tiny"], num_labels=len(order),
                             id2label=dict(enumerate(order)), label2id={n: i for i, n in enumerate(order)},
                             architectures=["SegformerForSemanticSegmentation"])
    torch.manual_seed(0)
    model = SegformerForSemanticSegmentation(config).eval()
    with torch.no_grad():
        model.decode_head.classifier.weight.zero_()
        model.decode_head.classifier.bias.fill_(-5.0)
        model.decode_head.classifier.bias[order.index(winner)] = 5.0
    model.save_pretrained(folder)
    if processor is not None:
        data = dict(processor)
        data["size"] = side if isinstance(data["size"], int) else {"height": side, "width": side}
        (folder / "preprocessor_config.json").write_text(json.dumps(data, indent=2))
    return folder


def diffusers_fp16_folder(folder: Path, family: str = "sdxl", plain: Iterable[str] = (), seed: int = 0,
                          model_index: bool = True, full: bool = False) -> Path:
    """A random backbone in the diffusers layout with every weight file in the fp16 variant's
    name (`*.fp16.safetensors`), except the components in `plain` (full precision, plain names):
    a mixed folder. Tiny, or `full` the SDXL base architecture (bench/sdxl.py; built on the GPU
    when there is one: ~3.5 B parameters)."""
    from train.backbones import tiny_components

    if full:
        from bench.sdxl import full_components

        with torch.device("cuda" if torch.cuda.is_available() else "cpu"):
            comps = full_components(family, seed=seed, dtype=torch.float16)
    else:
        comps = tiny_components(family, seed=seed)
    plain = set(plain)
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        part = getattr(comps, name)
        if part is None:
            continue
        if name in plain:
            part.save_pretrained(folder / name)
        else:
            part.to(torch.float16).save_pretrained(folder / name, variant="fp16")
            if not full:
                part.to(torch.float32)
        if name.startswith("text_encoder"):
            _publish_clip_text_keys(weight_file(folder / name))
    for name in ("tokenizer", "tokenizer_2", "scheduler"):
        part = getattr(comps, name)
        if part is not None:
            part.save_pretrained(folder / name)
    if model_index:  # as the published repositories have it (StableDiffusionXLPipeline / StableDiffusionPipeline)
        cls = "StableDiffusionXLPipeline" if family == "sdxl" else "StableDiffusionPipeline"
        index = {"_class_name": cls, "_diffusers_version": "0.19.0.dev0",
                 "scheduler": ["diffusers", "EulerDiscreteScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
                 "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
                 "vae": ["diffusers", "AutoencoderKL"]}
        if family == "sdxl":
            index.update(text_encoder_2=["transformers", "CLIPTextModelWithProjection"],
                         tokenizer_2=["transformers", "CLIPTokenizer"], force_zeros_for_empty_prompt=True)
        else:
            index.update(safety_checker=[None, None], feature_extractor=[None, None], requires_safety_checker=False)
        (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    return folder


def llava_hf_folder(folder: Path, shards: int = 2, full: bool = False) -> Path:
    """A random LLaVA-1.5 (tests/llava_random.py: tiny, or `full` the 7B architecture in fp16,
    built on the GPU when there is one) re-written as llava-hf ships it."""
    from tests.llava_random import save_random_llava

    save_random_llava(folder, full=full, dtype=torch.float16 if full else None)
    # the image processor in its own preprocessor_config.json, as the 4.x-era release has it
    processor = json.loads((folder / "processor_config.json").read_text())
    (folder / "preprocessor_config.json").write_text(json.dumps(processor.pop("image_processor"), indent=2))
    (folder / "processor_config.json").write_text(json.dumps(processor, indent=2))
    saved = sorted(folder.glob("model*.safetensors"))  # one file, or shards when transformers split a large model
    tensors = {}
    for path in saved:
        tensors.update(load_file(str(path)))
        path.unlink()
    (folder / "model.safetensors.index.json").unlink(missing_ok=True)
    published = {(k.replace("vision_tower.", "vision_tower.vision_model.", 1) if k.startswith("vision_tower.")
                  and not k.startswith("vision_tower.vision_model.") else k): v for k, v in tensors.items()}
    names = sorted(published)
    weight_map = {}
    for i in range(shards):
        shard = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        part = {k: published[k].contiguous() for k in names[i::shards]}
        save_file(part, str(folder / shard), metadata={"format": "pt"})
        weight_map.update({k: shard for k in part})
    total = sum(v.numel() * v.element_size() for v in published.values())
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                     "weight_map": weight_map}, indent=2))
    return folder


def repo_params(**sections):
    """The repository's params.yaml with some sections replaced (for the model checks)."""
    import dataclasses

    from pipeline.config.params import load_params

    return dataclasses.replace(load_params(Path(__file__).resolve().parents[1] / "params.yaml"), **sections)


def _publish_clip_text_keys(path: Path) -> None:
    """CLIP text encoders as the SD / SDXL repositories store them: every key under `text_model.`
    (transformers 5 writes CLIPTextModel's without it and renames at load)."""
    tensors = load_file(str(path))
    if all(k.startswith("text_model.") or k == "text_projection.weight" for k in tensors):
        return
    save_file({(k if k.startswith("text_model.") or k == "text_projection.weight" else f"text_model.{k}"): v
               for k, v in tensors.items()}, str(path), metadata={"format": "pt"})


def weight_file(component: Path) -> Path:
    """The one weights file of a component folder."""
    (path,) = [p for p in component.iterdir() if p.suffix in (".safetensors", ".bin")]
    return path


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def rename_key(path: Path, old_suffix: str, new_suffix: str) -> str:
    """Rename the first tensor whose name ends with `old_suffix`; returns its old name."""
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.endswith(old_suffix))
    tensors[key[: -len(old_suffix)] + new_suffix] = tensors.pop(key)
    save_file(tensors, str(path), metadata={"format": "pt"})
    return key


def reshape_key(path: Path, suffix: str) -> str:
    """Give the first tensor whose name ends with `suffix` one more output row; returns its name."""
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.endswith(suffix))
    value = tensors[key]
    tensors[key] = torch.cat([value, value[:1]])
    save_file(tensors, str(path), metadata={"format": "pt"})
    return key
