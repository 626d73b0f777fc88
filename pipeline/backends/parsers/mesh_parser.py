"""Offline face parser: polygons of the dense face mesh, plus hair and neck from colour models
inside mediapipe's person mask (selfie segmentation, shipped in the mediapipe wheel).

- Inner face: the face oval is skin; brows (convex hulls), eyes (lid contours), nose (hull),
  upper / lower lip (the ring between the outer and inner lip contours, split at the mouth
  corners) and the inner mouth (inner lip contour) are painted over it, in canonical ids.
- Hair: a Gaussian colour model (CIE Lab) seeded from a band just above the top of the face oval
  inside the person mask; hair = person pixels outside the face that match it, connected to the
  seed. A seed that looks like the cheeks' skin (a bald head, a forehead-high crop) gives no hair.
- Neck: person pixels below the jaw whose colour matches the cheeks' skin, connected to the
  chin, within one face width of the face's centre line (clothes and hands rarely match skin
  *and* touch the chin there).
"""
from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from pipeline.faces import mesh as fm
from pipeline.labels import LABEL_IDS as L
from pipeline.backends.parsers.base import FaceParser
from pipeline.quiet import native_stderr_filtered
from pipeline.rejection import Reject


def _arc(loop: Sequence[int], a: int, b: int, through: int) -> list[int]:
    """The part of a closed vertex loop from `a` to `b` (inclusive) that passes `through`."""
    loop = list(loop)
    i, j = loop.index(a), loop.index(b)
    n = len(loop)
    forward = [loop[(i + k) % n] for k in range((j - i) % n + 1)]
    if through in forward:
        return forward
    return [loop[(i - k) % n] for k in range((i - j) % n + 1)]


def lip_polygons() -> dict[str, list[int]]:
    """Vertex loops of the upper lip, lower lip and inner mouth (mediapipe indices)."""
    outer, inner = fm.lip_loops()
    in_r, in_l = 78, 308  # inner mouth corners
    up_out = _arc(outer, fm.MOUTH_R, fm.MOUTH_L, fm.LIP_UPPER_OUTER)
    lo_out = _arc(outer, fm.MOUTH_R, fm.MOUTH_L, fm.LIP_LOWER_OUTER)
    up_in = _arc(inner, in_r, in_l, fm.LIP_UPPER_INNER)
    lo_in = _arc(inner, in_r, in_l, fm.LIP_LOWER_INNER)
    return {"u_lip": up_out + up_in[::-1], "l_lip": lo_out + lo_in[::-1], "mouth": list(inner)}


def paint_inner_face(shape: tuple[int, int], mesh: fm.Mesh) -> np.ndarray:
    """uint8 (H, W) canonical ids of the inner face (0 elsewhere)."""
    xy = mesh.xy
    reg = fm.regions()
    out = np.zeros(shape, np.uint8)

    def poly(idx: Sequence[int], label: str, hull: bool = False) -> None:
        pts = np.round(xy[list(idx)]).astype(np.int32)
        if hull:
            pts = cv2.convexHull(pts)
        cv2.fillPoly(out, [pts.reshape(-1, 1, 2)], int(L[label]), lineType=cv2.LINE_8)

    poly(reg["face_oval"], "skin")
    poly(reg["nose"], "nose", hull=True)
    for side in ("r", "l"):
        poly(reg[f"{side}_brow"], f"{side}_brow", hull=True)
        poly(reg[f"{side}_eye"], f"{side}_eye")
    lips = lip_polygons()
    poly(lips["u_lip"], "u_lip")
    poly(lips["l_lip"], "l_lip")
    poly(lips["mouth"], "mouth")
    return out


class ColourModel:
    """A Gaussian in CIE Lab fitted to sample pixels; distance = Mahalanobis."""

    def __init__(self, lab_pixels: np.ndarray) -> None:
        x = lab_pixels.reshape(-1, 3).astype(np.float64)
        self.mean = x.mean(0)
        cov = np.cov(x.T) if len(x) > 3 else np.eye(3)
        self.inv = np.linalg.inv(cov + np.eye(3) * 4.0)  # floor: JPEG noise, tiny seeds

    def distance(self, lab: np.ndarray) -> np.ndarray:
        d = lab.reshape(-1, 3).astype(np.float64) - self.mean
        return np.sqrt(np.einsum("ij,jk,ik->i", d, self.inv, d)).reshape(lab.shape[:2])


def _connected_to(mask: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """The components of `mask` that touch `seed`."""
    n, comp = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    keep = np.unique(comp[seed & mask])
    keep = keep[keep > 0]
    return np.isin(comp, keep) if len(keep) else np.zeros_like(mask)


def _clean(mask: np.ndarray, px: int) -> np.ndarray:
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * px + 1, 2 * px + 1))
    m = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, k)
    return cv2.morphologyEx(m, cv2.MORPH_CLOSE, k).astype(bool)


