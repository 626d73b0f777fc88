"""The loop: accumulation, exact resume, NaN stop, checkpoints of another configuration."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pipeline.config.data import DataParams
from pipeline.config.train import TrainParams
from train import checkpoint
from train.backbones import tiny_components
from train.data import make_train_loader
from train.loop import TrainingDiverged, accumulation_steps, config_fingerprint, make_accelerator, train
from train.model import PiQModel
from tests.fixtures.training import DATA, params  # imported: the CPU's denormals flushed (see there)


def run(tp: TrainParams, shards: Path, max_steps: int | None = None, concat: str = "spatial", data: DataParams = DATA):
    model = PiQModel(tiny_components("sdxl", seed=0), concat, data.resolution)
    loader, stream = make_train_loader(data, shards, tp.batch_size, seed=0)
    fp = config_fingerprint(dataclasses.replace(tp, concat=concat), data, 0)
    return train(model, loader, stream, tp, 0, make_accelerator(tp), max_steps=max_steps, fingerprint=fp)


def test_accumulation_keeps_the_effective_batch() -> None:
    assert accumulation_steps(64, 4, 1) == 16 and accumulation_steps(64, 4, 8) == 2 and accumulation_steps(64, 2, 2) == 16
    with pytest.raises(ValueError, match="not a multiple"):
        accumulation_steps(64, 3, 2)


@pytest.mark.parametrize("ema_decay", [None, 0.9])
def test_resume_reproduces_the_uninterrupted_run(tmp_path: Path, tiny_shards: Path, ema_decay) -> None:
    straight = run(params(tmp_path / "a", ema_decay=ema_decay), tiny_shards)
    first = run(params(tmp_path / "b", ema_decay=ema_decay), tiny_shards, max_steps=3)
    assert [p.name for p in checkpoint.checkpoint_dirs(tmp_path / "b" / "ckpt")] == ["step-00000003"]
    resumed = run(params(tmp_path / "b", ema_decay=ema_decay), tiny_shards)
    assert resumed.resumed_from == 3 and first.step == 3
    assert len(straight.losses) == 6
    for (s1, l1), (s2, l2) in zip(straight.losses, resumed.losses):
        assert s1 == s2 and l1 == pytest.approx(l2, rel=1e-5, abs=1e-6)
    assert (tmp_path / "b" / "reports" / "loss.tsv").read_text().count("\n") == 7
    end_a = checkpoint.load(checkpoint.latest(tmp_path / "a" / "ckpt"))
    end_b = checkpoint.load(checkpoint.latest(tmp_path / "b" / "ckpt"))
    for name, weight in end_a["unet"].items():
        assert torch.allclose(weight, end_b["unet"][name], rtol=1e-4, atol=1e-6), name
    if ema_decay is not None:
        for a, b in zip(end_a["ema"]["shadow_params"], end_b["ema"]["shadow_params"]):
            assert torch.allclose(a, b, rtol=1e-4, atol=1e-6)


def test_another_configuration_does_not_resume(tmp_path: Path, tiny_shards: Path) -> None:
    run(params(tmp_path), tiny_shards, max_steps=3)
    other = run(params(tmp_path), tiny_shards, max_steps=3, data=dataclasses.replace(DATA, relight=False))
    assert other.resumed_from is None and other.step == 3


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path: Path, tiny_shards: Path, monkeypatch) -> None:
    calls = {"n": 0}
    real_loss = PiQModel.loss

    def poisoned(self, batch, generator=None):
        calls["n"] += 1
        loss = real_loss(self, batch, generator)
        return loss * float("nan") if calls["n"] == 9 else loss  # micro-step 9 = optimizer step 5

    monkeypatch.setattr(PiQModel, "loss", poisoned)
    tp = params(tmp_path)
    with pytest.raises(TrainingDiverged, match="at step 5"):
        run(tp, tiny_shards)
    good = checkpoint.latest(tp.checkpoint_dir)
    assert good is not None and good.name == "step-00000003"
    state = checkpoint.load(good)
    assert all(torch.isfinite(v).all() for v in state["unet"].values())


def test_a_finished_run_rewrites_its_loss_curve(tmp_path: Path, tiny_shards: Path) -> None:
    """DVC deletes a stage's outs before rerunning it (e.g. after a code change); a run whose
    checkpoint already reached max_steps must still leave its loss curve."""
    tp = params(tmp_path)
    run(tp, tiny_shards)
    curve = tmp_path / "reports" / "loss.tsv"
    first = curve.read_text()
    curve.unlink()
    again = run(tp, tiny_shards)
    assert again.resumed_from == tp.max_steps and curve.read_text() == first
