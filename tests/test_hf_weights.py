"""`pipeline.weight_files.hf_folders`: weight files found by their published names (plain, fp16 variant,
sharded behind an index), variant-named folders renamed to plain names for our own exports."""
from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel
from transformers import CLIPTextModel

from pipeline.weight_files.hf_folders import find_weights, inspect_folder, load_checked, use_plain_names
from pipeline.weight_files.checks import WeightsFormatError
from train.backbones import tiny_components


@pytest.fixture(scope="module")
def comps():
    return tiny_components("sdxl", seed=0)


@pytest.mark.parametrize("cls_name", ["unet", "text_encoder"])
def test_sharded_fp16_variant_is_found_checked_and_loaded(tmp_path, comps, cls_name):
    part = getattr(comps, cls_name)
    cls = {"unet": UNet2DConditionModel, "text_encoder": CLIPTextModel}[cls_name]
    part.to(torch.float16).save_pretrained(tmp_path, variant="fp16", max_shard_size="10KB")
    part.to(torch.float32)
    weights = find_weights(tmp_path)
    assert weights.variant == "fp16" and len(weights.files) > 1 and weights.index.name.endswith(".index.fp16.json")
    assert "tensors match" in inspect_folder(tmp_path, cls)
    loaded = load_checked(cls, tmp_path, dtype=torch.float32)
    assert all(torch.equal(v, part.state_dict()[k].half().float()) for k, v in loaded.state_dict().items())
    use_plain_names(tmp_path)
    assert not list(tmp_path.glob("*fp16*"))
    plain = find_weights(tmp_path)
    assert plain.variant is None and len(plain.files) == len(weights.files)
    again = cls.from_pretrained(tmp_path, local_files_only=True)  # a plain from_pretrained reads it
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in again.state_dict().items())


def test_missing_shard_and_broken_index_are_named(tmp_path, comps):
    comps.text_encoder.save_pretrained(tmp_path, max_shard_size="40KB")
    shard = sorted(tmp_path.glob("model-*.safetensors"))[-1]
    shard.unlink()
    with pytest.raises(WeightsFormatError, match=rf"model.safetensors.index.json: names shards that are missing: {shard.name}"):
        find_weights(tmp_path)
    (tmp_path / "model.safetensors.index.json").write_text("[]")
    with pytest.raises(WeightsFormatError, match=r"model.safetensors.index.json: is not a weights index"):
        find_weights(tmp_path)


def test_folder_without_weights_lists_what_it_has(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "diffusion_pytorch_model.ckpt").write_bytes(b"x")
    with pytest.raises(WeightsFormatError, match=r"no weights file \(found: config.json, diffusion_pytorch_model.ckpt\)"):
        find_weights(tmp_path)
    with pytest.raises(WeightsFormatError, match="no such folder"):
        find_weights(tmp_path / "absent")


def test_config_of_another_architecture_is_named(tmp_path, comps):
    comps.vae.save_pretrained(tmp_path)
    with pytest.raises(WeightsFormatError, match=r"config.json: does not describe a CLIPTextModel|missing: "):
        inspect_folder(tmp_path, CLIPTextModel)


def test_extra_tensors_the_loader_ignores_are_noted_not_failed(tmp_path, comps):
    """e.g. `text_model.embeddings.position_ids`, a buffer older transformers saved in CLIP files."""
    from safetensors.torch import load_file, save_file

    comps.text_encoder.save_pretrained(tmp_path)
    tensors = load_file(str(tmp_path / "model.safetensors"))
    tensors = {(k if k.startswith("text_model.") else f"text_model.{k}"): v for k, v in tensors.items()}
    tensors["text_model.embeddings.position_ids"] = torch.arange(32)[None]
    save_file(tensors, str(tmp_path / "model.safetensors"), metadata={"format": "pt"})
    assert "1 unused tensor(s) the loader ignores: embeddings.position_ids" in inspect_folder(tmp_path, CLIPTextModel)
    load_checked(CLIPTextModel, tmp_path)
