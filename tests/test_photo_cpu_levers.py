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


def _blob(shape=(300, 320), centre=(150, 170), axes=(70, 90)) -> np.ndarray:
    import cv2

    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, 20, 0, 360, 1, -1)
    return mask.astype(bool)


@pytest.mark.parametrize("centre", [(150, 170), (30, 20), (300, 280)])  # inside, and cut by the frame's edges
def test_erosion_on_the_mask_box_is_the_whole_frames(centre) -> None:
    import cv2

    from pipeline.faces.paste import erode

    mask = _blob(centre=centre)
    for k in (5, 12, 31):
        whole = cv2.erode(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(bool)
        assert np.array_equal(erode(mask, k), whole) and whole.sum() < mask.sum()
    assert not erode(np.zeros((40, 40), bool), 7).any()


@pytest.mark.parametrize("centre", [(150, 170), (60, 80), (260, 250)])
def test_poisson_on_the_mask_box_is_the_whole_frames(centre) -> None:
    import cv2

    from pipeline.faces.paste import _poisson_box, poisson

    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (300, 320, 3), dtype=np.uint8), (0, 0), 3)
    fg = cv2.GaussianBlur(rng.integers(0, 255, (300, 320, 3), dtype=np.uint8), (0, 0), 2)
    mask = _blob(centre=centre, axes=(40, 55))
    got = poisson(fg, bg, mask)
    assert np.array_equal(got, _poisson_box(fg, bg, mask))  # seamlessClone on the whole frame
    assert np.array_equal(got[~mask], bg[~mask]) and not np.array_equal(got[mask], bg[mask])


def test_classical_transfer_on_the_mask_box_is_the_whole_frames() -> None:
    """transfer_appearance on the mask's box against the same steps on the whole frame, on
    the portraits' crops (the photo tool's classical method; the evaluation's baseline)."""
    from eval.baselines.classical import reinhard, shading_ratio, transfer_appearance
    from eval.baselines.paste import align_faces
    from eval.faces import oval_mask
    from pipeline.faces.crop import extract_crop
    from pipeline.faces.geometry import square_crop
    from tests.photo_fixtures import astronaut_reference

    photo, ref = group_photo(), astronaut_reference()
    from facereplace.faces import find_faces

    src = extract_crop(photo, square_crop(find_faces(photo, measured=False)[0].box, 2.0), 512, "reflect")
    drv = extract_crop(ref, square_crop(find_faces(ref, measured=False)[0].box, 2.0), 512, "reflect")
    warped, mask, ms = align_faces(src, drv, "mesh")
    src_face = oval_mask(ms, 0.08) & mask
    whole = reinhard(warped, src, mask, src_face)
    ratio = shading_ratio(whole, src, src_face, sigma=ms.interocular * 0.5)
    whole = np.clip(whole.astype(np.float32) * ratio + 0.5, 0, 255).astype(np.uint8)
    got = transfer_appearance(warped, src, mask, ms)
    assert np.array_equal(got[mask], whole[mask]) and not np.array_equal(got[mask], warped[mask])
