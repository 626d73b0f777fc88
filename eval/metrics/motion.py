"""APD / AED / AGD: pose, expression and gaze distance between the output and the target.

Backends (the result names which one produced each number):
- `mesh` (offline, always there): mediapipe face mesh (pipeline/faces/mesh.py).
  APD = mean |difference| of (yaw, pitch, roll), radians. AED = mean distance between the
  pose-normalised (frontalised, interocular = 100) lip, eye and brow landmarks: expression
  without pose or scale. AGD = angle in degrees between the two gaze directions in camera
  space (head rotation x eye-in-head rotation, the iris offset in the eye opening read as the
  sine of the eye's rotation).
- `3dmm` (the paper's kind of measurement): Deep3DFaceRecon's coefficients, from its released
  `epoch_20.pth` (the `net_recon` state dict: ResNet-50 + 257-coefficient head, eval/nets/
  face_recon.py) or a TorchScript `face_recon.pt` with the same interface (input (B, 3, 224, 224)
  RGB in [0, 1]; output (B, 257) = identity 80, expression 64, texture 80, angles 3, lighting 27,
  translation 3). Faces are aligned as Deep3DFaceRecon aligns them (`align_3dmm`: scale and
  translation fitted from the 5 points to its 3D landmark template, 102 px scale, 224 px crop).
  APD = mean |difference| of the angles (radians; with `motion_pose: angles_translation` also of
  the translation); AED = mean |difference| of the 64 expression coefficients. Gaze is not in a
  3DMM: AGD stays `mesh`.
`auto` uses the 3DMM when `evaluate.motion_3dmm_dir` is set and the mesh when it is not (the
report then flags APD / AED "paper metric not computed"); a configured path that is missing or
holds no accepted file raises `WeightsFormatError`.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import numpy as np

from eval.metrics import MetricResult, summarize
from eval.nets import face_recon
from pipeline.device import device_name
from pipeline.faces import mesh as fm
from pipeline.faces.identity import face_mesh
from pipeline.weight_files.formats import load_state_dict, strip_prefix, torch_file_kind
from pipeline.weight_files.checks import ComponentCheck, WeightsFormatError, compare_shapes, register_check, tensor_shapes

# Deep3DFaceRecon's 3D landmark template: the five points (image-left eye, image-right eye, nose,
# mouth corners; x right, y up) it derives from BFM/similarity_Lm3D_all.mat (load_lm3d).
LM3D_FIVE = np.array([[-0.31148657, 0.29036078, 0.13377953], [0.30979887, 0.28972036, 0.13179526],
                      [0.0032535, -0.04617932, 0.55244243], [-0.25216928, -0.38133916, 0.22405732],
                      [0.2484662, -0.38128236, 0.22235769]])
RESCALE, CROP = 102.0, face_recon.SIZE
POSE_CHOICES = ("angles", "angles_translation")
MOTION_FORMATS = (
    "Deep3DFaceRecon checkpoints/<name>/epoch_20.pth ({'net_recon': ResNet-50 + 257-coefficient head state dict, ...})",
    "TorchScript face_recon.pt: (B, 3, 224, 224) RGB in [0, 1] -> (B, 257)",
)
MOTION_RELEASE = ("Deep3DFaceRecon_pytorch's pretrained model (README: checkpoints/face_recon_feat0.2_augment/epoch_20.pth, "
                  "github sicxu/Deep3DFaceRecon_pytorch); set evaluate.motion_3dmm_dir to that file or its folder")


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


def fit_scale_translation(image_pts: np.ndarray, model_pts: np.ndarray) -> tuple[np.ndarray, float]:
    """Deep3DFaceRecon's alignment fit (its `POS`): the least-squares affine camera taking the 3D
    template to the image points (y up), of which the translation and the mean scale of its two
    rows are kept (no rotation: the network sees the face as it is turned)."""
    n = len(image_pts)
    a = np.zeros((2 * n, 8))
    a[0::2, 0:3], a[0::2, 3] = model_pts, 1
    a[1::2, 4:7], a[1::2, 7] = model_pts, 1
    k = np.linalg.lstsq(a, np.asarray(image_pts, np.float64).reshape(-1), rcond=None)[0]
    scale = (np.linalg.norm(k[0:3]) + np.linalg.norm(k[4:7])) / 2
    return np.array([k[3], k[7]]), float(scale)


def align_3dmm(rgb: np.ndarray, five: np.ndarray) -> np.ndarray:
    """The 224 px crop Deep3DFaceRecon's `align_img` makes from five points (MTCNN order): the
    image resized (bicubic) so the template is 102 px across, cropped around the fitted centre."""
    from PIL import Image

    h0, w0 = rgb.shape[:2]
    pts = np.asarray(five, np.float64).copy()
    pts[:, 1] = h0 - 1 - pts[:, 1]  # its fit works with y up
    t, s = fit_scale_translation(pts, LM3D_FIVE)
    if not np.isfinite(s) or s <= 0:
        raise ValueError("degenerate landmarks for the 3DMM alignment")
    s = RESCALE / s
    w, h = int(w0 * s), int(h0 * s)
    left = int(w / 2 - CROP / 2 + (t[0] - w0 / 2) * s)
    up = int(h / 2 - CROP / 2 + (h0 / 2 - t[1]) * s)
    image = Image.fromarray(rgb).resize((w, h), resample=Image.Resampling.BICUBIC)
    return np.asarray(image.crop((left, up, left + CROP, up + CROP)))


def resolve_3dmm_file(configured: str | Path) -> Path:
    """The weights file `evaluate.motion_3dmm_dir` names: the file itself, or in that folder
    `epoch_20.pth`, `face_recon.pt` or `<name>/epoch_20.pth` (Deep3DFaceRecon's checkpoints/)."""
    path = Path(configured)
    if path.is_file():
        return path
    if not path.is_dir():
        raise WeightsFormatError(path, MOTION_FORMATS, "no such file or folder (evaluate.motion_3dmm_dir)")
    for candidate in (path / "epoch_20.pth", path / "face_recon.pt", *sorted(path.glob("*/epoch_20.pth"))):
        if candidate.is_file():
            return candidate
    raise WeightsFormatError(path, MOTION_FORMATS, f"a folder without epoch_20.pth or face_recon.pt (holds: "
                                                   f"{', '.join(sorted(p.name for p in path.iterdir())[:6]) or 'nothing'})")


def _net_recon(shapes_or_state: dict, path: Path) -> dict:
    """The `net_recon` part of a Deep3DFaceRecon checkpoint (or a bare net_recon state dict)."""
    state = shapes_or_state.get("net_recon") if isinstance(shapes_or_state.get("net_recon"), dict) else None
    if state is None:
        prefixed = {k[len("net_recon."):]: v for k, v in shapes_or_state.items() if k.startswith("net_recon.")}
        state = prefixed or shapes_or_state
    state = strip_prefix(state)
    if not any(k.startswith("final_layers.") for k in state):
        raise WeightsFormatError(path, MOTION_FORMATS, "a checkpoint without net_recon (no final_layers.*; top-level keys: "
                                                       f"{', '.join(sorted({k.split('.')[0] for k in shapes_or_state})[:6])})")
    return state


def inspect_3dmm(configured: str | Path) -> tuple[Path, str, str]:
    """(file, kind "deep3d" | "torchscript", what was found), read on the CPU."""
    path = resolve_3dmm_file(configured)
    kind = torch_file_kind(path, MOTION_FORMATS)
    if kind == "torchscript":
        return path, "torchscript", "TorchScript 3DMM network"
    shapes = _net_recon(tensor_shapes(path, MOTION_FORMATS), path)
    compare_shapes(path, shapes, face_recon.expected_shapes(), MOTION_FORMATS)
    return path, "deep3d", f"Deep3DFaceRecon net_recon (ResNet-50, {face_recon.COEFFICIENTS} coefficients, {len(shapes)} tensors)"


class Face3DMM:
    """Deep3DFaceRecon's 257 coefficients from `epoch_20.pth` or a TorchScript file (checked and
    built on the CPU, then moved to `device`)."""

    def __init__(self, configured: str | Path, device: str | None = None) -> None:
        import torch

        self.path, self.kind, self.found = inspect_3dmm(configured)
        if self.kind == "torchscript":
            try:
                model = torch.jit.load(str(self.path), map_location="cpu").eval()
                with torch.inference_mode():
                    out = model(torch.zeros(1, 3, CROP, CROP))
            except Exception as exc:  # noqa: BLE001 - a damaged archive or another interface
                raise WeightsFormatError(self.path, MOTION_FORMATS, f"TorchScript that fails on a (1, 3, 224, 224) input "
                                                                    f"({type(exc).__name__}: {exc})") from exc
            if tuple(out.shape) != (1, face_recon.COEFFICIENTS):
                raise WeightsFormatError(self.path, MOTION_FORMATS, f"TorchScript returning {tuple(out.shape)} (expected (1, 257))")
        else:
            model = face_recon.ReconNet()
            model.load_state_dict(_net_recon(load_state_dict(self.path, MOTION_FORMATS), self.path), strict=True)
        self.device = device_name(device)
        self.model = model.eval().to(self.device)
        self.name = f"3dmm:{self.path.name}"

    def coefficients(self, crops: list[np.ndarray]) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.stack(crops)).to(self.device).permute(0, 3, 1, 2).float() / 255.0
        with torch.inference_mode():
            return self.model(x).float().cpu().numpy()

    @staticmethod
    def crop(rgb: np.ndarray, m: fm.Mesh) -> np.ndarray:
        return align_3dmm(rgb, m.five_points())


