"""The one-core levers of `piq replace --method classical` (bench/replace.py, docs/BENCHMARKS.md)
give what the slower code gave: the vectorised watermark is invisible-watermark's bytes."""
from __future__ import annotations

import numpy as np
import pytest

from tests.photo_fixtures import group_photo


@pytest.mark.parametrize("side", [256, 512, 520])
def test_fast_watermark_is_the_library_bit_for_bit(side: int) -> None:
    from imwatermark import WatermarkEncoder

    from facereplace.provenance import decode_watermark, embed_watermark, mark_region, watermark_bits

    photo = np.ascontiguousarray(group_photo()[:side, :side])
    enc = WatermarkEncoder()
    enc.set_watermark("bits", watermark_bits())
    x0, y0, x1, y1 = mark_region(photo.shape[:2], side)
    want = photo.copy()
    want[y0:y1, x0:x1] = enc.encode(np.ascontiguousarray(photo[y0:y1, x0:x1, ::-1]), "dwtDct")[:, :, ::-1]
    got = embed_watermark(photo, side)
    assert np.array_equal(got, want) and not np.array_equal(got, photo)
    assert decode_watermark(got, side) == 48  # the library's decoder reads it
