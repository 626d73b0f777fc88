"""Surface normals of a head from its face mesh and its face-and-hair mask.

The face: the 468 mesh points (pipeline/faces/mesh.py) are triangulated in the image plane
(Delaunay), each vertex gets the area-weighted mean normal of its triangles in 3D, and the
normals are interpolated barycentrically over the triangles, i.e. the mesh is rasterised with
smooth (Gouraud) normals. Hair, ears and whatever the mesh does not cover get the normals of an
ellipsoid fitted to the mask, which is what a head roughly is; the two are blended over a band
at the mesh's border so no seam shows in the shading.

Normals are in the camera frame of `pipeline.backends.relighters.envmaps`: x image right, y up, z
towards the camera.
"""
from __future__ import annotations

import cv2
import numpy as np

from pipeline.faces.mesh import Mesh

FACE_POINTS = 468  # the iris points are not part of the surface


def _camera_points(mesh: Mesh, scale: float) -> np.ndarray:
    """Mesh points in the camera frame (x right, y up, z towards the camera), in output pixels."""
    p = mesh.points[:FACE_POINTS] * scale
    return np.stack([p[:, 0], -p[:, 1], -p[:, 2]], axis=1)


def vertex_normals(points: np.ndarray, triangles: np.ndarray) -> np.ndarray:
    """Area-weighted vertex normals (N, 3), oriented towards the camera (+z)."""
    a, b, c = (points[triangles[:, k]] for k in range(3))
    face = np.cross(b - a, c - a)  # length = 2 x area: area weighting for free
    face[face[:, 2] < 0] *= -1
    normals = np.zeros_like(points)
    for k in range(3):
        np.add.at(normals, triangles[:, k], face)
    norm = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.maximum(norm, 1e-12)


def mesh_normals(mesh: Mesh, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Rasterised smooth normals (size, size, 3) of the face mesh on a size x size grid over the
    image, and the bool coverage of the triangulation."""
    from scipy.spatial import Delaunay

    scale = size / max(mesh.width, mesh.height)
    pts = _camera_points(mesh, scale)
    xy = mesh.points[:FACE_POINTS, :2] * scale
    tri = Delaunay(xy)
    normals = vertex_normals(pts, tri.simplices)
    gy, gx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    grid = np.stack([gx.ravel(), gy.ravel()], axis=1)
    simplex = tri.find_simplex(grid)
    inside = simplex >= 0
    out = np.zeros((size * size, 3))
    s = simplex[inside]
    trans = tri.transform[s]
    bary2 = np.einsum("nij,nj->ni", trans[:, :2], grid[inside] - trans[:, 2])
    bary = np.concatenate([bary2, 1 - bary2.sum(1, keepdims=True)], axis=1)
    out[inside] = np.einsum("ni,nic->nc", bary, normals[tri.simplices[s]])
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.reshape(size, size, 3), inside.reshape(size, size)


def ellipsoid_normals(mask: np.ndarray, rim_z: float = 0.15) -> np.ndarray:
    """Normals of an ellipsoid whose outline is the box of `mask` (size, size): the fallback
    for hair and the parts the mesh does not cover. Outside the ellipse the normal lies in the
    image plane (tilted by `rim_z` towards the camera)."""
    size = mask.shape[0]
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        out = np.zeros((size, size, 3))
        out[..., 2] = 1
        return out
    cx, cy = (xs.min() + xs.max() + 1) / 2, (ys.min() + ys.max() + 1) / 2
    ax, ay = max((xs.max() - xs.min() + 1) / 2, 1.0), max((ys.max() - ys.min() + 1) / 2, 1.0)
    gy, gx = np.mgrid[0:size, 0:size].astype(np.float64) + 0.5
    u, v = (gx - cx) / ax, -(gy - cy) / ay
    r2 = u * u + v * v
    z = np.sqrt(np.clip(1 - r2, 0, None))
    flat = r2 > (1 - rim_z**2)
    scale = np.sqrt(np.maximum(r2, 1e-12))
    u = np.where(flat, u / scale * np.sqrt(1 - rim_z**2), u)
    v = np.where(flat, v / scale * np.sqrt(1 - rim_z**2), v)
    z = np.where(flat, rim_z, z)
    n = np.stack([u, v, z], axis=-1)
    return n / np.linalg.norm(n, axis=-1, keepdims=True)


def head_normals(mesh: Mesh, mask: np.ndarray, blend_px: float = 6.0, smooth_px: float = 1.5,
                 extend_px: float = 24.0) -> tuple[np.ndarray, np.ndarray]:
    """Normals (size, size, 3) on the grid of `mask` (size, size, over the square image): the
    face mesh where it covers, its normals carried on past the mesh's border (normalized
    convolution) and faded into the mask's ellipsoid over `extend_px` pixels, blended over
    `blend_px` pixels inside the border and lightly smoothed (tessellation facets); and the bool
    coverage of the face mesh (where skin, not hair, is).

    Why extended: the mesh ends below the hairline, and the strip of forehead above it (and the
    cheeks past the oval) would otherwise jump from the mesh's normals to the ellipsoid's, which
    a side light turns into a hard band across the forehead (#31)."""
    size = mask.shape[0]
    face, covered = mesh_normals(mesh, size)
    if smooth_px > 0:
        face = cv2.GaussianBlur(face.astype(np.float32), (0, 0), smooth_px)
    fallback = ellipsoid_normals(mask | covered)
    weight = covered.astype(np.float32)
    sigma = max(extend_px / 3, 1.0)
    spread = cv2.GaussianBlur(face.astype(np.float32) * weight[..., None], (0, 0), sigma)
    reach = cv2.GaussianBlur(weight, (0, 0), sigma)[..., None]
    carried = spread / np.maximum(reach, 1e-6)
    outside = cv2.distanceTransform((~covered).astype(np.uint8), cv2.DIST_L2, 5)
    fade = np.clip(1 - outside / max(extend_px, 1e-6), 0, 1)[..., None] * (reach > 1e-3)
    beyond = fade * carried + (1 - fade) * fallback
    dist = cv2.distanceTransform(covered.astype(np.uint8), cv2.DIST_L2, 5)
    w = np.clip(dist / max(blend_px, 1e-6), 0, 1)[..., None]
    n = w * face + (1 - w) * beyond
    n = n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)
    n = cv2.GaussianBlur(n.astype(np.float32), (0, 0), max(smooth_px, 1.0)) * (1 - w) + n * w
    return (n / np.maximum(np.linalg.norm(n, axis=-1, keepdims=True), 1e-12)).astype(np.float32), covered
