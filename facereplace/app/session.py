"""The photos and edits of one `piq app` session, kept in memory (uploads in a private temp folder).

Who is who: every face of every opened photo (and uploaded reference) is put in a person by
identity alone (the evaluation's encoder, distance under `replace.max_identity_distance` to any
face already in that person); unlike a burst, the photos may come from different scenes, so
position says nothing. A face can then be replaced by the same person's face from another
photo or a reference; several faces of one photo can be replaced, each from its own source:
the edit is recomputed from the original photo with all of its swaps (facereplace/compose.py)
and marked once.
"""
from __future__ import annotations

import dataclasses
import re
import secrets
import shutil
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facereplace.app.folders import session_folder
from facereplace.compose import Composite, LoadedPhoto, Swap, load_faces, replace_many
from facereplace.credentials import load_signer
from facereplace.identity_match import distance
from pipeline.rejection import Reject


@dataclasses.dataclass
class Entry:
    id: str
    role: str                       # photo | reference
    loaded: LoadedPhoto
    persons: list[int]              # person of each face
    swaps: dict[int, Swap] = dataclasses.field(default_factory=dict)
    composite: Composite | None = None

    @property
    def download_name(self) -> str:
        stem, dot, ext = self.loaded.name.rpartition(".")
        return f"{stem}_piq.{ext}" if dot else f"{self.loaded.name}_piq"


