"""Who is who across a burst: each face of every shot assigned to one person.

A burst is a few shots of the same people from (nearly) the same place, so a person is found
by two cues together: the face's position (the camera drifts, people sway: centres stay within
`best_take.max_shift` face sizes) and its identity (the evaluation's encoder; distance under
`replace.max_identity_distance`). Position alone swaps two people leaning past each other;
identity alone confuses twins or fails on a blink-blurred face, so a pair must pass both gates
and the assignment (Hungarian, scipy) minimises their sum.

People are numbered left to right in the reference shot (the one with the most faces, the
first of those). A face that matches no one is a different person: the burst is refused (a
best take between different people would paste one person's face onto another). A person
missing from a shot (a face turned away) is allowed: that shot cannot be the base.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Protocol, Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from facereplace.identity_match import distance
from pipeline.rejection import Reject


class FaceLike(Protocol):
    """What grouping reads of a found face (pipeline.faces.detect.Face)."""

    index: int
    box: tuple[float, float, float, float]


@dataclasses.dataclass
class Shot:
    """One photo of the burst: its name (file), size, faces and their identity embeddings
    (None where the encoder found no face in a crop; embeddings None: identity not checked)."""

    name: str
    size: tuple[int, int]  # width, height
    faces: Sequence[FaceLike]
    embeddings: Sequence[np.ndarray | None] | None = None


@dataclasses.dataclass
class Person:
    """One person of the burst: shot index -> that shot's face index (absent where not found)."""

    number: int
    faces: dict[int, int]


def _centre(box: Sequence[float]) -> np.ndarray:
    return np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])


def _side(box: Sequence[float]) -> float:
    return math.sqrt(max(box[2] - box[0], 1.0) * max(box[3] - box[1], 1.0))


def _identity(a: np.ndarray | None, b: np.ndarray | None) -> float:
    return math.inf if a is None or b is None else distance(a, b)


def check_sizes(shots: Sequence[Shot]) -> None:
    """A burst is one framing: every shot the same size, else a clear refusal."""
    sizes = {s.size for s in shots}
    if len(sizes) > 1:
        listing = ", ".join(f"{s.name} {s.size[0]}x{s.size[1]}" for s in shots)
        raise Reject("burst_sizes_differ", f"the photos of a burst must have one size; got {listing}")


def group_people(shots: Sequence[Shot], max_shift: float, max_identity_distance: float) -> list[Person]:
    """Assign every face of every shot to a person of the reference shot (see the module doc).
    Raises Reject `no_face` for a shot without faces, `different_people` for a face that
    matches no one (naming shot, face, and the distances that failed)."""
    if len(shots) < 2:
        raise Reject("burst_too_short", f"a burst needs at least 2 photos, got {len(shots)}")
    check_sizes(shots)
    for s in shots:
        if not s.faces:
            raise Reject("no_face", f"{s.name}: no face found")
    ref_i = max(range(len(shots)), key=lambda i: (len(shots[i].faces), -i))
    ref = shots[ref_i]
    people = [Person(n, {ref_i: f.index}) for n, f in enumerate(ref.faces)]
    check_identity = all(s.embeddings is not None for s in shots)
    for si, shot in enumerate(shots):
        if si == ref_i:
            continue
        shift = np.zeros((len(ref.faces), len(shot.faces)))
        ident = np.zeros_like(shift)
        for a, fa in enumerate(ref.faces):
            for b, fb in enumerate(shot.faces):
                shift[a, b] = np.linalg.norm(_centre(fa.box) - _centre(fb.box)) / _side(fa.box)
                ident[a, b] = _identity(ref.embeddings[a], shot.embeddings[b]) if check_identity else 0.0
        ok = (shift <= max_shift) & (ident <= max_identity_distance)
        cost = np.where(ok, shift / max_shift + ident / max_identity_distance, 1e6)
        rows, cols = linear_sum_assignment(cost)
        matched = {b: a for a, b in zip(rows, cols) if ok[a, b]}
        for b, face in enumerate(shot.faces):
            if b not in matched:
                a = int(np.argmin(shift[:, b] / max_shift + ident[:, b] / max_identity_distance))
                why = (f"nearest is person {a} of {ref.name}: shift {shift[a, b]:.2f} face sizes (max {max_shift}), "
                       f"identity distance {ident[a, b]:.3f} (max {max_identity_distance})" if check_identity else
                       f"nearest is person {a} of {ref.name}: shift {shift[a, b]:.2f} face sizes (max {max_shift})")
                raise Reject("different_people", f"{shot.name}: face {face.index} at box "
                             f"{[round(v) for v in face.box]} is no one of {ref.name} ({why})")
            people[matched[b]].faces[si] = face.index
    return people


def complete_shots(people: Sequence[Person], n_shots: int) -> list[int]:
    """Shots in which every person was found (the only possible base shots)."""
    return [i for i in range(n_shots) if all(i in p.faces for p in people)]
