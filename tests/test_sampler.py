"""The sampling pipeline: determinism, the paper's negative branch, guidance, save / load."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.fixtures.tiny_sampler import images, make_pipe, sample
from train.piq_pipeline import PiQPerfectPipeline


def test_seed_decides_the_output() -> None:
    pipe = make_pipe()
    a, b, c = sample(pipe, 0), sample(pipe, 0), sample(pipe, 1)
    assert a.shape == (2, 32, 32, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_negative_branch_is_empty_prompt_and_zeroed_driving() -> None:
    pipe = make_pipe()
    seen = []
    pipe.unet.register_forward_pre_hook(lambda _m, args, kwargs: seen.append((args[0].clone(), kwargs)), with_kwargs=True)
    sample(pipe, 0, num_inference_steps=1)
    x, kwargs = seen[0]
    assert x.shape[0] == 4, "both branches in one batched forward"
    black = pipe.encode_images(torch.full((1, 3, 32, 32), -1.0))
    drv = pipe.encode_images(images().flip(0))
    assert torch.allclose(x[:2, :, :, 8:16], black.expand(2, -1, -1, -1), atol=1e-5)
    assert torch.allclose(x[2:, :, :, 8:16], drv, atol=1e-5)
    empty = pipe.components_view
    from train.conditioning import encode_text

    neg, _ = encode_text(empty, ["", ""], torch.device("cpu"))
    pos, _ = encode_text(empty, ["a smile", "a smile"], torch.device("cpu"))
    assert torch.allclose(kwargs["encoder_hidden_states"][:2], neg) and torch.allclose(kwargs["encoder_hidden_states"][2:], pos)


def test_guidance_one_is_the_single_branch() -> None:
    pipe = make_pipe()
    calls = []
    pipe.unet.register_forward_pre_hook(lambda _m, args: calls.append(args[0].shape[0]))
    sample(pipe, 0, guidance_scale=1.0)
    assert set(calls) == {2}


def test_save_and_load_give_the_same_images(tmp_path: Path) -> None:
    for family, concat in (("sdxl", "spatial"), ("sd15", "channel")):
        pipe = make_pipe(family, concat)
        pipe.save_pretrained(tmp_path / family)
        loaded = PiQPerfectPipeline.from_pretrained(tmp_path / family, local_files_only=True)
        loaded.set_progress_bar_config(disable=True)
        assert loaded.config.concat == concat and loaded.unet.config.in_channels == (12 if concat == "channel" else 4)
        assert np.array_equal(sample(pipe, 4), sample(loaded, 4)), family


@pytest.mark.slow  # 66 s on the 2-core machine under load
def test_benchmarks_run_tiny_on_cpu() -> None:
    """The GPU benchmark scripts exercise the same code here with a tiny UNet (not timed)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    for cmd in (["-m", "bench.train", "--tiny", "--steps", "1", "--workers", "0"],
                ["-m", "bench.sample", "--tiny", "--steps", "2", "--images", "1", "--only", "interval + deep cache N=2",
                 "fast"]):
        done = subprocess.run([sys.executable, *cmd], cwd=root, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert "samples/s" in done.stdout or "s/image" in done.stdout
        assert "UNet-only" in done.stdout and "ratio" in done.stdout  # product figure beside its floor


def test_replace_crops_is_the_pipeline_on_trainings_tensors_resized_back() -> None:
    """uint8 crops of any size in, uint8 crops of each source's size out: the same as calling
    the pipeline with training's tensors (`train.data.to_tensor`) and resizing the output back
    by the project's one rule (what the photo tool and the evaluation did before)."""
    from pipeline.faces.crop import resize_square
    from train.data import to_tensor

    pipe = make_pipe()
    rng = np.random.default_rng(0)
    sources = [rng.integers(0, 256, (n, n, 3), dtype=np.uint8) for n in (20, 48)]
    drivings = [rng.integers(0, 256, (n, n, 3), dtype=np.uint8) for n in (64, 32)]
    got = pipe.replace_crops(sources, drivings, ["a smile", ""], 7, num_inference_steps=2)
    want = pipe(torch.stack([to_tensor(s, 32) for s in sources]), torch.stack([to_tensor(d, 32) for d in drivings]),
                ["a smile", ""], num_inference_steps=2, generator=torch.Generator().manual_seed(7),
                output_type="np").images
    assert [g.shape for g in got] == [(20, 20, 3), (48, 48, 3)] and all(g.dtype == np.uint8 for g in got)
    assert all(np.array_equal(g, resize_square(w, s.shape[0])) for g, w, s in zip(got, want, sources))


def test_a_tensor_of_another_size_is_resized_by_the_one_rule() -> None:
    from pipeline.faces.crop import resize_square
    from train.piq_pipeline import to_model_input

    for n in (16, 64):
        x = torch.rand(1, 3, n, n, generator=torch.Generator().manual_seed(n)) * 2 - 1
        want = resize_square(x[0].permute(1, 2, 0).numpy(), 32)
        assert np.array_equal(to_model_input(x, 32)[0].permute(1, 2, 0).numpy(), np.clip(want, -1, 1))
