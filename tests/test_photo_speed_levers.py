"""The speed levers of `piq replace` (bench/replace.py) keep what it did: the replaceable-only
detection finds the faces it can replace in one MTCNN pass, rotated retries run when REF's
person is not among the upright faces, `--face N` keeps `piq faces`' numbering, the parser at
`replace.parse_px` gives the full-size mask's edge, the paste-back's blend on the mask's box is
the whole window's."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from facereplace.faces import MTCNN_MIN_FACE, detection_factor, find_faces
from pipeline.config.ingest import IngestParams
from pipeline.config.replace import ReplaceParams
from tests.fixtures.photos import astronaut, astronaut_reference, group_photo

FAST = dict(detect_rotations=(), detect_upscale=1.0)


def test_replaceable_faces_found_in_one_pass_without_an_upscaled_copy(detect_calls) -> None:
    photo = cv2.resize(group_photo(), None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)  # 3956 x 2400, faces ~350 px
    p = ReplaceParams(min_face_px=64)
    factor = detection_factor(photo.shape[:2], p, replaceable_only=True)
    assert factor * p.min_face_px == pytest.approx(MTCNN_MIN_FACE)  # a min_face_px face is MTCNN's smallest there
    assert factor > detection_factor(photo.shape[:2], p)  # ... which needs more than the listing's 1024 px copy
    faces = find_faces(photo, p, replaceable_only=True, retry="never", measured=False)
    assert detect_calls == [(round(photo.shape[0] * factor), round(photo.shape[1] * factor))]
    listed = find_faces(photo, ReplaceParams(**FAST), measured=False)
    assert len(faces) == len(listed) == 2
    for a, b in zip(faces, listed):  # the same faces, boxed within a few % of their size
        assert np.abs(np.subtract(a.box, b.box)).max() < 0.06 * b.short_side
    assert faces[0].mesh is None and faces[0].yaw is None  # unmeasured: replacing reads none of it

    detect_calls.clear()  # a 1600 px portrait: its face is boxed at full precision on a 500 px copy
    ref = cv2.resize(astronaut(), (1600, 1600), interpolation=cv2.INTER_CUBIC)
    assert len(find_faces(ref, p, replaceable_only=True, retry="never", measured=False)) == 1
    assert detect_calls == [(500, 500)]

    detect_calls.clear()  # faces under O-net's 48 px on that copy: redone on the listing's copy
    small = group_photo()
    got = find_faces(small, p, replaceable_only=True, retry="never", measured=False)
    assert detect_calls[-1] == small.shape[:2] and len(detect_calls) == 2
    assert [f.box for f in got] == [f.box for f in find_faces(small, ReplaceParams(**FAST), measured=False)]


def test_faces_under_min_face_px_are_not_looked_for(detect_calls) -> None:
    """The small-face canvas of test_photo_tool (faces ~14 px): the listing finds them on its
    upscaled copy; replacing, which would refuse them, runs no upscaled copy."""
    small = cv2.resize(group_photo(), None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    canvas = np.full((1000, 1500, 3), 190, np.uint8)
    canvas[450 : 450 + small.shape[0], 600 : 600 + small.shape[1]] = small
    p = ReplaceParams(detect_rotations=(), detect_max_side=512, detect_upscale=3.0)
    assert len(find_faces(canvas, p, measured=False)) == 2
    detect_calls.clear()
    assert find_faces(canvas, p, replaceable_only=True, measured=False) == []
    assert len(detect_calls) <= 2 and max(max(c) for c in detect_calls) <= 512  # no upscaled copy


def _target(photo, face=None, allow_cross=False, **kw):
    from facereplace.target import find_target

    times: dict[str, float] = {}
    p = ReplaceParams(**kw)
    return find_target(photo, astronaut_reference(), p, IngestParams(), face, None, allow_cross, ("PHOTO", "REF"), times), times


@pytest.mark.slow
def test_rotated_retries_only_where_a_proposed_face_is_missed(detect_calls) -> None:
    """The listing (every command's one search) runs rotated copies only where BlazeFace
    proposes a face no upright detection covers, on that face's square, or on the whole copy
    when the upright pass finds nothing."""
    target, times = _target(group_photo())
    assert target.choice.index == 0 and target.choice.distance < 0.08
    photo_h, photo_w = group_photo().shape[:2]  # rotated copies are larger than the photo (enlarged canvas)
    assert all(h <= photo_h and w <= photo_w for h, w in detect_calls), "no rotated or upscaled copy"
    assert set(times) == {"detect", "identity"}

    tilted = group_photo()  # the astronaut's head turned 70 degrees: upright MTCNN misses it
    a = cv2.warpAffine(astronaut(), cv2.getRotationMatrix2D((256, 256), 70, 1.0), (512, 512), borderMode=cv2.BORDER_REFLECT)
    tilted[40:552, 10:522] = a
    assert all(f.box[0] > 540 for f in find_faces(tilted, ReplaceParams(), retry="never"))
    detect_calls.clear()
    found = find_faces(tilted, ReplaceParams(), measured=False)
    assert any(f.box[2] < 540 for f in found), "the tilted astronaut found on a rotated square"
    assert len(detect_calls) >= 2  # the upright pass, then the square rotated by the angle BlazeFace found it at
    assert all(max(c) < max(tilted.shape[:2]) for c in detect_calls[1:]), "squares, not whole rotated copies"


@pytest.mark.slow
def test_face_n_keeps_piq_faces_numbering_and_embeds_only_face_n() -> None:
    photo = group_photo()
    target, _ = _target(photo, face=0, **FAST)
    listed = find_faces(photo, ReplaceParams(**FAST), measured=False)
    assert [f.box for f in target.faces] == [f.box for f in listed]
    assert np.isfinite(target.choice.distances[0]) and not np.isfinite(target.choice.distances[1])


def test_parse_at_parse_px_keeps_the_mask_edge() -> None:
    """The mesh parser at 512 px, labels upsampled: the inner face agrees with a 1024 px parse
    everywhere but a thin band at its edge (inside what the paste mask's erosion removes)."""
    from facereplace.replace import parse
    from pipeline.config.segment import SegmentParams
    from pipeline.faces.crop import extract_crop
    from pipeline.labels import INNER_FACE, LABEL_IDS

    face = find_faces(group_photo(), ReplaceParams(detect_rotations=(), detect_upscale=1.0), measured=False)[0]
    ing = IngestParams()
    crop = extract_crop(group_photo(), face.crop(ing), ing.out_size, ing.pad_mode)
    inner = [LABEL_IDS[n] for n in INNER_FACE]
    full = np.isin(parse(SegmentParams(), crop, "face", 1024), inner)
    half = np.isin(parse(SegmentParams(), crop, "face", 512), inner)
    assert half.shape == full.shape == crop.shape[:2]
    assert (full & half).sum() / (full | half).sum() > 0.97
    edge = cv2.dilate(full.astype(np.uint8), np.ones((9, 9), np.uint8)) > cv2.erode(full.astype(np.uint8), np.ones((9, 9), np.uint8))
    assert not (full ^ half)[~edge].any(), "differences only within 4 px of the edge"
    assert ReplaceParams().mask_erode_px >= 8


def test_blend_on_the_masks_box_is_the_whole_windows() -> None:
    from pipeline.faces.paste import blend, composite, erode, feather, rim_colour_match

    rng = np.random.default_rng(0)
    image = cv2.GaussianBlur(rng.integers(0, 255, (400, 500, 3), dtype=np.uint8), (0, 0), 3)
    new = np.clip(image.astype(int) + 40, 0, 255).astype(np.uint8)
    mask = np.zeros((400, 500), bool)
    cv2.ellipse(mask.view(np.uint8), (260, 190), (90, 120), 10, 0, 360, 1, -1)
    out, alpha = blend(image, new, mask, 24, 16, 12)
    m = erode(mask, 12)  # the same steps on the whole window
    ref_alpha = feather(m, 24)
    ref = composite(image, rim_colour_match(image, new, m, 16), ref_alpha)
    assert np.allclose(alpha, ref_alpha, atol=1e-6)
    assert np.abs(out.astype(int) - ref).max() <= 1
    assert np.array_equal(out[alpha == 0], image[alpha == 0])


def test_low_pass_is_the_wide_gaussian_blur() -> None:
    """The rim colour match's blur (sigma 1.5 x rim_px, ~21 px on a 12 MP photo's crop) at the
    scale where sigma is 8 px: what the full-size blur gives, within 1 % of its peak, on a ring
    with the blur's reach of zeros around it (as `blend`'s box has)."""
    from pipeline.faces.paste import low_pass

    ring = np.zeros((1000, 1000), np.float32)
    cv2.ellipse(ring, (500, 500), (200, 250), 0, 0, 360, 1.0, 20)  # a 20 px ring: the rim's shape
    for sigma in (21.0, 36.0):
        exact = cv2.GaussianBlur(ring, (0, 0), sigma)
        assert np.abs(low_pass(ring, sigma) - exact).max() < 0.01 * exact.max()
    assert np.array_equal(low_pass(ring, 5.0), cv2.GaussianBlur(ring, (0, 0), 5.0))  # narrow: the blur itself
