"""Inputs of the caption and segment tests: the portraits of tests/relight_fixtures.py in the
animate layout, plus one faceless image (a flat grey picture) that the offline backends refuse."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from tests.relight_fixtures import make_fake_annotate_inputs


def animate_with_blank(root: Path, size: int, images: int, blank_image: str) -> tuple[Path, pd.DataFrame]:
    """(animate dir, its manifest without the blank row); the blank image joins the first face's set."""
    animate, _ = make_fake_annotate_inputs(root, size=size, images=images, with_labels=False)
    manifest = pd.read_parquet(animate / "manifest.parquet")
    blank = manifest.iloc[[0]].assign(image=blank_image, path=lambda f: f.path.str.replace("i00", blank_image))
    cv2.imwrite(str(animate / blank.path.iloc[0]), np.full((size, size, 3), 110, np.uint8))
    pd.concat([manifest, blank]).to_parquet(animate / "manifest.parquet", index=False)
    return animate, manifest
