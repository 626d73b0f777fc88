"""Issue 18 on CPU: the latent cache (write, read, refusal of a mismatched cache, fallback for
a missing entry), the honest figures of a run (short runs' loss summary, steady-state samples/s
without validation), the bounded text-embedding cache and `gradient_checkpointing: auto`."""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import torch

from pipeline.config.data import DataParams
from pipeline.config.train import TrainParams
from pipeline.release.reader import resolve_shards
from stages.latents import write_cache
from train.backbones import tiny_components
from train.conditioning import TextCache
from train.data import make_train_loader, to_tensor
from train.latents import (CACHE_FILE, LatentCache, LatentCacheMismatch, encode_moments, identity, open_cache,
                           vae_fingerprint)
from train.loop import LoopResult, Throughput, make_accelerator, summary, train
from train.memory import choose_checkpointing
from train.model import PiQModel

torch.set_flush_denormal(True)
DATA = DataParams(resolution=32, pairs_per_set=2)


@pytest.fixture(scope="module")
def cache(tmp_path_factory, tiny_shards: Path) -> tuple[Path, str]:
    """A latent cache of the tiny shards, made by `piq latents`'s writer with the tiny VAE."""
    vae = tiny_components("sdxl", seed=0).vae.eval()
    vae_hash = vae_fingerprint(vae)
    root = tmp_path_factory.mktemp("latents")
    write_cache(vae, vae_hash, resolve_shards(tiny_shards), DATA.resolution, root, batch=4)
    return root, vae_hash


def test_cache_holds_both_mirrors_of_every_image(cache, tiny_shards: Path) -> None:
    root, vae_hash = cache
    refs = resolve_shards(tiny_shards)
    manifest = json.loads((root / CACHE_FILE).read_text())
    assert manifest["vae"] == vae_hash and manifest["resolution"] == 32 and not manifest["rejects"]
    from pipeline.release.reader import iter_sets

    sample = next(iter_sets(tiny_shards))
    reader = open_cache(str(root), vae_hash, 32, refs)
    vae = tiny_components("sdxl", seed=0).vae.eval()
    image = to_tensor(sample.images[sample.indices[0]], 32)[None]
    for flip, pixels in ((False, image), (True, image.flip(-1))):
        stored = reader.get(sample.key, sample.indices[0], flip)
        assert stored.dtype == torch.float16 and stored.shape == (8, 8, 8)  # mean + logvar, 32 px / 4
        # fp16 storage: within one fp16 step of the fp32 moments (2**-10 relative; the fp32 encode's own
        # rounding differs between CPUs' SIMD paths, so rounding both sides to fp16 can land a step apart)
        torch.testing.assert_close(stored.float(), encode_moments(vae, pixels, 4)[0], rtol=2**-10, atol=1e-5)
    assert not torch.equal(reader.get(sample.key, sample.indices[0], False), reader.get(sample.key, sample.indices[0], True))
    assert manifest["entries"] == sum(len(s.indices) for s in iter_sets(tiny_shards))
    # a second run keeps every shard file (resumption by shard)
    again = write_cache(vae, vae_hash, refs, 32, root, batch=4)
    assert again["shards_kept"] == len(refs) and again["shards_encoded"] == 0


def test_a_mismatched_cache_is_refused_naming_what_differs(cache, tiny_shards: Path) -> None:
    root, vae_hash = cache
    refs = resolve_shards(tiny_shards)
    other_vae = vae_fingerprint(tiny_components("sdxl", seed=1).vae)
    with pytest.raises(LatentCacheMismatch, match="another VAE"):
        open_cache(str(root), other_vae, 32, refs)
    with pytest.raises(LatentCacheMismatch, match="resolution 32 px.*data.resolution 64"):
        open_cache(str(root), vae_hash, 64, refs)
    changed = [dataclasses.replace(refs[0], sha256="0" * 64), *refs[1:]]
    with pytest.raises(LatentCacheMismatch, match="changed since"):
        open_cache(str(root), vae_hash, 32, changed)
    extra = [*refs, dataclasses.replace(refs[0], url=str(Path(refs[0].url).with_name("train-000099.tar")))]
    with pytest.raises(LatentCacheMismatch, match="lacks 1 shard"):
        open_cache(str(root), vae_hash, 32, extra)
    with pytest.raises(FileNotFoundError, match="piq latents"):
        LatentCache(root / "nowhere", identity(vae_hash, 32, refs))


