"""The photo tool (issue 16): faces, replace, verify, file formats, provenance, bad input.

Each command runs in-process through `pipeline.commands.piq.main` (the models load once per session).
"""
from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms

from facereplace.faces import find_faces
from facereplace.methods import build_method
from facereplace.photo_io import encode_photo, read_photo, write_photo
from facereplace.replace import ReplaceConfig, replace_face
from pipeline.commands.piq import main as piq
from pipeline.config.replace import ReplaceParams
from pipeline.rejection import Reject
from tests.fixtures.photos import astronaut, astronaut_reference, group_photo, hopper, params_file, save_jpeg

FAST = dict(detect_rotations=[], detect_upscale=1.0)  # no retries where the test is not about them


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("photos")
    return {"root": root, "group": save_jpeg(root / "group.jpg", group_photo()),
            "ref": save_jpeg(root / "ref.jpg", astronaut_reference()),
            "hopper": save_jpeg(root / "hopper.jpg", hopper(400)),
            "params": params_file(root, **FAST)}


@pytest.fixture(scope="module")
def group_faces() -> list:
    return find_faces(group_photo(), ReplaceParams(**FAST))


def run(files: dict, *args: str) -> int:
    return piq(["--params", str(files["params"]), *args])


# --- faces -----------------------------------------------------------------------------------

def test_faces_numbered_left_to_right_with_measures(group_faces) -> None:
    assert len(group_faces) == 2
    (a, g) = group_faces
    assert a.index == 0 and g.index == 1 and a.box[2] < g.box[0]
    for f in group_faces:
        assert f.prob > 0.95 and f.landmarks.shape == (5, 2) and f.mesh is not None
        assert abs(f.yaw) < 25 and abs(f.roll) < 15
        assert 0.15 < f.eyes_open < 0.6 and f.sharpness > 0
    assert a.smile > g.smile  # the astronaut smiles, Grace Hopper does not


def test_faces_cli_json_and_preview(files, capsys) -> None:
    preview = files["root"] / "preview.jpg"
    assert run(files, "faces", str(files["group"]), "--json", "--preview", str(preview)) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [f["face"] for f in out["faces"]] == [0, 1] and out["size"] == [group_photo().shape[1], 600]
    shown = np.asarray(Image.open(preview))
    assert shown.shape == group_photo().shape and np.abs(shown.astype(int) - group_photo()).max() > 100  # boxes drawn


@pytest.mark.slow
def test_tilted_head_found_on_a_rotated_copy() -> None:
    a = astronaut()
    m = cv2.getRotationMatrix2D((256, 256), 70, 1.0)
    tilted = cv2.warpAffine(a, m, (512, 512), borderMode=cv2.BORDER_REFLECT)
    plain = find_faces(tilted, ReplaceParams(detect_rotations=(), detect_upscale=1.0))
    retried = find_faces(tilted, ReplaceParams(detect_upscale=1.0))  # default retries: +-30 degrees
    assert len(retried) == 1 and len(plain) == 0
    assert retried[0].roll is not None and abs(abs(retried[0].roll) - 70) < 15


def test_small_face_found_on_an_upscaled_copy() -> None:
    """Faces of ~14 px in a photo that detection sees at a third of its size (~5 px there)."""
    small = cv2.resize(group_photo(), None, fx=0.15, fy=0.15, interpolation=cv2.INTER_AREA)
    canvas = np.full((1000, 1500, 3), 190, np.uint8)
    canvas[450 : 450 + small.shape[0], 600 : 600 + small.shape[1]] = small
    p = dict(detect_rotations=(), detect_max_side=512)
    assert len(find_faces(canvas, ReplaceParams(detect_upscale=1.0, **p))) < 2
    found = find_faces(canvas, ReplaceParams(detect_upscale=3.0, **p))
    assert len(found) == 2 and all(8 < f.short_side < 25 for f in found)