class Session:
    """Thread-safe: one lock around everything (detection and replacement are CPU-bound and
    their models are not shared across threads)."""

    def __init__(self, params, method=None) -> None:
        self.params = params
        self._method = method
        self._matcher = None
        self.entries: dict[str, Entry] = {}
        self._by_sha: dict[str, LoadedPhoto] = {}
        self._person_faces: list[list[np.ndarray]] = []
        self.lock = threading.Lock()
        # the signing pair of `provenance` (None: downloads unsigned, as `piq replace`); a missing,
        # expired or mismatched pair is refused here, before the server starts
        self.credentials = load_signer(params.provenance)
        self._originals: dict[str, Path] = {}   # sha256 -> upload file: the signature's ingredients
        self.folder = session_folder()      # uploads; deleted by close (server.py: on every way out)
        self.tag = secrets.token_hex(4)     # in every photo id: a new session's ids never name an old one's

    def close(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)

    # --- state ---------------------------------------------------------------------------

    @property
    def method(self):
        if self._method is None:
            from facereplace.methods import build_method

            p = self.params.replace
            self._method = build_method(p.method, p, self.params.sample)
        return self._method

    @property
    def matcher(self):
        if self._matcher is None:
            from facereplace.identity_match import IdentityMatcher

            self._matcher = IdentityMatcher(self.params.replace, self.params.ingest)
        return self._matcher

    def entry(self, photo_id: str) -> Entry:
        if photo_id not in self.entries:
            raise Reject("unknown_photo", f"no photo {photo_id!r} in this session")
        return self.entries[photo_id]

    def describe(self, e: Entry) -> dict[str, Any]:
        h, w = e.loaded.photo.rgb.shape[:2]
        return {"id": e.id, "name": e.loaded.name, "role": e.role, "width": w, "height": h, "format": e.loaded.photo.format,
                "download": e.download_name, "edited": e.composite is not None,
                "swaps": [{"face": t, "source": s.source.name, "source_face": s.source_face} for t, s in sorted(e.swaps.items())],
                "faces": [{**f.as_dict(), "person": p} for f, p in zip(e.loaded.faces, e.persons)]}

    def listing(self) -> list[dict[str, Any]]:
        return [self.describe(e) for e in self.entries.values()]

    # --- actions -------------------------------------------------------------------------

    def add(self, name: str, upload: Path, role: str = "photo") -> dict[str, Any]:
        """Open an uploaded photo (or reference) from its file in the session's folder: read as
        shown, faces found and embedded, each put in a person. The same file opened twice is
        found once."""
        from facereplace.photo_io import read_photo

        if role not in ("photo", "reference"):
            raise Reject("bad_role", f"role {role!r}: photo or reference")
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).name) or "photo"
        with self.lock:
            if len(self.entries) >= self.params.app.max_photos:
                raise Reject("too_many_photos", f"{safe}: a session opens at most app.max_photos "
                                                f"{self.params.app.max_photos} photos")
            photo_id = f"p{len(self.entries) + 1}-{self.tag}"
            photo = read_photo(upload, self.params.replace.max_pixels)
            self._originals.setdefault(photo.sha256, Path(upload))
            photo.path = Path(safe)
            loaded = self._by_sha.get(photo.sha256)
            if loaded is None:
                loaded = load_faces(photo, safe, self.params, self.matcher)
                self._by_sha[photo.sha256] = loaded
            else:
                loaded = dataclasses.replace(loaded, name=safe)
            if not loaded.faces:
                raise Reject("no_face", f"{safe}: no face found")
            entry = Entry(photo_id, role, loaded, [self._person_of(e) for e in loaded.embeddings])
            self.entries[photo_id] = entry
            return self.describe(entry)

    def _person_of(self, embedding: np.ndarray | None) -> int:
        limit = self.params.replace.max_identity_distance
        if embedding is not None:
            best = [(min(distance(embedding, f) for f in faces), n) for n, faces in enumerate(self._person_faces) if faces]
            if best and min(best)[0] <= limit:
                n = min(best)[1]
                self._person_faces[n].append(embedding)
                return n
        self._person_faces.append([] if embedding is None else [embedding])
        return len(self._person_faces) - 1

    def candidates(self, photo_id: str, face: int) -> list[dict[str, Any]]:
        """The same person's faces in the session's other photos and references: the
        `best_take.candidates` best by best take's score (eyes open, smile, gaze, sharpness,
        pose, relative to this person's faces in the session), best first, ties by identity
        distance; then any uploaded reference of them not among those (the user brought it for
        this)."""
        from facereplace.best_take import scored

        e = self.entry(photo_id)
        self._check_face(e, face)
        person, mine = e.persons[face], e.loaded.embeddings[face]
        found = [(other, f, emb) for other in self.entries.values() if other.id != e.id
                 for f, p, emb in zip(other.loaded.faces, other.persons, other.loaded.embeddings) if p == person]
        bt = self.params.best_take
        peers = [e.loaded.faces[face]] + [f for _, f, _ in found]
        out = []
        for other, f, emb in found:
            d = distance(mine, emb) if mine is not None and emb is not None else None
            out.append({"photo": other.id, "name": other.loaded.name, "role": other.role, "face": f.index,
                        "score": round(scored(0, f, peers, bt).score, 4),
                        "distance": None if d is None else round(d, 4), **{k: f.as_dict()[k] for k in ("eyes_open", "smile")}})
        out.sort(key=lambda c: (-c["score"], c["distance"] is None, c["distance"] or 0.0))
        return out[:bt.candidates] + [c for c in out[bt.candidates:] if c["role"] == "reference"]

    def replace(self, photo_id: str, face: int, source_id: str, source_face: int,
                region: str | None = None) -> dict[str, Any]:
        """Face `face` of the photo gets `source_face` of the source: the same person only (the
        identity guard of `piq replace`); `region`: the part replaced (None: replace.region;
        `auto`: what the source fixes, as best take chooses: `region_for`)."""
        with self.lock:
            e, src = self.entry(photo_id), self.entry(source_id)
            self._check_face(e, face)
            self._check_face(src, source_face)
            if src.id == e.id:
                raise Reject("same_photo", "choose a face of another photo or a reference")
            a, b = e.loaded.embeddings[face], src.loaded.embeddings[source_face]
            d = distance(a, b) if a is not None and b is not None else float("inf")
            limit = self.params.replace.max_identity_distance
            if d > limit:
                raise Reject("identity_mismatch", f"{src.loaded.name} face {source_face} is at identity distance "
                                                  f"{d:.3f} from {e.loaded.name} face {face}, over "
                                                  f"replace.max_identity_distance {limit:.3f}: not the same person")
            if region == "auto":
                region = self.region_for(photo_id, face, source_id, source_face)
            swaps = {**e.swaps, face: Swap(face, src.loaded, source_face, d, region)}
            inputs = {e.loaded.name: e.loaded.photo.sha256} | {s.source.name: s.source.photo.sha256 for s in swaps.values()}
            e.composite = replace_many(e.loaded, [swaps[k] for k in sorted(swaps)], self.method, self.params, "piq app",
                                       inputs=inputs, identity_encoder=self.matcher.name,
                                       credentials=self.credentials, originals=self._originals)
            e.swaps = swaps
            return self.describe(e)

    def region_for(self, photo_id: str, face: int, source_id: str, source_face: int) -> str:
        """The part of the face that replacing it by the source's face fixes, chosen as best take
        chooses (`fix_region`: the measure gaining most; a blink: the eyes, a smile: the lower
        face, else the whole face), both faces scored among this person's faces in the session."""
        from facereplace.best_take import fix_region, scored

        bt = dataclasses.replace(self.params.best_take, region="auto")
        e, src = self.entry(photo_id), self.entry(source_id)
        person = e.persons[face]
        peers = [f for x in self.entries.values() for f, p in zip(x.loaded.faces, x.persons) if p == person]
        return fix_region(scored(0, e.loaded.faces[face], peers, bt), scored(0, src.loaded.faces[source_face], peers, bt), bt)

    def reset(self, photo_id: str) -> dict[str, Any]:
        with self.lock:
            e = self.entry(photo_id)
            e.swaps, e.composite = {}, None
            return self.describe(e)

    @staticmethod
    def _check_face(e: Entry, face: int) -> None:
        if not 0 <= face < len(e.loaded.faces):
            raise Reject("bad_face_index", f"{e.loaded.name} has faces 0..{len(e.loaded.faces) - 1}, not {face}")

    # --- pictures ------------------------------------------------------------------------

    def original_jpeg(self, photo_id: str) -> bytes:
        """The photo as shown (EXIF orientation applied), for the page."""
        return _jpeg(self.entry(photo_id).loaded.photo.rgb)

    def result_jpeg(self, photo_id: str) -> bytes:
        """The edit for the page (the marked pixels); the download is `result_file`."""
        e = self.entry(photo_id)
        if e.composite is None:
            raise Reject("not_edited", f"{e.loaded.name}: no face replaced yet")
        return _jpeg(e.composite.image)

    def result_file(self, photo_id: str) -> tuple[bytes, str]:
        """The edited photo's file (input's format, metadata, watermark, provenance) and its name."""
        e = self.entry(photo_id)
        if e.composite is None:
            raise Reject("not_edited", f"{e.loaded.name}: no face replaced yet")
        return e.composite.data, e.download_name

    def face_jpeg(self, photo_id: str, face: int) -> bytes:
        from facereplace.contact_sheet import thumbnail

        e = self.entry(photo_id)
        self._check_face(e, face)
        return _jpeg(thumbnail(e.loaded.photo.rgb, e.loaded.faces[face].box, 160))


def _jpeg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
