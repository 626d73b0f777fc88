"""The one-core levers of `piq replace --method classical` (bench/replace.py, docs/BENCHMARKS.md)
give what the slower code gave: MTCNN on BlazeFace's proposals boxes the faces the whole pass
boxes (within MTCNN's own jitter) and the whole pass still runs when they miss REF's person;
the vectorised watermark is invisible-watermark's bytes; erosion, colour transfer and Poisson
on the mask's box are the whole frame's, bit for bit."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from facereplace.faces import detect_all, detection_factor, find_faces
from pipeline.config.ingest import IngestParams
from pipeline.config.replace import ReplaceParams
from tests.fixtures.photos import astronaut, astronaut_reference, group_photo


@pytest.mark.parametrize("make", [lambda: cv2.resize(group_photo(), None, fx=2.5, fy=2.5, interpolation=cv2.INTER_CUBIC),
                                  lambda: cv2.resize(astronaut(), (1600, 1600), interpolation=cv2.INTER_CUBIC),
                                  group_photo], ids=["group-2472px", "portrait-1600px", "group-989px"])
def test_proposed_faces_are_the_whole_passes_within_mtcnns_jitter(make, detect_calls) -> None:
    """The same faces as the whole copy's pass, each box within 6 % of the face's size (MTCNN
    moves its own boxes by up to 5.6 % when these photos are cropped by 8-40 px), MTCNN run
    only on squares smaller than that copy."""
    photo, p = make(), ReplaceParams()
    whole = find_faces(photo, p, retry="never", replaceable_only=True, measured=False)
    detect_calls.clear()
    got = find_faces(photo, p, proposed=True, measured=False)
    assert len(got) == len(whole) >= 1
    for a, b in zip(got, whole):
        assert np.abs(np.subtract(a.box, b.box)).max() < 0.06 * b.short_side
        assert np.abs(a.landmarks - b.landmarks).max() < 0.06 * b.short_side
    copy = (round(photo.shape[0] * detection_factor(photo.shape[:2], p, True)),
            round(photo.shape[1] * detection_factor(photo.shape[:2], p, True)))
    listing = round(photo.shape[0] * detection_factor(photo.shape[:2], p)), round(photo.shape[1] * detection_factor(photo.shape[:2], p))
    assert detect_calls and all(h == w and h < max(copy + listing) for h, w in detect_calls)


def test_a_face_cut_by_its_square_is_dropped(monkeypatch) -> None:
    """A square that holds the astronaut whole and half of Grace Hopper: only the astronaut."""
    import facereplace.faces as faces_mod

    photo = group_photo()
    whole = detect_all(photo, ReplaceParams(), "never", True)
    hopper = max(whole, key=lambda d: d.box[0])
    h, w = photo.shape[:2]
    cx = (hopper.box[0] + hopper.box[2]) / 2  # a square whose right edge halves her face
    monkeypatch.setattr(faces_mod, "proposals", lambda rgb: [(cx / 2 / w, 0.5, cx / max(w, h) / ReplaceParams().proposal_pad)])
    monkeypatch.setattr(faces_mod, "detection_factor", lambda shape, p, replaceable_only=False: 1.0)
    got = faces_mod.detect_proposed(photo, ReplaceParams())
    assert len(got) == 1 and got[0].box[2] < cx


def test_replace_searches_as_piq_faces_lists() -> None:
    """One numbering (issue 24): `piq replace` finds PHOTO's faces by `piq faces`' own search,
    with or without `--face N` (a search that finds a subset numbers people differently)."""
    from facereplace.target import photo_faces, search_order

    assert search_order(ReplaceParams(), None) == search_order(ReplaceParams(), 1) == ["listing"]
    with pytest.raises(ValueError, match="search 'fast'"):
        photo_faces(group_photo(), ReplaceParams(), IngestParams(), "fast")
    with pytest.raises(ValueError, match="proposal_pad"):
        ReplaceParams(proposal_pad=0.5).validate()


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
    own = photo.copy()  # copy=False (piq replace's own composite): marked where it lies
    assert embed_watermark(own, side, copy=False) is own and np.array_equal(own, want)


def _blob(shape=(300, 320), centre=(150, 170), axes=(70, 90)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, 20, 0, 360, 1, -1)
    return mask.astype(bool)


@pytest.mark.parametrize("centre", [(150, 170), (30, 20), (300, 280)])  # inside, and cut by the frame's edges
def test_erosion_on_the_mask_box_is_the_whole_frames(centre) -> None:
    from pipeline.faces.paste import erode

    mask = _blob(centre=centre)
    for k in (5, 12, 31):
        whole = cv2.erode(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))).astype(bool)
        assert np.array_equal(erode(mask, k), whole) and whole.sum() < mask.sum()
    assert not erode(np.zeros((40, 40), bool), 7).any()


@pytest.mark.parametrize("centre", [(150, 170), (60, 80), (260, 250)])
def test_poisson_on_the_mask_box_is_the_whole_frames(centre) -> None:
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
    from pipeline.faces.classical_swap import align_faces, reinhard, shading_ratio, transfer_appearance
    from pipeline.faces.mesh_masks import oval_mask
    from pipeline.faces.crop import extract_crop
    from pipeline.faces.geometry import square_crop

    photo, ref = group_photo(), astronaut_reference()
    src = extract_crop(photo, square_crop(find_faces(photo, measured=False)[0].box, 2.0), 512, "reflect")
    drv = extract_crop(ref, square_crop(find_faces(ref, measured=False)[0].box, 2.0), 512, "reflect")
    warped, mask, ms = align_faces(src, drv, "mesh")
    src_face = oval_mask(ms, 0.08) & mask
    whole = reinhard(warped, src, mask, src_face)
    ratio = shading_ratio(whole, src, src_face, sigma=ms.interocular * 0.5)
    whole = np.clip(whole.astype(np.float32) * ratio + 0.5, 0, 255).astype(np.uint8)
    got = transfer_appearance(warped, src, mask, ms)
    assert np.array_equal(got[mask], whole[mask]) and not np.array_equal(got[mask], warped[mask])


@pytest.mark.parametrize("kw", [dict(quality=95, subsampling=0), dict(quality=70, subsampling=2),
                                dict(quality=90, progressive=True)], ids=["444", "420", "progressive"])
def test_jpeg_decoded_by_opencv_gives_pils_pixels_and_refuses_truncation(kw, tmp_path) -> None:
    import io

    from PIL import Image

    from pipeline.rejection import Reject
    from facereplace.photo_io import jpeg_complete, read_photo

    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to show
    buf = io.BytesIO()
    Image.fromarray(group_photo()).save(buf, "JPEG", exif=exif, **kw)
    data = buf.getvalue()
    path = tmp_path / "a.jpg"
    path.write_bytes(data + b"trailing bytes after the end marker")
    with Image.open(io.BytesIO(data)) as im:
        want = np.asarray(im.convert("RGB"))
    got = read_photo(path)
    assert np.array_equal(got.rgb, np.ascontiguousarray(np.swapaxes(want, 0, 1)[:, ::-1]))  # PIL's, shown upright
    assert jpeg_complete(data) and not any(jpeg_complete(data[:n]) for n in (len(data) // 2, len(data) - 1))
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(Reject, match="truncated"):
        read_photo(path)


def test_piq_replace_checks_the_output_suffix_from_the_header_without_decoding(tmp_path, monkeypatch) -> None:
    """`piq replace` decodes PHOTO once (run_replace); the suffix check reads its header only."""
    import argparse

    import facereplace.photo_io as photo_io
    from facereplace.cli import replace_main
    from facereplace.photo_io import photo_format
    from tests.fixtures.photos import save_jpeg

    photo = save_jpeg(tmp_path / "a.jpg", group_photo())
    assert photo_format(photo) == "JPEG" and photo_format(tmp_path / "missing.jpg") is None
    decoded: list[str] = []
    real = photo_io.read_photo
    monkeypatch.setattr(photo_io, "read_photo", lambda path, *a: decoded.append(str(path)) or real(path, *a))
    args = argparse.Namespace(photo=str(photo), driving=str(tmp_path / "ref.jpg"), output=str(tmp_path / "out.png"), params="params.yaml")
    assert replace_main(args) == 2 and decoded == [] and not (tmp_path / "out.png").exists()


def test_classical_replace_parses_ref_only_when_its_driving_is_asked_for(monkeypatch) -> None:
    """The classical method does not read REF's training-mask cut: REF is not parsed for it,
    and `Result.driving` still gives that cut when asked (what the trained model is given)."""
    import facereplace.replace as rep
    from facereplace.methods import build_method
    from pipeline.faces.inner_face import inner_face_mask

    p = ReplaceParams(detect_rotations=(), detect_upscale=1.0)
    photo, ref = group_photo(), astronaut_reference()
    faces, ref_face = find_faces(photo, p, measured=False), find_faces(ref, p, measured=False)[0]
    parsed: list[str] = []
    real = rep.parse
    monkeypatch.setattr(rep, "parse", lambda seg, crop, what, size: parsed.append(what) or real(seg, crop, what, size))
    method = build_method("classical", p)
    assert method.reads_driving is False
    result = rep.replace_face(photo, faces, 0, ref, ref_face, method, rep.ReplaceConfig(p))
    assert parsed == ["PHOTO face 0"]
    ref_crop = rep.extract_crop(ref, ref_face.crop(IngestParams()), IngestParams().out_size, IngestParams().pad_mode)
    want = ref_crop * inner_face_mask(real(rep.SegmentParams(), ref_crop, "REF", p.parse_px), p.driving_erosion_px)[..., None]
    assert np.array_equal(result.driving, want) and parsed == ["PHOTO face 0", "REF face 0"]


def test_rim_colour_match_on_the_mask_box_is_the_whole_arrays_under_the_mask() -> None:
    from pipeline.faces.paste import _smoothstep, inside_distance, low_pass, mask_window, rim_colour_match, rim_sigma

    rng = np.random.default_rng(1)
    image = cv2.GaussianBlur(rng.integers(0, 255, (300, 320, 3), dtype=np.uint8), (0, 0), 3)
    new = np.clip(image.astype(int) + 30, 0, 255).astype(np.uint8)
    mask = _blob(axes=(60, 80))
    dist = inside_distance(mask)  # the whole array's formula, as it was
    ring = mask & (dist <= 16)
    diff = (image.astype(np.float32) - new.astype(np.float32)) * ring[..., None]
    w = low_pass(ring.astype(np.float32), rim_sigma(16))
    trust = np.clip(w / 0.2, 0, 1)[..., None]
    shift = trust * (low_pass(diff, rim_sigma(16)) / np.maximum(w, 1e-3)[..., None]) + (1 - trust) * diff[ring].mean(0)
    whole = np.clip(new.astype(np.float32) + shift * (1.0 - _smoothstep(dist, 64)[..., None] * 0.5), 0, 255).astype(np.uint8)
    got = rim_colour_match(image, new, mask, 16)
    assert np.array_equal(got[mask], whole[mask]) and not np.array_equal(got[mask], new[mask])
    beyond = np.ones(mask.shape, bool)
    beyond[mask_window(mask, 0)] = False
    assert beyond.any() and np.array_equal(got[beyond], new[beyond])  # beyond the mask's box: `new` as it came
