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
- Faces are embedded at the detector's boxes and points (no face mesh); the face mesh runs
  only on the crops of the face replaced and of REF's face (parser, alignment).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from facereplace.errors import PhotoError
from facereplace.faces import Face, find_faces
from facereplace.identity import Choice, IdentityMatcher, choose_face
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


def find_target(photo: np.ndarray, reference: np.ndarray, p: ReplaceParams, ing: IngestParams, face: int | None,
                driving_face: int | None, allow_cross: bool, names: tuple[str, str],
                times: dict[str, float]) -> Target:
    """The face of `photo` to replace (`face`, or the one nearest REF's identity) and REF's face
    (`driving_face`, or its only one); `names` (PHOTO's and REF's paths) go into the errors.
    Adds the seconds of detection and identity to `times`."""
    t = time.perf_counter()
    faces = _photo_faces(photo, p, ing, face is not None, "never")
    if not faces and face is None:  # a tilted head may be the only face
        faces = _photo_faces(photo, p, ing, False, "always")
    if not faces:
        raise PhotoError("no_face", f"PHOTO {names[0]}: no face found")
    # REF usually shows one person: its retries (rotated copies) only when nothing is found
    ref_faces = (find_faces(reference, p, ing, measured=False) if driving_face is not None else
                 find_faces(reference, p, ing, retry="if_none", replaceable_only=True, measured=False))
    ref_face = reference_face(ref_faces, driving_face, names[1])
    times["detect"] = times.get("detect", 0.0) + time.perf_counter() - t

    t = time.perf_counter()
    matcher = IdentityMatcher(p, ing)
    ref_emb = matcher.embed(reference, ref_face)
    if ref_emb is None and not allow_cross:
        raise PhotoError("identity_unknown", f"REF {names[1]}: the identity encoder ({matcher.name}) finds no face in "
                                             f"REF's face crop")

    def distances(found: list[Face]) -> list[float]:
        if ref_emb is None:
            return [float("inf")] * len(found)
        if face is not None:  # only the face asked for needs an embedding
            return [matcher.distances(photo, [f], ref_emb)[0] if f.index == face else float("inf") for f in found]
        return matcher.distances(photo, found, ref_emb)

    dists = distances(faces)
    times["identity"] = times.get("identity", 0.0) + time.perf_counter() - t
    if face is None and p.detect_rotations and min(dists) > p.max_identity_distance:
        t = time.perf_counter()  # REF's person is not among the upright faces: look for tilted heads
        faces = _photo_faces(photo, p, ing, False, "always")
        times["detect"] += time.perf_counter() - t
        t = time.perf_counter()
        dists = distances(faces)
        times["identity"] += time.perf_counter() - t
    choice = choose_face(dists, face, p.max_identity_distance, allow_cross, matcher.name)
    return Target(faces, choice, ref_face, matcher.name)
