"""Issue 18: the training step makes the host wait for the accelerator once per optimizer step.

Every read of a device value on the host (`.item()`, `.tolist()`, `bool(t)`, a blocking
host-to-GPU copy) waits until the GPU has run everything queued before it; the GPU then idles
while the host prepares the next micro-step. The CPU tests count the loop's reads back (the
same code paths as on the GPU) and check that the draws kept their values; the GPU test runs a
micro-step of the full-size SDXL architecture under `torch.cuda.set_sync_debug_mode`.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from pipeline.config.data import DataParams
from pipeline.config.train import TrainParams
from train.backbones import tiny_components
from train.conditioning import time_ids
from train.data import make_train_loader
from train.loop import TrainingDiverged, make_accelerator, rng_device, train
from train.model import PiQModel

torch.set_flush_denormal(True)  # as tests/test_train_loop.py: the tiny model's denormals are slow on x86

DATA = DataParams(resolution=32, pairs_per_set=2)
READS = ("item", "tolist", "__bool__", "__float__", "__int__", "cpu", "numpy")


def params(tmp: Path, **kw) -> TrainParams:
    base = TrainParams(batch_size=2, effective_batch=4, max_steps=3, lr=1e-3, mixed_precision="fp32",
                       gradient_checkpointing=False, keep_checkpoints=0, log_every=1, validate_every=1000,
                       checkpoint_dir=str(tmp / "ckpt"), reports_dir=str(tmp / "reports"))
    return dataclasses.replace(base, **kw)


def run(tp: TrainParams, shards: Path, model: PiQModel | None = None):
    model = model or PiQModel(tiny_components("sdxl", seed=0), "spatial", DATA.resolution)
    loader, stream = make_train_loader(DATA, shards, tp.batch_size, seed=0)
    return train(model, loader, stream, tp, 0, make_accelerator(tp))


def test_the_loop_reads_back_once_per_optimizer_step(tmp_path: Path, tiny_shards: Path, monkeypatch) -> None:
    """3 optimizer steps of 2 micro-steps each: 3 reads back, all in the loop's end-of-step
    check (the step's mean loss and its finiteness, together), none inside the micro-steps.
    Left out: torch's CPU Adam reads its step counter (`.item()`; the GPU run's fused Adam keeps
    it on the GPU) and the DataLoader draws its base seed once per iterator."""
    import traceback

    seen: list[str] = []
    for name in READS:
        real = getattr(torch.Tensor, name)

        def counting(self, *args, _real=real, _name=name, **kwargs):
            caller = traceback.extract_stack(limit=2)[0]
            if "torch/optim/" not in caller.filename and "torch/utils/data/" not in caller.filename:
                seen.append(f"{_name} at {Path(caller.filename).name}:{caller.lineno}")
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    result = run(params(tmp_path), tiny_shards)
    assert result.step == 3
    assert len(seen) == 3 and all(s.startswith("tolist at loop.py") for s in seen), seen


def test_a_nan_in_any_micro_step_stops_the_step_before_the_weights_move(tmp_path: Path, tiny_shards: Path,
                                                                          monkeypatch) -> None:
    """The finiteness check runs once, at the step's last micro-step: a NaN in its first
    micro-step still stops the run before the optimizer touches a weight."""
    calls = {"n": 0}
    real_loss = PiQModel.loss

    def poisoned(self, batch, generator=None):
        calls["n"] += 1
        loss = real_loss(self, batch, generator)
        return loss * float("nan") if calls["n"] == 3 else loss  # micro-step 1 of optimizer step 2

    monkeypatch.setattr(PiQModel, "loss", poisoned)
    model = PiQModel(tiny_components("sdxl", seed=0), "spatial", DATA.resolution)
    after_step_1 = {}

    def remember(self):  # the weights as optimizer step 1 left them
        after_step_1.update({k: v.detach().clone() for k, v in model.unet.state_dict().items()})

    real_step = torch.optim.Adam.step

    def step_and_remember(self, *args, **kwargs):
        out = real_step(self, *args, **kwargs)
        remember(self)
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", step_and_remember)
    with pytest.raises(TrainingDiverged, match=r"at step 2 \(this process's micro-steps: nan, "):
        run(params(tmp_path), tiny_shards, model)
    assert calls["n"] == 4  # the step's second micro-step ran its forward; no third step began
    for name, weight in model.unet.state_dict().items():
        assert torch.equal(weight, after_step_1[name]), name


def test_the_generator_lives_on_the_training_device() -> None:
    assert rng_device("auto", torch.device("cpu")) == torch.device("cpu")
    assert rng_device("auto", torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert rng_device("cpu", torch.device("cuda", 0)) == torch.device("cpu")
    with pytest.raises(ValueError, match="rng_device"):
        rng_device("gpu", torch.device("cpu"))


def test_time_ids_are_made_once_and_stay_usable_outside_inference_mode() -> None:
    with torch.inference_mode():
        first = time_ids(40, "spatial", 2, torch.device("cpu"), torch.float32)  # a size no other test uses
    again = time_ids(40, "spatial", 3, torch.device("cpu"), torch.float32)
    assert again.data_ptr() == first.data_ptr() and not again.is_inference()
    assert again.tolist() == [[40, 120, 0, 0, 40, 120]] * 3


@pytest.fixture(scope="module")
def full_model() -> PiQModel:
    """The full-size SDXL architecture (random weights) placed as training places it."""
    from bench.sdxl import full_components

    with torch.device("cuda"):
        comps = full_components()
    return PiQModel(comps, "spatial", 576).place("cuda")


def pinned_batch(n: int = 2, seed: int = 0) -> dict:
    """A batch as the loader's pin-memory thread hands it over with the latent cache."""
    g = torch.Generator().manual_seed(seed)
    lat = 576 // 8
    return {"driving": torch.rand(n, 3, 576, 576, generator=g).mul(2).sub(1).pin_memory(),
            "caption": ["a face", ""][:n] + ["a face"] * max(0, n - 2), "source": None, "target": None,
            "source_moments": torch.randn(n, 8, lat, lat, generator=g).half().pin_memory(),
            "target_moments": torch.randn(n, 8, lat, lat, generator=g).half().pin_memory()}


