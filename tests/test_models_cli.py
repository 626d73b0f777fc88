"""`piq models check` / `piq models layout` on folders in the published layouts: a complete set
passes (exit 0, one `ok` line per component), and each kind of bad download is one `FAIL` line
naming the file, what is wrong and where the release lives (exit 1)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from pipeline.commands.piq import main
from tests.fixtures.published_layouts import (diffusers_fp16_folder, face_parsing_folder, llava_hf_folder, rename_key, reshape_key,
                                     truncate, weight_file)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("published")
    diffusers_fp16_folder(root / "stable-diffusion-xl-base-1.0", plain=("text_encoder_2",))
    face_parsing_folder(root / "face-parsing")
    llava_hf_folder(root / "llava-1.5-7b-hf")
    return root


def _params_file(tmp_path: Path, root: Path) -> Path:
    data = yaml.safe_load((REPO / "params.yaml").read_text())
    data["train"]["pretrained_dir"] = str(root / "stable-diffusion-xl-base-1.0")
    data["segment"].update(backend="segformer", segformer_dir=str(root / "face-parsing"))
    data["caption"].update(backend="llava", llava_dir=str(root / "llava-1.5-7b-hf"))
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _check(capsys, params: Path, *only: str) -> tuple[int, dict[str, str]]:
    rc = main(["--params", str(params), "models", "check", *(["--only", *only] if only else [])])
    out = capsys.readouterr().out
    lines = {}
    for line in out.splitlines():
        if line.startswith(("ok ", "FAIL")):
            lines[line.split()[1]] = line
        elif line.strip().startswith("get:"):
            lines[list(lines)[-1]] += "\n" + line
    return rc, lines


def test_complete_folders_pass(tmp_path, capsys, published):
    rc, lines = _check(capsys, _params_file(tmp_path, published), "train", "segment", "caption")
    assert rc == 0
    assert set(lines) == {"train.backbone.sdxl.unet", "train.backbone.sdxl.vae", "train.backbone.sdxl.text_encoder",
                          "train.backbone.sdxl.text_encoder_2", "segment.segformer", "caption.llava"}
    assert all(line.startswith("ok ") for line in lines.values())
    assert "diffusion_pytorch_model.fp16.safetensors (fp16 variant)" in lines["train.backbone.sdxl.unet"]
    assert "model.safetensors, " in lines["train.backbone.sdxl.text_encoder_2"]  # the mixed folder's plain part
    assert "2 shards" in lines["caption.llava"] and "19 labels" in lines["segment.segformer"]


def test_offline_defaults_say_nothing_to_download(tmp_path, capsys):
    rc, lines = _check(capsys, REPO / "params.yaml", "train", "segment", "caption", "animate", "relight")
    assert rc == 0
    for name in ("segment.segformer", "caption.llava", "train.backbone.sdxl"):
        assert lines[name].startswith("ok ") and "nothing to download" in lines[name]


def _damaged(tmp_path: Path, published: Path) -> Path:
    root = tmp_path / "copy"
    shutil.copytree(published, root)
    return root


@pytest.mark.parametrize("damage,component,says", [
    (lambda r: shutil.rmtree(r / "stable-diffusion-xl-base-1.0" / "text_encoder_2"), "train.backbone.sdxl",
     "missing text_encoder_2/"),
    (lambda r: rename_key(weight_file(r / "stable-diffusion-xl-base-1.0" / "vae"), "conv_in.weight", "conv_in.w"),
     "train.backbone.sdxl.vae", "diffusion_pytorch_model.fp16.safetensors: missing: decoder.conv_in.weight"),
    (lambda r: reshape_key(weight_file(r / "stable-diffusion-xl-base-1.0" / "unet"), "conv_out.weight"),
     "train.backbone.sdxl.unet", "wrong shape: conv_out.weight (5, 32, 3, 3) (expected (4, 32, 3, 3))"),
    (lambda r: truncate(r / "face-parsing" / "model.safetensors"), "segment.segformer",
     "face-parsing: model.safetensors: could not be read"),
    (lambda r: (r / "face-parsing" / "config.json").write_text(json.dumps(
        {**json.loads((r / "face-parsing" / "config.json").read_text()), "hidden_sizes": [8, 16, 24, 48]})),
     "segment.segformer", "wrong shape"),
    (lambda r: (r / "stable-diffusion-xl-base-1.0" / "unet" / "config.json").write_text("{"), "train.backbone.sdxl",
     "unet/config.json: is not valid JSON"),
    (lambda r: (r / "llava-1.5-7b-hf" / "model-00001-of-00002.safetensors").unlink(), "caption.llava",
     "names shards that are missing: model-00001-of-00002.safetensors"),
], ids=["missing_component", "renamed_key", "wrong_shape", "truncated_file", "wrong_config", "broken_config",
        "missing_shard"])
def test_each_bad_download_fails_with_the_file_and_the_release(tmp_path, capsys, published, damage, component, says):
    root = _damaged(tmp_path, published)
    damage(root)
    rc, lines = _check(capsys, _params_file(tmp_path, root), "train", "segment", "caption")
    assert rc == 1
    assert lines[component].startswith("FAIL") and says in lines[component], lines[component]
    assert "\n       get: huggingface.co/" in lines[component]
    assert sum(line.startswith("FAIL") for line in lines.values()) == 1  # the other components still pass


def test_layout_prints_every_registered_backend(capsys):
    assert main(["models", "layout"]) == 0
    out = capsys.readouterr().out
    for name in ("[train.backbone]", "[segment.segformer]", "[caption.llava]", "[evaluate.ipadapter]"):
        assert name in out
    assert "unet/config.json + diffusion_pytorch_model.safetensors | diffusion_pytorch_model.fp16.safetensors" in out
    assert "preprocessor_config.json" in out and "ip-adapter-plus-face_sdxl_vit-h.safetensors" in out
