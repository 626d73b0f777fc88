"""The third round of one-core levers of `piq replace --method classical` (docs/BENCHMARKS.md):
the Poisson blend's equations solved by a DST give OpenCV's seamlessClone within one level,
and pasting into PHOTO's own pixels gives what pasting into a copy gives."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from facereplace.faces import find_faces
from pipeline.config.ingest import IngestParams
from pipeline.config.replace import ReplaceParams
from pipeline.faces.paste import paste_back, poisson
from tests.fixtures.photos import astronaut_reference, group_photo


def _blob(shape=(300, 320), centre=(150, 170), axes=(40, 55)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    cv2.ellipse(mask, centre, axes, 20, 0, 360, 1, -1)
    return mask.astype(bool)


def _close_to_opencv(fg: np.ndarray, bg: np.ndarray, mask: np.ndarray) -> None:
    want, got = poisson(fg, bg, mask), poisson(fg, bg, mask, "dst")
    d = np.abs(got.astype(int) - want)
    assert np.array_equal(got[~mask], bg[~mask])  # outside the mask: bg, bit for bit
    assert d.max() <= 1 and d[mask].mean() < 0.15, (d.max(), d[mask].mean())
    assert not np.array_equal(got[mask], bg[mask])


@pytest.mark.parametrize("centre", [(150, 170), (45, 60), (275, 250)])  # inside, and at the frame's edges
def test_dst_poisson_is_seamlessclone_within_a_level(centre) -> None:
    rng = np.random.default_rng(0)
    bg = cv2.GaussianBlur(rng.integers(0, 255, (300, 320, 3), dtype=np.uint8), (0, 0), 3)
    fg = cv2.GaussianBlur(rng.integers(0, 255, (300, 320, 3), dtype=np.uint8), (0, 0), 2)
    _close_to_opencv(fg, bg, _blob(centre=centre))
    with pytest.raises(ValueError, match="solver"):
        poisson(fg, bg, _blob(), "fft")


def test_dst_poisson_on_the_classical_methods_faces() -> None:
    """The classical method's own inputs: REF's face aligned and colour-transferred onto the
    group photo's first face crop, blended by both solvers."""
    from pipeline.faces.classical_swap import align_faces, transfer_appearance
    from pipeline.faces.crop import extract_crop
    from pipeline.faces.geometry import square_crop

    photo, ref = group_photo(), astronaut_reference()
    src = extract_crop(photo, square_crop(find_faces(photo, measured=False)[0].box, 2.0), 512, "reflect")
    drv = extract_crop(ref, square_crop(find_faces(ref, measured=False)[0].box, 2.0), 512, "reflect")
    warped, mask, ms = align_faces(src, drv, "mesh")
    _close_to_opencv(transfer_appearance(warped, src, mask, ms), src, mask)


def test_paste_back_into_the_photo_is_the_copys() -> None:
    p, ing = ReplaceParams(), IngestParams()
    photo = group_photo()
    face = find_faces(photo, p, measured=False)[0]
    crop = face.crop(ing)
    new = np.full((ing.out_size, ing.out_size, 3), 90, np.uint8)
    mask = _blob((ing.out_size, ing.out_size), (ing.out_size // 2, ing.out_size // 2), (200, 260))
    before = photo.copy()
    want, alpha = paste_back(photo, crop, new, mask, p.feather_px, p.rim_px, p.mask_erode_px)
    assert np.array_equal(photo, before)  # default: a copy
    got, alpha2 = paste_back(photo, crop, new, mask, p.feather_px, p.rim_px, p.mask_erode_px, out=photo)
    assert got is photo and np.array_equal(got, want) and np.array_equal(alpha, alpha2)
    assert np.array_equal(got[alpha == 0], before[alpha == 0]) and not np.array_equal(got, before)


def test_replace_face_in_place_writes_photo_and_gives_the_same_result() -> None:
    import facereplace.replace as rep
    from facereplace.methods import build_method

    p = ReplaceParams(detect_rotations=(), detect_upscale=1.0)
    photo, ref = group_photo(), astronaut_reference()
    faces, ref_face = find_faces(photo, p, measured=False), find_faces(ref, p, measured=False)[0]
    method = build_method("classical", p)
    copy = rep.replace_face(photo, faces, 0, ref, ref_face, method, rep.ReplaceConfig(p))
    assert not np.array_equal(copy.image, photo)
    own = rep.replace_face(photo, faces, 0, ref, ref_face, method, rep.ReplaceConfig(p), in_place=True)
    assert own.image is photo and np.array_equal(own.image, copy.image) and np.array_equal(own.alpha, copy.alpha)


def test_piq_replace_keeps_a_16_bit_pngs_depth_outside_the_face(tmp_path) -> None:
    """A 16-bit PNG is not pasted into in place (its writer adds result - photo.rgb to the full
    depth): the face changes, and every pixel whose 8-bit value the edit kept keeps all 16 bits."""
    from pipeline.commands.piq import main as piq
    from tests.fixtures.photos import params_file, save_jpeg

    rng = np.random.default_rng(0)
    deep = np.clip(group_photo().astype(np.int64) * 257 + rng.integers(0, 200, group_photo().shape), 0, 65535).astype(np.uint16)
    photo = tmp_path / "deep.png"
    cv2.imwrite(str(photo), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    ref, out = save_jpeg(tmp_path / "ref.jpg", astronaut_reference()), tmp_path / "out.png"
    params = params_file(tmp_path, detect_rotations=[], detect_upscale=1.0)
    assert piq(["--params", str(params), "replace", str(photo), "--driving", str(ref), "-o", str(out)]) == 0
    back = cv2.cvtColor(cv2.imread(str(out), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    face = find_faces(group_photo(), ReplaceParams(), measured=False)[0]
    x0, y0, x1, y1 = (int(v) for v in face.box)
    assert back.dtype == np.uint16 and not np.array_equal(back[y0:y1, x0:x1], deep[y0:y1, x0:x1])
    rgb8, back8 = (deep.astype(int) + 128) // 257, (back.astype(int) + 128) // 257  # the 8-bit pixels edited
    assert np.abs(back8 - rgb8)[y0:y1, x0:x1].mean() > 3  # the face is replaced (in place, delta would be 0)
    same = back8 == rgb8  # neither pasted nor watermarked: all 16 bits kept
    assert same.mean() > 0.3 and np.array_equal(back[same], deep[same])