def test_exif_orientation_applied(tmp_path) -> None:
    a = astronaut()
    stored = np.ascontiguousarray(np.rot90(a, 1))  # what a camera held sideways stores ...
    exif = Image.Exif()
    exif[0x0112] = 6  # ... with "rotate 90 CW to view"
    path = tmp_path / "sideways.jpg"
    Image.fromarray(stored).save(path, "JPEG", quality=95, exif=exif.tobytes())
    photo = read_photo(path)
    assert photo.rgb.shape == a.shape
    assert np.abs(photo.rgb.astype(int) - a).mean() < 4  # upright again
    assert Image.Exif().load(photo.exif) is None or Image.open(io.BytesIO(encode_photo(photo, photo.rgb))).getexif()[0x0112] == 1
    assert len(find_faces(photo.rgb, ReplaceParams(**FAST))) == 1


# --- replace ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def replaced(group_faces):
    ref = astronaut_reference()
    ref_face = find_faces(ref, ReplaceParams(**FAST))[0]
    cfg = ReplaceConfig(ReplaceParams(**FAST))
    return replace_face(group_photo(), group_faces, 0, ref, ref_face, build_method("classical", cfg.replace), cfg)


def test_pixels_outside_the_dilated_mask_are_bit_identical(replaced) -> None:
    photo = group_photo()
    changed = replaced.alpha > 0
    dilated = cv2.dilate(changed.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    assert np.array_equal(replaced.image[~dilated], photo[~dilated])
    assert np.array_equal(replaced.image[~changed], photo[~changed])
    x0, y0, x1, y1 = (int(v) for v in replaced.face.box)
    assert changed[y0:y1, x0:x1].mean() > 0.3, "the face itself was replaced"
    assert not changed[:, 540:].any(), "Grace Hopper's face untouched"
    diff = np.abs(replaced.image.astype(int) - photo)[changed]
    assert diff.mean() > 2  # something new is there


def test_seam_has_no_visible_step(replaced) -> None:
    """Across the mask's edge, the output changes as smoothly as the input does."""
    photo, out, alpha = group_photo().astype(np.float32), replaced.image.astype(np.float32), replaced.alpha
    edge = (alpha > 0) & (alpha < 0.5)
    grad = lambda im: np.abs(cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), cv2.CV_32F))  # noqa: E731
    assert grad(out)[edge].mean() < 1.6 * grad(photo)[edge].mean() + 2


def test_crop_is_ingests_and_driving_is_the_training_mask(replaced) -> None:
    from pipeline.config.ingest import IngestParams
    from pipeline.faces.crop import extract_crop

    ing = IngestParams()
    assert replaced.source_crop.shape == (ing.out_size, ing.out_size, 3)
    crop = replaced.face.crop(ing)
    assert crop.size == round(ing.box_scale * max(replaced.face.box[2] - replaced.face.box[0], replaced.face.box[3] - replaced.face.box[1]))
    assert np.array_equal(replaced.source_crop, extract_crop(group_photo(), crop, ing.out_size, ing.pad_mode))
    black = (replaced.driving == 0).all(-1)
    assert 0.5 < black.mean() < 0.95, "REF's inner face only, black elsewhere"


