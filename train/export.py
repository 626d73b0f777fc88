"""Write a trained model as a `PiQPerfectPipeline` folder without touching the frozen weights.

The UNet is written with its fp32 master weights. Frozen parts that came from a pretrained
folder are copied from it byte for byte (training may hold them in bf16; re-saving those would
write a lossy copy); tiny random ones are saved in fp32. A frozen part copied from an
fp16-variant download (`model.fp16.safetensors`) is written under the plain file name, bytes
unchanged, so the exported folder loads with a plain `PiQPerfectPipeline.from_pretrained`. The folder is written under a temporary
name and renamed, so an interrupted export never leaves a pipeline that loads but is incomplete.
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path
from typing import Optional

import torch
from diffusers import EulerDiscreteScheduler, UNet2DConditionModel

from pipeline.weight_files.hf_folders import use_plain_names
from train.backbones import Components, model_parts
from train.piq_pipeline import PiQPerfectPipeline

FROZEN = ("vae", "text_encoder", "text_encoder_2", "tokenizer", "tokenizer_2")


def canonical(part):
    """`part` as it is to be saved. A fast tokenizer keeps the padding and truncation of its last
    call in its Rust backend, and `save_pretrained` writes them into tokenizer.json: whether the
    training run had tokenized in this process before the export changed the exported bytes (and
    dvc.lock), and a folder saved with them pads every later call to that length. Saved from a
    copy with both cleared, as published tokenizers are."""
    backend = getattr(part, "backend_tokenizer", None)
    if backend is None or (backend.padding is None and backend.truncation is None):
        return part
    part = copy.deepcopy(part)
    part.backend_tokenizer.no_padding()
    part.backend_tokenizer.no_truncation()
    return part


def write_pipeline_folder(comps: Components, unet: UNet2DConditionModel, concat: str, resolution: int,
                          out_dir: str | Path, pretrained_dir: Optional[str] = None, scheduler=None) -> Path:
    """`scheduler`: the sampler to ship (default: Euler from the training scheduler's config)."""
    out_dir = Path(out_dir)
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    scheduler = scheduler or EulerDiscreteScheduler.from_config(comps.scheduler.config)
    pipe = PiQPerfectPipeline(unet, comps.vae, comps.text_encoder, comps.tokenizer, scheduler, comps.text_encoder_2,
                              comps.tokenizer_2, concat=concat, resolution=resolution)
    pipe.save_config(tmp)  # model_index.json: component classes, concat, resolution
    if unet.dtype != torch.float32:
        raise ValueError(f"the trained UNet is {unet.dtype}; the export writes fp32 master weights")
    unet.save_pretrained(tmp / "unet")
    scheduler.save_pretrained(tmp / "scheduler")
    for name in FROZEN:
        part = getattr(comps, name)
        if part is None:
            continue
        source = Path(pretrained_dir) / name if pretrained_dir else None
        if source is not None and source.is_dir():
            shutil.copytree(source, tmp / name)
            if name in model_parts(comps.family):
                use_plain_names(tmp / name)
        elif isinstance(part, torch.nn.Module) and part.dtype != torch.float32:
            raise ValueError(f"{name} is {part.dtype} and has no pretrained folder to copy; cannot export it losslessly")
        else:
            canonical(part).save_pretrained(tmp / name)
    written = [tmp / "unet", tmp / "scheduler"] + [tmp / n for n in FROZEN if not (pretrained_dir and (Path(pretrained_dir) / n).is_dir())]
    strip_version_stamps([tmp / "model_index.json", *(f for d in written if d.is_dir() for f in sorted(d.glob("*.json")))])
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


VERSION_KEYS = ("_diffusers_version", "transformers_version")


def strip_version_stamps(paths: list[Path]) -> None:
    """Drop the library versions diffusers and transformers write into the configs they save
    (both loaders treat the key as optional): the exported folder, a DVC out, then hashes the
    same under any release of either. Files copied from a pretrained folder are not passed here
    (they stay byte for byte as published)."""
    import json

    for path in paths:
        if not path.is_file():
            continue
        text = path.read_text()
        data = json.loads(text)
        if isinstance(data, dict) and any(k in data for k in VERSION_KEYS):
            for key in VERSION_KEYS:
                data.pop(key, None)
            path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
