"""Replacing one face of a photo (paper section 1, figure 9: composite group photo editing).

1. the face to replace is cut exactly as training cut its faces: ingest's square crop (box x
   `ingest.box_scale` around its midpoint) at `ingest.out_size` (1024 px), padded as ingest pads;
2. REF's face is cut the same way, parsed, and its inner face kept with training's mask
   (pipeline/faces/inner_face.py: no augmentation at replace time), for a method that reads
   it (`reads_driving`: the trained model; the classical method aligns REF's whole crop);
3. the method (classical or the trained model) makes the new face in the source crop's frame;
4. it is pasted back at full resolution through the inverse of the crop's affine, under the
   source's face-parsing mask (inner face) minus what stays in front (glasses, hats, hair,
   hands), eroded, colour-matched at its rim and feathered inwards (pipeline/faces/paste.py).
   Pixels where that alpha is 0 are bit-identical to the input.
"""
from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Callable

import cv2
import numpy as np

from facereplace.methods.base import FaceMethod
from facereplace.occluders import hand_mask, label_occluders
from facereplace.regions import region_mask
from pipeline.config.ingest import IngestParams
from pipeline.config.replace import ReplaceParams
from pipeline.config.segment import SegmentParams
from pipeline.faces.crop import extract_crop, resize_square
from pipeline.faces.detect import Face
from pipeline.faces.inner_face import inner_face_mask
from pipeline.faces.paste import paste_back
from pipeline.labels import INNER_FACE, LABEL_IDS
from pipeline.rejection import Reject


@dataclasses.dataclass(frozen=True)
class ReplaceConfig:
    """The params sections replacing reads: its own, ingest's crop and segment's parser."""

    replace: ReplaceParams = ReplaceParams()
    ingest: IngestParams = IngestParams()
    segment: SegmentParams = SegmentParams()

    @classmethod
    def from_params(cls, params) -> "ReplaceConfig":
        return cls(params.replace, params.ingest, params.segment)


@dataclasses.dataclass
class Result:
    """The photo with one face replaced."""

    image: np.ndarray                  # (H, W, 3) uint8: the input outside `alpha > 0`, bit for bit
    alpha: np.ndarray                  # (H, W) float32 paste weight
    face: Face                         # the face replaced
    crop_box: tuple[int, int, int, int]  # ingest's square crop of it (may leave the frame)
    method: str
    timings: dict[str, float]          # seconds: crop, parse, model, paste
    source_crop: np.ndarray            # what the method saw (crop of the photo) ...
    driving_of: Callable[[], np.ndarray]  # ... and REF's inner face (cut once, on first use: `driving`)
    new_crop: np.ndarray               # what it made

    @property
    def driving(self) -> np.ndarray:
        """REF's inner face cut with the training mask: what a model that reads it was given
        (computed then), else cut when first asked for (the classical method does not read it);
        `driving_of` keeps it once cut."""
        return self.driving_of()

    @property
    def changed(self) -> np.ndarray:
        return self.alpha > 0


@functools.lru_cache(maxsize=2)
def face_parser(segment: SegmentParams):
    """The face parser of `segment.backend` (the dataset's), set up once per process."""
    from pipeline.backends.parsers import build_parser

    parser = build_parser(segment)
    parser.setup()
    return parser


def parse(segment: SegmentParams, crop: np.ndarray, what: str, size: int) -> np.ndarray:
    """Label map of a face crop, or `Reject` naming `what` when the parser finds no face.
    The parser sees the crop at `size` px (`replace.parse_px`) and its labels are brought back
    to the crop's side (nearest): the paste mask's edge is then within a pixel of a
    full-size parse, far inside what its erosion and feather (`mask_erode_px`, `feather_px`)
    smooth over, for a quarter of the parser's work at 1024 px."""
    side = crop.shape[0]
    got = face_parser(segment).parse([resize_square(crop, min(size, side))])[0]
    if isinstance(got, Reject):
        raise Reject("no_face_parse", f"{what}: the face parser ({segment.backend}) found no face in its crop ({got})")
    if got.shape[0] == side:
        return got
    return cv2.resize(got, (side, side), interpolation=cv2.INTER_NEAREST)


