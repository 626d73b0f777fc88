"""Faces found against the truth on the real-photo corpus (tests/corpus/) and on collages made
from it with known faces: recall, false faces, with the second check (`replace.verify_faces`)
and without it; and the expression measures' accuracy on labelled real faces.

    python -m bench.photo_corpus              # markdown tables (docs/BENCHMARKS.md)

Sets (each image with its true faces, and where they are: a region each face's box centre must
fall in):
- corpus: the 4 photos as they are, 0.9x, mirrored and grey (16 images; photos.csv's counts,
  `optional_faces` neither required nor false);
- collage 1 MP / 12 MP: the 4-person group photo (tests/fixtures/corpus.group_photo) at 1280 px
  and at 4200 px, plus 0.9x and mirrored copies of the 1 MP one;
- small faces: the group photo's tiles scaled so each face is ~40 px (its box side), eight of
  them spread over a 12 MP canvas;
- rolled: the corpus portraits turned by -45, -30, 30, 45 degrees (roll) on a canvas.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import time

import cv2
import numpy as np

from facereplace.faces import find_faces
from pipeline.config.replace import ReplaceParams
from tests.fixtures.corpus import GROUP_TILES, corpus, corpus_rgb, group_photo, shown

Region = tuple[float, float, float, float]


@dataclasses.dataclass
class Case:
    set: str
    name: str
    rgb: np.ndarray
    regions: list[Region]        # one per true face: where its box centre lies
    optional: int = 0            # extra faces that count neither way (a partial face in the background)


def _whole(rgb: np.ndarray) -> Region:
    return (0.0, 0.0, float(rgb.shape[1]), float(rgb.shape[0]))


def corpus_cases() -> list[Case]:
    out = []
    for row in corpus():
        rgb = corpus_rgb(row.file)
        for name, img in (("1.0", rgb), ("0.9x", cv2.resize(rgb, None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA)),
                          ("mirror", np.ascontiguousarray(rgb[:, ::-1])), ("grey", shown(rgb, "grayscale"))):
            out.append(Case("corpus", f"{row.file} {name}", img, [_whole(img)] * row.faces, row.optional_faces))
    return out


def _tiles(width: int, mirrored: bool = False) -> list[Region]:
    tile, height = width // len(GROUP_TILES), round(width * 886 / 1280)
    return [(i * tile, 0, (i + 1) * tile, height) for i in range(len(GROUP_TILES))]


def collage_cases() -> list[Case]:
    g = group_photo()
    g12 = group_photo(4200)
    small = cv2.resize(g, None, fx=0.9, fy=0.9, interpolation=cv2.INTER_AREA)
    return [Case("collage 1 MP", "group 1280 px", g, _tiles(1280)),
            Case("collage 1 MP", "group 0.9x", small, [tuple(v * 0.9 for v in r) for r in _tiles(1280)]),
            Case("collage 1 MP", "group mirrored", np.ascontiguousarray(g[:, ::-1]), _tiles(1280)),
            Case("collage 12 MP", "group 4200 px", g12, _tiles(4200))]


def small_face_case(face_px: int = 40) -> Case:
    """Eight faces of ~`face_px` on a 12 MP canvas: each group tile scaled so its face (the
    1 MP photo's box, found once) is that size."""
    g = group_photo()
    boxes = sorted((f.box for f in find_faces(g, ReplaceParams(verify_faces=False), measured=False)), key=lambda b: b[0])
    canvas = np.full((3000, 4000, 3), 120, np.uint8)
    canvas[:1500] = (170, 180, 190)
    regions = []
    tile = g.shape[1] // len(GROUP_TILES)
    for k in range(8):
        i = k % len(GROUP_TILES)
        box = boxes[i]
        s = face_px / (box[2] - box[0])
        crop = g[:, i * tile : (i + 1) * tile]
        small = cv2.resize(crop, None, fx=s, fy=s, interpolation=cv2.INTER_AREA)
        x0, y0 = 300 + (k % 4) * 900, 600 + (k // 4) * 1300
        canvas[y0 : y0 + small.shape[0], x0 : x0 + small.shape[1]] = small
        regions.append((x0, y0, x0 + small.shape[1], y0 + small.shape[0]))
    return Case("small faces", f"8 faces of {face_px} px, 12 MP", canvas, regions)


def rolled_cases() -> list[Case]:
    out = []
    for name in ("obama_portrait.jpg", "biden_portrait.jpg"):
        rgb = corpus_rgb(name)
        h, w = rgb.shape[:2]
        for deg in (-45, -30, 30, 45):
            m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
            side = int(math.hypot(w, h))
            m[:, 2] += (side / 2 - w / 2, side / 2 - h / 2)
            img = cv2.warpAffine(rgb, m, (side, side), borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
            out.append(Case("rolled +-30/45 deg", f"{name} {deg:+d} deg", img, [_whole(img)]))
    return out


def score(case: Case, faces) -> tuple[int, int]:
    """(true faces found, false faces): each found face's box centre is matched to a free
    region holding it; the rest are false, less `optional`."""
    free = list(range(len(case.regions)))
    false = 0
    for f in faces:
        cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
        hit = next((r for r in free if case.regions[r][0] <= cx <= case.regions[r][2]
                    and case.regions[r][1] <= cy <= case.regions[r][3]), None)
        if hit is None:
            false += 1
        else:
            free.remove(hit)
    return len(case.regions) - len(free), max(0, false - case.optional)


def detection_table(cases: list[Case]) -> list[str]:
    rows: dict[str, list[int]] = {}
    lines = []
    for c in cases:
        for verify in (True, False):
            t = time.process_time()
            faces = find_faces(c.rgb, ReplaceParams(verify_faces=verify))
            found, false = score(c, faces)
            key = f"{c.set} | {'mesh check' if verify else 'MTCNN alone'}"
            r = rows.setdefault(key, [0, 0, 0, 0])
            r[0] += 1
            r[1] += len(c.regions)
            r[2] += found
            r[3] += false
            print(f"  {c.name} ({'check' if verify else 'alone'}): {found}/{len(c.regions)} found, {false} false, "
                  f"{time.process_time() - t:.1f} CPU s", file=sys.stderr, flush=True)
    lines.append("| set | detector | images | true faces | found (recall) | false faces | precision |")
    lines.append("|---|---|---:|---:|---:|---:|---:|")
    for key, (n, true, found, false) in rows.items():
        prec = found / (found + false) if found + false else 1.0
        lines.append(f"| {key} | {n} | {true} | {found} ({found / true:.0%}) | {false} | {prec:.0%} |")
    return lines


# --- expression measures on labelled real faces ------------------------------------------------

def _measures(rgb: np.ndarray):
    """(new eyes_open, old eyes_open = both eyes' mean, new smile, old smile = corner lift) of
    the largest face's mesh, or None."""
    from pipeline.faces import mesh as fm

    faces = find_faces(rgb)
    faces = [f for f in faces if f.mesh is not None]
    if not faces:
        return None
    m = max(faces, key=lambda f: f.box[2] - f.box[0]).mesh
    e = fm.expression(m)
    f = fm.frontalized(m)
    lift = (f[fm.LIP_UPPER_INNER, 1] + f[fm.LIP_LOWER_INNER, 1]) / 2 - (f[fm.MOUTH_R, 1] + f[fm.MOUTH_L, 1]) / 2
    return e.eyes_open, (e.eye_open_r + e.eye_open_l) / 2, e.smile, float(lift)


PORTRAITS = {"obama_portrait.jpg": (0, 600, 200, 800), "biden_portrait.jpg": (0, 500, 50, 550),
             "obama_lectern.jpg": (100, 800, 50, 600), "obama_standing.jpg": (0, 600, 250, 800)}
BLINK_POSES = {"frontal": {}, "turned (animator yaw 40)": dict(yaw=40.0), "turned other way": dict(yaw=-40.0),
               "looking down (pitch -20)": dict(pitch=-20.0)}
SMILES = {"smile": dict(smile=0.75), "big smile": dict(smile=1.0), "open smile": dict(smile=0.8, mouth_open=0.5),
          "laugh": dict(smile=1.0, mouth_open=0.9)}
NOT_SMILES = {"as is": None, "speaking": dict(mouth_open=0.5), "O mouth": dict(mouth_open=0.7, pucker=0.7),
              "frown": dict(frown=0.8)}
CLOSED_BELOW = 0.75  # a blink: eyes under this share of the same person's open shot (best-take's relative judgement)


def measures_table() -> list[str]:
    """Eyes: each corpus portrait open and blinking (the project's animator) in four poses, the
    blink judged against the same person's open shot in that pose; smile: each portrait's
    animated smiles against its non-smiles (speaking, an O mouth, a frown, as it is), a pair
    right when the smile measures higher."""
    from pipeline.backends.animators import motion as mo
    from pipeline.backends.animators.mesh_animator import MeshAnimator

    animator = MeshAnimator()
    eyes = {k: [0, 0, 0] for k in BLINK_POSES}  # pairs, new right, old right
    smile_pairs = [0, 0, 0]
    laugh_pairs = [0, 0, 0]
    for name, (y0, y1, x0, x1) in PORTRAITS.items():
        rgb = np.ascontiguousarray(corpus_rgb(name)[y0:y1, x0:x1])
        mesh = animator.mesh(rgb, name)

        def shot(controls, rgb=rgb, mesh=mesh):
            return rgb if controls is None else animator.apply(rgb, mesh, mo.program_motion(mesh, mo.Controls(**controls))).image

        for pose, c in BLINK_POSES.items():
            opened, closed = _measures(shot(c or None)), _measures(shot({**c, "blink_r": 1.0, "blink_l": 1.0}))
            if opened is None or closed is None:
                continue
            eyes[pose][0] += 1
            eyes[pose][1] += closed[0] < CLOSED_BELOW * opened[0]
            eyes[pose][2] += closed[1] < CLOSED_BELOW * opened[1]
            print(f"  {name} {pose}: eyes open {opened[0]:.3f} / blink {closed[0]:.3f} (old {opened[1]:.3f} / "
                  f"{closed[1]:.3f})", file=sys.stderr, flush=True)
        plain = {k: _measures(shot(c)) for k, c in NOT_SMILES.items()}
        for c in SMILES.values():
            got = _measures(shot(c))
            for base in plain.values():
                if got is None or base is None:
                    continue
                for tally in (smile_pairs, laugh_pairs) if "mouth_open" in c else (smile_pairs,):
                    tally[0] += 1
                    tally[1] += got[2] > base[2]
                    tally[2] += got[3] > base[3]
    lines = ["| measure | case | pairs | right, fixed measure | right, old measure |", "|---|---|---:|---:|---:|"]
    for pose, (n, new, old) in eyes.items():
        lines.append(f"| eyes: blink < {CLOSED_BELOW} x open shot | {pose} | {n} | {new}/{n} | {old}/{n} |")
    lines.append(f"| smile above non-smile | every smile | {smile_pairs[0]} | {smile_pairs[1]}/{smile_pairs[0]} | "
                 f"{smile_pairs[2]}/{smile_pairs[0]} |")
    lines.append(f"| smile above non-smile | open-mouth smiles, laughs | {laugh_pairs[0]} | {laugh_pairs[1]}/{laugh_pairs[0]} | "
                 f"{laugh_pairs[2]}/{laugh_pairs[0]} |")
    lines.append("")
    lines.append("| corpus photo (as is) | label | smile (fixed) | smile (old) | eyes_open |")
    lines.append("|---|---|---:|---:|---:|")
    for row in corpus():
        m = _measures(corpus_rgb(row.file))
        if m:
            lines.append(f"| {row.file} | {row.expression} | {m[2]:.3f} | {m[3]:.3f} | {m[0]:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the corpus set only")
    ap.add_argument("--measures", action="store_true", help="the expression measures' table only")
    ap.add_argument("--rolled", action="store_true", help="the rolled set only")
    args = ap.parse_args(argv)
    if args.measures:
        print("\n".join(measures_table()))
        return 0
    if args.rolled:
        print("\n".join(detection_table(rolled_cases())))
        return 0
    cases = corpus_cases()
    if not args.quick:
        cases += collage_cases() + [small_face_case()] + rolled_cases()
    print("\n".join(detection_table(cases)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
