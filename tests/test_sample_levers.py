"""The sampling speed levers (train/step_plan.py, train/deep_cache.py) and the sampler's modes."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from pipeline.config.train import SampleParams
from train.conditioning import unet_kwargs
from train.deep_cache import DeepCacheUNet
from train.sampler import load_sampler, sampling_kwargs
from train.step_plan import make_plan, step_sigmas
from tests.fixtures.tiny_sampler import make_pipe, sample


def euler_timesteps(pipe, steps: int = 50):
    pipe.scheduler.set_timesteps(steps)
    return pipe.scheduler, pipe.scheduler.timesteps


def test_paper_plan_guides_and_runs_the_whole_unet_every_step() -> None:
    sched, ts = euler_timesteps(make_pipe())
    plan = make_plan(sched, ts, 1.5)
    assert all(plan.guided) and all(plan.full) and plan.unet_passes == 100


def test_guidance_interval_keeps_the_middle_noise_levels() -> None:
    sched, ts = euler_timesteps(make_pipe())
    sig = step_sigmas(sched, ts)
    assert torch.allclose(sig.float(), sched.sigmas[:-1].float(), rtol=1e-3)  # the Euler sigmas themselves
    plan = make_plan(sched, ts, 1.5, guidance_interval=(0.28, 5.42))
    assert plan.guided == tuple(bool(0.28 < s <= 5.42) for s in sig)
    assert 0 < sum(plan.guided) < len(ts) and not plan.guided[0] and not plan.guided[-1]


def test_every_kth_step_and_deep_cache_schedule() -> None:
    sched, ts = euler_timesteps(make_pipe(), 10)
    plan = make_plan(sched, ts, 1.5, guidance_every=3, deep_cache_interval=2)
    assert plan.guided == tuple(i % 3 == 0 for i in range(10)) and plan.full == tuple(i % 2 == 0 for i in range(10))
    assert make_plan(sched, ts, 1.0).guided == (False,) * 10  # guidance 1: one branch
    with pytest.raises(ValueError):
        make_plan(sched, ts, 1.5, deep_cache_interval=0)


def test_deep_cache_full_pass_is_the_unet_and_shallow_reuses_it() -> None:
    pipe = make_pipe()
    net = DeepCacheUNet(pipe.unet)
    g = torch.Generator().manual_seed(0)
    x, e, p = torch.randn(2, 4, 8, 24, generator=g), torch.randn(2, 77, 32, generator=g), torch.randn(2, 16, generator=g)
    kw = unet_kwargs("sdxl", e, p, 32, "spatial")
    t = torch.tensor(500.0)
    with torch.no_grad():
        ref = pipe.unet(x, t, **kw).sample
        out, deep = net.full_pass(x, t, **kw)
        assert torch.allclose(out, ref, atol=1e-5)
        same = net.shallow_pass(x, t, kw["encoder_hidden_states"], deep, kw["added_cond_kwargs"])
        assert torch.allclose(same, ref, atol=1e-5), "the cached feature of this very step gives the full output"
        other = net.shallow_pass(x, torch.tensor(400.0), kw["encoder_hidden_states"], deep, kw["added_cond_kwargs"])
        assert not torch.allclose(other, ref, atol=1e-4), "the shallow blocks still see the new timestep"


def test_levers_change_the_output_a_little_and_skip_unet_work() -> None:
    pipe = make_pipe()
    calls: list[int] = []
    pipe.unet.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    ref = sample(pipe, 0, num_inference_steps=12)
    assert calls == [4] * 12
    calls.clear()
    cached = sample(pipe, 0, num_inference_steps=12, deep_cache_interval=3)  # full passes bypass unet.forward
    interval = sample(pipe, 0, num_inference_steps=12, guidance_interval=(0.28, 5.42))
    assert set(calls) == {4, 2}, "steps outside the interval run the conditional branch alone"
    for out in (cached, interval):
        diff = np.abs(out.astype(float) - ref).mean()
        assert 0 < diff < 8, diff


def test_fast_mode_loads_the_student_folder(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    sp = SampleParams(mode="fast", fast_model_dir=str(tmp_path / "none"))
    assert sampling_kwargs(sp) == {"num_inference_steps": 4, "guidance_scale": 1.0}
    with pytest.raises(FileNotFoundError, match="piq distill"):
        load_sampler(sp, "cpu")
    pipe = make_pipe()
    pipe.save_pretrained(tmp_path / "student")
    loaded = load_sampler(SampleParams(mode="fast", fast_model_dir=str(tmp_path / "student"),
                                       compile_cache_dir=str(tmp_path / "cache")), "cpu")
    assert list(loaded.unet.config.block_out_channels) == list(pipe.unet.config.block_out_channels)
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == str((tmp_path / "cache").resolve())


def test_piq_sample_reads_the_test_splits(tmp_path, tiny_shards, capsys) -> None:
    """`sample.shards` names the splits (a missing one is skipped); none at all is a clear error."""
    import argparse

    import pandas as pd
    import yaml

    from stages.sample import main

    make_pipe().save_pretrained(tmp_path / "model")
    params = yaml.safe_load(open("params.yaml"))
    params["sample"].update(model_dir=str(tmp_path / "model"), out_dir=str(tmp_path / "out"), num_pairs=2, batch_size=2,
                            num_inference_steps=2, shards=[str(tmp_path / "absent"), str(tiny_shards)],
                            compile_cache_dir=str(tmp_path / "cache"), deep_cache_interval=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert main(argparse.Namespace(params=str(tmp_path / "params.yaml"))) == 0
    assert len(pd.read_parquet(tmp_path / "out" / "manifest.parquet")) == 2
    assert "first batch" in capsys.readouterr().out
    params["sample"]["shards"] = [str(tmp_path / "absent")]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit, match="no finished test shards"):
        main(argparse.Namespace(params=str(tmp_path / "params.yaml")))
