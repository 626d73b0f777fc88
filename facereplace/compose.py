"""Several faces of one photo replaced, then marked once: what `piq best-take` and `piq app`
share (one face at a time through `replace_face`, the one paste-back; one watermark and one
provenance record listing every replaced face and the sha256 of every input).

Also the photo set both start from: each photo read as shown, its faces found and embedded by
the evaluation's identity encoder, so who-is-who works across photos.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np

from facereplace.faces import find_faces
from facereplace.identity_match import IdentityMatcher
from facereplace.photo_io import Photo, encode_photo
from facereplace.provenance import EditRecord, build_xmp, mark_faces
from facereplace.replace import ReplaceConfig, replace_face
from pipeline.faces.detect import Face
from pipeline.rejection import Reject


@dataclasses.dataclass
class LoadedPhoto:
    """A photo, its faces (left to right) and their identity embeddings (None: not found)."""

    name: str
    photo: Photo
    faces: list[Face]
    embeddings: list[np.ndarray | None]


def load_faces(photo: Photo, name: str, params, matcher: IdentityMatcher | None = None) -> LoadedPhoto:
    """A photo's faces, found and embedded."""
    matcher = matcher or IdentityMatcher(params.replace, params.ingest)
    faces = find_faces(photo.rgb, params.replace, params.ingest)
    return LoadedPhoto(name, photo, faces, [matcher.embed(photo.rgb, f) for f in faces])


@dataclasses.dataclass(frozen=True)
class Swap:
    """Face `target` of the edited photo gets face `source_face` of photo `source`."""

    target: int
    source: LoadedPhoto
    source_face: int
    identity_distance: float
    region: str | None = None   # the part of the face replaced (facereplace/regions.py); None: replace.region


@dataclasses.dataclass
class Composite:
    """The edited photo: the composite before marking, the marked pixels, the file's bytes and
    the record embedded in them."""

    unmarked: np.ndarray
    image: np.ndarray
    data: bytes
    record: EditRecord
    boxes: list[tuple[float, float, float, float]]
    edits: list[tuple] = dataclasses.field(default_factory=list)   # (face, paste alpha) per replaced face: the mark's areas


def ingredient(lp: LoadedPhoto, originals: dict[str, Path] | None = None):
    """A signed file's ingredient made of a photo: its name, format and bytes, read from
    `originals` (sha256 -> file) where `photo.path` is only a display name (the app's uploads)."""
    from facereplace.credentials import Ingredient

    return Ingredient(lp.name, lp.photo.format, (originals or {}).get(lp.photo.sha256, lp.photo.path).read_bytes())


def replace_many(base: LoadedPhoto, swaps: Sequence[Swap], method, params, tool: str,
                 inputs: dict[str, str] | None = None, cross_identity: bool = False,
                 identity_encoder: str | None = None, edit_time: str | None = None,
                 credentials=None, originals: dict[str, Path] | None = None) -> Composite:
    """`base` with every swap applied in turn (each paste touches only its own face's mask, so
    the faces found in `base` stay valid), watermarked and recorded once. `edit_time`: the
    record's time (default: SOURCE_DATE_EPOCH or now, `provenance.edit_time`). `credentials`
    (`facereplace.credentials.load_signer`'s): the file is signed, `base` its parent ingredient
    and each other photo a face came from a component; `originals`: where to read those photos'
    bytes (by sha256) when `photo.path` names them only (the app keeps server paths out of
    everything it shows)."""
    if not swaps:
        raise Reject("nothing_to_replace", f"{base.name}: no face to replace")
    cfg = ReplaceConfig.from_params(params)
    image, faces, boxes, edits = base.photo.rgb, [], [], []
    for s in swaps:
        ref_face = s.source.faces[s.source_face]
        here = cfg if s.region is None else dataclasses.replace(cfg, replace=dataclasses.replace(cfg.replace, region=s.region))
        result = replace_face(image, base.faces, s.target, s.source.photo.rgb, ref_face, method, here)
        image = result.image
        boxes.append(result.face.box)
        edits.append((result.face, result.alpha))
        faces.append({"face": s.target, "box": [round(v, 1) for v in result.face.box], "crop": list(result.crop_box),
                      "identity_distance": None if not np.isfinite(s.identity_distance) else round(s.identity_distance, 4),
                      "reference": s.source.name, "reference_face": s.source_face, "region": here.replace.region})
    marked = mark_faces(image, edits, params.replace, params.ingest)
    record = EditRecord(method=method.name, inputs=inputs or {base.name: base.photo.sha256}, faces=faces,
                        model_hash=method.model_hash, identity_encoder=identity_encoder, cross_identity=cross_identity,
                        tool=tool, **({"time": edit_time} if edit_time else {}))
    data = encode_photo(base.photo, marked, params.replace.jpeg_quality, build_xmp(record))
    if credentials is not None:
        from facereplace.credentials import sign

        sources = list({id(s.source): s.source for s in swaps if s.source is not base}.values())
        data = sign(data, base.photo.format, base.name, ingredient(base, originals),
                    [ingredient(s, originals) for s in sources], method.name, tool, credentials, record.as_dict())
    return Composite(image, marked, data, record, boxes, edits)
