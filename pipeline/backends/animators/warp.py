"""Piecewise-affine image warp driven by face-mesh landmarks, and the mouth and eye details a
warp cannot invent (paper B.2's expressive variants, offline).

The warp is backward: every output pixel samples the source where the piecewise-linear
interpolation (a Delaunay triangulation of the moved landmarks plus fixed anchors) says it came
from. Anchors on the image border and on a ring outside the face have zero displacement, so
everything outside the ring (hair, neck, background) is copied bit for bit.
"""
from __future__ import annotations

import cv2
import numpy as np
from pipeline.faces import mesh as fm
from pipeline.faces.displacement import dense_displacement

GRID = 4  # displacement computed every GRID pixels, then interpolated (smooth, ~20x cheaper)


def anchors(src_xy: np.ndarray, width: int, height: int, ring_scale: float = 1.6, n_border: int = 16) -> np.ndarray:
    """Fixed points: the image border and a ring around the face oval, scaled from its centre."""
    oval = src_xy[list(fm.regions()["face_oval"])]
    centre = oval.mean(0)
    ring = centre + (oval - centre) * ring_scale
    t = np.linspace(0, 1, n_border, endpoint=False)
    w, h = width - 1, height - 1
    border = np.concatenate([np.stack([t * w, np.zeros_like(t)], 1), np.stack([np.full_like(t, w), t * h], 1),
                             np.stack([w - t * w, np.full_like(t, h)], 1), np.stack([np.zeros_like(t), h - t * h], 1)])
    return np.concatenate([ring, border])


def warp(image: np.ndarray, src_xy: np.ndarray, dst_xy: np.ndarray, ring_scale: float = 1.6) -> tuple[np.ndarray, np.ndarray]:
    """(warped image, bool mask of the pixels that moved). src/dst: (N, 2) landmark positions."""
    h, w = image.shape[:2]
    fixed = anchors(src_xy, w, h, ring_scale)
    points = np.concatenate([dst_xy, fixed])
    shift = np.concatenate([src_xy - dst_xy, np.zeros_like(fixed)])
    dense = dense_displacement(points, shift, h, w, GRID)
    moved = np.abs(dense).max(-1) > 1e-3
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    out = cv2.remap(image, xx + dense[..., 0], yy + dense[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    out[~moved] = image[~moved]
    return out, moved


def _feathered(mask: np.ndarray, px: float) -> np.ndarray:
    k = max(3, int(px) | 1)
    return cv2.GaussianBlur(mask.astype(np.float32), (k, k), px / 2)[..., None]


def paint_mouth(image: np.ndarray, dst_xy: np.ndarray, opening: float, interocular: float) -> np.ndarray:
    """An opened mouth: a dark cavity inside the inner-lip loop, upper teeth as a light band
    under the upper lip, shaded darker towards the corners. `opening` = inner-lip gap over the
    interocular distance."""
    _, inner = fm.lip_loops()
    poly = np.round(dst_xy[list(inner)]).astype(np.int32)
    h, w = image.shape[:2]
    cavity = np.zeros((h, w), np.uint8)
    cv2.fillPoly(cavity, [poly], 1)
    if cavity.sum() == 0:
        return image
    x0, x1 = poly[:, 0].min(), poly[:, 0].max()
    top = dst_xy[fm.LIP_UPPER_INNER, 1]
    gap = opening * interocular
    teeth = np.zeros_like(cavity)
    band = int(round(min(0.3 * gap, 0.06 * interocular)))
    yy, xx = np.mgrid[0:h, 0:w]
    mid = (dst_xy[fm.MOUTH_R, 1] + dst_xy[fm.MOUTH_L, 1]) / 2
    upper_pts = dst_xy[[i for i in inner if dst_xy[i, 1] <= max(mid, top)]]
    order = np.argsort(upper_pts[:, 0])
    upper = np.interp(xx, upper_pts[order, 0], upper_pts[order, 1])
    teeth[(cavity == 1) & (yy < upper + band + 1)] = 1
    centre = (x0 + x1) / 2
    across = np.clip(1 - np.abs(xx - centre) / max((x1 - x0) / 2, 1), 0, 1)
    colour = np.zeros((h, w, 3), np.float32)
    colour[:] = (78, 26, 30)  # tongue and throat in shadow
    shade = (0.7 + 0.3 * across)[..., None]
    depth = np.clip((yy - top) / max(gap, 1.0), 0, 1)[..., None]  # darker towards the throat
    colour = np.where(teeth[..., None] == 1, np.array([212, 200, 184], np.float32) * shade,
                      colour * (0.45 + 0.4 * shade) * (1.0 - 0.35 * depth))
    alpha = _feathered(cavity, max(2.0, interocular / 60))
    return (image * (1 - alpha) + colour * alpha).clip(0, 255).astype(np.uint8)


def paint_lashes(image: np.ndarray, dst_xy: np.ndarray, interocular: float, sides: tuple[str, ...],
                 src_xy: np.ndarray | None = None) -> np.ndarray:
    """A closed eye: the lid skin over the eye's opening and a soft dark lash line along the
    lid's lower edge. The warp lays the upper lid on the lower one, stretching the lid margin's
    lashes and the socket's shadow over the eye: where the eye was open (`src_xy`, the source's
    landmarks; else the warped opening) is painted with the skin just below and above the eye
    (#31: a darkened smear read as an open eye, to the eye and to the face mesh)."""
    out = image.astype(np.float32)
    thick = max(2, int(round(interocular / 45)))
    reg = fm.regions()
    h, w = image.shape[:2]
    for side in sides:
        loop = np.array(reg[f"{side}_eye"])
        pts = dst_xy[loop]
        was = (src_xy if src_xy is not None else dst_xy)[loop]
        opening = np.zeros((h, w), np.uint8)
        cv2.fillPoly(opening, [np.round(was).astype(np.int32)], 1)
        cv2.fillPoly(opening, [np.round(pts).astype(np.int32)], 1)
        pad = max(3, int(interocular / 30))
        grown = cv2.dilate(opening, np.ones((2 * pad + 1, 2 * pad + 1), np.uint8))
        # skin: a band under the lower lid and one above the lid crease, outside the eye
        band = np.zeros_like(opening)
        for shift in (0.16 * interocular, -0.14 * interocular):
            cv2.fillPoly(band, [np.round(was + [0, shift]).astype(np.int32)], 1)
        band = (band == 1) & (cv2.dilate(grown, np.ones((pad + 1, pad + 1), np.uint8)) == 0)
        if band.any():
            skin = np.median(out[band].reshape(-1, 3), axis=0)
            cover = _feathered(grown, 2.0 * pad)
            out = out * (1 - cover) + skin * cover
        lower = pts[pts[:, 1] >= np.median(pts[:, 1])]
        lower = lower[np.argsort(lower[:, 0])]
        line = np.zeros((h, w), np.uint8)
        cv2.polylines(line, [np.round(lower).astype(np.int32)], False, 1, thick, cv2.LINE_AA)
        alpha = _feathered(line, thick) * 0.7
        out = out * (1 - alpha) + np.array([35, 28, 26], np.float32) * alpha
    return out.clip(0, 255).astype(np.uint8)
