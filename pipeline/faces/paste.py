"""THE paste-back: putting a new face into an image under a feathered mask.

One home for every "new pixels inside a face mask, old pixels exactly outside" in the project:
the photo tool (a 1024 px crop back into a full-resolution photo through the inverse of
ingest's crop affine), the evaluation's paste / Poisson / classical baselines (same frame, no
crop) and the relighting stage (relit face and hair over the original).

The alpha is feathered *inwards* (0 outside the mask, rising to 1 within `feather_px`), so a
pixel outside the mask keeps its exact value whatever the model did to its crop. Colour matching
at the rim removes the low-frequency colour step a model or another photo's face brings along:
the mean difference between old and new on a ring just inside the mask edge, smoothed, is added
to the new face before blending, fading to nothing towards the face's centre.
"""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.faces.crop import crop_matrix
from pipeline.faces.geometry import SquareCrop


def _smoothstep(dist: np.ndarray, px: float) -> np.ndarray:
    t = np.clip(dist / px, 0.0, 1.0)
    return (t * t * (3 - 2 * t)).astype(np.float32)


def inside_distance(mask: np.ndarray) -> np.ndarray:
    """Distance of each pixel of `mask` to the nearest pixel outside it (0 outside)."""
    return cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 5)


def feather(mask: np.ndarray, px: float) -> np.ndarray:
    """Float alpha in [0, 1]: 0 everywhere outside `mask`, rising smoothly to 1 within `px`
    pixels inside its edge (a smoothstep of the distance to the nearest outside pixel)."""
    if px <= 0:
        return mask.astype(np.float32)
    return _smoothstep(inside_distance(mask), px)


LOW_PASS_SIGMA = 8.0  # px: `low_pass` blurs at the scale where its sigma is this


