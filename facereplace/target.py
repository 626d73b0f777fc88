"""Which face of PHOTO `piq replace` takes, and REF's face, found with no more detection and
identity work than the choice needs.

- `--face N` / `--driving-face N` number faces as `piq faces` does, so that image is searched
  as `piq faces` searches it (rotated and upscaled copies); only face N is then embedded.
- Otherwise only replaceable faces matter (a face under `replace.min_face_px` is refused
  anyway), searched cheapest first (`SEARCHES`, `search_order`): MTCNN only on squares around
  the faces BlazeFace proposes (`faces.detect_proposed`), on the copy where a `min_face_px`
  face is MTCNN's smallest (`faces.detection_factor`); then, only while no face found is
  within `replace.max_identity_distance` of REF's identity, one MTCNN pass on that whole copy
  (it finds the faces BlazeFace missed), its rotated copies (tilted heads), and `piq faces`'
  full search. Numbers in the message are those of the faces this run found; the provenance
  records the replaced face's box.
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


SEARCHES: dict[str, dict] = {  # how `photo_faces` looks, cheapest first (find_faces' arguments)
    "proposed": dict(proposed=True),                         # where BlazeFace proposes faces (detect_proposed)
    "upright": dict(replaceable_only=True, retry="never"),   # one MTCNN pass on the replaceable copy
    "tilted": dict(replaceable_only=True, retry="always"),   # ... and on its rotated copies
    "listing": dict(),                                       # `piq faces`' search: every retry, its numbering
}


def photo_faces(rgb: np.ndarray, p: ReplaceParams, ing: IngestParams, search: str) -> list[Face]:
    """The faces one of `SEARCHES` finds, unmeasured (replacing reads no face-mesh measure)."""
    if search not in SEARCHES:
        raise ValueError(f"search {search!r}: expected one of {tuple(SEARCHES)}")
    return find_faces(rgb, p, ing, measured=False, **SEARCHES[search])


def search_order(p: ReplaceParams, face: int | None) -> list[str]:
    """The searches `find_target` may run on PHOTO, in order: `--face N` numbers as `piq faces`
    does (its search only); otherwise the cheapest first, the next only while REF's person is
    not among the faces found (the proposals only when `replace.proposal_pad` is set)."""
    if face is not None:
        return ["listing"]
    return [*(["proposed"] if p.proposal_pad else []), "upright", *(["tilted"] if p.detect_rotations else []), "listing"]


def _reference_faces(reference: np.ndarray, p: ReplaceParams, ing: IngestParams, driving_face: int | None) -> list[Face]:
    """REF's faces: BlazeFace's proposals when they give exactly one face, else the upright
    pass, else (none found, or `--driving-face N`: `piq faces`' numbering) the listing's."""
    if driving_face is None:
        if p.proposal_pad:
            proposed = photo_faces(reference, p, ing, "proposed")
            if len(proposed) == 1:
                return proposed
        upright = photo_faces(reference, p, ing, "upright")
        if upright:
            return upright
    return photo_faces(reference, p, ing, "listing")


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
    Adds the seconds of detection and identity to `times`. Where the replaceable-only searches
    find nothing, the full search runs, so that a face too small or cut by the border is
    refused as such rather than "not found"."""
    t = time.perf_counter()
    chain = search_order(p, face)
    faces: list[Face] = []
    while chain and not faces:  # the first search that finds a face; an upright pass finding none: the listing's
        search = chain.pop(0)
        faces = photo_faces(photo, p, ing, search)
        if not faces and search == "upright":
            chain = ["listing"]
    if not faces:
        raise PhotoError("no_face", f"PHOTO {names[0]}: no face found")
    if face is not None and face >= len(faces):  # before REF's detection and any identity work
        raise PhotoError("bad_face_index", f"--face {face}: PHOTO {names[0]} has {len(faces)} face(s), "
                                           f"0..{len(faces) - 1} (as piq faces lists them)")
    ref_face = reference_face(_reference_faces(reference, p, ing, driving_face), driving_face, names[1])
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

    dists = distances(faces, search in ("proposed", "upright"))
    times["identity"] = times.get("identity", 0.0) + time.perf_counter() - t
    # REF's person is not among the faces found: look further (the upright pass after the
    # proposals, then tilted heads on rotated copies, then every face `piq faces` lists,
    # smaller ones too, comparing all of them so that a refusal says why: too small, out of
    # frame, another person)
    while face is None and ref_emb is not None and chain and min(dists) > p.max_identity_distance:
        search = chain.pop(0)
        t = time.perf_counter()
        faces = photo_faces(photo, p, ing, search) or faces
        times["detect"] += time.perf_counter() - t
        t = time.perf_counter()
        dists = distances(faces, search == "upright")
        times["identity"] += time.perf_counter() - t
    choice = choose_face(dists, face, p.max_identity_distance, allow_cross, matcher.name)
    return Target(faces, choice, ref_face, matcher.name)
