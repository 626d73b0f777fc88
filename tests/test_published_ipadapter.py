"""The IP-Adapter baseline from the downloads users have: an SDXL folder of `*.fp16.safetensors`
only (or mixed with full-precision components) beside h94/IP-Adapter's files; adapters that do
not fit the UNet or the image encoder, and damaged files, are named before anything runs."""
from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
from safetensors.torch import save_file

from eval.baselines import build_method
from eval.baselines.ipadapter import ADAPTERS, check
from eval.data import Triplet
from pipeline.config.evaluate import EvaluateParams
from pipeline.weight_files.checks import WeightsFormatError
from tests.fixtures.published_layouts import diffusers_fp16_folder, repo_params, truncate
from tests.fixtures.ipadapter_weights import make_weights, plus_adapter


def _folders(tmp_path, plain=()):
    ip, sdxl = make_weights(tmp_path)
    shutil.rmtree(sdxl)
    diffusers_fp16_folder(sdxl, "sdxl", plain=plain, seed=1)
    return ip, sdxl


def _params(ip, sdxl) -> EvaluateParams:
    return EvaluateParams(ipadapter_dir=str(ip), ipadapter_sdxl_dir=str(sdxl), ipadapter_steps=4, ipadapter_resolution=32)


@pytest.mark.parametrize("plain", [(), ("unet", "text_encoder")], ids=["fp16_only", "mixed"])
def test_ipadapter_runs_from_an_fp16_sdxl_download(tmp_path, plain):
    ip, sdxl = _folders(tmp_path, plain)
    assert not (sdxl / "vae" / "diffusion_pytorch_model.safetensors").exists()
    method = build_method("ipadapter", _params(ip, sdxl))
    src, drv = (np.random.default_rng(k).integers(0, 256, (40, 40, 3), dtype=np.uint8) for k in range(2))
    out = method.run([Triplet("p0", src, drv, drv, drv)])
    assert out[0].shape == (40, 40, 3) and out[0].dtype == np.uint8


def _replace_adapter(ip, tensors, index=1):
    save_file(tensors, str(ip / "sdxl_models" / ADAPTERS[index]))
    return ip / "sdxl_models" / ADAPTERS[index]


@pytest.mark.parametrize("damage,match", [
    (lambda ip, unet: _replace_adapter(ip, plus_adapter(unet, 48, seed=0)),
     r"ip-adapter-plus-face_sdxl_vit-h.safetensors: image_proj.proj_in.weight takes 48-d image features but "
     r"models/image_encoder has hidden_size 32"),
    (lambda ip, unet: _replace_adapter(ip, {k.replace("ip_adapter.1.to_k_ip", "ip_adapter.1.to_k"): v for k, v in
                                           plus_adapter(unet, 32, seed=0).items()}, index=0),
     r"ip-adapter-plus_sdxl_vit-h.safetensors: missing: ip_adapter.1.to_k_ip.weight; unexpected: ip_adapter.1.to_k.weight"),
    (lambda ip, unet: _replace_adapter(ip, {k: v for k, v in plus_adapter(unet, 32, seed=0).items()
                                           if k.startswith("ip_adapter.")}),
     r"ip-adapter-plus-face_sdxl_vit-h.safetensors: has no image_proj.latents"),
    (lambda ip, unet: truncate(ip / "sdxl_models" / ADAPTERS[0]), r"ip-adapter-plus_sdxl_vit-h.safetensors: could not be read"),
], ids=["other_encoder", "renamed_key", "not_plus", "truncated"])
def test_unusable_adapter_is_named_before_loading(tmp_path, damage, match):
    from train.backbones import tiny_components

    ip, sdxl = _folders(tmp_path)
    damage(ip, tiny_components("sdxl", seed=1).unet)
    with pytest.raises(WeightsFormatError, match=match):
        build_method("ipadapter", _params(ip, sdxl))
    (line,) = check(repo_params(evaluate=_params(ip, sdxl)))
    assert not line.ok and "h94/IP-Adapter" in line.release


def test_check_reports_each_part(tmp_path):
    ip, sdxl = _folders(tmp_path, plain=("unet",))
    (line,) = check(repo_params(evaluate=_params(ip, sdxl)))
    assert line.ok, line.detail
    assert "unet: diffusion_pytorch_model.safetensors," in line.detail
    assert "vae: diffusion_pytorch_model.fp16.safetensors (fp16 variant)" in line.detail
    (line,) = check(repo_params(evaluate=EvaluateParams()))
    assert line.ok and "unavailable" in line.detail
    (line,) = check(repo_params(evaluate=dataclasses.replace(_params(ip, sdxl), methods=("source",))))
    assert line.ok and "not in evaluate.methods" in line.detail
    (sdxl / "model_index.json").unlink()
    (line,) = check(repo_params(evaluate=_params(ip, sdxl)))
    assert not line.ok and "model_index.json" in line.detail
