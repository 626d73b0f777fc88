"""Which face of PHOTO `piq replace` takes, and REF's face, numbered as `piq faces` numbers them.

One numbering (issue 24): PHOTO's and REF's faces are found by `piq faces`' own search
(`find_faces`, the listing), so the number the command prints, accepts (`--face`,
`--driving-face`) and records in the provenance is the one `piq faces` lists; a cheaper search
that finds a subset (only replaceable faces, only BlazeFace's proposals) would number the
same person differently whenever the photo holds a face it skips. What keeps it cheap:

- `--face N` is checked against the faces found before REF is searched or anything embedded;
- faces are embedded at the detector's boxes and points (no face mesh), and only those
  `replace_face` can take (`replace.check_face`) unless none of them is REF's person (then all
  are, so that the refusal says why: too small, out of frame, another person); with `--face N`
  only face N is;
- the face mesh runs only on the crops of the face replaced and of REF's face (parser,
  alignment).
"""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from facereplace.faces import find_faces
from facereplace.identity_match import Choice, IdentityMatcher, choose_face
from facereplace.replace import ReplaceConfig, check_face
from pipeline.config.ingest import IngestParams
from pipeline.config.replace import ReplaceParams
from pipeline.faces.detect import Face
from pipeline.rejection import Reject


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
        raise Reject("no_face", f"REF {path}: no face found")
    if index is None:
        if len(faces) > 1:
            raise Reject("several_faces", f"REF {path} shows {len(faces)} faces: choose one with --driving-face 0..{len(faces) - 1}")
        return faces[0]
    if not 0 <= index < len(faces):
        raise Reject("bad_face_index", f"--driving-face {index}: REF {path} has faces 0..{len(faces) - 1}")
    return faces[index]


SEARCHES: dict[str, dict] = {  # find_faces' arguments of each search (the listing numbers every command's faces)
    "proposed": dict(proposed=True),                         # where BlazeFace proposes faces (detect_proposed)
    "upright": dict(replaceable_only=True, retry="never"),   # one MTCNN pass on the replaceable copy
    "tilted": dict(replaceable_only=True, retry="always"),   # ... and on its rotated copies
    "listing": dict(),                                       # `piq faces`' search: its numbering
}


def photo_faces(rgb: np.ndarray, p: ReplaceParams, ing: IngestParams, search: str) -> list[Face]:
    """The faces one of `SEARCHES` finds, unmeasured (replacing reads no face-mesh measure)."""
    if search not in SEARCHES:
        raise ValueError(f"search {search!r}: expected one of {tuple(SEARCHES)}")
    return find_faces(rgb, p, ing, measured=False, **SEARCHES[search])


def search_order(p: ReplaceParams, face: int | None) -> list[str]:
    """The searches `find_target` runs on PHOTO: `piq faces`' own, with or without `--face N`
    (one numbering)."""
    return ["listing"]


def _reference_faces(reference: np.ndarray, p: ReplaceParams, ing: IngestParams, driving_face: int | None) -> list[Face]:
    """REF's faces, numbered as `piq faces` numbers them (`--driving-face N`, the provenance's
    `reference_face`)."""
    return photo_faces(reference, p, ing, "listing")


def replaceable(face: Face, shape: tuple[int, int], p: ReplaceParams, ing: IngestParams) -> bool:
    """Whether `replace_face` would take this face (large enough, its crop inside the frame
    as far as padding allows)."""
    try:
        check_face(face, shape, ReplaceConfig(p, ing), "PHOTO")
    except Reject:
        return False
    return True


def find_target(photo: np.ndarray, reference: np.ndarray, p: ReplaceParams, ing: IngestParams, face: int | None,
                driving_face: int | None, allow_cross: bool, names: tuple[str, str],
                times: dict[str, float]) -> Target:
    """The face of `photo` to replace (`face`, or the one nearest REF's identity) and REF's face
    (`driving_face`, or its only one); `names` (PHOTO's and REF's paths) go into the errors.
    Adds the seconds of detection and identity to `times`."""
    t = time.perf_counter()
    faces = photo_faces(photo, p, ing, "listing")
    if not faces:
        raise Reject("no_face", f"PHOTO {names[0]}: no face found")
    if face is not None and face >= len(faces):  # before REF's detection and any identity work
        raise Reject("bad_face_index", f"--face {face}: PHOTO {names[0]} has {len(faces)} face(s), "
                                       f"0..{len(faces) - 1} (as piq faces lists them)")
    ref_face = reference_face(_reference_faces(reference, p, ing, driving_face), driving_face, names[1])
    times["detect"] = times.get("detect", 0.0) + time.perf_counter() - t

    t = time.perf_counter()
    matcher = IdentityMatcher(p, ing)
    ref_emb = matcher.embed(reference, ref_face)
    if ref_emb is None and not allow_cross:
        raise Reject("identity_unknown", f"REF {names[1]}: the identity encoder ({matcher.name}) finds no face in "
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
    if face is None and ref_emb is not None and min(dists) > p.max_identity_distance:
        dists = distances(faces, False)  # REF's person may be a face too small or cut: the refusal then says so
    times["identity"] = times.get("identity", 0.0) + time.perf_counter() - t
    choice = choose_face(dists, face, p.max_identity_distance, allow_cross, matcher.name)
    return Target(faces, choice, ref_face, matcher.name)