@pytest.mark.gpu
def test_a_micro_step_of_full_size_sdxl_never_waits_on_the_host(full_model: PiQModel) -> None:
    """Forward and backward of the full-size SDXL architecture (random weights) at 576 px, batch
    2, with the loader's pinned batch (cached source / target moments, driving pixels) and the
    loop's GPU generator: no synchronizing CUDA call (torch's sync debug mode raises at the first)."""
    model = full_model
    gen = torch.Generator(rng_device("auto", model.device)).manual_seed(0)
    batch = pinned_batch()

    def micro_step() -> None:
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model.loss(batch, gen)
        loss.backward()

    micro_step()  # warm-up: the text cache, the scheduler's tables and the time ids on the GPU
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # global: the autograd engine's backward thread too
    try:
        micro_step()
    except RuntimeError as err:
        pytest.fail(f"a synchronizing CUDA call in the micro-step: {str(err)[:500]}")
    finally:
        torch.cuda.set_sync_debug_mode("default")
    torch.cuda.synchronize()
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in model.unet.parameters())


@pytest.mark.gpu
def test_driving_moments_encoded_on_the_side_stream_match_the_step(full_model: PiQModel) -> None:
    """`train.encode_ahead` on the GPU: the full-size SDXL VAE's moments of the driving images,
    encoded on the side stream while the default stream runs other work, are those encoded in
    the step, and the posterior sample drawn from them is the same."""
    from train.encode_ahead import DrivingAhead

    model = full_model
    batches = [pinned_batch(4, seed) for seed in range(2)]
    ahead = list(DrivingAhead([dict(b) for b in batches], model, accumulation=2))
    assert "driving_moments" not in ahead[0] and "driving_moments" in ahead[1]
    busy = torch.randn(8192, 8192, device="cuda")
    for _ in range(20):  # default-stream work the side stream's encode overlaps
        busy = busy @ busy.T / 8192
    gen = lambda: torch.Generator("cuda").manual_seed(1)  # noqa: E731
    side = model.cached_latents(ahead[1], gen())
    inline = model.cached_latents(batches[1], gen())
    torch.testing.assert_close(side, inline, rtol=1e-3, atol=1e-3)  # same kernels; allow for nondeterministic ones
