"""The classical face swap, in the spirit of Bitouk et al. 2008 ("Face swapping: automatically
replacing faces in photographs"): align, adjust colour and lighting, blend. The photo tool's
offline method (facereplace/methods/classical.py) and evaluation's baselines
(eval/baselines/classical.py, eval/baselines/paste.py) are made of these steps:

1. align the driving face to the source by a similarity on the face-mesh landmarks
   (`align_faces`: `five` uses the MTCNN-order five points, `mesh` all 468 face-mesh points,
   robustly fitted, so it averages expression differences out), or, for the photo tool, by the
   two face meshes themselves (`align_by_mesh`: piecewise affine over the 468 points, so a head
   turned the other way lands on the source's geometry, which no similarity can do); the pasted
   region is the driving face oval, eroded a little so no background of the driving image comes along;
2. colour: match the mean and spread of the driving face to the source face in Lab
   (Reinhard et al. 2001), skin region against skin region;
3. lighting: multiply by the ratio of the two faces' low-frequency luminance (a smooth shading
   ratio; Bitouk relight with spherical harmonics, this keeps their idea without a 3D model);
4. blend with a feathered alpha (distance to the mask edge), as their boundary blending, or a
   Poisson blend, through the project's one paste-back (pipeline/faces/paste.py).
"""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.faces.displacement import dense_displacement
from pipeline.faces.geometry import similarity
from pipeline.faces.identity import face_mesh
from pipeline.faces.mesh import Mesh, head_pose
from pipeline.faces.mesh_masks import oval_mask
from pipeline.faces.paste import mask_window
from pipeline.rejection import Reject

ERODE = 0.08  # of the interocular distance: keeps the driving background out of the paste


def landmark_set(m: Mesh, kind: str) -> np.ndarray:
    if kind == "five":
        return m.five_points()
    if kind == "mesh":
        return m.xy[:468]
    raise ValueError(f"align_landmarks {kind!r}: expected 'five' or 'mesh'")


