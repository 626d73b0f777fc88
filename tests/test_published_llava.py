"""LLaVA-1.5 captions from the folder llava-hf publishes (sharded safetensors behind an index,
the original conversion's key names), and the bad downloads it must name."""
from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file, save_file

from pipeline.backends.captioners.llava import LlavaCaptioner, check
from pipeline.config.caption import CaptionParams
from pipeline.weight_files.checks import WeightsFormatError
from tests.fixtures.published_layouts import llava_hf_folder, repo_params, truncate
from tests.fixtures.relight_inputs import portrait_crop


def _params(folder) -> CaptionParams:
    return CaptionParams(backend="llava", llava_dir=str(folder), device="cpu", batch_size=2, max_new_tokens=6,
                         static_cache=False)


def test_published_shards_caption_like_the_model_that_wrote_them(tmp_path):
    from tests.fixtures.llava_random import save_random_llava

    folder = llava_hf_folder(tmp_path / "llava-1.5-7b-hf")
    keys = json.loads((folder / "model.safetensors.index.json").read_text())["weight_map"]
    assert any(k.startswith("vision_tower.vision_model.encoder.layers.") for k in keys)
    assert "language_model.lm_head.weight" in keys and "multi_modal_projector.linear_1.weight" in keys
    image = portrait_crop("hopper", 64)[0]
    reference = LlavaCaptioner(_params(save_random_llava(tmp_path / "as_saved"))).generate([image])
    assert LlavaCaptioner(_params(folder)).generate([image]) == reference


def _rename_in_shard(folder, old, new):
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    key = next(k for k in index["weight_map"] if k.endswith(old))
    shard = folder / index["weight_map"][key]
    tensors = load_file(str(shard))
    tensors[key.replace(old, new)] = tensors.pop(key)
    save_file(tensors, str(shard), metadata={"format": "pt"})
    return key


@pytest.mark.parametrize("damage,match", [
    (lambda f: (f / "model-00002-of-00002.safetensors").unlink(),
     r"model.safetensors.index.json: names shards that are missing: model-00002-of-00002.safetensors"),
    (lambda f: truncate(f / "model-00001-of-00002.safetensors"), r"model-00001-of-00002.safetensors: could not be read \(SafetensorError"),
    (lambda f: _rename_in_shard(f, "multi_modal_projector.linear_2.weight", "multi_modal_projector.linear2.weight"),
     r"model.safetensors.index.json: missing: .*multi_modal_projector.linear_2.weight"),
    (lambda f: (f / "preprocessor_config.json").unlink(), r"preprocessor_config.json: missing"),
], ids=["missing_shard", "truncated_shard", "renamed_key", "no_processor"])
def test_bad_download_is_named_never_random(tmp_path, damage, match):
    folder = llava_hf_folder(tmp_path / "llava-1.5-7b-hf")
    damage(folder)
    captioner = LlavaCaptioner(_params(folder))
    with pytest.raises(WeightsFormatError, match=match):
        captioner.setup()
    assert captioner._model is None
    (line,) = check(repo_params(caption=_params(folder)))
    assert not line.ok and "llava-hf/llava-1.5-7b-hf" in line.release


def test_check_reads_the_shards_headers(tmp_path):
    folder = llava_hf_folder(tmp_path / "llava-1.5-7b-hf")
    (line,) = check(repo_params(caption=_params(folder)))
    assert line.ok and "2 shards (model.safetensors.index.json)" in line.detail and "LlavaForConditionalGeneration" in line.detail
    (line,) = check(repo_params(caption=CaptionParams()))
    assert line.ok and line.backend == "attributes" and "nothing to download" in line.detail
