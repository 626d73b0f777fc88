"""The paper configuration's profile (configs/paper.yaml, `piq params --profile`) and the GPU
acceptance run's dry run on this CPU with tiny models (bench/gpu_acceptance.py, issue 29)."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config.params import load_params
from pipeline.config.profile import ProfileError, apply, merge_text, profile_overrides

REPO = Path(__file__).resolve().parents[1]
PAPER_BACKENDS = {"animate": "liveportrait", "caption": "llava", "segment": "segformer", "relight": "neural_gaffer"}


def test_the_paper_profile_selects_every_paper_backend_under_one_weights_root(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    overrides = profile_overrides(REPO / "configs" / "paper.yaml", "/models/paper")
    apply(params, overrides, params)
    p = load_params(params)
    for section, backend in PAPER_BACKENDS.items():
        assert getattr(p, section).backend == backend
    assert p.animate.liveportrait_dir == "/models/paper/liveportrait"
    assert p.caption.llava_dir == "/models/paper/llava-1.5-7b-hf"
    assert p.segment.segformer_dir == "/models/paper/face-parsing"
    assert p.relight.neural_gaffer_dir == "/models/paper/zero123-xl"
    assert p.relight.neural_gaffer_checkpoint == "/models/paper/neural_gaffer_res256"
    assert p.train.pretrained_dir == "/models/paper/sdxl-base-1.0"
    assert (p.data.resolution, p.train.batch_size, p.train.effective_batch, p.train.max_steps, p.train.lr) == \
        (576, 16, 64, 25_000, 1e-5)
    assert p.evaluate.identity_encoder == "arcface" and p.evaluate.identity_weights == "/models/paper/arcface/backbone.pth"
    assert p.evaluate.inception_weights.startswith("/models/paper/fid/")
    assert p.evaluate.lpips_alexnet_weights.startswith("/models/paper/lpips/")
    assert p.evaluate.motion_backend == "3dmm" and p.evaluate.motion_3dmm_dir.startswith("/models/paper/deep3d/")
    # every path the profile sets is under the root: a researcher changes one folder
    weight_keys = {k: v for k, v in overrides.items() if k.endswith(("_dir", "_weights", "_checkpoint"))}
    assert weight_keys and all(v.startswith("/models/paper/") for v in weight_keys.values())


def test_a_profile_changes_only_its_values_and_keeps_every_comment(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    before = params.read_text().splitlines()
    text = apply(params, {"train.max_steps": 7, "evaluate.methods": ["source", "piq"], "seed": 9,
                          "ingest.keep_categories": ["no gesture"]})
    after = text.splitlines()
    changed = [a for a in after if a not in before]
    assert len(changed) == 4, changed
    assert any(line.startswith("  max_steps: 7 ") and "# paper: 25,000" in line for line in changed)
    assert any(line.startswith("seed: 9 ") and "# root of every per-item seed" in line for line in changed)
    assert "  keep_categories: [no gesture]  # paper B.2: the five kept categories, verbatim" in after  # a block list:
    # one flow line now, its comment kept, its items gone
    assert sum(line.startswith("    - ") for line in before) - sum(line.startswith("    - ") for line in after) == 5
    data = yaml.safe_load(text)
    assert data["train"]["max_steps"] == 7 and data["evaluate"]["methods"] == ["source", "piq"] and data["seed"] == 9
    assert params.read_text().splitlines() == before  # not written without out_path


def test_a_misspelt_profile_key_is_refused_and_nothing_is_written(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    before = params.read_text()
    with pytest.raises(ValueError, match="train: unknown key"):
        apply(params, {"train.max_stpes": 7}, params)
    with pytest.raises(ProfileError):
        merge_text(before, {"best_take.weights.smile": 2.0})
    assert params.read_text() == before


def test_piq_params_writes_the_profile_into_params_yaml(tmp_path):
    params = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", params)
    run = subprocess.run([sys.executable, "-m", "pipeline.commands.piq", "--params", str(params), "params", "--profile",
                          str(REPO / "configs" / "paper.yaml"), "--weights-root", str(tmp_path / "w"),
                          "--set", "train.max_steps=3", "--write"], cwd=REPO, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    p = load_params(params)
    assert p.caption.backend == "llava" and p.caption.llava_dir == str(tmp_path / "w" / "llava-1.5-7b-hf")
    assert p.train.max_steps == 3


def test_the_progress_bars_last_figure_is_read_from_a_stage_log():
    from bench.gpu_acceptance import bar_last

    runner = "animate:  50%|#####     | 1/2 [00:01<00:01,  1.50item/s]\ranimate: 100%|##########| 2/2 [00:02<00:00,  2.25item/s]\n"
    assert bar_last(runner)["items_per_s"] == 2.25
    slow = "relight: 100%|##########| 3/3 [00:09<00:00,  3.10s/item]\n"
    assert bar_last(slow)["items_per_s"] == round(1 / 3.1, 4)
    train = "train: 100%|##| 4/4 [00:30<00:00, loss=0.1, samples_s=14.62, gpu_mem=70.1GiB]\ntrain: 14.62 samples/s\n"
    assert bar_last(train)["samples_per_s"] == 14.62


@pytest.mark.slow
@pytest.mark.timeout(3600)  # its subprocess may take 3000 s (17 min seen under load)
def test_the_acceptance_run_on_this_cpu_with_tiny_models(tmp_path):
    """The whole script, three phases, on tiny random weights in the published layouts (LivePortrait's
    at its one size): every stage of dvc.yaml but the demo runs through `dvc repro -s`, the JSON
    and the table are written. Slow: LivePortrait at its full size on a 2-core CPU and 208 driver
    clips in one process are most of it (17 minutes on a 2-core machine at a load of ~10)."""
    work = tmp_path / "work"
    run = subprocess.run([sys.executable, "-m", "bench.gpu_acceptance", "--work", str(work), "--phase", "all",
                          "--scale", "smoke", "--out", str(tmp_path / "out")], cwd=REPO, capture_output=True, text=True,
                         timeout=3000)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    results = json.loads((tmp_path / "out" / "acceptance_results.json").read_text())
    checks = results["models_check"]
    assert [c["returncode"] for c in checks.values()] == [0, 0] and all("0 failing" in c["summary"] for c in checks.values())
    assert {line.split()[1].split(".")[0] for c in checks.values() for line in c["lines"]} >= {
        "animate", "caption", "segment", "relight", "train", "evaluate"}
    stages = results["stages"]
    assert list(stages) == ["ingest", "drivers", "animate", "caption", "segment", "relight", "shard", "latents", "train",
                            "distill", "sample", "evaluate"]
    for name, s in stages.items():
        assert s["returncode"] == 0, (name, s.get("log_tail"))
        assert s["units"] and s["wall_s"] > 0 and s["rate_per_s"], name
    assert stages["ingest"]["units"] == 3 and stages["animate"]["units"] == 9  # 3 faces x (neutral + 2 drivers)
    assert stages["train"]["product"]["timing.json"]["samples_per_s"] == stages["train"]["rate_per_s"]
    assert stages["train"]["bar_last"]["samples_per_s"] > 0
    assert stages["caption"]["bar_last"]["items_per_s"] > 0
    checked = {line.split()[2] for c in checks.values() for line in c["lines"]}  # "ok  name [backend] ..."
    assert {f"[{b}]" for b in PAPER_BACKENDS.values()} | {"[sdxl]", "[arcface]", "[pytorch_fid]", "[3dmm]"} <= checked
    assert "caption (llava)" in stages["caption"]["log_tail"] and "animate (liveportrait)" in stages["animate"]["log_tail"]
    projection = {r["stage"]: r for r in results["projection"]}
    assert projection["train"]["paper_units"] == 25_000 * 64 and projection["animate"]["paper_units"] == 525_000
    assert projection["total"]["hours_1_gpu"] > 0 and projection["total"]["hours_8_gpus"] > 0
    table = (tmp_path / "out" / "acceptance_table.txt").read_text()
    assert "| train |" in table and "Paper scale" in table


def test_runner_workers_0_keeps_model_backends_in_process_on_a_gpu_machine(monkeypatch):
    """`runner.workers: 0` means no Ray: also for LivePortrait / LLaVA / SegFormer / NeuralGaffer,
    which otherwise take one Ray actor per GPU (the acceptance run carries no Ray)."""
    import torch

    from pipeline.engine.annotate import default_workers

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert default_workers(None, False, "auto", 1.0, 0) == 0
    assert default_workers(None, True, "auto", 1.0, 0) == 0
    assert default_workers(None, False, "auto", 1.0, 2) == 2  # one actor per GPU
    assert default_workers(None, False, "auto", 0.5, 2) == 4
    assert default_workers(3, False, "auto", 1.0, 0) == 3  # the stage's own workers win
