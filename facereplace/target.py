"""Which face of PHOTO `piq replace` takes, and REF's face, found with no more detection and
identity work than the choice needs.

- `--face N` / `--driving-face N` number faces as `piq faces` does, so that image is searched
  as `piq faces` searches it (rotated and upscaled copies); only face N is then embedded.
- Otherwise only replaceable faces matter (a face under `replace.min_face_px` is refused
  anyway): one MTCNN pass on a copy where such a face is MTCNN's smallest
  (`faces.detection_factor`), no upscaled copy. The rotated retries (tilted heads) run only
  when that pass finds no face within `replace.max_identity_distance` of REF's identity: the
  face REF can replace is then possibly one of those. Numbers in the message are then those
  of the faces this run found; the provenance records the replaced face's box.
- Faces are embedded at the detector's boxes and points (no face mesh), and only those it can
  replace (`replace.check_face`) unless none of them is REF's person; the face mesh runs only
  on the crops of the face replaced and of REF's face (parser, alignment).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from facereplace.errors import PhotoError
from facereplace.faces import Face, find_faces
from facereplace.identity import Choice, IdentityMatcher, choose_face
from facereplace.replace import ReplaceConfig, check_face
from pipeline.config.ingest import IngestParams
from pipeline.config.replace import ReplaceParams


@dataclasses.dataclass(frozen=True)
class Target:
    """The faces found, the one chosen, REF's face, and the identity encoder's name."""

    faces: list[Face]
    choice: Choice
    reference_face: Face
    encoder: str


def reference_face(faces: list[Face], index: int | None, path: str) -> Face:
    """REF's face: the only one, or `--driving-face N`."""
    if not faces:
        raise PhotoError("no_face", f"REF {path}: no face found")
    if index is None:
        if len(faces) > 1:
            raise PhotoError("several_faces", f"REF {path} shows {len(faces)} faces: choose one with --driving-face 0..{len(faces) - 1}")
        return faces[0]
    if not 0 <= index < len(faces):
        raise PhotoError("bad_face_index", f"--driving-face {index}: REF {path} has faces 0..{len(faces) - 1}")
    return faces[index]


def _photo_faces(rgb: np.ndarray, p: ReplaceParams, ing: IngestParams, numbered: bool, retry: str) -> list[Face]:
    if numbered:  # `piq faces`' numbering: its search, unmeasured
        return find_faces(rgb, p, ing, measured=False)
    return find_faces(rgb, p, ing, retry=retry, replaceable_only=True, measured=False)


def replaceable(face: Face, shape: tuple[int, int], p: ReplaceParams, ing: IngestParams) -> bool:
    """Whether `replace_face` would take this face (large enough, its crop inside the frame
    as far as padding allows)."""
    try:
        check_face(face, shape, ReplaceConfig(p, ing), "PHOTO")
    except PhotoError:
        return False
    return True


def find_target(photo: np.ndarray, reference: np.ndarray, p: ReplaceParams, ing: IngestParams, face: int | None,
                driving_face: int | None, allow_cross: bool, names: tuple[str, str],
                times: dict[str, float]) -> Target:
    """The face of `photo` to replace (`face`, or the one nearest REF's identity) and REF's face
    (`driving_face`, or its only one); `names` (PHOTO's and REF's paths) go into the errors.
    Adds the seconds of detection and identity to `times`. Where the replaceable-only search
    finds nothing, the full search runs, so that a face too small or cut by the border is
    refused as such rather than "not found"."""
    t = time.perf_counter()
    faces = _photo_faces(photo, p, ing, face is not None, "never")
    if not faces and face is None:
        faces = _photo_faces(photo, p, ing, True, "always")
    if not faces:
        raise PhotoError("no_face", f"PHOTO {names[0]}: no face found")
    ref_faces = [] if driving_face is not None else _photo_faces(reference, p, ing, False, "never")
    ref_face = reference_face(ref_faces or _photo_faces(reference, p, ing, True, "always"), driving_face, names[1])
    times["detect"] = times.get("detect", 0.0) + time.perf_counter() - t

    t = time.perf_counter()
    matcher = IdentityMatcher(p, ing)
    ref_emb = matcher.embed(reference, ref_face)
    if ref_emb is None and not allow_cross:
        raise PhotoError("identity_unknown", f"REF {names[1]}: the identity encoder ({matcher.name}) finds no face in "
                                             f"REF's face crop")

    def distances(found: list[Face], skip_unreplaceable: bool) -> list[float]:
        """REF's distance to each face; inf where not embedded: faces other than `face` when it
        is given, and (`skip_unreplaceable`) faces `replace_face` would refuse."""
        if ref_emb is None:
            return [float("inf")] * len(found)
        wanted = [(f.index == face) if face is not None else
                  (not skip_unreplaceable or replaceable(f, photo.shape[:2], p, ing)) for f in found]
        if not any(wanted):  # nothing replaceable: compare them all, the refusal then names why
            wanted = [True] * len(found)
        return [matcher.distances(photo, [f], ref_emb)[0] if w else float("inf") for f, w in zip(found, wanted)]

    dists = distances(faces, True)
    times["identity"] = times.get("identity", 0.0) + time.perf_counter() - t
    # REF's person is not among the replaceable upright faces: look for tilted heads (rotated
    # copies), then for every face `piq faces` lists (smaller ones too), comparing all of them,
    # so that a refusal says why (too small, out of frame, another person)
    searches = ([lambda: _photo_faces(photo, p, ing, False, "always")] if p.detect_rotations else [])
    searches.append(lambda: _photo_faces(photo, p, ing, True, "always"))
    for search in searches if face is None and ref_emb is not None else []:
        if min(dists) <= p.max_identity_distance:
            break
        t = time.perf_counter()
        faces = search() or faces
        times["detect"] += time.perf_counter() - t
        t = time.perf_counter()
        dists = distances(faces, False)
        times["identity"] += time.perf_counter() - t
    choice = choose_face(dists, face, p.max_identity_distance, allow_cross, matcher.name)
    return Target(faces, choice, ref_face, matcher.name)
