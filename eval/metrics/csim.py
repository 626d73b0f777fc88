"""CSIM: cosine similarity of identity embeddings of the output and the target (paper: ArcFace;
offline: dlib's ResNet, see pipeline/faces/identity.py). A pair where either image has no face
found is a failure. Target embeddings are the same for every method: pass one `cache` dict to share them."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from pipeline.faces.identity import load_identity_encoder
from eval.metrics import MetricResult, summarize, unavailable


def load_encoder(kind: str = "auto", weights: str | None = None, device: str | None = None):
    """(encoder, None) or (None, why it is unavailable: the selected encoder needs something
    that is not configured or not installed). A configured file that is missing or not usable
    raises `pipeline.weight_files.checks.WeightsFormatError`: that is an error, not "unavailable"."""
    try:
        return load_identity_encoder(kind, weights, device), None
    except (FileNotFoundError, ImportError) as err:
        return None, f"{kind} identity encoder: {err}"


class CSIM:
    names = ("CSIM",)

    def __init__(self, encoder=None, reason: str | None = None, cache: dict | None = None) -> None:
        self.encoder, self.reason = encoder, reason
        self.backend = encoder.name if encoder is not None else "identity encoder"
        self.cache = {} if cache is None else cache
        self._values: list[float | None] = []

    def _embed_many(self, images: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        batch = getattr(self.encoder, "embed_batch", None)
        return batch(list(images)) if batch else [self.encoder.embed(i) for i in images]

    def update(self, outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], pair_ids: Sequence[str] = ()) -> None:
        if self.encoder is None:
            return
        ids = list(pair_ids) or [None] * len(targets)
        tgt: list[np.ndarray | None] = [self.cache.get((self.backend, p)) if p else None for p in ids]
        todo = [i for i, p in enumerate(ids) if not p or (self.backend, p) not in self.cache]
        for i, e in zip(todo, self._embed_many([targets[i] for i in todo])):
            tgt[i] = e
            if ids[i]:
                self.cache[(self.backend, ids[i])] = e
        for o, t in zip(self._embed_many(outputs), tgt):
            self._values.append(None if o is None or t is None else float(np.dot(o, t)))

    def per_pair(self) -> dict[str, list[float | None]]:
        return {"CSIM": self._values}

    def results(self) -> dict[str, MetricResult]:
        if self.reason:
            return {"CSIM": unavailable("CSIM", self.backend, self.reason)}
        return {"CSIM": summarize("CSIM", self.backend, self._values, bool(getattr(self.encoder, "paper_model", False)))}