class MeshParser(FaceParser):
    name = "mesh"
    worker_local = ("_mesh", "_selfie")

    def __init__(self, params) -> None:
        self.params = params
        self._mesh: fm.FaceMeshDetector | None = None
        self._selfie = None

    def setup(self) -> None:
        if self._mesh is None:
            from mediapipe.python.solutions import selfie_segmentation

            self._mesh = fm.FaceMeshDetector(max_faces=1)
            with native_stderr_filtered(), fm.ieee_denormals():  # its worker threads inherit the flag when the graph starts
                self._selfie = selfie_segmentation.SelfieSegmentation(model_selection=0)

    def person_mask(self, rgb: np.ndarray) -> np.ndarray:
        self.setup()
        with native_stderr_filtered(), fm.ieee_denormals():
            prob = self._selfie.process(np.ascontiguousarray(rgb)).segmentation_mask
        return prob > self.params.person_threshold

    def parse(self, images: Sequence[np.ndarray]) -> list[np.ndarray | Reject]:
        self.setup()
        out: list[np.ndarray | Reject] = []
        for rgb in images:
            mesh = self._mesh.detect_one(rgb)
            if mesh is None:
                out.append(Reject("no_face", "the face mesh finds no face"))
                continue
            out.append(self.parse_one(rgb, mesh))
        return out

    def parse_one(self, rgb: np.ndarray, mesh: fm.Mesh) -> np.ndarray:
        h, w = rgb.shape[:2]
        labels = paint_inner_face((h, w), mesh)
        face = labels > 0
        person = self.person_mask(rgb) & ~face
        lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
        x0, y0, x1, y1 = mesh.box
        fw, fh = x1 - x0, y1 - y0
        cx = (x0 + x1) / 2
        yy, xx = np.mgrid[0:h, 0:w]
        px = max(int(round(fw / 60)), 1)
        cheeks = self._cheeks(lab, mesh)
        skin_model = ColourModel(cheeks if len(cheeks) >= 20 else lab[labels == L["skin"]])  # cheeks cut off: whole skin

        skin_dist = skin_model.distance(lab)
        skin_like = skin_dist < self.params.neck_threshold
        mouth_y = mesh.xy[[fm.MOUTH_R, fm.MOUTH_L], 1].mean()

        # ears: skin-coloured person pixels beside the face between brow and mouth height
        brow_y = mesh.xy[[fm.R_BROW_MID, fm.L_BROW_MID], 1].mean()
        side = person & skin_like & (yy > brow_y) & (yy < mouth_y) & (np.abs(xx - cx) < 0.7 * fw)
        side = _clean(side, px)
        for label, on_side in (("r_ear", xx < cx), ("l_ear", xx >= cx)):  # subject's right = image left
            ring = cv2.dilate(face.astype(np.uint8), np.ones((3 * px, 3 * px), np.uint8)).astype(bool) & ~face
            labels[_connected_to(side & on_side, ring & on_side)] = L[label]

        # hair (or a hat): above the mouth, person pixels that are not skin-coloured; below it,
        # pixels matching the colour seeded just above the face oval; connected to that seed
        seed = person & (yy < y0 - 0.02 * fh) & (yy > y0 - 0.25 * fh) & (np.abs(xx - cx) < 0.35 * fw)
        if seed.sum() > 50:
            hair_model = ColourModel(lab[seed])
            if np.linalg.norm(hair_model.mean - skin_model.mean) >= 12.0:  # else a bald head
                near = (yy < mouth_y) & ~skin_like
                near |= (hair_model.distance(lab) < self.params.hair_threshold) & (yy < y1 + 0.6 * fh)
                hair = _connected_to(_clean(person & (labels == 0) & near, px), seed)
                labels[hair] = L["hair"]

        # neck: skin-coloured person pixels below the jaw, connected to the chin
        chin = mesh.xy[fm.CHIN]
        below = (yy > mouth_y) & (np.abs(xx - cx) < 0.6 * fw) & (yy < y1 + 0.9 * fh)
        neck = _clean(person & below & (labels == 0) & skin_like, px)
        seed = np.zeros_like(neck)
        cy, cxi = int(min(chin[1] + 2 * px, h - 1)), int(np.clip(chin[0], 0, w - 1))
        seed[cy : min(cy + 8 * px, h), max(cxi - 8 * px, 0) : cxi + 8 * px] = True
        labels[_connected_to(neck, seed)] = L["neck"]
        return labels

    @staticmethod
    def _cheeks(lab: np.ndarray, mesh: fm.Mesh) -> np.ndarray:
        """Lab pixels of both cheeks (small discs between the eye, nose and mouth corner)."""
        p = mesh.xy
        r = max(int(mesh.interocular * 0.08), 2)
        pixels = []
        for eye, mouth in ((fm.R_EYE_OUTER, fm.MOUTH_R), (fm.L_EYE_OUTER, fm.MOUTH_L)):
            c = (0.45 * p[eye] + 0.45 * p[mouth] + 0.1 * p[fm.NOSE_TIP]).round().astype(int)
            disc = np.zeros(lab.shape[:2], np.uint8)
            cv2.circle(disc, (int(c[0]), int(c[1])), r, 1, -1)
            pixels.append(lab[disc.astype(bool)])
        return np.concatenate(pixels)
