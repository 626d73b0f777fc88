"""Every image a camera, phone or editor writes (issue 24, item 2 and the bad-input list): read as
shown, or refused with one line naming the file and what is wrong, exit 2, no traceback, no
Python object's repr, nothing written. Variants are made from the real-photo corpus
(tests/fixtures/corpus.py); the commands run as a user runs them, each in a fresh process.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from facereplace.photo_io import read_photo, write_photo
from tests.fixtures.corpus import (BAD_VARIANTS, CORPUS, SHOWN_VARIANTS, corpus_rgb, run_piq, shown, tiny_and_thin,
                                   write_variant)

PORTRAIT = CORPUS / "obama_portrait.jpg"
REF = CORPUS / "obama_lectern.jpg"


@pytest.fixture(scope="module")
def small_portrait() -> np.ndarray:
    """The corpus portrait at half size (the variants' pixels: quick to write and read)."""
    rgb = corpus_rgb("obama_portrait.jpg")
    return cv2.resize(rgb, (rgb.shape[1] // 2, rgb.shape[0] // 2), interpolation=cv2.INTER_AREA)


def one_line_refusal(run, code: str, name: str) -> None:
    """A refusal as the tool must give it: exit 2, one stderr line naming the code and the file."""
    assert run.rc == 2, (run.rc, run.err)
    assert len(run.err_lines) == 1, run.err
    line = run.err_lines[0]
    assert line.startswith(f"piq: error: {code}: "), line
    assert name in line, line
    assert "Traceback" not in run.err and " object at 0x" not in line, line


@pytest.mark.parametrize("kind", SHOWN_VARIANTS)
def test_every_variant_is_read_as_shown(small_portrait, tmp_path, kind) -> None:
    path = write_variant(small_portrait, kind, tmp_path)
    photo = read_photo(path)
    want = shown(small_portrait, kind)
    assert photo.rgb.shape == want.shape and photo.rgb.dtype == np.uint8
    assert photo.rgb.flags.writeable  # the face is pasted into these pixels (grey and CMYK files were read-only)
    tol = 4.0 if kind in ("png_palette", "cmyk", "ycck") else 2.5  # JPEG / palette / CMYK round trips
    assert np.abs(photo.rgb.astype(int) - want.astype(int)).mean() < tol, kind
    assert photo.format == ("PNG" if path.suffix == ".png" else "JPEG")  # an MPO is a JPEG (its first picture)
    assert (photo.deep is not None) == kind.startswith("png16")
    assert photo.gray == (kind in ("grayscale", "png16_gray", "png_gray", "png_gray_alpha"))
    if kind in ("cmyk", "ycck"):
        assert "CMYK" in photo.warnings[0] and str(path) in photo.warnings[0]


@pytest.mark.parametrize("kind", ["grayscale", "png_gray", "png16_gray"])
def test_black_and_white_photos_are_written_back_black_and_white(small_portrait, tmp_path, kind) -> None:
    photo = read_photo(write_variant(small_portrait, kind, tmp_path))
    out = tmp_path / f"out{'.png' if kind.startswith('png') else '.jpg'}"
    write_photo(photo, photo.rgb, out)
    assert Image.open(out).mode in ("L", "I;16", "I")


@pytest.mark.parametrize("kind", sorted(BAD_VARIANTS))
def test_bad_files_are_one_line_refusals_naming_the_file(small_portrait, tmp_path, kind) -> None:
    path = write_variant(small_portrait, kind, tmp_path)
    one_line_refusal(run_piq("faces", path), BAD_VARIANTS[kind], path.name)


def test_missing_file_and_folder_are_one_line_refusals(tmp_path) -> None:
    one_line_refusal(run_piq("faces", tmp_path / "nowhere.jpg"), "unreadable_image", "nowhere.jpg")
    one_line_refusal(run_piq("faces", tmp_path), "unreadable_image", tmp_path.name)


def test_tiny_and_thin_images_hold_no_face_and_are_no_crash(tmp_path) -> None:
    """1x1, 16x16, 300x1, 1280x18...: `piq faces` finds no face (MTCNN's empty pyramid and
    OpenCV's zero-size resize crashed); `piq replace` refuses them as such, before REF's work."""
    for name, path in tiny_and_thin(tmp_path).items():
        got = run_piq("faces", path)
        assert got.rc == 0 and "0 face(s)" in got.out and not got.err_lines, (name, got.err)
    out = tmp_path / "never.png"
    for path in (tiny_and_thin(tmp_path)["1x1"], tiny_and_thin(tmp_path)["300x1"]):
        got = run_piq("replace", path, "--driving", REF, "-o", out)
        one_line_refusal(got, "no_face", path.name)
        assert not out.exists()


def _no_leftovers(folder: Path, before: set[str]) -> None:
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "a partial output was left"
    assert {p.name for p in Path(tempfile.gettempdir()).iterdir()} - before <= {".pytest_cache"}, "temp files left"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["grayscale", "cmyk"])
def test_grey_and_cmyk_photos_are_replaced(small_portrait, tmp_path, kind) -> None:
    """A grey JPEG and a CMYK JPEG (read-only arrays: `assignment destination is read-only` in
    the paste) are replaced; a grey photo stays grey."""
    photo = write_variant(corpus_rgb("obama_portrait.jpg"), kind, tmp_path)
    out = tmp_path / "out.jpg"
    got = run_piq("replace", photo, "--driving", REF, "-o", out, "--method", "classical")
    assert got.rc == 0, got.err
    assert "face 0 replaced" in got.out
    assert Image.open(out).mode == ("L" if kind == "grayscale" else "RGB")
    assert [line for line in got.err_lines if not line.startswith("piq: warning:")] == []  # quiet: no library lines


def test_face_numbers_are_checked_before_any_work(tmp_path) -> None:
    got = run_piq("replace", PORTRAIT, "--driving", REF, "-o", tmp_path / "o.jpg", "--face", "-1")
    assert got.rc == 2 and "face numbers start at 0" in got.err_lines[-1]  # argparse: usage, then the one error line
    got = run_piq("replace", PORTRAIT, "--driving", REF, "-o", tmp_path / "o.jpg", "--face", "9")
    one_line_refusal(got, "bad_face_index", PORTRAIT.name)
    assert "has 1 face(s)" in got.err and not (tmp_path / "o.jpg").exists()


def test_reference_that_is_the_photo_is_refused(tmp_path) -> None:
    got = run_piq("replace", PORTRAIT, "--driving", PORTRAIT, "-o", tmp_path / "o.jpg")
    one_line_refusal(got, "same_file", PORTRAIT.name)


@pytest.mark.slow
def test_tight_portrait_is_padded_not_refused(tmp_path) -> None:
    """A tight head-and-shoulders portrait (its 2x face crop ~40 % outside the frame, over
    ingest's curation limit of 25 %) is replaced, padded as training padded its crops, under
    the tool's own `replace.max_pad_fraction`."""
    from facereplace.faces import find_faces
    from pipeline.config.ingest import IngestParams

    tight = np.ascontiguousarray(corpus_rgb("obama_portrait.jpg")[40:560, 250:740])
    face = find_faces(tight, measured=False)[0]
    assert face.crop(IngestParams()).pad_fraction(tight.shape[1], tight.shape[0]) > IngestParams().max_pad_fraction
    photo = tmp_path / "tight.jpg"
    Image.fromarray(tight).save(photo, "JPEG", quality=92)
    got = run_piq("replace", photo, "--driving", REF, "-o", tmp_path / "out.jpg", "--method", "classical")
    assert got.rc == 0, got.err
    assert (tmp_path / "out.jpg").exists() and "face 0 replaced" in got.out


def test_a_wrist_is_not_a_face_the_mesh_check_drops_it() -> None:
    """obama_portrait.jpg turned -45 degrees: MTCNN alone also boxes his wrist and watch (0.988,
    bench/photo_corpus.py's one false face); the second check (the face mesh) drops it."""
    import math

    from facereplace.faces import find_faces
    from pipeline.config.replace import ReplaceParams

    rgb = corpus_rgb("obama_portrait.jpg")
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), -45, 1.0)
    side = int(math.hypot(w, h))
    m[:, 2] += (side / 2 - w / 2, side / 2 - h / 2)
    img = cv2.warpAffine(rgb, m, (side, side), borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    alone = find_faces(img, ReplaceParams(verify_faces=False), measured=False)
    checked = find_faces(img, measured=False)
    assert len(alone) == 2 and len(checked) == 1
    assert checked[0].box[2] - checked[0].box[0] > 200  # the face kept, the 30 px wrist dropped


def _overlapping() -> np.ndarray:
    """Biden's head and shoulders over the left part of Obama's portrait: two faces whose boxes
    overlap (Obama's cut by Biden's shoulder)."""
    base = corpus_rgb("obama_portrait.jpg")
    b = corpus_rgb("biden_portrait.jpg")[0:520, 40:540]
    b = cv2.resize(b, (380, 395), interpolation=cv2.INTER_AREA)
    base[60:455, 120:500] = b
    return base


BAD_PAIRS = {
    # case: (PHOTO maker, REF maker, codes allowed on refusal; "ok" = a correct result allowed)
    "small_ref_big_photo": (lambda: cv2.resize(corpus_rgb("obama_portrait.jpg"), None, fx=3.5, fy=3.5,
                                               interpolation=cv2.INTER_CUBIC),
                            lambda: cv2.resize(corpus_rgb("obama_lectern.jpg"), None, fx=200 / 1200, fy=200 / 1200,
                                               interpolation=cv2.INTER_AREA), {"face_too_small"}),
    "face_on_the_edge": (lambda: np.ascontiguousarray(corpus_rgb("obama_portrait.jpg")[:, 480:]),
                         lambda: corpus_rgb("obama_lectern.jpg"),  # half a face: its identity cannot be confirmed
                         {"face_cut_by_edge", "no_face", "identity_mismatch", "ok"}),
    "overlapping_faces": (_overlapping, lambda: corpus_rgb("obama_lectern.jpg"),
                          {"ok", "identity_mismatch", "face_cut_by_edge", "no_face_mask"}),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(BAD_PAIRS))
def test_bad_pairs_are_a_clear_error_or_a_result_and_leave_nothing(tmp_path, case) -> None:
    """The issue's bad-input list: a 200 px REF for a 12 MP photo, a face cut by the photo's
    edge, two overlapping faces. Each: a one-line refusal (exit 2) or a written result; never a
    partial file, nothing left in the temporary folder (TMPDIR is the test's own)."""
    make_photo, make_ref, allowed = BAD_PAIRS[case]
    photo, ref, out = tmp_path / "photo.jpg", tmp_path / "ref.jpg", tmp_path / "out" / "result.jpg"
    Image.fromarray(make_photo()).save(photo, "JPEG", quality=92)
    Image.fromarray(make_ref()).save(ref, "JPEG", quality=92)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    got = run_piq("replace", photo, "--driving", ref, "-o", out, "--method", "classical", env={"TMPDIR": str(tmp)})
    if got.rc == 0:
        assert "ok" in allowed and out.exists(), got.out
    else:
        assert got.rc == 2 and len(got.err_lines) == 1, got.err
        assert got.err_lines[0].split(": ")[2] in allowed, got.err
        assert not out.exists()
    assert not [p for p in out.parent.glob(".*")] if out.parent.exists() else True
    assert list(tmp.iterdir()) == [], "temporary files left"
