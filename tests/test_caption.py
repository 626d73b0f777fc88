"""The `caption` stage: offline attribute captions on the public-domain portraits (the astronaut
smiles with teeth, Grace Hopper's mouth is closed) and a tiny random LLaVA saved in the published
layout and loaded through the real path."""
from __future__ import annotations

import cv2
import pandas as pd
import pytest

from pipeline.config.caption import PAPER_INSTRUCTION, CaptionParams
from pipeline.config.runner import RunnerParams
from stages.caption import ATTRIBUTES, run
from tests.fixtures.annotate_inputs import animate_with_blank
from tests.fixtures.relight_inputs import make_fake_annotate_inputs

LOCAL = RunnerParams(workers=0, progress=False)


@pytest.fixture(scope="module")
def attribute_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("caption")
    animate, _ = animate_with_blank(root, size=384, images=3, blank_image="i09")
    params = CaptionParams(input_dir=str(animate), out_dir=str(root / "out"))
    stats = run(params, LOCAL, seed=0).stats
    return params, stats


def test_smiling_face_is_called_smiling_and_neutral_is_not(attribute_run):
    params, _ = attribute_run
    out = pd.read_parquet(f"{params.out_dir}/manifest.parquet")
    astronaut, hopper = out[out.face_id == "v0000-f000000"], out[out.face_id == "v0001-f000000"]
    assert len(astronaut) == 3 and len(hopper) == 3
    for caption in astronaut.caption:
        assert "smil" in caption.lower() and ("teeth" in caption or "toothy" in caption or "open-mouthed" in caption)
    for caption in hopper.caption:
        assert "smil" not in caption.lower() and "open" not in caption.lower()
    assert (astronaut.smile > hopper.smile.max()).all() and (astronaut.mouth_open > hopper.mouth_open.max()).all()
    assert set(out.backend) == {"attributes"} and all(out[a].notna().all() for a in ATTRIBUTES)


def test_phrasing_varies_by_seed_and_is_deterministic(attribute_run, tmp_path):
    params, _ = attribute_run
    out = pd.read_parquet(f"{params.out_dir}/manifest.parquet")
    # three images of one portrait: same measures, different seeds -> different wordings
    assert out[out.face_id == "v0000-f000000"].caption.nunique() >= 2
    again = CaptionParams(input_dir=params.input_dir, out_dir=str(tmp_path / "again"), preview=False)
    run(again, LOCAL, seed=0)
    redo = pd.read_parquet(f"{again.out_dir}/manifest.parquet")
    key = ["face_id", "image"]
    assert out.sort_values(key).caption.tolist() == redo.sort_values(key).caption.tolist()


def test_no_face_refused_and_preview_written(attribute_run):
    params, stats = attribute_run
    assert stats["reject_codes"] == {"no_face": 1} and stats["done"] == 6
    preview = cv2.imread(f"{params.out_dir}/preview.jpg")
    assert preview is not None and preview.shape[0] > 256 + 40  # images plus caption bands


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def test_llava_random_model_through_the_real_path(tmp_path, device):
    from pipeline.backends.captioners.llava import LlavaCaptioner
    from tests.fixtures.llava_random import save_random_llava
    from tests.fixtures.relight_inputs import portrait_crop

    folder = save_random_llava(tmp_path / "llava")
    animate, _ = make_fake_annotate_inputs(tmp_path, size=64, images=3, with_labels=False)
    params = CaptionParams(input_dir=str(animate), out_dir=str(tmp_path / "out"), backend="llava", llava_dir=str(folder),
                           device=device, batch_size=4, max_new_tokens=8)
    stats = run(params, LOCAL, seed=0).stats
    out = pd.read_parquet(f"{params.out_dir}/manifest.parquet")
    assert set(out.backend) == {"llava"} and len(out) + stats["rejected"] == 6
    assert out[list(ATTRIBUTES)].isna().all().all()
    captioner = LlavaCaptioner(params)
    assert PAPER_INSTRUCTION in captioner.prompt and captioner.prompt.count("<image>") == 1
    # batched greedy generation (one shared prompt, no padding) equals one image at a time
    # (exactly in fp32 on a CPU; bf16 on a GPU may round differently)
    single = captioner.generate([portrait_crop("hopper", 64)[0]])[0]
    if device == "cpu":
        assert out[out.face_id == "v0001-f000000"].caption.iloc[0] == single
    assert out.caption.str.len().min() > 0


def test_pixel_batch_matches_the_hf_image_processors():
    """The GPU-side preprocessing gives what the models' own processors give (PIL resampling)."""
    import torch
    from transformers import CLIPImageProcessor, SegformerImageProcessor

    from pipeline.engine.annotate import pixel_batch
    from tests.fixtures.relight_inputs import portrait_crop

    images = [portrait_crop("astronaut", 400)[0], portrait_crop("hopper", 300)[0]]
    for ip in (SegformerImageProcessor(size={"height": 128, "width": 128}),
               CLIPImageProcessor(size={"shortest_edge": 112}, crop_size={"height": 112, "width": 112})):
        ref = ip(images=images, return_tensors="pt")["pixel_values"]
        got = pixel_batch(images, ip, "cpu", torch.float32)
        assert got.shape == ref.shape and (got - ref).abs().mean() < 0.01


def test_llava_static_cache_failure_falls_back_to_the_dynamic_cache(tmp_path):
    from pipeline.backends.captioners.llava import LlavaCaptioner
    from tests.fixtures.llava_random import save_random_llava
    from tests.fixtures.relight_inputs import portrait_crop

    folder = save_random_llava(tmp_path / "llava")
    params = CaptionParams(backend="llava", llava_dir=str(folder), device="cpu", max_new_tokens=6, static_cache=True)
    captioner = LlavaCaptioner(params)
    captioner.setup()
    real = captioner._model.generate

    def broken(*args, **kwargs):
        if kwargs.get("cache_implementation") == "static":
            raise RuntimeError("compiled static path broke")
        return real(*args, **kwargs)

    captioner._model.generate = broken
    image = portrait_crop("astronaut", 64)[0]
    with pytest.warns(RuntimeWarning, match="dynamic KV cache"):
        first = captioner.generate([image])
    assert first == captioner.generate([image]) and not captioner._static
    dynamic = LlavaCaptioner(CaptionParams(backend="llava", llava_dir=str(folder), device="cpu", max_new_tokens=6,
                                           static_cache=False))
    assert dynamic.generate([image]) == first
