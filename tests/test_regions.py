"""Partial replacement (issue 26, item 1): `--region eyes|mouth|upper|lower` limits the paste
to that part of the face; outside it the photo stays bit-identical. A real photo of the corpus
(tests/corpus/, public domain) for the paste; label maps drawn here for the masks' rules."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipeline.labels import LABEL_IDS
from pipeline.rejection import Reject

CORPUS = Path(__file__).parent / "corpus"


def _face_labels(glasses: bool = False) -> np.ndarray:
    """A 256 px label map: skin, two eyes and brows, a nose, lips (optionally sunglasses)."""
    lab = np.zeros((256, 256), np.uint8)
    lab[40:230, 50:206] = LABEL_IDS["skin"]
    lab[80:88, 70:110], lab[80:88, 146:186] = LABEL_IDS["l_brow"], LABEL_IDS["r_brow"]
    lab[95:110, 75:105], lab[95:110, 151:181] = LABEL_IDS["l_eye"], LABEL_IDS["r_eye"]
    lab[110:150, 115:141] = LABEL_IDS["nose"]
    lab[170:180, 100:156], lab[180:190, 100:156] = LABEL_IDS["u_lip"], LABEL_IDS["l_lip"]
    if glasses:
        lab[85:120, 65:191] = LABEL_IDS["eye_g"]
    return lab


def test_region_masks_follow_the_labels() -> None:
    from facereplace.regions import region_mask

    lab = _face_labels()
    assert region_mask(lab, "face") is None
    eyes, mouth = region_mask(lab, "eyes"), region_mask(lab, "mouth")
    assert eyes[100, 90] and eyes[100, 165] and not eyes[185, 128] and not eyes[215, 128]
    assert mouth[185, 128] and not mouth[100, 90]
    upper, lower = region_mask(lab, "upper"), region_mask(lab, "lower")
    assert (upper ^ lower).all() and upper[100, 90] and lower[185, 128] and upper[115, 128]
    with pytest.raises(Reject, match="region_not_found.*glasses cover them"):
        region_mask(_face_labels(glasses=True), "eyes")
    no_mouth = _face_labels()
    no_mouth[170:190] = LABEL_IDS["skin"]
    with pytest.raises(Reject, match="needs the mouth"):
        region_mask(no_mouth, "lower")


@pytest.mark.slow
def test_eyes_only_replacement_leaves_mouth_and_skin_identical() -> None:
    from facereplace.faces import find_faces
    from facereplace.methods import build_method
    from facereplace.replace import ReplaceConfig, parse, replace_face
    from pipeline.config.replace import ReplaceParams
    from pipeline.faces.crop import extract_crop

    photo = np.asarray(Image.open(CORPUS / "obama_portrait.jpg").convert("RGB"))
    ref = np.ascontiguousarray(photo[:, ::-1])   # the same person, head turned the other way
    p = ReplaceParams(detect_rotations=(), detect_upscale=1.0)
    faces, ref_face = find_faces(photo, p, measured=False), find_faces(ref, p, measured=False)[0]
    cfg = ReplaceConfig(dataclasses.replace(p, region="eyes"))
    result = replace_face(photo.copy(), faces, 0, ref, ref_face, build_method("classical", p), cfg)
    whole = replace_face(photo.copy(), faces, 0, ref, ref_face, build_method("classical", p), ReplaceConfig(p))
    # the parser's mouth, lips and the skin below the nose, in the photo's pixels
    crop = faces[0].crop(cfg.ingest)
    labels = parse(cfg.segment, extract_crop(photo, crop, cfg.ingest.out_size, cfg.ingest.pad_mode), "PHOTO", p.parse_px)
    lower = np.zeros(labels.shape, bool)
    ys = np.nonzero(np.isin(labels, [LABEL_IDS["nose"]]).any(1))[0]
    lower[ys.max() + 5:] = True
    keep = np.isin(labels, [LABEL_IDS[n] for n in ("mouth", "u_lip", "l_lip")]) | (lower & (labels == LABEL_IDS["skin"]))
    scale = crop.size / labels.shape[0]
    yy, xx = np.nonzero(keep)
    px = np.clip(np.round(xx * scale + crop.x0).astype(int), 0, photo.shape[1] - 1)
    py = np.clip(np.round(yy * scale + crop.y0).astype(int), 0, photo.shape[0] - 1)
    assert len(px) > 2000
    assert (result.image[py, px] == photo[py, px]).all() and not result.alpha[py, px].any()
    assert (whole.image[py, px] != photo[py, px]).any()   # the whole-face paste does change them
    eyes = np.isin(labels, [LABEL_IDS["l_eye"], LABEL_IDS["r_eye"]])
    ey, ex = np.nonzero(eyes)
    assert result.alpha[np.round(ey * scale + crop.y0).astype(int), np.round(ex * scale + crop.x0).astype(int)].mean() > 0.9
    assert 0 < result.changed.sum() < 0.5 * whole.changed.sum()
