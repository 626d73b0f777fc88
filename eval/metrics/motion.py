"""APD / AED / AGD: pose, expression and gaze distance between the output and the target.

Backends (the result names which one produced each number):
- `mesh` (offline, always there): mediapipe face mesh (pipeline/faces/mesh.py).
  APD = mean |difference| of (yaw, pitch, roll), radians. AED = mean distance between the
  pose-normalised (frontalised, interocular = 100) lip, eye and brow landmarks: expression
  without pose or scale. AGD = angle in degrees between the two gaze directions in camera
  space (head rotation x eye-in-head rotation, the iris offset in the eye opening read as the
  sine of the eye's rotation).
- `3dmm` (paper-compatible, when `<dir>/face_recon.pt` exists): a TorchScript face
  reconstruction network in the Deep3DFaceRecon layout (input (B, 3, 224, 224) RGB in [0, 1],
  aligned by 5 points; output (B, 257) = identity 80, expression 64, texture 80, angles 3,
  lighting 27, translation 3). APD = mean |difference| of the angles (radians); AED = mean
  |difference| of the 64 expression coefficients. Gaze is not in a 3DMM: AGD stays `mesh`.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from eval import faces
from eval.metrics import MetricResult, summarize
from pipeline.device import device_name
from pipeline.faces import mesh as fm

# Deep3DFaceRecon's 224 px 5-point template (their align: standard 5 points, scale 102/224).
TEMPLATE_3DMM = np.array([[-0.3157, -0.3214], [0.3157, -0.3214], [0.0, 0.0], [-0.2559, 0.3372], [0.2559, 0.3372]]) * 102 + 112
EXP_SLICE, ANGLE_SLICE = slice(80, 144), slice(224, 227)


@functools.lru_cache(maxsize=1)
def expression_points() -> tuple[int, ...]:
    r = fm.regions()
    outer, inner = fm.lip_loops()
    return tuple(sorted(set(outer) | set(inner) | set(r["r_eye"]) | set(r["l_eye"]) | set(r["r_brow"]) | set(r["l_brow"])))


def mesh_measures(m: fm.Mesh) -> dict[str, np.ndarray]:
    """pose (3, radians), expression (K, 2) frontalised points (interocular = 100), gaze (3,)
    unit direction in camera space."""
    yaw, pitch, roll = fm.head_pose(m)
    f = fm.frontalized(m)[list(expression_points()), :2] * 100
    gx, gy = fm.gaze(m)
    eye = np.array([np.clip(gx, -1, 1), np.clip(gy, -1, 1)])
    ex, ey = np.arcsin(eye)
    d_head = np.array([np.sin(ex) * np.cos(ey), np.sin(ey), np.cos(ex) * np.cos(ey)])  # +z into the scene
    g = fm.head_rotation(m) @ d_head
    return {"pose": np.radians([yaw, pitch, roll]), "exp": f, "gaze": g / np.linalg.norm(g)}


def angle_deg(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip(np.dot(a, b), -1.0, 1.0))))


class Face3DMM:
    """Deep3DFaceRecon-layout coefficients from a local TorchScript file."""

    def __init__(self, folder: str | Path, device: str | None = None) -> None:
        import torch

        path = Path(folder) / "face_recon.pt"
        if not path.is_file():
            raise FileNotFoundError(f"no 3DMM network at {path}")
        self.device = device_name(device)
        self.model = torch.jit.load(str(path), map_location=self.device).eval()

    def coefficients(self, crops: list[np.ndarray]) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.stack(crops)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode():
            return self.model(x).float().cpu().numpy()

    @staticmethod
    def crop(rgb: np.ndarray, m: fm.Mesh) -> np.ndarray:
        return cv2.warpAffine(rgb, faces.similarity(m.five_points(), TEMPLATE_3DMM), (224, 224), flags=cv2.INTER_LINEAR)


def load_3dmm(backend: str = "auto", folder: str | None = None, device: str | None = None):
    """(Face3DMM or None, reason or None). `auto`: the 3DMM when its file is there, else the
    mesh (no reason: the mesh is a backend, not a failure). `3dmm` without the file:
    unavailable. `mesh`: never the 3DMM."""
    if backend not in ("auto", "mesh", "3dmm"):
        raise ValueError(f"motion backend {backend!r}: expected auto, mesh or 3dmm")
    if backend == "mesh":
        return None, None
    try:
        if not folder:
            raise FileNotFoundError("evaluate.motion_3dmm_dir is not set")
        return Face3DMM(folder, device), None
    except (FileNotFoundError, RuntimeError, OSError) as err:
        return None, (str(err) if backend == "3dmm" else None)


class MotionMetrics:
    names = ("APD", "AED", "AGD")

    def __init__(self, dmm: Face3DMM | None = None, reason: str | None = None, cache: dict | None = None) -> None:
        self.dmm, self.reason = dmm, reason
        self.pose_backend = "3dmm" if dmm is not None else "mesh"
        self.cache = {} if cache is None else cache
        self._v: dict[str, list[float | None]] = {k: [] for k in self.names}

    def _measure(self, images: Sequence[np.ndarray]) -> list[dict | None]:
        out: list[dict | None] = []
        crops, slots = [], []
        for i, rgb in enumerate(images):
            m = faces.mesh(rgb)
            if m is None:
                out.append(None)
                continue
            out.append(mesh_measures(m))
            if self.dmm is not None:
                crops.append(Face3DMM.crop(rgb, m))
                slots.append(i)
        if crops:
            for i, c in zip(slots, self.dmm.coefficients(crops)):
                out[i]["pose"], out[i]["exp"] = c[ANGLE_SLICE], c[EXP_SLICE]
        return out

    def update(self, outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], pair_ids: Sequence[str] = ()) -> None:
        ids = list(pair_ids) or [None] * len(targets)
        key = lambda p: ("motion", self.pose_backend, p)  # noqa: E731
        tgt = [self.cache.get(key(p)) if p else None for p in ids]
        todo = [i for i, p in enumerate(ids) if not p or key(p) not in self.cache]
        for i, t in zip(todo, self._measure([targets[i] for i in todo])):
            tgt[i] = t
            if ids[i]:
                self.cache[key(ids[i])] = t
        for o, t in zip(self._measure(outputs), tgt):
            if o is None or t is None:
                for k in self.names:
                    self._v[k].append(None)
                continue
            self._v["APD"].append(float(np.mean(np.abs(o["pose"] - t["pose"]))))
            if self.dmm is not None:
                self._v["AED"].append(float(np.mean(np.abs(o["exp"] - t["exp"]))))
            else:
                self._v["AED"].append(float(np.mean(np.linalg.norm(o["exp"] - t["exp"], axis=1))))
            self._v["AGD"].append(angle_deg(o["gaze"], t["gaze"]))

    def per_pair(self) -> dict[str, list[float | None]]:
        return self._v

    def results(self) -> dict[str, MetricResult]:
        if self.reason:
            return {k: MetricResult(k, "3dmm", unavailable=self.reason) for k in self.names}
        backends = {"APD": self.pose_backend, "AED": self.pose_backend, "AGD": "mesh"}
        return {k: summarize(k, backends[k], v) for k, v in self._v.items()}