def test_paste_back_inverts_the_crop() -> None:
    """A crop pasted back unchanged reproduces the photo inside the mask: the inverse affine
    lands each crop pixel where it came from (a smooth photo, so resampling loses almost nothing
    and one pixel of misalignment would cost ~2.5 levels)."""
    from pipeline.faces.crop import extract_crop
    from pipeline.faces.geometry import SquareCrop
    from pipeline.faces.paste import paste_back

    photo = cv2.GaussianBlur(group_photo(), (0, 0), 4)
    for crop, size in ((SquareCrop(100, 30, 300), 1024), (SquareCrop(60, 10, 700), 512), (SquareCrop(-50, -20, 401), 1024)):
        patch = extract_crop(photo, crop, size, "reflect")
        mask = np.zeros((size, size), bool)
        mask[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
        out, alpha = paste_back(photo, crop, patch, mask, feather_px=0)
        inside = alpha > 0
        assert inside.sum() > 0.2 * crop.size**2
        assert np.abs(out[inside].astype(int) - photo[inside]).mean() < 0.6
        assert np.array_equal(out[~inside], photo[~inside])


def test_glasses_hats_and_hands_stay_in_front(monkeypatch) -> None:
    """The paste mask is the parsed inner face minus the parser's glasses / hat / hair and minus
    the hand model's hands (a hand stand-in here: no public-domain hand photo ships offline)."""
    from facereplace import replace as rp
    from pipeline.labels import LABEL_IDS

    labels = np.zeros((64, 64), np.uint8)
    labels[8:56, 8:56] = LABEL_IDS["skin"]
    labels[20:26, 12:52] = LABEL_IDS["eye_g"]
    labels[8:12, 8:56] = LABEL_IDS["hat"]
    hand = np.zeros((64, 64), bool)
    hand[40:60, 30:50] = True
    monkeypatch.setattr(rp, "hand_mask", lambda rgb, px: hand)
    mask = rp.paste_mask(labels, np.zeros((64, 64, 3), np.uint8), None, ReplaceParams())
    assert not mask[20:26, 12:52].any() and not mask[8:12].any() and not mask[hand].any()
    assert mask[30:38, 12:28].all()
    no_hands = rp.paste_mask(labels, np.zeros((64, 64, 3), np.uint8), None, ReplaceParams(hands=False))
    assert no_hands[45:55, 35:45].all()


def test_hand_model_finds_no_hand_in_a_portrait() -> None:
    from facereplace.occluders import hand_mask

    assert not hand_mask(astronaut(), 24).any()


@pytest.mark.slow
def test_replace_cli_writes_a_marked_jpeg_that_verify_reads(files, capsys) -> None:
    out = files["root"] / "out.jpg"
    assert run(files, "replace", str(files["group"]), "--driving", str(files["ref"]), "-o", str(out)) == 0
    assert "face 0 replaced" in capsys.readouterr().out  # chosen by identity, not by index
    img = Image.open(out)
    assert img.format == "JPEG" and img.size == Image.open(files["group"]).size
    assert run(files, "verify", str(out), "--json") == 0
    v = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert v["watermarked"] and v["watermark_bits"] >= 41 and v["faces"][0]["bits"] >= 41
    md = v["metadata"]
    assert md["digital_source_type"].endswith("compositeCapture")
    edit = md["edit"]
    assert edit["method"] == "classical" and edit["cross_identity"] is False
    assert edit["faces"][0]["face"] == 0 and len(edit["faces"][0]["box"]) == 4
    import hashlib

    assert edit["inputs"] == {"photo": hashlib.sha256(files["group"].read_bytes()).hexdigest(),
                              "reference": hashlib.sha256(files["ref"].read_bytes()).hexdigest()}
    # metadata stripped: the watermark alone still marks it
    stripped = files["root"] / "stripped.png"
    Image.open(out).save(stripped)
    assert run(files, "verify", str(stripped)) == 0
    assert run(files, "verify", str(files["group"])) == 1  # an unmarked image
    assert "not found" in capsys.readouterr().out


@pytest.mark.slow
def test_identity_guard_refuses_another_person_naming_both_distances(files, capsys) -> None:
    out = files["root"] / "cross.jpg"
    assert run(files, "replace", str(files["group"]), "--driving", str(files["hopper"]), "--face", "0", "-o", str(out)) == 2
    err = capsys.readouterr().err
    assert "identity_mismatch" in err and "max_identity_distance 0.080" in err
    assert "distance 0." in err and not out.exists()
    assert run(files, "replace", str(files["group"]), "--driving", str(files["hopper"]), "--face", "0", "-o", str(out),
               "--allow-cross-identity") == 0
    capsys.readouterr()
    assert run(files, "verify", str(out), "--json") == 0
    edit = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metadata"]["edit"]
    assert edit["cross_identity"] is True and edit["faces"][0]["identity_distance"] > 0.08


@pytest.mark.slow
def test_reference_with_several_faces_needs_driving_face(files, capsys) -> None:
    out = files["root"] / "two.jpg"
    ref = files["root"] / "group_other.jpg"  # another file of the same scene (the same file as PHOTO is refused)
    Image.fromarray(group_photo()).save(ref, "JPEG", quality=88)
    assert run(files, "replace", str(files["group"]), "--driving", str(ref), "-o", str(out)) == 2
    assert "several_faces" in capsys.readouterr().err and not out.exists()
    assert run(files, "replace", str(files["group"]), "--driving", str(ref), "--driving-face", "1",
               "-o", str(out)) == 0
    assert "face 1 replaced" in capsys.readouterr().out  # REF's face 1 is Grace Hopper: her face is chosen


# --- formats ---------------------------------------------------------------------------------

def _roundtrip(path: Path, rgb_edit=None) -> tuple:
    photo = read_photo(path)
    edit = photo.rgb.copy() if rgb_edit is None else rgb_edit(photo.rgb.copy())
    out = path.with_name("out" + path.suffix)
    write_photo(photo, edit, out)
    return photo, out


def test_png_16_bit_round_trip(tmp_path) -> None:
    deep = (astronaut().astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 200, (512, 512, 3))).astype(np.uint16)
    path = tmp_path / "deep.png"
    cv2.imwrite(str(path), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))

    def edit(rgb):
        rgb[10:20, 10:20] = 0
        return rgb

    _, out = _roundtrip(path, edit)
    back = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    assert back.dtype == np.uint16
    keep = np.ones((512, 512), bool)
    keep[10:20, 10:20] = False
    assert np.array_equal(back[keep], deep[keep])  # untouched pixels keep all 16 bits
    assert back[15, 15].max() < 257


