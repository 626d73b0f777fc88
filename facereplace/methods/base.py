"""The face-maker interface: a source crop and a reference in, a new face in the source's crop out."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class FaceMethod(Protocol):
    name: str
    model_hash: str | None   # sha256 of the weights that made the face (provenance); None for classical
    reads_driving: bool      # whether make_face reads `driving` (False: REF is not parsed for it)

    def make_face(self, source: np.ndarray, reference: np.ndarray, driving: np.ndarray | None,
                  caption: str = "") -> tuple[np.ndarray, np.ndarray | None]:
        """`source`: the face to replace, ingest's crop (S x S uint8 RGB); `reference`: REF's
        face, the same crop of REF; `driving`: REF's inner face cut with the training mask
        (black elsewhere), what the model was trained to take (None for a method that does not
        read it, `reads_driving` False). Returns (new S x S crop in the
        source's frame, bool mask of the pixels it defines or None for all); raises
        `Reject` when it cannot make one (no face mesh to align to)."""
        ...