def load_3dmm(backend: str = "auto", folder: str | None = None, device: str | None = None):
    """(Face3DMM or None, reason or None). `mesh`: never the 3DMM. `auto`: the 3DMM when
    `folder` is set, else the mesh (no reason: the mesh is a backend, not a failure). `3dmm`
    with nothing set: unavailable with the reason. A set path that is missing or holds no
    accepted file raises `WeightsFormatError` in both `auto` and `3dmm`."""
    if backend not in ("auto", "mesh", "3dmm"):
        raise ValueError(f"motion backend {backend!r}: expected auto, mesh or 3dmm")
    if backend == "mesh":
        return None, None
    if folder:
        return Face3DMM(folder, device), None
    return None, ("motion_backend is '3dmm' but evaluate.motion_3dmm_dir is not set" if backend == "3dmm" else None)


MOTION_LAYOUT = """evaluate.motion_backend: auto | mesh | 3dmm; evaluate.motion_3dmm_dir: a file, or a folder holding one of
  epoch_20.pth                  Deep3DFaceRecon_pytorch (checkpoints/face_recon_feat0.2_augment/): {'net_recon': ...}
  <name>/epoch_20.pth           the same, one level down (point at checkpoints/)
  face_recon.pt                 TorchScript: (B, 3, 224, 224) RGB in [0, 1] -> (B, 257)
  (unset with auto: the face mesh; APD / AED are then not the paper's)"""