def test_png_alpha_and_icc_round_trip(tmp_path) -> None:
    rgba = np.dstack([astronaut(), np.tile(np.arange(512, dtype=np.uint8)[None] // 2, (512, 1))])
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba, "RGBA").save(path, icc_profile=icc)
    photo, out = _roundtrip(path)
    back = Image.open(out)
    assert back.mode == "RGBA" and np.array_equal(np.asarray(back), rgba)
    assert back.info.get("icc_profile") == icc


def test_jpeg_icc_and_exif_kept(tmp_path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    exif = Image.Exif()
    exif[0x010F] = "PiQ test camera"  # Make
    exif[0x0112] = 1
    exif.get_ifd(0x8769)[0x829A] = (1, 250)  # ExposureTime, in the Exif sub-IFD
    path = tmp_path / "icc.jpg"
    Image.fromarray(astronaut()).save(path, "JPEG", quality=95, icc_profile=icc, exif=exif.tobytes())
    _, out = _roundtrip(path)
    back = Image.open(out)
    assert back.info.get("icc_profile") == icc and back.getexif()[0x010F] == "PiQ test camera"
    assert back.getexif().get_ifd(0x8769)[0x829A] == (1, 250)


def test_cmyk_jpeg_converted_with_a_warning(tmp_path) -> None:
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(astronaut()).convert("CMYK").save(path, "JPEG", quality=95)
    photo = read_photo(path)  # the warning is the command's one line (piq: warning: ...), not a Python warning
    assert photo.rgb.shape == (512, 512, 3) and "CMYK" in photo.warnings[0] and str(path) in photo.warnings[0]
    assert np.abs(photo.rgb.astype(int) - astronaut()).mean() < 10
    out = tmp_path / "out.jpg"
    write_photo(photo, photo.rgb, out)
    assert Image.open(out).mode == "RGB"


# --- bad input -------------------------------------------------------------------------------

def _bad(files: dict, tmp: Path, photo: np.ndarray | Path, ref: Path | None = None, *extra: str, params=None) -> str:
    if isinstance(photo, np.ndarray):
        photo = save_jpeg(tmp / "photo.jpg", photo)
    out = tmp / "never.jpg"
    args = ["--params", str(params or files["params"]), "replace", str(photo), "--driving", str(ref or files["ref"]),
            "-o", str(out), *extra]
    assert piq(args) != 0
    assert not out.exists() and not list(tmp.glob(".never.jpg*")), "no partial output"
    return out.name


@pytest.mark.parametrize("case", ["no_face", "face_too_small", "crop_out_of_frame", "unreadable_image",
                                  "truncated", "too_many_pixels", "ref_no_face", "bad_face_index"])
def test_bad_input_is_a_clear_error_and_no_output(files, tmp_path, capsys, case) -> None:
    blank = np.full((400, 600, 3), 128, np.uint8)
    expect = case
    if case == "no_face":
        _bad(files, tmp_path, blank)
    elif case == "face_too_small":
        _bad(files, tmp_path, group_photo(), None, params=params_file(tmp_path, min_face_px=200, **FAST))
    elif case == "crop_out_of_frame":
        a = astronaut()[40:, 140:]  # the face near the top-left corner: its 2x crop leaves the frame
        _bad(files, tmp_path, np.ascontiguousarray(a[:300, :300]), None,
             params=params_file(tmp_path, max_pad_fraction=0.1, **FAST))
    elif case == "unreadable_image":
        bad = tmp_path / "bad.jpg"
        bad.write_bytes(b"this is not a JPEG")
        _bad(files, tmp_path, bad)
    elif case == "truncated":
        data = files["group"].read_bytes()
        cut = tmp_path / "cut.jpg"
        cut.write_bytes(data[: len(data) // 2])
        _bad(files, tmp_path, cut)
        expect = "unreadable_image"
    elif case == "too_many_pixels":
        _bad(files, tmp_path, group_photo(), None, params=params_file(tmp_path, max_pixels=100_000, **FAST))
    elif case == "ref_no_face":
        _bad(files, tmp_path, files["group"], save_jpeg(tmp_path / "blank.jpg", blank))
        expect = "no_face"
    elif case == "bad_face_index":
        _bad(files, tmp_path, files["group"], None, "--face", "7")
    err = capsys.readouterr().err
    assert f"piq: error: {expect}" in err, err
    assert ".jpg" in err or case in ("face_too_small", "crop_out_of_frame", "bad_face_index")  # names the file / item


def test_failed_write_leaves_no_partial_file(tmp_path, monkeypatch) -> None:
    from facereplace import photo_io

    photo = read_photo(save_jpeg(tmp_path / "a.jpg", astronaut()))
    out = tmp_path / "o.jpg"

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(photo_io.os, "fsync", boom)
    with pytest.raises(OSError):
        write_photo(photo, photo.rgb, out)
    assert list(tmp_path.iterdir()) == [tmp_path / "a.jpg"]


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_gets_the_mode_a_plain_write_gets(tmp_path, umask) -> None:
    """mkstemp's temporary file is 0600; the output must be what `open(path, "wb")` makes under
    the process's umask (a photo meant to be shared, uploaded, served)."""
    import os
    import stat

    from facereplace.photo_io import current_umask, write_atomic

    before = os.umask(umask)
    try:
        write_atomic(tmp_path / "atomic.jpg", b"x")
        with open(tmp_path / "plain.jpg", "wb") as fh:
            fh.write(b"x")
        assert current_umask() == umask  # reading the umask leaves it as it was
    finally:
        os.umask(before)
    mode = stat.S_IMODE((tmp_path / "atomic.jpg").stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "plain.jpg").stat().st_mode) == 0o666 & ~umask


def test_output_must_keep_the_format(tmp_path) -> None:
    photo = read_photo(save_jpeg(tmp_path / "a.jpg", astronaut()))
    with pytest.raises(Reject, match="wrong_output_format"):
        write_photo(photo, photo.rgb, tmp_path / "a.png")


# --- the trained model's path (tiny random pipeline on the CPU) ------------------------------

@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    from train.backbones import tiny_components
    from train.export import write_pipeline_folder

    comps = tiny_components("sdxl", seed=3)
    return write_pipeline_folder(comps, comps.unet, "spatial", 32, tmp_path_factory.mktemp("model") / "piq")


@pytest.mark.slow
def test_piq_method_sees_trainings_preprocessing_and_is_recorded(files, tiny_model, group_faces, capsys) -> None:
    import torch

    from pipeline.config.train import SampleParams
    from train.data import to_tensor

    p = ReplaceParams(model_dir=str(tiny_model), num_inference_steps=2, **FAST)
    method = build_method("piq", p, SampleParams(compile="none"), device="cpu")
    assert len(method.model_hash) == 64
    seen = {}
    pipe = method.pipe
    preprocess = pipe.preprocess

    def spy(images):  # records what the model is given: the pipeline's own conversion of the crops
        seen["driving" if "source" in seen else "source"] = out = preprocess(images)
        return out

    pipe.preprocess = spy
    ref = astronaut_reference()
    ref_face = find_faces(ref, p)[0]
    result = replace_face(group_photo(), group_faces, 0, ref, ref_face, method, ReplaceConfig(p))
    assert torch.equal(seen["source"][0], to_tensor(result.source_crop, 32))
    assert torch.equal(seen["driving"][0], to_tensor(result.driving, 32))
    assert result.new_crop.shape == result.source_crop.shape and result.method == "piq"
    changed = result.alpha > 0
    assert changed.any() and np.array_equal(result.image[~changed], group_photo()[~changed])

    params = params_file(files["root"] / "..", model_dir=str(tiny_model), num_inference_steps=2, **FAST)
    out = files["root"] / "piq.jpg"
    assert piq(["--params", str(params), "replace", str(files["group"]), "--driving", str(files["ref"]), "-o", str(out),
                "--method", "piq"]) == 0
    capsys.readouterr()
    assert piq(["--params", str(params), "verify", str(out), "--json"]) == 0
    edit = json.loads(capsys.readouterr().out.strip().splitlines()[-1])["metadata"]["edit"]
    assert edit["method"] == "piq" and edit["model_hash"] == method.model_hash


def test_piq_method_without_a_model_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(Reject, match="no_model.*--method classical"):
        build_method("piq", ReplaceParams(model_dir=str(tmp_path / "none")))


def test_watermark_round_trip_and_its_place() -> None:
    from facereplace.provenance import MIN_MATCH, decode_watermark, embed_watermark, mark_region

    photo = group_photo()
    marked = embed_watermark(photo, 512)
    x0, y0, x1, y1 = mark_region(photo.shape[:2], 512)
    outside = np.ones(photo.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert np.array_equal(marked[outside], photo[outside])  # only the central square carries it
    psnr = 10 * np.log10(255**2 / np.mean((marked[y0:y1, x0:x1].astype(float) - photo[y0:y1, x0:x1]) ** 2))
    assert psnr > 35
    assert decode_watermark(marked, 512) == 48 and decode_watermark(photo, 512) < MIN_MATCH
    with pytest.raises(Reject, match="too_small_to_mark"):
        embed_watermark(photo[:200, :200], 512)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_inputs_own_xmp_is_kept_beside_the_provenance(tmp_path, suffix) -> None:
    from facereplace.provenance import EditRecord, build_xmp, read_xmp

    own = ('<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?><x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF '
           'xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"><rdf:Description rdf:about="" '
           'xmlns:xmp="http://ns.adobe.com/xap/1.0/" xmp:Rating="4"/></rdf:RDF></x:xmpmeta><?xpacket end="w"?>')
    path = tmp_path / f"own{suffix}"
    if suffix == ".jpg":
        Image.fromarray(astronaut()).save(path, "JPEG", quality=95, xmp=own.encode())
    else:
        from PIL import PngImagePlugin

        info = PngImagePlugin.PngInfo()
        info.add_itxt("XML:com.adobe.xmp", own)
        Image.fromarray(astronaut()).save(path, pnginfo=info)
    photo = read_photo(path)
    assert photo.xmp and b'xmp:Rating="4"' in photo.xmp
    out = tmp_path / f"out{suffix}"
    write_photo(photo, photo.rgb, out, xmp=build_xmp(EditRecord("classical", {"photo": photo.sha256}, []), photo.xmp))
    data = out.read_bytes()
    assert b'xmp:Rating="4"' in data
    got = read_xmp(data)
    assert got["digital_source_type"].endswith("compositeCapture") and got["edit"]["method"] == "classical"