def align_faces(source: np.ndarray, driving: np.ndarray, landmarks: str) -> tuple[np.ndarray, np.ndarray, Mesh] | None:
    """(driving warped into the source frame, warped inner-face mask (bool), source mesh), or
    None when either face is not found (step 1)."""
    ms, md = face_mesh(source), face_mesh(driving)
    if ms is None or md is None:
        return None
    h, w = source.shape[:2]
    m = similarity(landmark_set(md, landmarks), landmark_set(ms, landmarks), robust=True)
    warped = cv2.warpAffine(driving, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    mask = oval_mask(md, ERODE).astype(np.uint8)
    mask = cv2.warpAffine(mask, m, (w, h), flags=cv2.INTER_NEAREST, borderValue=0).astype(bool)
    return warped, mask, ms


GRID = 8  # px: the piecewise-affine map is interpolated on this grid, then resized (smooth at this scale)
RING = 1.6  # radius of the ring of fixed points around the face, in face radii: the warp fades into the similarity


def align_by_mesh(source: np.ndarray, driving: np.ndarray, max_pose_difference: float
                  ) -> tuple[np.ndarray, np.ndarray, Mesh] | None:
    """Like `align_faces`, but each of the driving face's 468 mesh points lands on the source's
    own (a piecewise-affine map over their triangulation in the source frame), on top of the
    robust similarity that places the face; away from the face the map fades back to that
    similarity. None when either face is not found; `Reject("pose_too_far")` when the two
    heads' yaw, pitch or roll differ by more than `max_pose_difference` degrees (what a 2D warp
    of a visible face cannot turn into the other)."""
    ms, md = face_mesh(source), face_mesh(driving)
    if ms is None or md is None:
        return None
    pose_s, pose_d = head_pose(ms), head_pose(md)
    worst = max(abs(a - b) for a, b in zip(pose_s, pose_d))
    if worst > max_pose_difference:
        raise Reject("pose_too_far", "PHOTO's face is at yaw/pitch/roll {:.0f}/{:.0f}/{:.0f} deg, REF's at {:.0f}/{:.0f}/{:.0f}: "
                     "{:.0f} deg apart, over replace.max_pose_difference {:.0f}".format(*pose_s, *pose_d, worst,
                                                                                        max_pose_difference))
    h, w = source.shape[:2]
    dst, src = ms.xy[:468].astype(np.float64), md.xy[:468].astype(np.float64)
    m = similarity(src, dst, robust=True)  # driving -> source
    inv = cv2.invertAffineTransform(m)
    placed = dst @ inv[:, :2].T + inv[:, 2]  # where the similarity alone would read each source point
    centre = dst.mean(0)
    radius = RING * np.linalg.norm(dst - centre, axis=1).max()
    angles = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    ring = centre + radius * np.stack([np.cos(angles), np.sin(angles)], 1)
    extra = dense_displacement(np.concatenate([dst, ring]), np.concatenate([src - placed, np.zeros_like(ring)]), h, w, GRID)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    map_x = inv[0, 0] * xx + inv[0, 1] * yy + inv[0, 2] + extra[..., 0]
    map_y = inv[1, 0] * xx + inv[1, 1] * yy + inv[1, 2] + extra[..., 1]
    warped = cv2.remap(driving, map_x.astype(np.float32), map_y.astype(np.float32), cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REFLECT)
    return warped, oval_mask(ms, ERODE), ms


def reinhard(fg: np.ndarray, bg: np.ndarray, mask_fg: np.ndarray, mask_bg: np.ndarray) -> np.ndarray:
    """fg with its Lab statistics inside mask_fg moved to bg's inside mask_bg."""
    a = cv2.cvtColor(fg, cv2.COLOR_RGB2LAB).astype(np.float32)
    b = cv2.cvtColor(bg, cv2.COLOR_RGB2LAB).astype(np.float32)
    ma, sa = a[mask_fg].mean(0), a[mask_fg].std(0) + 1e-3
    mb, sb = b[mask_bg].mean(0), b[mask_bg].std(0) + 1e-3
    out = (a - ma) * (sb / sa) + mb
    return cv2.cvtColor(np.clip(out, 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)


def shading_scale(sigma: float) -> float:
    """The downscale `shading_ratio` works at: where its blur's sigma is ~8 px."""
    return max(1.0, sigma / 8.0)


def shading_ratio(fg: np.ndarray, bg: np.ndarray, mask: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth luminance ratio bg/fg over the face (masked, normalised blur), (H, W, 1). Low
    frequencies only, so it is computed at a scale where sigma is ~8 px and upsampled."""
    h, w = mask.shape
    scale = shading_scale(sigma)
    small = (max(8, int(round(w / scale))), max(8, int(round(h / scale))))
    m = cv2.resize(mask.astype(np.float32), small, interpolation=cv2.INTER_AREA)

    def smooth_lum(img: np.ndarray) -> np.ndarray:
        lum = cv2.resize(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY).astype(np.float32) + 1.0, small, interpolation=cv2.INTER_AREA)
        return cv2.GaussianBlur(lum * m, (0, 0), sigma / scale) / (cv2.GaussianBlur(m, (0, 0), sigma / scale) + 1e-6)

    ratio = np.clip(smooth_lum(bg) / np.maximum(smooth_lum(fg), 1e-3), 0.5, 2.0)
    return cv2.resize(ratio, (w, h), interpolation=cv2.INTER_LINEAR)[..., None]


def transfer_appearance(warped: np.ndarray, source: np.ndarray, mask: np.ndarray, ms: Mesh) -> np.ndarray:
    """Steps 2 and 3: the aligned driving face with the source face's colour statistics and
    low-frequency shading.

    Only pixels under `mask` are ever read (the feathered composite and seamlessClone take the
    foreground under the mask alone), so the transfer runs on the mask's bounding box grown by
    one cell of the shading ratio's grid (what that grid's area-averaging reads of the result);
    there it is what it would be on the whole frame, bit for bit (statistics over the same
    pixels; the ratio still on the frame's grid); beyond that box the result is `warped`."""
    src_face = oval_mask(ms, 0.08) & mask
    if src_face.sum() < 16:
        src_face = mask
    sigma = ms.interocular * 0.5
    fg = warped.copy()
    box = mask_window(mask, int(np.ceil(shading_scale(sigma))) + 2)
    if box is None:
        return fg
    fg[box] = reinhard(warped[box], source[box], mask[box], src_face[box])
    ratio = shading_ratio(fg, source, src_face, sigma)
    fg[box] = np.clip(fg[box].astype(np.float32) * ratio[box] + 0.5, 0, 255).astype(np.uint8)
    return fg
