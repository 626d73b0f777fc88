"""Shared fixtures: a tiny release made by the shard stage from the public-domain portraits."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from matplotlib import cbook
from PIL import Image
from skimage import data


# MTCNN landmarks of the two portraits (source pixels) and a square crop around each face.
PORTRAITS = {
    "astronaut": ([[205.0, 101.7], [246.8, 103.7], [224.7, 129.0], [201.7, 139.2], [245.3, 141.9]], (109, 5, 230)),
    "hopper": ([[221.7, 192.2], [309.8, 186.1], [269.4, 239.2], [232.7, 279.6], [306.6, 275.9]], (45, 45, 440)),
}


def _portrait(name: str) -> np.ndarray:
    if name == "astronaut":
        return data.astronaut()
    return np.array(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))


def make_fake_ingest(root: Path, size: int = 128) -> Path:
    """An ingest output dir (manifest + faces) with three faces, without running MTCNN."""
    faces = root / "faces"
    faces.mkdir(parents=True)
    rows = []
    for k, (name, flip) in enumerate([("astronaut", False), ("hopper", False), ("astronaut", True)]):
        lms, (x0, y0, side) = PORTRAITS[name]
        crop = _portrait(name)[y0 : y0 + side, x0 : x0 + side]
        pts = (np.array(lms) - (x0, y0)) * size / side
        crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)
        if flip:
            crop = np.ascontiguousarray(crop[:, ::-1])
            pts = np.array([[size - x, y] for x, y in pts])[[1, 0, 2, 4, 3]]
        face_id = f"v{k:04d}-f000000"
        cv2.imwrite(str(faces / f"{face_id}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        rows.append({"item_id": f"v{k:04d}", "face_id": face_id, "participant_id": f"p{name}", "video_id": f"v{k:04d}",
                     "category": "no gesture", "path": f"faces/{face_id}.jpg", "frame": 0,
                     "bbox": json.dumps([0, 0, 1, 1]), "landmarks": json.dumps(pts.tolist()),
                     "landmarks_crop": json.dumps(pts.tolist()), "crop_box": json.dumps([0, 0, size, size]),
                     "license": "public domain", "consent": "not required (public-domain photograph)"})
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    return root


@pytest.fixture(scope="session")
def tiny_release(tmp_path_factory) -> Path:
    """A release of three sets (2 expressive + 2 relit each, 64 px) made by the shard stage, all
    in train, one set per shard."""
    from tests.release_fixtures import build_release

    root = tmp_path_factory.mktemp("tiny")
    ingest = make_fake_ingest(root / "ingest")
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    return build_release(root, ingest, n_expressive=2, n_relit=2, size=64, max_sets_per_shard=1,
                         test_id_fraction=0.0, test_ood_fraction=0.0)


@pytest.fixture(scope="session")
def tiny_shards(tiny_release: Path) -> Path:
    """The train split of `tiny_release`: three shards of one set each."""
    return tiny_release / "train"


@pytest.fixture
def detect_calls(monkeypatch) -> list[tuple[int, int]]:
    """The (height, width) of every image MTCNN is run on (the photo tool's detection tests)."""
    from pipeline.faces.detect import FaceDetector

    calls: list[tuple[int, int]] = []
    real = FaceDetector.detect

    def spy(self, rgb, *args, **kwargs):
        calls.append(rgb.shape[:2])
        return real(self, rgb, *args, **kwargs)

    monkeypatch.setattr(FaceDetector, "detect", spy)
    return calls


def pytest_collection_modifyitems(config, items):
    """`gpu` tests run only where CUDA is (the device: `pytest -m gpu`); skipped elsewhere."""
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA (run on the device with: pytest -m gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
