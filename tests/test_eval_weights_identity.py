"""ArcFace from the files its users download (pipeline/faces/identity.py, pipeline/faces/iresnet.py):
arcface_torch `backbone.pth`, insightface ONNX, TorchScript; insightface's alignment; a bad or
mistyped file is a `WeightsFormatError` naming it, never a silent dlib fallback."""
from __future__ import annotations

import types

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from pipeline.config.evaluate import EvaluateParams
from pipeline.faces import iresnet
from pipeline.faces.geometry import similarity
from pipeline.faces.identity import ARCFACE_TEMPLATE, ArcFaceEncoder, align_arcface, check_identity, load_identity_encoder
from pipeline.weight_files.checks import WeightsFormatError
from tests.fixtures import eval_weight_specs as specs


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    """arcface_torch's ms1mv3 r50 download, `backbone.pth`, random values."""
    return specs.write_arcface_backbone(tmp_path_factory.mktemp("arcface") / "backbone.pth", specs.IRESNET50)


@pytest.fixture(scope="module")
def small_backbone(tmp_path_factory):
    """An iresnet18 `backbone.pth` (arcface_torch's smallest published depth): the same blocks
    and ops as r50 / r100, quick enough to export and trace in a test."""
    return specs.write_arcface_backbone(tmp_path_factory.mktemp("arcface18") / "backbone.pth", iresnet.DEPTHS["iresnet18"])


@pytest.fixture(scope="module")
def crops() -> np.ndarray:
    a = data.astronaut()
    return np.stack([cv2.resize(a[30:330, 120:420], (112, 112)), cv2.resize(a[:200, 200:400], (112, 112))])


def test_our_iresnet_has_the_published_names_and_shapes():
    for layers in (specs.IRESNET50, specs.IRESNET100):
        assert iresnet.expected_shapes(layers) == specs.arcface_torch_iresnet(layers)
    assert iresnet.depth_from_keys(specs.arcface_torch_iresnet(specs.IRESNET100)) == specs.IRESNET100
    assert iresnet.depth_name(specs.IRESNET100) == "iresnet100"


def test_backbone_pth_loads_through_the_encoder_and_embeds(backbone):
    enc = load_identity_encoder("auto", str(backbone), "cpu")
    assert isinstance(enc, ArcFaceEncoder) and enc.kind == "iresnet" and "iresnet50" in enc.found
    assert enc.name == "arcface:backbone.pth" and enc.paper_model
    e = enc.embed(data.astronaut())
    assert e.shape == (512,) and abs(float(np.linalg.norm(e)) - 1) < 1e-5
    assert float(e @ enc.embed(data.astronaut().copy())) > 0.9999


def test_onnx_export_of_our_iresnet_embeds_as_our_pytorch_one(small_backbone, crops, tmp_path):
    """The insightface ONNX path (onnxruntime, (x - 127.5) / 127.5, the input named input.1 with
    a free batch axis as in w600k_r50.onnx) against our PyTorch iresnet on the same weights."""
    torch_enc = ArcFaceEncoder(small_backbone, "cpu")
    path = tmp_path / "w600k_r50.onnx"
    torch.onnx.export(torch_enc._model, torch.zeros(1, 3, 112, 112), str(path), input_names=["input.1"], output_names=["embedding"],
                      dynamic_axes={"input.1": {0: "None"}, "embedding": {0: "None"}}, dynamo=False)
    onnx_enc = load_identity_encoder("arcface", str(path), "cpu")
    assert onnx_enc.kind == "onnx" and (onnx_enc.mean, onnx_enc.std) == (127.5, 127.5)
    a, b = torch_enc.embed_aligned(crops), onnx_enc.embed_aligned(crops)
    assert a.shape == b.shape == (2, 512)
    np.testing.assert_allclose(a, b, atol=2e-5)
    assert float(a[0] @ a[1]) < 0.999  # two different crops, two different embeddings


@pytest.mark.slow
def test_torchscript_arcface_loads_and_matches_the_state_dict(small_backbone, crops, tmp_path):
    torch_enc = ArcFaceEncoder(small_backbone, "cpu")
    path = tmp_path / "arcface_r18.pt"
    torch.jit.trace(torch_enc._model, torch.zeros(1, 3, 112, 112)).save(str(path))
    ts = load_identity_encoder("auto", str(path), "cpu")
    assert ts.kind == "torchscript"
    np.testing.assert_allclose(ts.embed_aligned(crops), torch_enc.embed_aligned(crops), atol=1e-5)


def _bad(path, *parts):
    with pytest.raises(WeightsFormatError) as info:
        ArcFaceEncoder(path, "cpu")
    msg = str(info.value)
    assert str(path) in msg and "Accepted formats" in msg and "backbone.pth" in msg
    for part in parts:
        assert part in msg, msg
    return msg


