"""Placement, precision and bad input of the GPU product path, checked on the CPU (issue 8).

`torch.device("meta")` stands in for an accelerator: a component left behind by `.to()` stays
on the CPU and is caught here, as the VAE was once caught only by a crash on the H100.
"""
from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch

from tests.fixtures.training import DATA, params
from train import checkpoint
from train.backbones import BackboneError, check_pretrained, load_pretrained, save_components, tiny_components
from train.data import make_train_loader
from train.loop import OutOfMemory, config_fingerprint, make_accelerator, train
from pipeline.device import resolve_dtype
from train.model import PiQModel, export_pipeline


def all_components(model: PiQModel) -> dict[str, torch.nn.Module]:
    c = model.comps
    return {"unet": c.unet, "vae": c.vae, "text_encoder": c.text_encoder, "text_encoder_2": c.text_encoder_2}


def test_to_moves_every_component() -> None:
    model = PiQModel(tiny_components("sdxl"), "spatial", 32)
    model.to("meta")
    for name, part in all_components(model).items():
        devices = {p.device.type for p in part.parameters()} | {b.device.type for b in part.buffers()}
        assert devices == {"meta"}, f"{name} left on {devices}"


def test_place_keeps_fp32_unet_and_casts_frozen_parts() -> None:
    model = PiQModel(tiny_components("sdxl"), "spatial", 32)
    model.place("meta", "bf16")
    assert {p.dtype for p in model.unet.parameters()} == {torch.float32}
    for name in ("vae", "text_encoder", "text_encoder_2"):
        assert {p.dtype for p in all_components(model)[name].parameters()} == {torch.bfloat16}, name
    assert resolve_dtype("auto", "cpu") == torch.float32 and resolve_dtype("bf16", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16


def test_vae_encodes_in_chunks_of_the_param(monkeypatch) -> None:
    model = PiQModel(tiny_components("sdxl"), "spatial", 32, vae_chunk=4)
    calls = []
    encode = model.comps.vae.encode
    monkeypatch.setattr(model.comps.vae, "encode", lambda x: calls.append(len(x)) or encode(x))
    latents = model.encode(torch.zeros(10, 3, 32, 32))
    assert calls == [4, 4, 2] and latents.shape[0] == 10 and latents.dtype == torch.float32


def test_incomplete_pretrained_folder_is_named_before_loading(tmp_path: Path) -> None:
    save_components(tiny_components("sdxl"), tmp_path / "sdxl")
    shutil.rmtree(tmp_path / "sdxl" / "text_encoder_2")
    with pytest.raises(BackboneError, match=r"sdxl.*missing text_encoder_2/"):
        load_pretrained("sdxl", tmp_path / "sdxl")
    with pytest.raises(BackboneError, match="does not exist"):
        check_pretrained("sdxl", tmp_path / "nowhere")


def test_unet_that_does_not_fit_concat_is_refused(tmp_path: Path) -> None:
    save_components(tiny_components("sd15"), tmp_path / "sd15")
    config = tmp_path / "sd15" / "unet" / "config.json"
    cfg = json.loads(config.read_text())
    cfg["in_channels"] = 12
    config.write_text(json.dumps(cfg))
    with pytest.raises(BackboneError, match=r"in_channels=12.*train.concat=spatial"):
        check_pretrained("sd15", tmp_path / "sd15", "spatial")
    check_pretrained("sd15", tmp_path / "sd15", "channel")  # an exported channel-concat model
    save_components(tiny_components("sdxl"), tmp_path / "sdxl")
    with pytest.raises(BackboneError, match="is an SDXL UNet but train.backbone is sd15"):
        check_pretrained("sd15", tmp_path / "sdxl")


def test_out_of_memory_names_the_params_to_lower(tmp_path: Path, tiny_shards: Path, monkeypatch) -> None:
    tp = params(tmp_path)
    model = PiQModel(tiny_components("sdxl"), "spatial", DATA.resolution)

    def oom(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(model, "loss", oom)
    loader, stream = make_train_loader(DATA, tiny_shards, tp.batch_size, seed=0)
    with pytest.raises(OutOfMemory, match=r"train.batch_size=2.*train.vae_chunk=16.*lower train.batch_size"):
        train(model, loader, stream, tp, 0, make_accelerator(tp), fingerprint=config_fingerprint(tp, DATA, 0))


def test_full_disk_keeps_the_previous_checkpoint(tmp_path: Path, monkeypatch) -> None:
    state = {"unet": {"w": torch.zeros(1000)}, "step": 1}
    first = checkpoint.save(tmp_path, 1, state, keep=2)
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage", lambda p: usage._replace(free=100))
    with pytest.raises(checkpoint.CheckpointSpaceError, match=r"needs about 0.0 GiB .* 0.0 GiB free.*intact"):
        checkpoint.save(tmp_path, 2, state, keep=2)
    monkeypatch.undo()

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.torch, "save", full)
    with pytest.raises(checkpoint.CheckpointSpaceError):
        checkpoint.save(tmp_path, 3, state, keep=2)
    assert checkpoint.checkpoint_dirs(tmp_path) == [first]
    assert not list(tmp_path.glob(".*tmp"))
    assert checkpoint.load(first)["step"] == 1
    assert checkpoint.state_bytes(state) == 4000


def test_export_copies_frozen_parts_from_the_pretrained_folder(tmp_path: Path) -> None:
    save_components(tiny_components("sdxl"), tmp_path / "base")
    model = PiQModel(load_pretrained("sdxl", tmp_path / "base"), "spatial", 32)
    model.place("cpu", "fp32")
    for frozen in model.frozen_parts():  # as on a GPU: frozen parts held in bf16 during training
        frozen.to(torch.bfloat16)
    out = export_pipeline(model, model.unet, tmp_path / "piq", pretrained_dir=str(tmp_path / "base"))
    for name in ("vae", "text_encoder", "text_encoder_2"):
        for f in (tmp_path / "base" / name).iterdir():
            assert (out / name / f.name).read_bytes() == f.read_bytes(), f"{name}/{f.name}"
    reloaded = load_pretrained("sdxl", out)
    assert reloaded.unet.dtype == torch.float32
    for a, b in zip(model.unet.state_dict().values(), reloaded.unet.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="losslessly"):
        export_pipeline(model, model.unet, tmp_path / "piq2")