def _loss_with_cache(latents_root: Path, vae_hash: str, shards: Path) -> tuple[PiQModel, dict]:
    refs = resolve_shards(shards)
    model = PiQModel(tiny_components("sdxl", seed=0), "spatial", 32)
    loader, _ = make_train_loader(DATA, shards, 4, seed=0, num_workers=0,
                                  latents=open_cache(str(latents_root), vae_hash, 32, refs))
    batch = next(iter(loader))
    loss = model.loss(batch, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    return model, batch


def test_training_reads_source_and_target_from_the_cache(cache, tiny_shards: Path) -> None:
    root, vae_hash = cache
    model, batch = _loss_with_cache(root, vae_hash, tiny_shards)
    assert batch["source"] is None and batch["target"] is None  # not decoded: cached
    assert batch["source_moments"].shape == (4, 8, 8, 8) and batch["driving"].shape == (4, 3, 32, 32)
    assert (model.latent_hits, model.latent_misses) == (8, 0)


def test_a_missing_entry_is_encoded_in_the_step_and_counted(cache, tiny_shards: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    root, vae_hash = cache
    partial = tmp_path / "latents"
    partial.mkdir()
    for path in root.iterdir():
        if path.suffix == ".safetensors":
            tensors = load_file(str(path))
            save_file(dict(list(tensors.items())[1:]), str(partial / path.name))  # each shard loses one image
        else:
            (partial / path.name).write_bytes(path.read_bytes())
    model, batch = _loss_with_cache(partial, vae_hash, tiny_shards)
    assert model.latent_misses >= 1 and model.latent_hits + model.latent_misses == 8
    for role in ("source", "target"):
        moments = batch[f"{role}_moments"]
        for i, m in enumerate(moments if isinstance(moments, list) else []):
            if m is None:
                assert batch[role][i].shape == (3, 32, 32)  # its pixels came instead
            else:
                assert batch[role][i] is None


def test_short_runs_report_their_first_and_last_window() -> None:
    five = LoopResult(5, [(1, 1.49), (2, 1.3), (3, 1.1), (4, 1.0), (5, 0.92)], None)
    s = summary(five)
    assert s["loss_window_steps"] == 2
    assert s["initial_loss"] == pytest.approx((1.49 + 1.3) / 2) and s["final_loss"] == pytest.approx((1.0 + 0.92) / 2)
    long = LoopResult(100, [(i, 100.0 - i) for i in range(1, 101)], None)
    assert summary(long)["initial_loss"] == pytest.approx(94.5) and summary(long)["final_loss"] == pytest.approx(4.5)
    one = LoopResult(1, [(1, 2.0)], None)
    assert summary(one)["initial_loss"] == summary(one)["final_loss"] == 2.0


def test_steady_state_samples_per_s_leaves_out_validation_and_the_first_step() -> None:
    speed = Throughput(samples_per_step=10)
    time.sleep(0.2)  # the first step: compilation, loader start-up
    speed.step()
    for _ in range(3):
        time.sleep(0.05)
        speed.step()
        with speed.exclude("validation"):
            time.sleep(0.3)
    shown = speed.samples_per_s  # what the progress bar shows after the last step
    time.sleep(0.2)  # after the last step (final validation, export): not in the rate
    out = speed.summary()
    assert out["samples_per_s"] == round(shown, 3)
    assert out["validation_s"] >= 0.9 and out["first_step_s"] >= 0.2 and out["timed_steps"] == 3
    assert out["steady_s"] < 0.3  # three 0.05 s steps, not the 0.9 s of validation
    assert out["samples_per_s"] == pytest.approx(30 / out["steady_s"], rel=0.02)
    assert out["samples_per_s"] > 100  # with validation counted it would be ~28


def test_metrics_of_a_run_time_validation_apart(tmp_path: Path, tiny_shards: Path, cache) -> None:
    root, vae_hash = cache
    tp = TrainParams(batch_size=2, effective_batch=2, max_steps=4, lr=1e-3, mixed_precision="fp32",
                     gradient_checkpointing="auto", checkpoint_every=10**6, keep_checkpoints=0, log_every=1,
                     validate_every=2, checkpoint_dir=str(tmp_path / "ckpt"), reports_dir=str(tmp_path / "reports"))
    model = PiQModel(tiny_components("sdxl", seed=0), "spatial", 32)
    loader, stream = make_train_loader(DATA, tiny_shards, 2, seed=0, num_workers=0,
                                       latents=open_cache(str(root), vae_hash, 32, resolve_shards(tiny_shards)))
    result = train(model, loader, stream, tp, 0, make_accelerator(tp), on_validate=lambda m, s: time.sleep(0.5))
    figures = result.throughput
    assert figures["validation_s"] >= 1.0 and figures["steady_s"] < figures["validation_s"] + 60
    assert figures["samples_per_s"] == pytest.approx(3 * 2 / figures["steady_s"], rel=0.02)
    assert figures["gradient_checkpointing"] is False and "CPU" in figures["gradient_checkpointing_reason"]
    assert figures["latent_cache_hits"] == 4 * 2 * 2 and figures["latent_cache_misses"] == 0
    assert "first_step_s" in figures and "compile_s" in figures


def test_text_cache_stays_bounded_over_an_epoch_of_unique_captions() -> None:
    comps = tiny_components("sdxl", seed=0)
    cache = TextCache(comps, torch.device("cpu"), max_entries=16)
    sizes = []
    for step in range(100):  # 400 unique captions, plus the empty one of caption dropout
        captions = [f"a person number {step * 4 + i}" for i in range(3)] + [""]
        embeds, pooled = cache(captions)
        assert embeds.shape[0] == 4 and pooled.shape[0] == 4
        stored = sum(e.untyped_storage().nbytes() + p.untyped_storage().nbytes() for e, p in cache._cache.values())
        sizes.append((len(cache), stored))
    assert max(n for n, _ in sizes) == 16
    assert sizes[-1] == sizes[20]  # flat once full: entries do not pin their batch's storage
    assert "" in cache._cache and cache.hits == 99  # the frequent caption stays
    torch.testing.assert_close(cache([""])[0], TextCache(comps, torch.device("cpu"), 0)([""])[0])
    off = TextCache(comps, torch.device("cpu"), max_entries=0)
    off(["x", "y"])
    assert len(off) == 0


def test_checkpointing_settings() -> None:
    model = PiQModel(tiny_components("sdxl", seed=0), "spatial", 32)
    assert choose_checkpointing(model, True, 4, 0.9, lambda: torch.autocast("cpu", enabled=False)).enabled is True
    assert choose_checkpointing(model, False, 4, 0.9, lambda: torch.autocast("cpu", enabled=False)).enabled is False
    auto = choose_checkpointing(model, "auto", 4, 0.9, lambda: torch.autocast("cpu", enabled=False))
    assert auto.enabled is False and "CPU" in auto.reason


def test_the_trial_step_runs_twice_under_accelerates_autocast(monkeypatch) -> None:
    """The measured trial (two accumulating micro-steps under the run's autocast factory) on
    CPU, the CUDA memory counters stood in for: it must take a fresh context per pass and
    leave no gradients behind."""
    from accelerate import Accelerator

    from train import memory

    model = PiQModel(tiny_components("sdxl", seed=0), "spatial", 32)
    for name, value in (("synchronize", lambda *a: None), ("reset_peak_memory_stats", lambda *a: None),
                        ("empty_cache", lambda: None), ("max_memory_allocated", lambda *a: 123)):
        monkeypatch.setattr(torch.cuda, name, value)
    accelerator = Accelerator(cpu=True)
    assert memory.measure_trial(model, 2, accelerator.autocast) == 123
    assert all(p.grad is None for p in model.unet.parameters())
    assert memory.optimizer_state_bytes(model, ema=True) == 3 * sum(p.numel() * 4 for p in model.unet.parameters())


def test_a_fully_cached_batch_draws_as_its_rows_would(cache, tiny_shards: Path) -> None:
    """A batch whose every source / target is cached comes as one (B, 8, h, w) tensor per role,
    copied to the device in one call; its latents are bit-equal to those of the same moments
    given row by row (the path of a batch with a cache miss)."""
    root, vae_hash = cache
    model, batch = _loss_with_cache(root, vae_hash, tiny_shards)
    assert isinstance(batch["source_moments"], torch.Tensor)
    rows = {**batch, "source_moments": list(batch["source_moments"]), "target_moments": list(batch["target_moments"])}
    whole = model.cached_latents(batch, torch.Generator().manual_seed(3))
    by_row = model.cached_latents(rows, torch.Generator().manual_seed(3))
    assert torch.equal(whole, by_row)
    assert (model.latent_hits, model.latent_misses) == (8 + 8 + 8, 0)


def test_compile_mode_reaches_every_compiled_region(monkeypatch) -> None:
    """`train.compile_mode` is passed to each region torch.compile gets (the UNet's repeated
    blocks and the frozen VAE encoder); `default` leaves torch's own default."""
    from pipeline.config.train import TrainParams
    from train.loop import prepare_for_speed

    for setting, expected in (("max-autotune-no-cudagraphs", "max-autotune-no-cudagraphs"), ("default", None)):
        calls: list[tuple[str, dict]] = []
        monkeypatch.setattr(torch.nn.Module, "compile", lambda self, *, _calls=calls, **kw: _calls.append((type(self).__name__, kw)))
        model = PiQModel(tiny_components("sdxl", seed=0), "spatial", 32)
        prepare_for_speed(model, TrainParams(compile="regional", compile_mode=setting), torch.device("cpu"))
        assert {"BasicTransformerBlock", "ResnetBlock2D", "Encoder"} <= {name for name, _ in calls}
        assert all(kw["mode"] == expected for _, kw in calls), calls


def _cached_run(tmp: Path, shards: Path, cache, max_steps: int, **kw) -> LoopResult:
    root, vae_hash = cache
    tp = TrainParams(batch_size=2, effective_batch=4, max_steps=6, lr=1e-3, mixed_precision="fp32",
                     gradient_checkpointing=False, checkpoint_every=3, keep_checkpoints=2, log_every=1,
                     validate_every=10**6, checkpoint_dir=str(tmp / "ckpt"), reports_dir=str(tmp / "reports"), **kw)
    model = PiQModel(tiny_components("sdxl", seed=0), "spatial", 32)
    loader, stream = make_train_loader(DATA, shards, 2, seed=0, num_workers=0,
                                       latents=open_cache(str(root), vae_hash, 32, resolve_shards(shards)))
    return train(model, loader, stream, tp, 0, make_accelerator(tp), max_steps=max_steps)


def test_driving_images_encoded_ahead_train_as_encoded_in_the_step(tmp_path: Path, tiny_shards: Path, cache) -> None:
    """`train.encode_ahead`: the same loss curve, bit for bit (on a CPU the encode runs inline,
    same values as a side stream gives); every micro-step but an optimizer step's first (6
    micro-steps, 2 per step) had its driving images encoded during the micro-step before."""
    inline = _cached_run(tmp_path / "inline", tiny_shards, cache, 3)
    ahead = _cached_run(tmp_path / "ahead", tiny_shards, cache, 3, encode_ahead=True)
    assert ahead.losses == inline.losses
    assert ahead.throughput["driving_encoded_ahead"] == 3 and inline.throughput["driving_encoded_ahead"] == 0


def test_a_run_encoding_ahead_resumes_exactly(tmp_path: Path, tiny_shards: Path, cache) -> None:
    """Nothing is fetched ahead across an optimizer step's end, so the checkpoint of step 3
    resumes into the very batches the uninterrupted run trained on."""
    whole = _cached_run(tmp_path / "whole", tiny_shards, cache, 6, encode_ahead=True)
    _cached_run(tmp_path / "parts", tiny_shards, cache, 3, encode_ahead=True)
    resumed = _cached_run(tmp_path / "parts", tiny_shards, cache, 6, encode_ahead=True)
    assert resumed.resumed_from == 3
    assert [s for s, _ in resumed.losses] == [s for s, _ in whole.losses]
    assert [loss for _, loss in resumed.losses] == pytest.approx([loss for _, loss in whole.losses], rel=1e-4)


def test_auto_turns_encoding_ahead_off_rather_than_checkpointing_on() -> None:
    """`decide`: the H200's figures of main's shipped run (trial 109.0 GiB + 19.1 GiB of Adam state
    in 95% of 139.8 GiB): checkpointing stays off; an encode that would push the step over the
    headroom turns `train.encode_ahead` off, one that fits keeps it; without encode_ahead nothing
    is said about it."""
    from train.memory import GIB, decide

    cap, opt = int(139.8 * GIB), int(19.1 * GIB)
    plain = decide(int(109.0 * GIB), opt, None, cap, 0.95, 16)
    assert plain.enabled is False and plain.encode_ahead is None and "encode_ahead" not in plain.as_metrics()
    small = decide(int(109.0 * GIB), opt, int(3 * GIB), cap, 0.95, 16)
    assert small.enabled is False and small.encode_ahead is True and "kept" in small.reason
    large = decide(int(109.0 * GIB), opt, int(6 * GIB), cap, 0.95, 16)
    assert large.enabled is False and large.encode_ahead is False and "turned off" in large.reason
    assert large.as_metrics()["encode_ahead"] is False
    over = decide(int(120.0 * GIB), opt, int(1 * GIB), cap, 0.95, 16)
    assert over.enabled is True and over.encode_ahead is None  # checkpointed: the encode fits beside it
