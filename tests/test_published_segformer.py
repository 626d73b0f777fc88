"""SegFormer face parsing from the folder its public release ships (jonathandinu/face-parsing:
config.json, model.safetensors and a legacy `SegformerFeatureExtractor` processor config that
transformers 5's AutoImageProcessor refuses), and the bad downloads it must name."""
from __future__ import annotations

import json

import cv2
import pandas as pd
import pytest

from pipeline.config.runner import RunnerParams
from pipeline.config.segment import SegmentParams
from pipeline.labels import LABEL_IDS
from pipeline.backends.parsers import build_parser
from pipeline.weight_files.checks import WeightsFormatError
from stages.segment import run
from tests.fixtures.published_layouts import (LEGACY_PROCESSOR, OLDEST_PROCESSOR, face_parsing_folder, rename_key, repo_params,
                                     reshape_key, truncate)
from tests.fixtures.relight_inputs import make_fake_annotate_inputs

LOCAL = RunnerParams(workers=0, progress=False)


def _params(folder, **kw) -> SegmentParams:
    return SegmentParams(backend="segformer", segformer_dir=str(folder), device="cpu", **kw)


def test_auto_image_processor_refuses_the_published_config(tmp_path):
    """The failure this backend works around (if transformers ever accepts it again, fine)."""
    from transformers import AutoImageProcessor

    folder = face_parsing_folder(tmp_path / "face-parsing")
    with pytest.raises(ValueError, match="Unrecognized image processor"):
        AutoImageProcessor.from_pretrained(folder, local_files_only=True)


def test_published_folder_segments_through_the_stage(tmp_path):
    folder = face_parsing_folder(tmp_path / "face-parsing", winner="hair")
    animate, _ = make_fake_annotate_inputs(tmp_path, size=96, images=2, with_labels=False)
    params = _params(folder, input_dir=str(animate), out_dir=str(tmp_path / "out"), batch_size=4)
    stats = run(params, LOCAL, seed=0).stats
    assert stats["done"] == 4 and stats["rejected"] == 0
    out = pd.read_parquet(f"{params.out_dir}/manifest.parquet")
    for row in out.itertuples():
        labels = cv2.imread(f"{params.out_dir}/{row.path}", cv2.IMREAD_UNCHANGED)
        assert labels.shape == (96, 96) and (labels == LABEL_IDS["hair"]).all()


@pytest.mark.parametrize("config", [LEGACY_PROCESSOR, OLDEST_PROCESSOR], ids=["image_processor_type", "size_int"])
def test_legacy_processor_config_is_read_not_replaced(tmp_path, config):
    data = dict(config, image_mean=[0.1, 0.2, 0.3])
    folder = face_parsing_folder(tmp_path / "fp", processor=data, side=48)
    parser = build_parser(_params(folder))
    parser.setup()
    ip = parser._processor
    assert (ip.size["height"], ip.size["width"]) == (48, 48)
    assert list(ip.image_mean) == [0.1, 0.2, 0.3] and int(ip.resample) == 2


def test_folder_without_processor_config_gets_the_documented_defaults(tmp_path):
    folder = face_parsing_folder(tmp_path / "fp", processor=None)
    parser = build_parser(_params(folder))
    parser.setup()
    ip = parser._processor
    assert (ip.size["height"], ip.size["width"]) == (512, 512)
    assert list(ip.image_mean) == [0.485, 0.456, 0.406] and list(ip.image_std) == [0.229, 0.224, 0.225]


def test_processor_of_another_model_is_named(tmp_path):
    folder = face_parsing_folder(tmp_path / "fp", processor=dict(LEGACY_PROCESSOR, image_processor_type="DetrImageProcessor"))
    with pytest.raises(WeightsFormatError, match=r"preprocessor_config.json: names processor 'DetrImageProcessor'"):
        build_parser(_params(folder)).setup()


@pytest.mark.parametrize("damage,match", [
    (lambda f: rename_key(f / "model.safetensors", "classifier.weight", "classifier.kernel"),
     r"model.safetensors: missing: decode_head.classifier.weight"),
    (lambda f: reshape_key(f / "model.safetensors", "classifier.weight"),
     r"model.safetensors: wrong shape: decode_head.classifier.weight \(20, 16, 1, 1\) \(expected \(19, 16, 1, 1\)\)"),
    (lambda f: truncate(f / "model.safetensors"), r"model.safetensors: could not be read \(SafetensorError"),
    (lambda f: (f / "model.safetensors").unlink(), r"face-parsing: no weights file \(found: config.json, preprocessor_config.json\)"),
    (lambda f: (f / "config.json").write_text("{not json"), r"config.json: is not valid JSON"),
], ids=["renamed_key", "wrong_shape", "truncated", "no_weights", "broken_config"])
def test_bad_download_is_named_never_random(tmp_path, damage, match):
    folder = face_parsing_folder(tmp_path / "face-parsing")
    damage(folder)
    parser = build_parser(_params(folder))
    with pytest.raises(WeightsFormatError, match=match):
        parser.setup()
    assert parser._model is None


def test_check_reports_the_published_folder(tmp_path):
    from pipeline.backends.parsers.segformer import check

    folder = face_parsing_folder(tmp_path / "face-parsing")
    params = repo_params(segment=_params(folder))
    (line,) = check(params)
    assert line.ok and "model.safetensors" in line.detail and "19 labels" in line.detail
    assert "preprocessor_config.json" in line.detail
    rename_key(folder / "model.safetensors", "classifier.bias", "classifier.b")
    (line,) = check(params)
    assert not line.ok and "missing: decode_head.classifier.bias" in line.detail
    assert "jonathandinu/face-parsing" in line.release
    (line,) = check(repo_params(segment=SegmentParams()))
    assert line.ok and line.backend == "mesh" and "nothing to download" in line.detail
    json.loads((folder / "config.json").read_text())  # the check never rewrites the folder
