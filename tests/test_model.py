"""The model: where the loss acts, channel widening, micro-conditioning, real loading path, export
and reload of a trained model, overfitting."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from diffusers.training_utils import EMAModel

from train.backbones import load_pretrained, save_components, tiny_components
from train.conditioning import time_ids
from train.layout import join
from train.model import PiQModel, export_pipeline
from train.piq_pipeline import PiQPerfectPipeline


# The tiny random model's intermediate floats (softmax, Adam's second moments) reach denormals,
# ~50x slower on x86 CPUs. Flushing them is a per-thread CPU flag that torch's worker threads
# inherit when they are created, so it is set at import (collection), before any test computes.
torch.set_flush_denormal(True)


def batch(n: int = 2, res: int = 32, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.rand(n, 3, res, res, generator=g) * 2 - 1 for k in ("source", "driving", "target")}
    out["caption"] = ["a smile"] * n
    return out


def test_loss_only_sees_the_target_third() -> None:
    model = PiQModel(tiny_components("sdxl"), "spatial", 32)
    captured = {}

    def keep_output(_module, _inputs, output):
        output.sample.retain_grad()
        captured["out"] = output.sample

    model.unet.register_forward_hook(keep_output)
    model.loss(batch(), torch.Generator().manual_seed(0)).backward()
    grad = captured["out"].grad
    w = grad.shape[-1] // 3
    assert grad.shape[-1] == 3 * 8, "three 8-wide latents side by side"
    assert grad[..., : 2 * w].abs().max() == 0 and grad[..., 2 * w :].abs().max() > 0


def test_source_and_driving_enter_clean() -> None:
    model = PiQModel(tiny_components("sd15"), "spatial", 32)
    seen = {}

    def record(_module, args) -> None:
        seen["x"] = args[0].detach()

    model.unet.register_forward_pre_hook(record)
    b = batch()
    g = torch.Generator().manual_seed(0)
    model.loss(b, g)
    latents = model.encode(torch.cat([b["source"], b["driving"]]), torch.Generator().manual_seed(0))
    x = seen["x"]
    assert torch.allclose(x[..., :8], latents[:2], atol=1e-5) and torch.allclose(x[..., 8:16], latents[2:], atol=1e-5)


def test_channel_widening_keeps_pretrained_behaviour() -> None:
    comps = tiny_components("sdxl")
    original = tiny_components("sdxl").unet
    model = PiQModel(comps, "channel", 32)
    assert model.unet.config.in_channels == 12 and model.unet.conv_in.weight[:, :8].abs().max() == 0
    g = torch.Generator().manual_seed(1)
    src, drv, tgt = (torch.randn(1, 4, 8, 8, generator=g) for _ in range(3))
    emb = torch.randn(1, 32, 32, generator=g)
    cond = {"text_embeds": torch.randn(1, 16, generator=g), "time_ids": time_ids(32, "channel", 1, emb.device, emb.dtype)}
    t = torch.tensor([10])
    wide = model.unet(join(src, drv, tgt, "channel"), t, encoder_hidden_states=emb, added_cond_kwargs=cond).sample
    narrow = original(tgt, t, encoder_hidden_states=emb, added_cond_kwargs=cond).sample
    assert torch.allclose(wide, narrow, atol=1e-5)


def test_micro_conditioning_describes_the_canvas() -> None:
    assert time_ids(576, "spatial", 1, torch.device("cpu"), torch.float32).tolist() == [[576, 1728, 0, 0, 576, 1728]]
    assert time_ids(576, "channel", 2, torch.device("cpu"), torch.float32).tolist() == [[576, 576, 0, 0, 576, 576]] * 2


def test_real_loading_path_roundtrip(tmp_path: Path) -> None:
    for family in ("sdxl", "sd15"):
        comps = tiny_components(family, seed=3)
        save_components(comps, tmp_path / family)
        loaded = load_pretrained(family, tmp_path / family)
        assert (loaded.text_encoder_2 is None) == (family == "sd15")
        b = batch()
        a = PiQModel(comps, "spatial", 32).loss(b, torch.Generator().manual_seed(0))
        c = PiQModel(loaded, "spatial", 32).loss(b, torch.Generator().manual_seed(0))
        assert torch.allclose(a, c, atol=1e-6), family


def test_tiny_model_overfits_one_pair() -> None:
    torch.manual_seed(0)
    model = PiQModel(tiny_components("sdxl"), "spatial", 32)
    opt = torch.optim.Adam(model.unet.parameters(), lr=2e-3)
    b = batch(n=1)
    fixed = lambda: torch.Generator().manual_seed(0)  # noqa: E731 - same noise and timestep every step
    start = model.loss(b, fixed()).item()
    for _ in range(150):
        loss = model.loss(b, fixed())
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert model.loss(b, fixed()).item() < 0.1 * start


def _prediction(model: PiQModel, seed: int = 5) -> torch.Tensor:
    """The UNet's target prediction for fixed latents, caption and timestep."""
    g = torch.Generator().manual_seed(seed)
    src, drv, tgt = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    embeds, pooled = model.text(torch.device("cpu"))(["a smile", ""])
    with torch.no_grad():
        return model.predict(src, drv, tgt, torch.tensor([10, 700]), embeds, pooled)


