"""SDXL / SD1.5 backbones from the folders users download: `*.fp16.safetensors` only (the common
way to fetch SDXL), or mixed with full-precision components; the exported trained pipeline
still saves and reloads with a plain `from_pretrained`; bad downloads are named, never random."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file

from pipeline.weight_files.hf_folders import find_weights
from pipeline.weight_files.checks import WeightsFormatError
from tests.fixtures.published_layouts import diffusers_fp16_folder, rename_key, repo_params, reshape_key, truncate, weight_file
from train.backbones import BackboneError, check, load_pretrained, tiny_components
from train.model import PiQModel, export_pipeline
from train.piq_pipeline import PiQPerfectPipeline


def _same_as_fp16(module: torch.nn.Module, reference: torch.nn.Module) -> bool:
    ref = reference.state_dict()
    return all(torch.equal(v.float(), ref[k].to(torch.float16).float()) for k, v in module.state_dict().items())


def test_plain_from_pretrained_cannot_read_the_fp16_download(tmp_path):
    """The failure being fixed: no `variant` passed, no plain file there."""
    folder = diffusers_fp16_folder(tmp_path / "sdxl")
    with pytest.raises(OSError, match="no file named"):
        UNet2DConditionModel.from_pretrained(folder, subfolder="unet", local_files_only=True)


@pytest.mark.parametrize("family", ["sdxl", "sd15"])
def test_fp16_only_folder_loads_every_component(tmp_path, family):
    folder = diffusers_fp16_folder(tmp_path / family, family)
    assert (folder / "unet" / "diffusion_pytorch_model.fp16.safetensors").is_file()
    keys = load_file(str(folder / "text_encoder" / "model.fp16.safetensors"))
    assert all(k.startswith("text_model.") for k in keys)  # the key names of the published files
    comps = load_pretrained(family, folder)
    reference = tiny_components(family, seed=0)
    assert comps.unet.dtype == torch.float32  # fp32 master weights from the fp16 file
    for name in ("unet", "vae", "text_encoder") + (("text_encoder_2",) if family == "sdxl" else ()):
        assert _same_as_fp16(getattr(comps, name), getattr(reference, name)), name


def test_mixed_folder_detects_the_variant_per_component(tmp_path):
    folder = diffusers_fp16_folder(tmp_path / "sdxl", plain=("unet", "text_encoder_2"))
    variants = {sub: find_weights(folder / sub).variant for sub in ("unet", "vae", "text_encoder", "text_encoder_2")}
    assert variants == {"unet": None, "vae": "fp16", "text_encoder": "fp16", "text_encoder_2": None}
    comps = load_pretrained("sdxl", folder)
    reference = tiny_components("sdxl", seed=0)
    assert all(torch.equal(v, reference.unet.state_dict()[k]) for k, v in comps.unet.state_dict().items())
    assert _same_as_fp16(comps.vae, reference.vae)


def test_plain_files_win_over_the_variant(tmp_path):
    folder = diffusers_fp16_folder(tmp_path / "sdxl")
    tiny_components("sdxl", seed=0).unet.save_pretrained(folder / "unet")  # both names now present
    assert find_weights(folder / "unet").variant is None


def test_export_from_an_fp16_download_reloads_with_plain_from_pretrained(tmp_path):
    folder = diffusers_fp16_folder(tmp_path / "sdxl")
    model = PiQModel(load_pretrained("sdxl", folder), "spatial", 32)
    with torch.no_grad():
        for p in model.unet.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    out = export_pipeline(model, model.unet, tmp_path / "piq", pretrained_dir=str(folder))
    # frozen parts: the downloaded bytes under the plain name; the UNet: fp32 master weights
    assert (out / "vae" / "diffusion_pytorch_model.safetensors").read_bytes() == \
        (folder / "vae" / "diffusion_pytorch_model.fp16.safetensors").read_bytes()
    assert (out / "text_encoder_2" / "model.safetensors").is_file()
    assert not list(out.rglob("*.fp16.*"))
    pipe = PiQPerfectPipeline.from_pretrained(out, local_files_only=True)
    assert all(torch.equal(v, model.unet.state_dict()[k]) for k, v in pipe.unet.state_dict().items())
    assert _same_as_fp16(pipe.vae, tiny_components("sdxl", seed=0).vae)
    again = load_pretrained("sdxl", out)  # and fine-tuning it further reads it too
    assert torch.equal(again.unet.conv_in.weight, model.unet.conv_in.weight)


@pytest.mark.parametrize("damage,match", [
    (lambda f: weight_file(f / "vae").unlink(), r"vae: no weights file \(found: config.json\)"),
    (lambda f: truncate(weight_file(f / "unet")), r"unet/diffusion_pytorch_model.fp16.safetensors: could not be read"),
    (lambda f: rename_key(weight_file(f / "text_encoder"), "final_layer_norm.weight", "final_norm.weight"),
     r"text_encoder/model.fp16.safetensors: missing: (text_model.)?final_layer_norm.weight"),
    (lambda f: reshape_key(weight_file(f / "unet"), "conv_in.weight"),
     r"unet/diffusion_pytorch_model.fp16.safetensors: wrong shape: conv_in.weight \(33, 4, 3, 3\)"),
], ids=["missing_component_weights", "truncated", "renamed_key", "wrong_shape"])
def test_bad_download_is_named_before_training(tmp_path, damage, match):
    folder = diffusers_fp16_folder(tmp_path / "sdxl")
    damage(folder)
    with pytest.raises(WeightsFormatError, match=match):
        load_pretrained("sdxl", folder)


def test_check_lists_each_component_and_what_is_wrong(tmp_path):
    folder = diffusers_fp16_folder(tmp_path / "sdxl")
    params = repo_params(train=dataclasses.replace(repo_params().train, pretrained_dir=str(folder)))
    lines = check(params)
    assert [line.component for line in lines] == [f"train.backbone.sdxl.{s}" for s in
                                                  ("unet", "vae", "text_encoder", "text_encoder_2")]
    assert all(line.ok and "(fp16 variant)" in line.detail for line in lines)
    reshape_key(weight_file(folder / "vae"), "conv_out.weight")
    bad = {line.component: line for line in check(params)}
    assert not bad["train.backbone.sdxl.vae"].ok and "wrong shape" in bad["train.backbone.sdxl.vae"].detail
    assert "stable-diffusion-xl-base-1.0" in bad["train.backbone.sdxl.vae"].release
    assert bad["train.backbone.sdxl.unet"].ok
    (offline,) = check(repo_params())
    assert offline.ok and "nothing to download" in offline.detail


def test_backbone_error_is_a_weights_format_error(tmp_path):
    assert issubclass(BackboneError, WeightsFormatError)
    with pytest.raises(WeightsFormatError, match="does not exist"):
        load_pretrained("sdxl", tmp_path / "nowhere")
