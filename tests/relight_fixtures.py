"""Inputs of the annotation stages in the layout of `animate` and `segment` (docs/DATA.md),
made from the two public-domain portraits of tests/conftest.py without running those stages.

Label maps come from the five-landmark stand-in (`tests.face_standins.label_map`), so the
relighter is tested against masks a real segmenter could give, not against its own geometry.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from tests.face_standins import label_map
from tests.conftest import PORTRAITS, _portrait


def portrait_crop(name: str, size: int, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """An RGB face crop (size x size) and its five landmarks in crop pixels."""
    lms, (x0, y0, side) = PORTRAITS[name]
    crop = _portrait(name)[y0 : y0 + side, x0 : x0 + side]
    pts = (np.array(lms) - (x0, y0)) * size / side
    crop = cv2.resize(crop, (size, size), interpolation=cv2.INTER_CUBIC if size > side else cv2.INTER_AREA)
    if flip:
        crop = np.ascontiguousarray(crop[:, ::-1])
        pts = np.array([[size - x, y] for x, y in pts])[[1, 0, 2, 4, 3]]
    return crop, pts


def make_fake_annotate_inputs(root: Path, size: int = 512, faces: tuple[tuple[str, bool], ...] = (("astronaut", False), ("hopper", False)),
                              images: int = 2, with_labels: bool = True) -> tuple[Path, Path]:
    """`root/animate` (manifest + sets/<face_id>/iNN.jpg) and `root/segment`
    (sets/<face_id>/iNN.seg.png). Image iNN of a face is the portrait itself (the stage under
    test does not care whether an image is expressive). Returns (animate_dir, segment_dir)."""
    animate, segment = root / "animate", root / "segment"
    rows = []
    for k, (name, flip) in enumerate(faces):
        face_id = f"v{k:04d}-f000000"
        crop, pts = portrait_crop(name, size, flip)
        labels = label_map((size, size), pts)
        for i in range(images):
            image = f"i{i:02d}"
            rel = f"sets/{face_id}/{image}.jpg"
            (animate / "sets" / face_id).mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(animate / rel), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            if with_labels:
                (segment / "sets" / face_id).mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(segment / "sets" / face_id / f"{image}.seg.png"), labels)
            rows.append({"item_id": face_id, "face_id": face_id, "image": image, "path": rel,
                         "kind": "neutral" if i == 0 else "expressive",
                         "driving_video": None if i == 0 else f"d{i:03d}", "backend": "fixture",
                         "yaw": 0.0, "pitch": 0.0, "roll": 0.0, "landmarks": json.dumps(pts.tolist())})
    animate.mkdir(parents=True, exist_ok=True)
    segment.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_parquet(animate / "manifest.parquet", index=False)
    return animate, segment
