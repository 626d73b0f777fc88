"""The suite's shared fixtures live in tests/fixtures/ (loaded here as plugins); this file only
skips `gpu` tests where there is no CUDA."""
from __future__ import annotations

import pytest

pytest_plugins = [
    "tests.fixtures.portraits",  # hopper
    "tests.fixtures.release",  # tiny_release, tiny_shards
    "tests.fixtures.photos",  # detect_calls
    "tests.fixtures.dvc_copy",  # clone
]


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA is (the device: `pytest -m gpu`); skipped elsewhere."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on the device with: pytest -m gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
