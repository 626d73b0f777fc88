"""`piq best-take PHOTOS... -o OUT`: each person's best face of a burst in one photo.

Reads every photo (as shown), finds and embeds every face, groups them into people across the
burst (facereplace/burst.py), scores each face and chooses the base shot and the picks
(facereplace/best_take.py, or the user's `--plan`), replaces every picked face into the base
through `replace_face` (facereplace/compose.py), and writes the result marked as edited, plus,
on request, the contact sheet, a before / after picture and the plan (to edit and pass back).

Nothing is written until everything is made: a bad burst (different sizes, different people,
a photo without faces, a bad plan) is one `piq: error:` line, exit code 2, and no file.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from facereplace.best_take import Plan, choose_plan, fix_region, read_plan, score_people
from facereplace.burst import Shot, check_sizes, group_people
from facereplace.compose import Composite, LoadedPhoto, Swap, load_faces, replace_many
from facereplace.errors import guarded
from facereplace.identity_match import distance
from pipeline.rejection import Reject

SUFFIX_FORMAT = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}


@dataclasses.dataclass
class BestTake:
    """Everything `piq best-take` makes, in memory."""

    shots: list[LoadedPhoto]
    plan: Plan
    plan_json: dict[str, Any]
    composite: Composite | None     # None: the base needs no replacement
    sheet: np.ndarray               # RGB contact sheet
    before_after: np.ndarray        # RGB before | after


def _encode(rgb: np.ndarray, path: str) -> bytes:
    ext = Path(path).suffix.lower()
    ok, enc = cv2.imencode(ext if ext in (".png", ".jpg", ".jpeg") else ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise Reject("encode_failed", f"could not encode {path}")
    return enc.tobytes()


def sign_picture(data: bytes, path: str, take: BestTake, credentials) -> bytes:
    """A contact sheet's or before / after picture's bytes with content credentials (as the
    best take's: the base shot the parent, the shots faces came from components), when params
    name a pair and a face was replaced; the after half already carries the invisible mark."""
    if credentials is None or take.composite is None:
        return data
    from facereplace.compose import ingredient
    from facereplace.credentials import sign

    base = take.shots[take.plan.base]
    sources = [take.shots[s] for s in sorted(set(take.plan.picks) - {take.plan.base})]
    fmt = "PNG" if Path(path).suffix.lower() == ".png" else "JPEG"
    return sign(data, fmt, Path(path).name, ingredient(base), [ingredient(s) for s in sources],
                take.composite.record.method, "piq best-take", credentials, take.composite.record.as_dict())


def load_burst(paths: list[str], params) -> tuple[list[LoadedPhoto], str]:
    """Every photo read and checked (names, sizes) before minutes of detection, then its faces
    found and embedded. Returns the shots and the identity encoder's name."""
    from facereplace.identity_match import IdentityMatcher
    from facereplace.photo_io import read_photo

    names = [Path(p).name for p in paths]
    if len(set(names)) != len(names):
        raise Reject("duplicate_names", f"the burst's photos need distinct file names (plans name them): {names}")
    photos = [read_photo(p, params.replace.max_pixels) for p in paths]
    check_sizes([Shot(n, ph.size, []) for n, ph in zip(names, photos)])
    matcher = IdentityMatcher(params.replace, params.ingest)
    return [load_faces(ph, n, params, matcher) for ph, n in zip(photos, names)], matcher.name


def make_best_take(shots: list[LoadedPhoto], params, method=None, plan_path: str | None = None,
                   identity_encoder: str | None = None, edit_time: str | None = None, credentials=None) -> BestTake:
    """The best take of a loaded burst (nothing written); `credentials`: sign it (C2PA)."""
    from facereplace.contact_sheet import before_after, contact_sheet, mark_after
    from facereplace.methods import build_method

    bt = params.best_take
    names = [s.name for s in shots]
    people = group_people([Shot(s.name, s.photo.size, s.faces, s.embeddings) for s in shots], bt.max_shift,
                          params.replace.max_identity_distance)
    candidates = score_people(people, [s.faces for s in shots], bt)
    plan = read_plan(plan_path, names, candidates, people, bt) if plan_path else choose_plan(candidates, len(shots), people, bt)
    base = shots[plan.base]
    regions = plan_regions(plan_path, len(people)) if plan_path else {}
    swaps, chosen = [], {}
    for n, (person, pick) in enumerate(zip(people, plan.picks)):
        if pick == plan.base:
            continue
        target, source_face = person.faces[plan.base], person.faces[pick]
        a, b = base.embeddings[target], shots[pick].embeddings[source_face]
        by_shot = {c.shot: c for c in candidates[n]}
        region = chosen[str(n)] = regions.get(n) or fix_region(by_shot[plan.base], by_shot[pick], bt)
        swaps.append(Swap(target, shots[pick], source_face, float("inf") if a is None or b is None else distance(a, b),
                          region))
    composite = None
    if swaps:
        method = method or build_method(bt.method, params.replace, params.sample)
        composite = replace_many(base, swaps, method, params, "piq best-take",
                                 inputs={s.name: s.photo.sha256 for s in shots}, identity_encoder=identity_encoder,
                                 edit_time=edit_time, credentials=credentials)
    after = composite.unmarked if composite else base.photo.rgb
    sheet = contact_sheet([s.photo.rgb for s in shots], names, candidates, plan, bt.contact_tile, bt.candidates)
    pair = before_after(base.photo.rgb, after, composite.boxes if composite else [])
    if composite:  # the picture shows the composite: it carries the mark too
        pair = mark_after(pair, base.photo.rgb.shape[:2], composite.edits, params.replace, params.ingest)
    return BestTake(shots, plan, {**plan.to_json(names, candidates, bt.candidates), "regions": chosen}, composite, sheet, pair)


def plan_regions(path: str, n_people: int) -> dict[int, str]:
    """The plan file's optional "regions": {person: face|eyes|mouth|upper|lower}."""
    from facereplace.regions import REGIONS

    data = json.loads(Path(path).read_text())   # read_plan has checked it is a readable plan
    got = data.get("regions", {}) if isinstance(data, dict) else {}
    if not isinstance(got, dict):
        raise Reject("bad_plan", f"{path}: \"regions\" must map person numbers to regions {list(REGIONS)}")
    out = {}
    for key, value in got.items():
        if not (isinstance(key, str) and key.isdigit() and int(key) < n_people) or value not in REGIONS:
            raise Reject("bad_plan", f"{path}: region {key!r}: {value!r} (expected person 0..{n_people - 1}: "
                                     f"one of {list(REGIONS)})")
        out[int(key)] = value
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photos", nargs="+", help="the burst: 2 or more photos of the same people, one size")
    parser.add_argument("-o", "--output", required=True, help="the best take, in the base photo's format (.jpg / .png)")
    parser.add_argument("--plan", help="plan.json choosing the base and, per person, the photo whose face they get")
    parser.add_argument("--save-plan", help="write the plan used (and every face's scores) here, to edit and pass back")
    parser.add_argument("--sheet", help="contact sheet: each person's candidates, scores and the choice (JPEG/PNG)")
    parser.add_argument("--before-after", help="the base photo and the best take side by side (JPEG/PNG)")
    parser.add_argument("--method", choices=("classical", "piq"), help="default: best_take.method")
    parser.add_argument("--json", action="store_true", help="print what was done as JSON (one object on stdout)")
    parser.add_argument("--edit-time", type=_iso_time, help="the provenance record's time, ISO 8601 (reproducible "
                        "outputs, e.g. the demo stage); default: $SOURCE_DATE_EPOCH, else now")


def _iso_time(value: str) -> str:
    import datetime

    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 time (e.g. 2026-01-01T00:00:00+00:00)") from err
    if when.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{value!r}: give a time zone (e.g. +00:00)")
    return when.isoformat(timespec="seconds")


@guarded
def main(args: argparse.Namespace) -> int:
    from facereplace.photo_io import write_atomic
    from pipeline.config.params import load_params

    params = load_params(args.params)
    if args.method:
        params = dataclasses.replace(params, best_take=dataclasses.replace(params.best_take, method=args.method))
    try:
        out = Path(args.output)
        if out.suffix.lower() not in SUFFIX_FORMAT:
            raise Reject("wrong_output_format", f"{out}: name the output .jpg or .png, as the photos")
        written = [Path(p).resolve() for p in (args.output, args.save_plan, args.sheet, args.before_after) if p]
        if set(written) & {Path(p).resolve() for p in args.photos}:
            raise Reject("output_is_input", "write the outputs to new files, not over a photo of the burst")
        from facereplace.credentials import load_signer

        credentials = load_signer(params.provenance)  # a bad pair is refused before any work
        shots, encoder = load_burst(args.photos, params)
        take = make_best_take(shots, params, plan_path=args.plan, identity_encoder=encoder, edit_time=args.edit_time,
                              credentials=credentials)
        base = take.shots[take.plan.base]
        if SUFFIX_FORMAT[out.suffix.lower()] != base.photo.format:
            raise Reject("wrong_output_format", f"{out}: the base photo {base.name} is {base.photo.format}; "
                                                f"the output keeps its format")
        files = {args.output: take.composite.data if take.composite else Path(args.photos[take.plan.base]).read_bytes()}
        if args.save_plan:
            files[args.save_plan] = (json.dumps(take.plan_json, indent=1, sort_keys=True) + "\n").encode()
        if args.sheet:
            files[args.sheet] = sign_picture(_encode(take.sheet, args.sheet), args.sheet, take, credentials)
        if args.before_after:
            files[args.before_after] = sign_picture(_encode(take.before_after, args.before_after), args.before_after,
                                                    take, credentials)
    except Reject as err:
        print(f"piq: error: {err}", file=sys.stderr)
        return 2
    for path, data in files.items():
        write_atomic(path, data)
    replaced = take.plan.replaced()
    base = take.shots[take.plan.base]
    for s in take.shots:
        for w in s.photo.warnings:
            print(f"piq: warning: {s.name}: {w}", file=sys.stderr)
    if getattr(args, "json", False):
        faces = take.composite.record.faces if take.composite else []
        print(json.dumps({"output": str(args.output), "base": base.name, "replaced": [
            {"person": n, **f} for n, f in zip(replaced, faces)], "plan": take.plan_json}))
        return 0
    print(f"{args.output}: base {base.name}; " + (", ".join(
        f"person {n} from {take.shots[take.plan.picks[n]].name}" for n in replaced) if replaced else "nothing to replace"))
    return 0
