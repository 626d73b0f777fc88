"""Pictures of a best take: the contact sheet (each person's candidates, scores and the choice)
and the before / after pair.

The sheet is a grid: one row per person; the first column is that person's face in the base shot
(headed with the base's name), the next ones their `best_take.candidates` best faces of the
burst, best score first (a face the user's plan picked outside them comes last). Each cell is a
square around the face box with its shot's name, total score and the five measures' scores under
it; the face chosen for the person is framed green (the base cell when the face is kept). Drawn
with OpenCV's Hershey fonts only (no font files, same pixels everywhere), so the sheet is
reproducible.
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from facereplace.best_take import Candidate, Plan, offered
from pipeline.faces.crop import extract_crop
from pipeline.faces.geometry import square_crop

FONT = cv2.FONT_HERSHEY_SIMPLEX
CHOSEN, BASE, INK, DIM, PAPER = (40, 200, 80), (255, 190, 40), (235, 235, 235), (150, 150, 150), (24, 24, 24)
TEXT_H = 58   # px under each thumbnail: score + two lines of measures
HEAD_H = 30   # column headers
SIDE_W = 90   # row labels


def _text(img: np.ndarray, text: str, org: tuple[int, int], scale: float, colour: tuple[int, int, int], thick: int = 1) -> None:
    cv2.putText(img, text, org, FONT, scale, colour, thick, cv2.LINE_AA)


def _fit(text: str, width: int, scale: float) -> float:
    """The largest scale <= `scale` at which `text` fits in `width` px."""
    w = cv2.getTextSize(text, FONT, scale, 1)[0][0]
    return scale if w <= width else scale * width / w


def thumbnail(rgb: np.ndarray, box: Sequence[float], size: int) -> np.ndarray:
    """The face and a margin (1.4x its box, a square around its centre) at `size` px."""
    return extract_crop(rgb, square_crop(tuple(box), 1.4), size, "constant")


def person_cells(cands: Sequence[Candidate], plan: Plan, person: int, k: int) -> list[Candidate]:
    """The faces the sheet shows for one person: the base shot's, then the `k` best (and the
    pick, when a plan chose a face outside them)."""
    by_shot = {c.shot: c for c in cands}
    ranked = offered(cands, k)
    if plan.picks[person] not in {c.shot for c in ranked}:
        ranked.append(by_shot[plan.picks[person]])
    return [by_shot[plan.base], *ranked]


def contact_sheet(images: Sequence[np.ndarray], names: Sequence[str], candidates: Sequence[Sequence[Candidate]],
                  plan: Plan, tile: int = 160, k: int = 3) -> np.ndarray:
    """The sheet as an RGB uint8 image (see the module doc)."""
    pad = 8
    cell_w, cell_h = tile + 2 * pad, tile + TEXT_H + 2 * pad
    rows = [person_cells(cands, plan, n, k) for n, cands in enumerate(candidates)]
    columns = max(len(r) for r in rows)
    sheet = np.full((HEAD_H + cell_h * len(rows), SIDE_W + cell_w * columns, 3), PAPER, np.uint8)
    for col in range(columns):
        label = f"BASE {names[plan.base]}" if col == 0 else f"best {col}" if col <= k else "plan's pick"
        _text(sheet, label, (SIDE_W + col * cell_w + pad, HEAD_H - 10), _fit(label, tile, 0.5), BASE if col == 0 else INK, 1)
    for n, cells in enumerate(rows):
        y = HEAD_H + n * cell_h + pad
        _text(sheet, f"person {n}", (8, y + tile // 2), 0.45, INK)
        how = "auto" if plan.automatic[n] else "plan"
        _text(sheet, "replaced" if plan.picks[n] != plan.base else "kept", (8, y + tile // 2 + 20), 0.4, DIM)
        _text(sheet, f"({how})", (8, y + tile // 2 + 38), 0.4, DIM)
        framed = 0 if plan.picks[n] == plan.base else next(i for i, c in enumerate(cells) if i and c.shot == plan.picks[n])
        for col, c in enumerate(cells):
            x = SIDE_W + col * cell_w + pad
            sheet[y:y + tile, x:x + tile] = thumbnail(images[c.shot], c.face.box, tile)
            if col == framed:
                cv2.rectangle(sheet, (x - 4, y - 4), (x + tile + 3, y + tile + 3), CHOSEN, 4)
            p = c.parts
            head = f"{names[c.shot]}  {c.score:.2f}"
            _text(sheet, head, (x, y + tile + 18), _fit(head, tile, 0.5), CHOSEN if col == framed else INK)
            line1 = f"eyes {p['eyes_open']:.2f} smile {p['smile']:.2f}"
            line2 = f"gaze {p['gaze']:.2f} pose {p['frontal']:.2f} sharp {p['sharpness']:.2f}"
            _text(sheet, line1, (x, y + tile + 36), _fit(line1, tile, 0.38), DIM)
            _text(sheet, line2, (x, y + tile + 52), _fit(line2, tile, 0.38), DIM)
    return sheet


def after_offset(shape: tuple[int, int], max_width: int = 2048) -> tuple[float, float]:
    """(x offset of the after half, scale of the whole) in `before_after`'s picture of photos
    of `shape`: where a pixel (x, y) of the after photo lands is ((x + offset) * scale, y * scale)."""
    h, w = shape
    gap = max(4, w // 100)
    return float(w + gap), min(1.0, max_width / (2 * w + gap))


def mark_after(pair: np.ndarray, shape: tuple[int, int], edits: Sequence[tuple], p, ingest=None,
               max_width: int = 2048) -> np.ndarray:
    """`before_after`'s picture with the invisible mark laid in each replaced face of its after
    half (`edits`: (face, paste alpha) in the photo's pixels, mapped into the picture), as
    `piq replace` marks its output: the picture shows the composite, so it carries the mark."""
    import dataclasses

    from facereplace.provenance import mark_faces

    offset, scale = after_offset(shape, max_width)
    moved = []
    for face, alpha in edits:
        x0, y0, x1, y1 = face.box
        a = cv2.warpAffine(alpha.astype(np.float32), np.array([[scale, 0, offset * scale], [0, scale, 0]], np.float32),
                           (pair.shape[1], pair.shape[0]), flags=cv2.INTER_LINEAR)
        pts = (np.asarray(face.landmarks, np.float64) + [offset, 0]) * scale
        moved.append((dataclasses.replace(face, box=((x0 + offset) * scale, y0 * scale, (x1 + offset) * scale, y1 * scale),
                                          landmarks=pts, mesh=None), a))
    return mark_faces(pair, moved, p, ingest)


def before_after(before: np.ndarray, after: np.ndarray, boxes: Sequence[Sequence[float]], max_width: int = 2048) -> np.ndarray:
    """Before and after side by side, labelled, the replaced faces outlined on both; scaled
    down to at most `max_width` px wide in all."""
    h, w = before.shape[:2]
    pair = []
    for img, label in ((before, "before"), (after, "after")):
        img = img.copy()
        thick = max(2, round(w / 500))
        for x0, y0, x1, y1 in boxes:
            cv2.rectangle(img, (int(x0), int(y0)), (int(x1), int(y1)), CHOSEN, thick)
        scale = max(0.8, w / 900)
        _text(img, label, (int(12 * scale), int(34 * scale)), scale, (0, 0, 0), thick + 3)
        _text(img, label, (int(12 * scale), int(34 * scale)), scale, (255, 255, 255), thick)
        pair.append(img)
    gap = np.full((h, int(after_offset((h, w), max_width)[0]) - w, 3), 255, np.uint8)
    out = np.hstack([pair[0], gap, pair[1]])
    if out.shape[1] > max_width:
        f = max_width / out.shape[1]
        out = cv2.resize(out, (max_width, round(out.shape[0] * f)), interpolation=cv2.INTER_AREA)
    return out
