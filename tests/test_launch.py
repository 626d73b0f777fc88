"""`piq train --processes 2`: accelerate launch, two CPU processes over gloo."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_two_process_training_keeps_the_effective_batch(tmp_path: Path, tiny_shards: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(shards=str(tiny_shards), resolution=32, pairs_per_set=2)
    params["train"].update(batch_size=2, effective_batch=8, max_steps=2, checkpoint_every=1, log_every=1,
                           validate_every=100, out_dir=str(tmp_path / "model"), reports_dir=str(tmp_path / "reports"),
                           checkpoint_dir=str(tmp_path / "ckpt"))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run([sys.executable, "-m", "pipeline.cli", "--params", str(path), "train", "--processes", "2"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    metrics = json.loads((tmp_path / "reports" / "metrics.json").read_text())
    assert metrics["processes"] == 2 and metrics["accumulation"] == 2  # 2 per device x 2 processes x 2 = 8
    assert done.stdout.count("train: 2 steps") == 1, "only rank 0 reports and saves"
    assert (tmp_path / "model" / "model_index.json").exists()
    state_dirs = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert state_dirs == ["step-00000001", "step-00000002"]
