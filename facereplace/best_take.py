"""Best take: each person's best face of a burst, pasted into the one shot that needs the least.

1. Every face is scored 0..1 from what `find_faces` measured: eyes open, smile, gaze at the
   camera, sharpness, frontal pose, weighted by `best_take.weights` (a blink weighs most).
2. The base shot is the one that needs the fewest replacements, then the smallest (replaced
   face area), then the best total: every pasted face is a chance of a seam, so the fewer the
   better. A person's face is replaced only if their best face beats the base's by
   `best_take.min_gain` (noise in the measures must not trigger a paste).
3. A user's plan (`--plan plan.json`) overrides the choice per person; the automatic plan is
   written in the same format (`--save-plan`), to be edited and passed back.

The plan format (JSON): {"base": "<shot file name>", "people": {"<person number>": "<shot file
name>", ...}, "regions": {"<person number>": "eyes", ...}}; a person not listed keeps the
automatic choice for that base. A saved plan also lists each person's `best_take.candidates`
best shots ("candidates", best first) and every face's scores; both are read back as notes only:
any shot showing the person can be named. The region (facereplace/regions.py) is the part of the face
replaced: by default the one that fixes what the pick gains most on (a blink: the eyes; a
smile: the lower face; `fix_region`).
"""
from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, Sequence

from facereplace.burst import Person, complete_shots
from pipeline.config.best_take import BestTakeParams
from pipeline.rejection import Reject

MEASURES = ("eyes_open", "smile", "gaze", "sharpness", "frontal")


def _clip01(v: float) -> float:
    return float(min(1.0, max(0.0, v)))


def measure_scores(face: Any, peers: Sequence[Any], p: BestTakeParams) -> dict[str, float]:
    """Each measure of one face scored 0..1 (1 = best) among `peers` (that person's faces in
    the burst, this one included). Eyes, smile and sharpness are relative to the person's best
    in the burst, since people differ (an open eye reads 0.25 on one face, 0.35 on another)
    and sharpness depends on the content; eyes and smile are floored by `eyes_open_full` /
    `smile_full`, so a burst where every shot blinks still scores low. Gaze and pose are
    absolute. A measure the mesh could not take (no mesh on that face) scores 0."""
    def best(name: str, floor: float) -> float:
        return max([floor] + [getattr(f, name) for f in peers if getattr(f, name) is not None])

    eyes = 0.0 if face.eyes_open is None else _clip01(face.eyes_open / best("eyes_open", p.eyes_open_full))
    smile = 0.0 if face.smile is None else _clip01(face.smile / best("smile", p.smile_full))
    gaze = 0.0 if face.gaze is None else _clip01(1.0 - math.hypot(*face.gaze) / p.gaze_limit)
    frontal = 0.0 if face.yaw is None else _clip01(1.0 - max(abs(face.yaw), abs(face.pitch)) / p.frontal_limit_deg)
    sharpest = best("sharpness", 0.0)
    sharp = _clip01(face.sharpness / sharpest) if sharpest > 0 else 0.0
    return {"eyes_open": eyes, "smile": smile, "gaze": gaze, "sharpness": sharp, "frontal": frontal}


def total_score(parts: dict[str, float], p: BestTakeParams) -> float:
    w = dataclasses.asdict(p.weights)
    return sum(w[k] * parts[k] for k in MEASURES) / sum(w.values())


@dataclasses.dataclass
class Candidate:
    """One person's face in one shot, with its scores."""

    shot: int
    face: Any
    parts: dict[str, float]
    score: float


def scored(shot: int, face: Any, peers: Sequence[Any], p: BestTakeParams) -> Candidate:
    """`face` (of `shot`) as a candidate: its measures scored among `peers` and their weighted
    total. Best take's burst and `piq app`'s session both score faces this way."""
    parts = measure_scores(face, peers, p)
    return Candidate(shot, face, parts, total_score(parts, p))


def offered(cands: Sequence[Candidate], k: int) -> list[Candidate]:
    """A person's best `k` faces of the burst, best score first (ties: the earlier shot): what
    the contact sheet draws, the plan file lists and the app shows, so a user picks among the
    few worth taking instead of scanning every shot of a long burst."""
    return sorted(cands, key=lambda c: (-c.score, c.shot))[:k]


def score_people(people: Sequence[Person], faces: Sequence[Sequence[Any]], p: BestTakeParams) -> list[list[Candidate]]:
    """Per person, a candidate per shot where they were found (shot order)."""
    out = []
    for person in people:
        found = [(si, faces[si][fi]) for si, fi in sorted(person.faces.items())]
        peers = [f for _, f in found]
        out.append([scored(si, f, peers, p) for si, f in found])
    return out