def test_bad_arcface_files_are_errors_naming_the_file_and_the_mismatch(backbone, tmp_path):
    raw = backbone.read_bytes()
    (tmp_path / "truncated.pth").write_bytes(raw[: len(raw) // 2])
    _bad(tmp_path / "truncated.pth", "truncated")
    corrupt = bytearray(raw)
    corrupt[len(raw) // 2: len(raw) // 2 + 64] = bytes(64)  # zeros over part of a tensor: its CRC no longer matches
    (tmp_path / "corrupt.pth").write_bytes(bytes(corrupt))
    _bad(tmp_path / "corrupt.pth", "damaged zip archive")
    state = torch.load(backbone, weights_only=True)
    renamed = dict(state)
    renamed["fc.w"] = renamed.pop("fc.weight")
    torch.save(renamed, tmp_path / "renamed.pth")
    _bad(tmp_path / "renamed.pth", "missing: fc.weight", "unexpected: fc.w")
    wrong = dict(state)
    wrong["fc.weight"] = torch.zeros(256, 512 * 49)
    torch.save(wrong, tmp_path / "wrong.pth")
    _bad(tmp_path / "wrong.pth", "fc.weight (256, 25088) (expected (512, 25088))")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pth")
    _bad(tmp_path / "other.pth", "without iresnet stages")
    (tmp_path / "notes.pth").write_text("not weights")
    _bad(tmp_path / "notes.pth", "not a torch file")
    (tmp_path / "garbage.onnx").write_bytes(b"\x08\x07garbage" * 10)
    _bad(tmp_path / "garbage.onnx", "ONNX")
    _bad(tmp_path / "absent.onnx", "no such file")


def test_onnx_for_the_wrong_input_size_is_refused(tmp_path):
    path = tmp_path / "arcface_128.onnx"
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, 2), torch.nn.Flatten(), torch.nn.Linear(4 * 63 * 63, 8))
    torch.onnx.export(net, torch.zeros(1, 3, 128, 128), str(path), input_names=["data"], dynamo=False)
    _bad(path, "[1, 3, 128, 128]", "expected [N, 3, 112, 112]")


def test_a_mistyped_path_with_auto_is_an_error_not_a_dlib_fallback(tmp_path):
    with pytest.raises(WeightsFormatError, match="no such file"):
        load_identity_encoder("auto", str(tmp_path / "w600k_r5O.onnx"))
    with pytest.raises(FileNotFoundError, match="identity_weights is not set"):
        load_identity_encoder("arcface", None)
    assert load_identity_encoder("auto", None).name == "dlib_resnet_v1"  # nothing configured: the offline default


def test_alignment_is_insightfaces_least_squares_similarity():
    rng = np.random.default_rng(0)
    angle, scale, shift = np.radians(12), 2.5, np.array([140.0, 90.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    five = ARCFACE_TEMPLATE @ rot.T + shift
    m = similarity(five, ARCFACE_TEMPLATE)
    np.testing.assert_allclose(np.c_[five, np.ones(5)] @ m.T, ARCFACE_TEMPLATE, atol=1e-3)
    noisy = five + rng.normal(0, 3, five.shape)
    ours = similarity(noisy, ARCFACE_TEMPLATE)
    lmeds, _ = cv2.estimateAffinePartial2D(noisy.astype(np.float32), ARCFACE_TEMPLATE, method=cv2.LMEDS)

    def sse(mat):
        return float(((np.c_[noisy, np.ones(5)] @ mat.T - ARCFACE_TEMPLATE) ** 2).sum())

    assert sse(ours) <= sse(lmeds) + 1e-6  # least squares: no fit of the five points has a smaller error
    image = (rng.random((300, 300, 3)) * 255).astype(np.uint8)
    assert align_arcface(image, five).shape == (112, 112, 3)


def test_models_check_lines_for_arcface(backbone, tmp_path):
    def params(**kw):
        return types.SimpleNamespace(evaluate=EvaluateParams(**kw))

    [ok] = check_identity(params(identity_weights=str(backbone)))
    assert ok.ok and ok.backend == "arcface" and "iresnet50" in ok.detail
    [offline] = check_identity(params())
    assert offline.ok and offline.backend == "dlib" and "not the paper's" in offline.detail
    (tmp_path / "bad.pth").write_bytes(b"PK\x03\x04broken")
    [bad] = check_identity(params(identity_weights=str(tmp_path / "bad.pth")))
    assert not bad.ok and "bad.pth" in bad.detail and "buffalo_l" in bad.release and bad.line().startswith("FAIL")
    [unset] = check_identity(params(identity_encoder="arcface"))
    assert not unset.ok and "not set" in unset.detail
