"""The invisible mark inside the edit (issue 26, item 5), on a real photo of the corpus
(tests/corpus/obama_portrait.jpg, public domain): only the edit's area changes, a grayscale photo
stays grayscale, the change is faint, and the mark is read again after a JPEG re-save at quality
75, a half-size resize and a crop that keeps the face; an unmarked photo is not read as marked.
The table over every method and photo is bench/watermark.py's (docs/BENCHMARKS.md)."""
from __future__ import annotations

import io
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

CORPUS = Path(__file__).parent / "corpus"


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


@pytest.fixture(scope="module")
def portrait():
    from facereplace.faces import find_faces
    from pipeline.config.replace import ReplaceParams

    rgb = np.asarray(Image.open(CORPUS / "obama_portrait.jpg").convert("RGB"))
    face = find_faces(rgb, ReplaceParams())[0]
    # the edit's area: the inner face as the mesh outlines it (the paste mask's stand-in)
    region = np.zeros(rgb.shape[:2], np.uint8)
    cv2.fillConvexPoly(region, cv2.convexHull(face.mesh.xy[:468].astype(np.float32)).astype(np.int32), 1)
    return rgb, face, region.astype(bool)


def _grown(region: np.ndarray, face, margin: float) -> np.ndarray:
    from facereplace.facemark import Frame

    grow = max(1, int(round(margin * Frame.of_mesh(face.mesh).unit)))
    return cv2.dilate(region.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)) > 0


@pytest.mark.slow
def test_mark_stays_in_the_edit_is_faint_and_survives_sharing(portrait) -> None:
    from facereplace.provenance import MIN_MATCH, mark_faces, read_face_marks
    from pipeline.config.replace import ReplaceParams

    rgb, face, region = portrait
    p = ReplaceParams()
    marked = mark_faces(rgb, [(face, region.astype(np.float32))], p)
    changed = (marked != rgb).any(2)
    area = _grown(region, face, p.mark_margin)
    assert changed.sum() > 5000 and not (changed & ~area).any()   # outside the grown edit: bit for bit
    d = (marked.astype(np.float64) - rgb)[area]
    assert 10 * math.log10(255 ** 2 / np.mean(d ** 2)) >= 45.0
    x0, y0, x1, y1 = (int(v) for v in face.box)
    m = (x1 - x0) // 2
    shared = {"jpeg75": _jpeg(marked, 75),
              "resize0.5": cv2.resize(marked, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA),
              "crop": _jpeg(np.ascontiguousarray(marked[max(0, y0 - m):y1 + m, max(0, x0 - m):x1 + m]), 90)}
    for name, img in shared.items():
        got = read_face_marks(img, p)
        assert got and got[0]["bits"] >= MIN_MATCH, (name, got)
    plain = read_face_marks(_jpeg(rgb, 75), p)
    assert plain and plain[0]["bits"] < MIN_MATCH


@pytest.mark.slow
def test_a_grayscale_photo_stays_grayscale(portrait) -> None:
    from facereplace.provenance import mark_faces
    from pipeline.config.replace import ReplaceParams

    rgb, face, region = portrait
    gray = np.repeat(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)[..., None], 3, axis=2)
    marked = mark_faces(gray, [(face, region.astype(np.float32))], ReplaceParams())
    assert (marked != gray).any()
    assert (marked[..., 0] == marked[..., 1]).all() and (marked[..., 1] == marked[..., 2]).all()


def test_threshold_keeps_false_positives_under_one_in_a_million() -> None:
    from facereplace.facemark import false_positive_rate
    from facereplace.provenance import MIN_MATCH

    assert false_positive_rate(48, MIN_MATCH) < 1e-6 / 3   # three faces tried: still < 1e-6
    assert false_positive_rate(48, MIN_MATCH - 1) > false_positive_rate(48, MIN_MATCH)
    assert abs(false_positive_rate(48, 0) - 1.0) < 1e-12


def test_an_edit_with_no_area_leaves_the_photo_as_it_was(portrait) -> None:
    from facereplace.facemark import MarkParams, embed
    from facereplace.provenance import watermark_bits

    rgb, face, _ = portrait
    out = embed(rgb, face.mesh, np.zeros(rgb.shape[:2], bool), watermark_bits(), MarkParams())
    assert (out == rgb).all()


def test_the_mark_carries_the_message_diffusers_sdxl_embeds() -> None:
    """The photo tool's 48 bits are the SDXL pipeline's own (written down, not imported: importing
    diffusers for a constant made every `piq verify` 2.6 s slower)."""
    from diffusers.pipelines.stable_diffusion_xl.watermark import WATERMARK_BITS

    from facereplace.provenance import watermark_bits

    assert watermark_bits() == list(WATERMARK_BITS) and len(WATERMARK_BITS) == 48