@dataclasses.dataclass
class Plan:
    """The base shot and, per person, the shot whose face they get (== base: kept)."""

    base: int
    picks: list[int]
    automatic: list[bool]  # per person: chosen by the scores (False: by the user's plan)

    def replaced(self) -> list[int]:
        return [n for n, s in enumerate(self.picks) if s != self.base]

    def to_json(self, names: Sequence[str], candidates: Sequence[Sequence[Candidate]], k: int) -> dict[str, Any]:
        """The plan file (see the module doc), each person's `k` best shots ("candidates", best
        first) and the scores it was made from."""
        return {"base": names[self.base], "people": {str(n): names[s] for n, s in enumerate(self.picks)},
                "candidates": {str(n): [names[c.shot] for c in offered(cands, k)] for n, cands in enumerate(candidates)},
                "scores": {str(n): {names[c.shot]: {"score": round(c.score, 4), **{k: round(v, 4) for k, v in c.parts.items()}}
                                    for c in cands} for n, cands in enumerate(candidates)}}


def _by_shot(cands: Sequence[Candidate]) -> dict[int, Candidate]:
    return {c.shot: c for c in cands}


def picks_for_base(base: int, candidates: Sequence[Sequence[Candidate]], p: BestTakeParams) -> list[int]:
    """For a base shot: each person's best shot if it beats the base's face by min_gain."""
    picks = []
    for cands in candidates:
        here = _by_shot(cands)[base]
        best = max(cands, key=lambda c: (c.score, -c.shot))
        picks.append(best.shot if best.score - here.score > p.min_gain else base)
    return picks


def choose_plan(candidates: Sequence[Sequence[Candidate]], n_shots: int, people: Sequence[Person],
                p: BestTakeParams) -> Plan:
    """The base needing the fewest, then smallest replacements, then with the best total."""
    bases = complete_shots(people, n_shots)
    if not bases:
        raise Reject("no_complete_shot", "no photo of the burst shows every person (each needs a base shot)")

    def cost(base: int) -> tuple[int, float, float, int]:
        picks = picks_for_base(base, candidates, p)
        area = sum(_area(_by_shot(c)[base].face) for c, s in zip(candidates, picks) if s != base)
        total = sum(_by_shot(c)[s].score for c, s in zip(candidates, picks))
        return (sum(s != base for s in picks), area, -total, base)

    base = min(bases, key=cost)
    return Plan(base, picks_for_base(base, candidates, p), [True] * len(candidates))


def fix_region(base: Candidate, pick: Candidate, p: BestTakeParams) -> str:
    """The region that replacing `base` by `pick` needs: `best_take.region`, or for `auto`
    the region of the measure that gains the most weighted score (a blink fixed: the eyes; a
    smile: the lower face; pose, sharpness or nothing clear: the whole face)."""
    from facereplace.regions import region_for_fix

    if p.region != "auto":
        return p.region
    w = dataclasses.asdict(p.weights)
    gains = {k: w[k] * (pick.parts[k] - base.parts[k]) for k in MEASURES}
    measure = max(gains, key=lambda k: gains[k])
    return region_for_fix(measure) if gains[measure] > 0 else "face"


def _area(face: Any) -> float:
    x0, y0, x1, y1 = face.box
    return float((x1 - x0) * (y1 - y0))


def read_plan(path: str | Path, names: Sequence[str], candidates: Sequence[Sequence[Candidate]],
              people: Sequence[Person], p: BestTakeParams) -> Plan:
    """A user's plan file, checked against the burst: every shot named must be one of the
    photos, every person one of the people, found in the shot named for them."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise Reject("bad_plan", f"{path}: not a readable JSON plan ({err})") from err
    if not isinstance(data, dict) or set(data) - {"base", "people", "scores", "regions", "candidates"}:
        raise Reject("bad_plan", f"{path}: expected {{\"base\": shot, \"people\": {{person: shot}}}}")
    lookup = {n: i for i, n in enumerate(names)} | {Path(n).name: i for i, n in enumerate(names)}

    def shot(value: Any, what: str) -> int:
        if not isinstance(value, str) or value not in lookup:
            raise Reject("bad_plan", f"{path}: {what} is {value!r}, not one of the burst's photos {list(names)}")
        return lookup[value]

    base = shot(data.get("base"), "base") if "base" in data else None
    wanted = data.get("people", {})
    if not isinstance(wanted, dict):
        raise Reject("bad_plan", f"{path}: \"people\" must map person numbers to photos")
    for key in wanted:
        if not (isinstance(key, str) and key.isdigit() and int(key) < len(people)):
            raise Reject("bad_plan", f"{path}: person {key!r} is not one of 0..{len(people) - 1}")
    if base is None:
        base = choose_plan(candidates, len(names), people, p).base
    if base not in complete_shots(people, len(names)):
        missing = [q.number for q in people if base not in q.faces]
        raise Reject("bad_plan", f"{path}: base {names[base]} lacks person(s) {missing}; a base must show everyone")
    picks, automatic = picks_for_base(base, candidates, p), [True] * len(people)
    for key, value in wanted.items():
        n, s = int(key), shot(value, f"person {key}'s photo")
        if s not in people[n].faces:
            raise Reject("bad_plan", f"{path}: person {n} is not found in {names[s]}")
        picks[n], automatic[n] = s, False
    return Plan(base, picks, automatic)