@pytest.mark.parametrize("family,concat", [("sdxl", "spatial"), ("sdxl", "channel"), ("sd15", "channel")])
def test_exported_model_reloads_identically(tmp_path: Path, family: str, concat: str) -> None:
    model = PiQModel(tiny_components(family, seed=1), concat, 32)
    with torch.no_grad():  # stand-in for training: weights that differ from any freshly built model
        for p in model.unet.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    export_pipeline(model, model.unet, tmp_path / "piq")
    pipe = PiQPerfectPipeline.from_pretrained(tmp_path / "piq", local_files_only=True)
    assert pipe.config.concat == concat and pipe.config.resolution == 32
    assert pipe.unet.config.in_channels == (12 if concat == "channel" else 4)
    expected = _prediction(model)
    via_pipeline = PiQModel(pipe.components_view, concat, 32)
    via_backbone = PiQModel(load_pretrained(family, tmp_path / "piq", concat), concat, 32)  # fine-tuning it further
    assert torch.equal(_prediction(via_pipeline), expected) and torch.equal(_prediction(via_backbone), expected)


def test_export_writes_the_ema_weights_and_keeps_the_live_ones(tmp_path: Path) -> None:
    model = PiQModel(tiny_components("sd15"), "spatial", 32)
    ema = EMAModel(model.unet.parameters(), decay=0.9)  # shadow = the weights before the "update"
    averaged = _prediction(model)
    with torch.no_grad():
        for p in model.unet.parameters():
            p.add_(0.01)
    live = _prediction(model)
    export_pipeline(model, model.unet, tmp_path / "piq", ema)
    reloaded = PiQModel(load_pretrained("sd15", tmp_path / "piq"), "spatial", 32)
    assert torch.equal(_prediction(reloaded), averaged) and not torch.equal(averaged, live)
    assert torch.equal(_prediction(model), live)


def test_export_writes_the_same_tokenizer_files_whether_or_not_it_tokenized_first(tmp_path: Path) -> None:
    """A fast tokenizer remembers its last call's padding and truncation and would save them into
    tokenizer.json: the export's bytes (dvc.lock's hash of models/piq) must not depend on it, and
    the exported tokenizer must not pad calls that ask for no padding."""
    import json

    model = PiQModel(tiny_components("sdxl", seed=1), "spatial", 32)
    export_pipeline(model, model.unet, tmp_path / "fresh")
    model.text(torch.device("cpu"))(["a smile", "a blink"])  # the training step's tokenization
    tokenizer = model.comps.tokenizer
    assert tokenizer.backend_tokenizer.padding is not None  # the state the export must not write
    export_pipeline(model, model.unet, tmp_path / "after")
    for name in ("tokenizer", "tokenizer_2"):
        files = sorted(p.name for p in (tmp_path / "fresh" / name).iterdir())
        for f in files:
            assert (tmp_path / "fresh" / name / f).read_bytes() == (tmp_path / "after" / name / f).read_bytes(), f"{name}/{f}"
        saved = json.loads((tmp_path / "after" / name / "tokenizer.json").read_text())
        assert saved["padding"] is None and saved["truncation"] is None
    assert tokenizer.backend_tokenizer.padding is not None  # the live tokenizer is left as it was