@register_check("evaluate.motion", layout=MOTION_LAYOUT)
def check_motion(params) -> list[ComponentCheck]:
    p = params.evaluate
    if p.motion_backend == "mesh" or (p.motion_backend == "auto" and not p.motion_3dmm_dir):
        return [ComponentCheck("evaluate.motion", "mesh", None, True, "offline default (mediapipe face mesh): nothing to "
                               "download; APD / AED are not the paper's (3DMM)")]
    if not p.motion_3dmm_dir:
        return [ComponentCheck("evaluate.motion", "3dmm", None, False, "evaluate.motion_3dmm_dir is not set", MOTION_RELEASE)]
    try:
        path, _, found = inspect_3dmm(p.motion_3dmm_dir)
    except WeightsFormatError as err:
        return [ComponentCheck("evaluate.motion", "3dmm", p.motion_3dmm_dir, False, str(err), MOTION_RELEASE)]
    return [ComponentCheck("evaluate.motion", "3dmm", str(path), True, found)]


class MotionMetrics:
    names = ("APD", "AED", "AGD")

    def __init__(self, dmm: Face3DMM | None = None, reason: str | None = None, cache: dict | None = None,
                 pose: str = "angles") -> None:
        if pose not in POSE_CHOICES:
            raise ValueError(f"motion pose {pose!r}: expected one of {POSE_CHOICES}")
        self.dmm, self.reason, self.pose = dmm, reason, pose
        self.pose_backend = dmm.name if dmm is not None else "mesh"
        self.cache = {} if cache is None else cache
        self._v: dict[str, list[float | None]] = {k: [] for k in self.names}

    def _measure(self, images: Sequence[np.ndarray]) -> list[dict | None]:
        out: list[dict | None] = []
        crops, slots = [], []
        for i, rgb in enumerate(images):
            m = face_mesh(rgb)
            if m is None:
                out.append(None)
                continue
            out.append(mesh_measures(m))
            if self.dmm is not None:
                try:
                    crops.append(Face3DMM.crop(rgb, m))
                except ValueError:  # degenerate landmarks: this face cannot be measured
                    out[-1] = None
                    continue
                slots.append(i)
        if crops:
            pose = face_recon.ANGLE if self.pose == "angles" else np.r_[face_recon.ANGLE, face_recon.TRANS]
            for i, c in zip(slots, self.dmm.coefficients(crops)):
                out[i]["pose"], out[i]["exp"] = c[pose], c[face_recon.EXP]
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
        paper = {"APD": self.dmm is not None, "AED": self.dmm is not None, "AGD": None}
        return {k: summarize(k, backends[k], v, paper[k]) for k, v in self._v.items()}
