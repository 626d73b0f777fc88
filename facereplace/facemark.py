"""An invisible mark that stays inside the edit and survives sharing (issue 26, item 5).

The mark lives in the face's own frame, not the image's: a grid of cells laid on the face by
its mesh (478 mediapipe points: centre = their mean, unit = their RMS radius, angle = the eye
line). Re-saving, resizing or cropping the photo moves and scales the pixels, but the decoder
finds the face again (MTCNN + mesh, `piq verify`), rebuilds the same frame and reads the same
cells: no image-grid synchronisation to lose.

Each cell carries one bit of the 48-bit message (a keyed pseudo-random cell -> bit map, so any
region spreads over every bit) by quantisation index modulation (dither modulation) of its
luma, averaged under a smooth sin^2 bump: the cell's weighted mean is moved onto the lattice
`dither + bit * step / 2 (mod step)`. The bump makes the change a low-frequency pattern with no
edges (JPEG's 8x8 blocks and a half-size resize keep it), and QIM cancels the photo's own
content (the decoder only asks which lattice the mean sits nearest to). What changes:

- only pixels inside the edit's paste mask grown by `margin` (everything else bit-identical);
- only luma: the same change is added to R, G and B (a grayscale photo stays grayscale);
- by texture: a cell is moved the whole way onto its lattice where its pixels are busy and
  only `min_strength` of the way on flat or dark cells (where a change would show), and within
  a cell the change goes to its busier pixels first. A partly moved cell reads right as long as
  noise stays under what is left of its margin.

The decoder also does not need to know where the edit was: `cos(4 pi r)` of a cell's position
`r` in its lattice is ~1 for a marked cell whatever its bit and averages 0 on an unmarked one,
so smoothed over neighbouring cells it weights each cell's vote (an eyes-only edit is read from
the eye cells, not drowned by the rest of the face). A bit is the sign of its weighted votes;
the image is marked when at least `min_bits` of the 48 match (`false_positive_rate`: the
binomial tail of a random image, times the faces tried).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Sequence

import cv2
import numpy as np

from pipeline.faces.mesh import Mesh

GRID = 64       # cells per side of the key tables: the frame spans +-GRID/2 cells around the face's centre
KEY = 0x51A9    # the cell -> bit map and dither seed (public: this is a presence mark, not a secret)


@dataclasses.dataclass(frozen=True)
class MarkParams:
    """How the mark is laid (the `replace.mark_*` params; defaults chosen in docs/BENCHMARKS.md)."""

    cell: float = 0.11          # cell side, in units of the mesh's RMS radius (~8 px on a 240 px face box)
    step: float = 8.0           # QIM lattice step (luma levels); a cell mean moves by at most step / 2
    min_strength: float = 0.6   # flat / dark cells are moved this fraction of the way (>= 0.5 reads right)
    texture_levels: float = 6.0  # a cell whose luma std reaches this many levels is moved the whole way
    margin: float = 0.5         # paste mask grown by this x the mesh's RMS radius: the marked area
    min_bits: int = 41          # of 48: marked (false positives ~3e-7 per face tried)


@dataclasses.dataclass(frozen=True)
class Frame:
    """The face's frame: u = R(-angle) (x - centre) / unit, in photo pixels."""

    centre: tuple[float, float]
    unit: float
    angle: float

    @classmethod
    def of_mesh(cls, mesh: Mesh) -> "Frame":
        xy = mesh.xy[:468]
        c = xy.mean(0)
        unit = float(np.sqrt(((xy - c) ** 2).sum(1).mean()))
        return cls((float(c[0]), float(c[1])), unit, 0.0)

    def to_frame(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ca, sa = math.cos(self.angle), math.sin(self.angle)
        dx, dy = (xs - self.centre[0]) / self.unit, (ys - self.centre[1]) / self.unit
        return ca * dx + sa * dy, -sa * dx + ca * dy

    def window(self, shape: tuple[int, int], cells: float, cell: float) -> tuple[slice, slice]:
        """The photo window holding the frame's square of +-`cells` cells."""
        r = cells * cell * self.unit * math.sqrt(2)
        h, w = shape
        x0, x1 = max(0, int(self.centre[0] - r)), min(w, int(math.ceil(self.centre[0] + r)) + 1)
        y0, y1 = max(0, int(self.centre[1] - r)), min(h, int(math.ceil(self.centre[1] + r)) + 1)
        return slice(y0, y1), slice(x0, x1)


@functools.lru_cache(maxsize=4)
def _key_tables(n_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(bit of each cell, dither of each cell as a fraction of the step), GRID x GRID, keyed."""
    rng = np.random.default_rng(KEY)
    bits = rng.permutation(np.arange(GRID * GRID) % n_bits).reshape(GRID, GRID)
    return bits, rng.random((GRID, GRID))


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., 0] * np.float32(0.299) + rgb[..., 1] * np.float32(0.587) + rgb[..., 2] * np.float32(0.114)


@dataclasses.dataclass
class _Cells:
    """The window's pixels in cell terms: which cell each lies in and its bump weight."""

    index: np.ndarray    # (h, w) int: flat cell index into GRID x GRID, -1 outside the grid
    bump: np.ndarray     # (h, w) float32 sin^2 bump, 0 at cell edges


def _cells(frame: Frame, window: tuple[slice, slice], cell: float) -> _Cells:
    ys, xs = np.mgrid[window[0], window[1]].astype(np.float32)
    u, v = frame.to_frame(xs, ys)
    gu, gv = u / cell + GRID / 2, v / cell + GRID / 2
    iu, iv = np.floor(gu).astype(np.int32), np.floor(gv).astype(np.int32)
    inside = (iu >= 0) & (iu < GRID) & (iv >= 0) & (iv < GRID)
    bump = (np.sin(np.pi * (gu - iu)) ** 2 * np.sin(np.pi * (gv - iv)) ** 2).astype(np.float32)
    return _Cells(np.where(inside, iv * GRID + iu, -1), bump * inside)


def _texture(y: np.ndarray) -> np.ndarray:
    """Local luma activity (std over ~5 px), the mask of where a change hides."""
    mean = cv2.blur(y, (5, 5))
    return np.sqrt(np.maximum(cv2.blur(y * y, (5, 5)) - mean * mean, 0.0))


def embed(rgb: np.ndarray, mesh: Mesh, region: np.ndarray, bits: Sequence[int], p: MarkParams = MarkParams(),
          out: np.ndarray | None = None) -> np.ndarray:
    """`rgb` (H, W, 3 uint8) with the mark in the face of `mesh`, inside `region` (bool H x W:
    the edit's paste mask, alpha > 0) grown by `p.margin`. `out`: the array written into
    (default a copy). Pixels outside the grown region are `rgb`'s, bit for bit."""
    out = rgb.copy() if out is None else out
    frame = Frame.of_mesh(mesh)
    win = frame.window(rgb.shape[:2], GRID / 2, p.cell)
    grow = max(1, int(round(p.margin * frame.unit)))
    sub = region[win]
    if not sub.any():
        return out
    allowed = cv2.dilate(sub.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)) > 0
    cells = _cells(frame, win, p.cell)
    idx = np.where(allowed, cells.index, -1)
    use = idx >= 0
    if not use.any():
        return out
    pix = rgb[win].astype(np.float32)
    y = _luma(pix)
    t = _texture(y)
    k, b = idx[use], cells.bump[use]
    n = GRID * GRID
    wsum = np.bincount(k, b, n)
    full = np.bincount(cells.index[cells.index >= 0], cells.bump[cells.index >= 0], n)  # the whole cell's bump mass
    mean = np.bincount(k, b * y[use], n) / np.maximum(wsum, 1e-6)
    # a cell is marked only when the allowed area holds (nearly) all of its bump: the decoder
    # reads the whole cell, and a cell half outside the region would read half the change
    ok = (wsum > 0.9 * full) & (full > 0)
    cell_bits, dither = _key_tables(len(bits))
    target_bit = np.asarray(bits, np.float64)[cell_bits.ravel()]
    offset = (dither.ravel() + 0.5 * target_bit) * p.step
    delta = np.round((mean - offset) / p.step) * p.step + offset - mean   # to the nearest lattice point of the bit
    tex = np.bincount(k, b * t[use], n) / np.maximum(wsum, 1e-6)
    bright = np.clip(mean / 64.0, 0.0, 1.0)  # dark cells: Weber, a level shows more
    strength = np.clip(tex / p.texture_levels, p.min_strength, 1.0) * np.maximum(bright, p.min_strength)
    strength = np.maximum(strength, p.min_strength)
    delta = np.where(ok, delta * strength, 0.0)
    # spread each cell's change over its pixels, busier ones first, keeping its bump-weighted mean
    shape = b * (0.5 + np.minimum(t[use], 2 * p.texture_levels) / p.texture_levels)
    norm = np.bincount(k, b * shape, n)
    change = np.zeros(y.shape, np.float32)
    change[use] = (delta[k] * shape * wsum[k] / np.maximum(norm[k], 1e-6)).astype(np.float32)
    marked = np.clip(np.rint(pix + change[..., None]), 0, 255).astype(np.uint8)
    out[win] = np.where(use[..., None], marked, rgb[win])
    return out


@dataclasses.dataclass(frozen=True)
class Reading:
    """What the decoder read in one face."""

    bits: tuple[int, ...]
    matches: int          # of len(bits) equal to the message
    cells: float          # how many cells looked marked (sum of their weights)


def _read(y: np.ndarray, window: tuple[slice, slice], frame: Frame, n_bits: int,
          p: MarkParams) -> tuple[np.ndarray, float]:
    """(weighted vote per bit, how many cells look marked) for one placement of the frame."""
    cells = _cells(frame, window, p.cell)
    use = cells.index >= 0
    n = GRID * GRID
    k, b = cells.index[use], cells.bump[use]
    wsum = np.bincount(k, b, n)
    mean = np.bincount(k, b * y[use], n) / np.maximum(wsum, 1e-6)
    cell_bits, dither = _key_tables(n_bits)
    r = (mean / p.step - dither.ravel()) % 1.0
    seen = wsum > 0.25 * wsum.max() if wsum.any() else wsum > 0
    vote = np.where(seen, np.cos(2 * np.pi * r), 0.0)            # +1: bit 0, -1: bit 1
    marked = np.where(seen, np.cos(4 * np.pi * r), 0.0).reshape(GRID, GRID).astype(np.float32)
    count = np.maximum(cv2.blur(seen.reshape(GRID, GRID).astype(np.float32), (5, 5)), 1 / 25)
    weight = np.clip(cv2.blur(marked, (5, 5)) / count, 0.0, 1.0).ravel() * seen
    return np.bincount(cell_bits.ravel(), weight * vote, n_bits), float(weight.sum())


SHIFTS = (-0.15, 0.0, 0.15)   # cells: the decoder's search around the mesh's frame
SCALES = (0.995, 1.0, 1.005)


def decode(rgb: np.ndarray, mesh: Mesh, message: Sequence[int], p: MarkParams = MarkParams()) -> Reading:
    """The message bits read from the face of `mesh` (see the module doc). The mesh of a
    re-saved or resized copy places the frame within ~0.1 cell and ~0.3 % of scale of where the
    encoder had it; the decoder tries placements around it and keeps the one whose bits are
    read most clearly (the sum of |votes|: blind to the message, so choosing by it does not
    raise the chance that a random image matches the message)."""
    base = Frame.of_mesh(mesh)
    window = base.window(rgb.shape[:2], GRID / 2 + 1, p.cell)
    y = _luma(rgb[window].astype(np.float32))
    step = p.cell * base.unit
    reads = [_read(y, window, Frame((base.centre[0] + dx * step, base.centre[1] + dy * step), base.unit * s, 0.0),
                   len(message), p) for dx in SHIFTS for dy in SHIFTS for s in SCALES]
    votes, cells = max(reads, key=lambda r: float(np.abs(r[0]).sum()))
    got = tuple(int(v < 0) for v in votes)
    return Reading(got, int(sum(g == int(m) % 2 for g, m in zip(got, message))), cells)


def false_positive_rate(n_bits: int, min_bits: int, tries: int = 1) -> float:
    """Chance that a random image matches >= min_bits of n_bits in one of `tries` faces."""
    tail = sum(math.comb(n_bits, k) for k in range(min_bits, n_bits + 1)) / 2.0 ** n_bits
    return 1.0 - (1.0 - tail) ** tries
