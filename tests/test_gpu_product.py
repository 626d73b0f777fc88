"""The product on a GPU (issue 8): `piq train` and `piq sample` with the full-size SDXL
architecture (random weights) saved as a diffusers folder, release-schema shards at 576 px.

Run on the device: `pytest -m gpu tests/test_gpu_product.py`. Skipped without CUDA.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

pytestmark = [pytest.mark.gpu, pytest.mark.timeout(2700)]  # three `piq` runs, each allowed 900 s
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    from bench.release_sample import make_release_shards
    from bench.sdxl import full_components
    from train.backbones import save_components

    root = tmp_path_factory.mktemp("gpu")
    with torch.device("cuda"):
        comps = full_components(dtype=torch.bfloat16)  # stored in bf16 to halve the folder; the UNet loads as fp32
    save_components(comps, root / "sdxl")
    del comps
    torch.cuda.empty_cache()
    shards = make_release_shards(root / "release", image_size=1024, n_expressive=2, n_relit=2)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["runner"]["workers"] = 0
    params["data"].update(shards=str(shards), resolution=576, pairs_per_set=2)
    params["train"].update(pretrained_dir=str(root / "sdxl"), out_dir=str(root / "piq"), reports_dir=str(root / "reports"),
                           checkpoint_dir=str(root / "ckpt"), batch_size=2, effective_batch=4, max_steps=2,
                           checkpoint_every=2, validate_every=2, log_every=1, mixed_precision="bf16",
                           gradient_checkpointing="auto", lr=1e-5, compile="none", num_workers=2,
                           latents_dir=str(root / "latents"))
    params["latents"] = {**params.get("latents", {}), "out_dir": str(root / "latents"), "device": "cuda"}
    params["sample"].update(model_dir=str(root / "piq"), out_dir=str(root / "samples"), num_inference_steps=2,
                            num_pairs=2, batch_size=2, compile="none", shards=[str(shards)])  # this release has one split
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def piq(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipeline.commands.piq", "--params", str(root / "params.yaml"), *args],
                          cwd=REPO, capture_output=True, text=True, timeout=900)


def test_piq_train_two_steps_then_sample(workdir: Path) -> None:
    run = piq(workdir, "latents")  # issue 18: source / target latents precomputed with the SDXL VAE
    print(run.stdout[-2000:], run.stderr[-2000:])
    assert run.returncode == 0, run.stderr[-3000:]
    cache = json.loads((workdir / "latents" / "cache.json").read_text())
    assert cache["resolution"] == 576 and cache["entries"] > 0 and not cache["rejects"]
    run = piq(workdir, "train")
    print(run.stdout[-3000:], run.stderr[-3000:])
    assert run.returncode == 0, run.stderr[-3000:]
    metrics = json.loads((workdir / "reports" / "metrics.json").read_text())
    assert metrics["steps"] == 2 and metrics["final_loss"] == metrics["final_loss"]  # finite
    timing = json.loads((workdir / "reports" / "timing.json").read_text())  # run-varying figures: not DVC metrics
    assert metrics["latent_cache"] and timing["latent_cache_misses"] == 0
    assert timing["latent_cache_hits"] == 2 * 4 * 2  # source + target of 4 samples per step, 2 steps
    assert timing["gradient_checkpointing"] is False and "trial step" in timing["gradient_checkpointing_reason"]
    assert timing["validation_s"] > 0 and timing["checkpoint_s"] > 0 and timing["export_s"] > 0
    assert timing["peak_gpu_mem_gib"] > 5
    assert "samples_s=" in run.stderr and "gpu_mem=" in run.stderr  # the progress bar a user watches
    assert timing["samples_per_s"] > 0

    from safetensors import safe_open

    with safe_open(str(next((workdir / "piq" / "unet").glob("*.safetensors"))), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in list(f.keys())[:50]} == {"F32"}  # master weights exported
    for part in ("vae", "text_encoder", "text_encoder_2"):  # frozen parts copied, not re-saved
        for src in (workdir / "sdxl" / part).iterdir():
            assert (workdir / "piq" / part / src.name).stat().st_size == src.stat().st_size

    run = piq(workdir, "sample")
    print(run.stdout[-2000:], run.stderr[-2000:])
    assert run.returncode == 0, run.stderr[-3000:]
    manifest = pd.read_parquet(workdir / "samples" / "manifest.parquet")
    assert len(manifest) == 2 and manifest["psnr"].notna().all()
    assert (workdir / "samples" / "pairs.png").stat().st_size > 10_000


def test_sampler_runs_every_component_on_the_gpu_in_bf16(workdir: Path) -> None:
    from pipeline.config.train import SampleParams
    from train.sampler import load_sampler

    if not (workdir / "piq" / "model_index.json").exists():
        pytest.skip("needs the exported model of the training test")
    pipe = load_sampler(SampleParams(model_dir=str(workdir / "piq"), compile="none"))
    for name in ("unet", "vae", "text_encoder", "text_encoder_2"):
        part = getattr(pipe, name)
        assert {p.device.type for p in part.parameters()} == {"cuda"}, name
        assert {p.dtype for p in part.parameters()} == {torch.bfloat16}, name
    src = torch.rand(1, 3, 576, 576) * 2 - 1
    out = pipe(src, src, "a person smiling", num_inference_steps=2, guidance_scale=1.5, output_type="np").images
    assert out.shape == (1, 576, 576, 3) and out.dtype.name == "uint8"