def check_face(face: Face, shape: tuple[int, int], cfg: ReplaceConfig, what: str) -> None:
    """A face the model's crop can hold: large enough, not cut by the photo's edge, and its crop
    not outside the photo beyond `replace.max_pad_fraction` (the tool's own framing rule: the
    part outside is padded with ingest's `pad_mode`, as training padded its crops; ingest's
    stricter `max_pad_fraction` curates a data set, it does not refuse users' portraits)."""
    if face.short_side < cfg.replace.min_face_px:
        raise Reject("face_too_small", f"{what}: face {face.index} is {face.short_side:.0f} px, below "
                                       f"replace.min_face_px {cfg.replace.min_face_px}")
    x0, y0, x1, y1 = face.box
    inside = max(0.0, min(x1, shape[1]) - max(x0, 0.0)) * max(0.0, min(y1, shape[0]) - max(y0, 0.0))
    cut = 1.0 - inside / max((x1 - x0) * (y1 - y0), 1e-6)
    if cut > cfg.replace.max_face_outside:
        raise Reject("face_cut_by_edge", f"{what}: {cut:.0%} of face {face.index} lies outside the image, over "
                                         f"replace.max_face_outside {cfg.replace.max_face_outside:.0%}")
    pad = face.crop(cfg.ingest).pad_fraction(shape[1], shape[0])
    if pad > cfg.replace.max_pad_fraction:
        raise Reject("crop_out_of_frame", f"{what}: face {face.index}'s crop is {pad:.0%} outside the image, over "
                                          f"replace.max_pad_fraction {cfg.replace.max_pad_fraction:.0%} (the face is "
                                          f"too near the edge to be padded as training padded its crops)")


def paste_mask(labels: np.ndarray, source_crop: np.ndarray, valid: np.ndarray | None, p: ReplaceParams) -> np.ndarray:
    """Where the new face goes, in the crop: the source's inner face, minus occluders (parser
    labels named in `replace.occluders`, hands), within what the method defined."""
    mask = np.isin(labels, [LABEL_IDS[n] for n in INNER_FACE if n not in p.occluders])
    mask &= ~label_occluders(labels, p.occluders)
    if p.hands:
        mask &= ~hand_mask(source_crop, int(round(p.hand_dilate_px * labels.shape[0] / 1024)))
    if valid is not None:
        mask &= valid
    return mask


def replace_face(photo: np.ndarray, faces: list[Face], target_index: int, reference: np.ndarray,
                 reference_face: Face, method: FaceMethod, cfg: ReplaceConfig | None = None,
                 caption: str = "", in_place: bool = False) -> Result:
    """`photo` (RGB uint8, as shown) with `faces[target_index]` replaced by REF's face.
    `in_place`: the result is written into `photo` itself (a caller that owns it and needs
    it no more: `piq replace`), not into a copy."""
    cfg = cfg or ReplaceConfig()
    p, ing = cfg.replace, cfg.ingest
    if not 0 <= target_index < len(faces):
        raise Reject("bad_face_index", f"face {target_index} does not exist; the photo has faces 0..{len(faces) - 1}")
    face = faces[target_index]
    check_face(face, photo.shape[:2], cfg, "PHOTO")
    check_face(reference_face, reference.shape[:2], cfg, "REF")
    times: dict[str, float] = {}
    t = time.perf_counter()
    crop = face.crop(ing)
    source_crop = extract_crop(photo, crop, ing.out_size, ing.pad_mode)
    ref_crop = extract_crop(reference, reference_face.crop(ing), ing.out_size, ing.pad_mode)
    times["crop"] = time.perf_counter() - t

    t = time.perf_counter()
    src_labels = parse(cfg.segment, source_crop, f"PHOTO face {face.index}", p.parse_px)

    @functools.cache
    def driving() -> np.ndarray:  # REF parsed only for a method that reads it, or when asked for
        ref_labels = parse(cfg.segment, ref_crop, f"REF face {reference_face.index}", p.parse_px)
        return ref_crop * inner_face_mask(ref_labels, p.driving_erosion_px)[..., None]

    reads = getattr(method, "reads_driving", True)
    if reads:
        driving()
    times["parse"] = time.perf_counter() - t

    t = time.perf_counter()
    new_crop, valid = method.make_face(source_crop, ref_crop, driving() if reads else None, caption)
    times["model"] = time.perf_counter() - t

    t = time.perf_counter()
    mask = paste_mask(src_labels, source_crop, valid, p)
    part = region_mask(src_labels, p.region, f"PHOTO face {face.index}")  # None: the whole inner face
    if part is not None:
        mask &= part
    if mask.sum() < 64:
        raise Reject("no_face_mask", f"PHOTO face {face.index}: nothing of the face is left to replace "
                                     f"(occluded or not parsed)")
    image, alpha = paste_back(photo, crop, new_crop, mask, p.feather_px, p.rim_px, p.mask_erode_px,
                              out=photo if in_place else None)
    times["paste"] = time.perf_counter() - t
    return Result(image, alpha, face, crop.box, method.name, times, source_crop, driving, new_crop)