def low_pass(img: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of `sigma` px computed at the scale where sigma is `LOW_PASS_SIGMA`
    (area-downscaled, blurred, bilinear back), as the classical baseline's shading ratio is:
    a blur this wide keeps no detail that scale would lose, for a fraction of the work."""
    scale = max(1.0, sigma / LOW_PASS_SIGMA)
    if scale == 1.0:
        return cv2.GaussianBlur(img, (0, 0), sigma)
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(8, round(w / scale)), max(8, round(h / scale))), interpolation=cv2.INTER_AREA)
    return cv2.resize(cv2.GaussianBlur(small, (0, 0), sigma / scale), (w, h), interpolation=cv2.INTER_LINEAR)


def erode(mask: np.ndarray, px: int) -> np.ndarray:
    """Bool mask shrunk by an ellipse of diameter `px` (no-op at 0). Computed on the mask's
    bounding box grown by `px`: the same pixels as eroding the whole frame (OpenCV's erosion
    border is neutral, and the kernel's reach from any mask pixel stays inside that box), at
    the box's cost (a 32 px ellipse over a whole 1024 px crop is ~60 ms on one core)."""
    if px <= 0:
        return mask.astype(bool)
    box = mask_window(mask, px)
    out = np.zeros(mask.shape, bool)
    if box is None:
        return out
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (px, px))
    out[box] = cv2.erode(mask[box].astype(np.uint8), kernel).astype(bool)
    return out


def composite(image: np.ndarray, new: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """`new` inside the mask, `image` outside; exactly `image` wherever alpha is 0 (only the
    bounding box of alpha > 0 is touched)."""
    out = image.copy()
    ys, xs = np.nonzero(alpha > 0)
    if len(ys) == 0:
        return out
    box = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    a = alpha[box][..., None]
    blend = np.rint(image[box].astype(np.float32) * (1 - a) + new[box].astype(np.float32) * a).astype(np.uint8)
    out[box] = np.where(a > 0, blend, image[box])
    return out


def rim_colour_match(image: np.ndarray, new: np.ndarray, mask: np.ndarray, rim_px: int) -> np.ndarray:
    """`new` with the smoothed colour difference (image - new) on the ring of `rim_px` inside
    the mask edge added, fading towards the mask's centre: the seam's colour step goes, the
    new face's own detail and shading stay. The ring and the fade come from one distance
    transform, the smoothing from `low_pass` (it is a sigma of 1.5 x rim_px). The shift is
    added on the mask's bounding box only (the blurs still see the whole array): beyond that
    box `new` is returned as it came, since a paste reads it under the mask alone."""
    if rim_px <= 0 or not mask.any():
        return new
    dist = inside_distance(mask)
    ring = mask & (dist <= rim_px)
    if ring.sum() < 8:
        return new
    diff = (image.astype(np.float32) - new.astype(np.float32)) * ring[..., None]
    sigma = rim_sigma(rim_px)
    box = mask_window(mask, 0)
    w = low_pass(ring.astype(np.float32), sigma)[box]
    smooth = low_pass(diff, sigma)[box] / np.maximum(w, 1e-3)[..., None]
    fallback = diff[ring].mean(0)  # where the blur of the ring is thin (deep inside), its mean
    trust = np.clip(w / 0.2, 0, 1)[..., None]
    shift = trust * smooth + (1 - trust) * fallback
    fade = 1.0 - _smoothstep(dist[box], 4 * rim_px)[..., None] * 0.5  # full at the rim, half in the centre
    out = new.copy()
    out[box] = np.clip(new[box].astype(np.float32) + shift * fade, 0, 255).astype(np.uint8)
    return out


POISSON_SOLVERS = ("opencv", "dst")


def poisson(fg: np.ndarray, bg: np.ndarray, mask: np.ndarray, solver: str = "opencv") -> np.ndarray:
    """seamlessClone of fg into bg inside mask; only pixels inside the mask change. It runs on
    the mask's bounding box grown by 2 px: seamlessClone reads fg under the mask only and bg on
    the mask's bounding box, so the result is the whole frame's, bit for bit, without handling
    the whole frame around it. `solver`: "opencv" (cv2.seamlessClone) or "dst" (the same
    equations solved by scipy's type-I DST, `_clone_dst`: within 2 levels of OpenCV's, ~99.9 %
    of pixels within 1, at about half its cost; the photo tool's `replace.blend: poisson_dst`)."""
    if solver not in POISSON_SOLVERS:
        raise ValueError(f"poisson solver {solver!r}: expected one of {POISSON_SOLVERS}")
    out = bg.copy()
    box = mask_window(mask, 2)
    if box is not None:
        out[box] = _poisson_box(fg[box], bg[box], mask[box], solver)
    return out


def _poisson_box(fg: np.ndarray, bg: np.ndarray, mask: np.ndarray, solver: str = "opencv") -> np.ndarray:
    m = mask.astype(np.uint8) * 255
    m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = 0  # seamlessClone needs the mask off the border
    ys, xs = np.nonzero(m)
    if len(xs) == 0:
        return bg.copy()
    x0, x1, y0, y1 = xs.min(), xs.max(), ys.min(), ys.max()
    # OpenCV centres the mask's bounding box on `center` with integer halves: an even extent
    # makes that exact (an odd one shifts the clone by a pixel).
    if (x1 - x0) % 2:
        m[:, x1] = 0
        x1 -= 1
    if (y1 - y0) % 2:
        m[y1, :] = 0
        y1 -= 1
    if solver == "dst":
        out = bg.copy()
        ys, xs = np.nonzero(m)  # seamlessClone's domain: the bounding rectangle of what is left
        rect = np.s_[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        out[rect] = _clone_dst(fg[rect], bg[rect], m[rect])
    else:
        center = (int((x0 + x1) // 2), int((y0 + y1) // 2))
        # OpenCV 4.11 overwrites the mask passed to seamlessClone: give it a copy.
        out = cv2.seamlessClone(np.ascontiguousarray(fg), np.ascontiguousarray(bg), m.copy(), center, cv2.NORMAL_CLONE)
    keep = m == 0
    out[keep] = bg[keep]
    return out


def _forward_gradients(img: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = cv2.copyMakeBorder(img, 1, 1, 1, 1, cv2.BORDER_REFLECT_101).astype(np.float32)
    return p[1:-1, 2:] - p[1:-1, 1:-1], p[2:, 1:-1] - p[1:-1, 1:-1]


def _clone_dst(fg: np.ndarray, bg: np.ndarray, m: np.ndarray) -> np.ndarray:
    """OpenCV's NORMAL_CLONE on one rectangle (the mask's bounding box), its formulation step by
    step: forward-difference gradients (filter2D's reflect-101 border) of fg under the mask
    eroded by 3 px and of bg elsewhere, their backward-difference divergence, the Poisson
    equation solved inside the rectangle with bg on its border as the boundary, by a type-I DST
    (OpenCV builds each DST from a DFT of twice the size), the result truncated to uint8 as
    OpenCV's solver does (not rounded)."""
    from scipy import fft

    patch = np.where(m[..., None] > 0, fg, 0).astype(np.uint8)
    inside = cv2.erode(m, np.ones((3, 3), np.uint8), iterations=3, borderType=cv2.BORDER_CONSTANT,
                       borderValue=0).astype(np.float32)[..., None] / 255.0
    pgx, pgy = _forward_gradients(patch)
    dgx, dgy = _forward_gradients(bg)
    gx = cv2.copyMakeBorder(pgx * inside + dgx * (1 - inside), 1, 1, 1, 1, cv2.BORDER_REFLECT_101)
    gy = cv2.copyMakeBorder(pgy * inside + dgy * (1 - inside), 1, 1, 1, 1, cv2.BORDER_REFLECT_101)
    lap = (gx[1:-1, 1:-1] - gx[1:-1, :-2]) + (gy[1:-1, 1:-1] - gy[:-2, 1:-1])
    b = bg.astype(np.float32)
    rhs = lap[1:-1, 1:-1]
    rhs[0] -= b[0, 1:-1]
    rhs[-1] -= b[-1, 1:-1]
    rhs[:, 0] -= b[1:-1, 0]
    rhs[:, -1] -= b[1:-1, -1]
    h, w = rhs.shape[:2]
    eig = (2 * np.cos(np.pi * np.arange(1, h + 1) / (h + 1)) - 2)[:, None] + (2 * np.cos(np.pi * np.arange(1, w + 1) / (w + 1)) - 2)
    b[1:-1, 1:-1] = fft.idstn(fft.dstn(rhs, type=1, axes=(0, 1)) / eig[..., None].astype(np.float32), type=1, axes=(0, 1))
    return np.clip(b, 0, 255).astype(np.uint8)


def rim_sigma(rim_px: int) -> float:
    """The blur of `rim_colour_match`'s ring (px)."""
    return max(2.0, 1.5 * rim_px)


def mask_window(mask: np.ndarray, margin: int) -> tuple[slice, slice] | None:
    """The bounding box of `mask` grown by `margin` (clipped to the array), or None when empty."""
    ys, xs = np.nonzero(mask.any(1))[0], np.nonzero(mask.any(0))[0]
    if len(ys) == 0:
        return None
    h, w = mask.shape
    return (slice(max(0, ys[0] - margin), min(h, ys[-1] + 1 + margin)),
            slice(max(0, xs[0] - margin), min(w, xs[-1] + 1 + margin)))


def blend(image: np.ndarray, new: np.ndarray, mask: np.ndarray, feather_px: float, rim_px: int = 0,
          erode_px: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(image with `new` pasted in the same frame, alpha used). The mask is eroded by
    `erode_px`, colour-matched at its rim and feathered inwards. All of it runs on the mask's
    bounding box grown by the rim blur's reach (OpenCV's Gaussian kernel: 4 sigma, and
    `low_pass`'s resampling), where it gives what it gives on the whole frame within a level
    (outside the mask every term is zero; only `low_pass`'s grid moves with the box)."""
    out, alpha = image.copy(), np.zeros(mask.shape, np.float32)
    sigma = rim_sigma(rim_px)  # the reach of `low_pass`: its kernel (4 sigma) and its resampling
    box = mask_window(mask, int(np.ceil(4 * sigma + 2 * sigma / LOW_PASS_SIGMA)) + 2 if rim_px > 0 else 2)
    if box is None:
        return out, alpha
    m = erode(mask[box], erode_px)
    new_box = rim_colour_match(image[box], new[box], m, rim_px)
    alpha[box] = feather(m, feather_px)
    out[box] = composite(image[box], new_box, alpha[box])
    return out, alpha


def paste_back(photo: np.ndarray, crop: SquareCrop, new_crop: np.ndarray, mask_crop: np.ndarray,
               feather_px: float, rim_px: int = 0, erode_px: int = 0,
               out: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(photo with `new_crop` pasted, full-resolution alpha). `new_crop` / `mask_crop` live in
    the square crop `crop` resized to their side (ingest's `extract_crop`); they are mapped back
    by the inverse of `crop_matrix` at the photo's resolution, and only the crop's window of the
    photo is touched. Widths are in crop pixels and scale with the crop. `out`: the array the
    result is written into (`photo` itself for a caller that owns it: no copy of a 12 MP photo,
    ~0.05 s on one core with its page faults); default a copy of `photo`."""
    size = new_crop.shape[0]
    h, w = photo.shape[:2]
    x0, y0 = max(0, crop.x0), max(0, crop.y0)
    x1, y1 = min(w, crop.x0 + crop.size), min(h, crop.y0 + crop.size)
    out = photo.copy() if out is None else out
    if x1 <= x0 or y1 <= y0:
        return out, np.zeros((h, w), np.float32)
    m = crop_matrix(crop, size)
    m[:, 2] += m[:, :2] @ np.array([x0, y0], np.float64)  # window origin
    win = (x1 - x0, y1 - y0)
    # the crop was enlarged from the photo: area-average on the way back
    # (warpAffine has no area filter: resize, then shift by the sub-pixel offset)
    if size > crop.size:
        new_w = cv2.resize(new_crop, (crop.size, crop.size), interpolation=cv2.INTER_AREA)
        mask_w = cv2.resize(mask_crop.astype(np.float32), (crop.size, crop.size), interpolation=cv2.INTER_AREA)
        ox, oy = x0 - crop.x0, y0 - crop.y0
        new_win = new_w[oy : oy + win[1], ox : ox + win[0]]
        mask_win = mask_w[oy : oy + win[1], ox : ox + win[0]] > 0.5
    else:
        # m takes window pixels to crop pixels: sample the crop there (WARP_INVERSE_MAP)
        new_win = cv2.warpAffine(new_crop, m, win, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                                 borderMode=cv2.BORDER_REPLICATE)
        mask_win = cv2.warpAffine(mask_crop.astype(np.uint8), m, win, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP,
                                  borderValue=0).astype(bool)
    scale = crop.size / float(size)
    out_win, alpha_win = blend(photo[y0:y1, x0:x1], new_win, mask_win, feather_px * scale,
                               int(round(rim_px * scale)), int(round(erode_px * scale)))
    out[y0:y1, x0:x1] = out_win  # the window was read (blend) before it is written
    alpha = np.zeros((h, w), np.float32)
    alpha[y0:y1, x0:x1] = alpha_win
    return out, alpha
