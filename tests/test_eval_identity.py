"""Identity encoders (pipeline/faces/identity.py): the offline dlib default and the ArcFace file path."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from skimage import data

from pipeline.faces.identity import ARCFACE_SIZE, ArcFaceEncoder, load_identity_encoder
from pipeline.weight_files.checks import WeightsFormatError


def test_dlib_same_image_is_one_and_blank_is_none():
    enc = load_identity_encoder()
    assert enc.name == "dlib_resnet_v1"
    a = data.astronaut()
    e = enc.embed(a)
    assert e.shape == (128,) and abs(float(np.linalg.norm(e)) - 1) < 1e-5
    assert float(e @ enc.embed(a.copy())) > 0.999
    assert enc.embed(np.full((128, 128, 3), 90, np.uint8)) is None


class _TinyArcFace(torch.nn.Module):
    """A random stand-in with ArcFace's interface: (B, 3, 112, 112) in [-1, 1] -> (B, 16)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 7, stride=4)
        self.fc = torch.nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


def test_arcface_torchscript_file_loads_and_embeds(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "arcface_r100.pt"
    torch.jit.script(_TinyArcFace()).save(str(path))
    enc = load_identity_encoder("auto", str(path))
    assert isinstance(enc, ArcFaceEncoder) and enc.name == "arcface:arcface_r100.pt"
    a = data.astronaut()
    e = enc.embed(a)
    assert e.shape == (16,) and float(e @ enc.embed(a.copy())) > 0.9999
    assert enc.embed(np.zeros((ARCFACE_SIZE, ARCFACE_SIZE, 3), np.uint8)) is None


def test_arcface_missing_file_is_an_error_not_a_silent_fallback(tmp_path):
    for kind in ("arcface", "auto"):
        with pytest.raises(WeightsFormatError, match="absent.onnx"):
            load_identity_encoder(kind, str(tmp_path / "absent.onnx"))
    assert load_identity_encoder("auto", None).name == "dlib_resnet_v1"


def test_dlib_models_folder_can_be_given(tmp_path):
    from pipeline.faces.identity import dlib_models_dir

    assert load_identity_encoder("dlib", str(dlib_models_dir())).name == "dlib_resnet_v1"
    with pytest.raises(WeightsFormatError, match="dlib_face_recognition_resnet_model_v1.dat is missing"):
        load_identity_encoder("dlib", str(tmp_path))
