"""LivePortrait as an `Animator`: the neutral face driven by a driver clip's first -> last frame
change (relative motion), stitched, warped, decoded at 512 px and pasted back into the neutral
image.

One neutral face's appearance volume and keypoints are computed once; `animate_batch` runs every
driver of that face through the motion extractor and the warp/decoder in GPU batches.
"""
from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
from pathlib import Path
from typing import Any, Sequence

import cv2
import numpy as np
import torch

from pipeline.device import is_cuda
from pipeline.backends.animators.base import AnimatedImage, Animator
from pipeline.config.animate import AnimateParams
from pipeline.faces.mesh import LIP_LOWER_INNER, LIP_UPPER_INNER, MOUTH_L, MOUTH_R, FaceMeshDetector, Mesh
from pipeline.rejection import Reject
from pipeline.weight_files.checks import WeightsFormatError

from . import keypoints as kpt
from .checkpoints import LivePortraitModels, fold_spectral_norm, load_models
from .config import LivePortraitConfig
from .crop import (CropRule, FaceCrop, FaceLandmarks, crop_rotated, face_square, mean_square, paste_back_rotated,
                   paste_mask)
from .landmarks import ACCEPTED, LANDMARK_FILE, LandmarkModel


def mesh_lip_open_ratio(mesh: Mesh) -> float:
    """Offline stand-in for the official lip ratio: inner-lip gap over mouth width on the
    mediapipe mesh (the same quantity as `FaceLandmarks.lip_open_ratio`, on other points: its
    scale against the 0.03 threshold is not calibrated)."""
    p = mesh.points
    return float(np.linalg.norm(p[LIP_UPPER_INNER] - p[LIP_LOWER_INNER])
                 / max(np.linalg.norm(p[MOUTH_L] - p[MOUTH_R]), 1e-6))


def hull_multiplier(x_s: torch.Tensor, x_d_first: torch.Tensor) -> torch.Tensor:
    """The official "expression-friendly" motion multiplier: sqrt of the source keypoints'
    convex-hull volume over that of the first driving keypoints, per driver (B,)."""
    from scipy.spatial import ConvexHull

    src = np.sqrt(ConvexHull(x_s[0].double().cpu().numpy()).volume)
    first = [np.sqrt(ConvexHull(k.double().cpu().numpy()).volume) for k in x_d_first]
    return torch.tensor([src / f for f in first], dtype=torch.float32, device=x_s.device)


@dataclasses.dataclass(frozen=True)
class DrivingOptions:
    """The official command line's animation options (KwaiVGI/LivePortrait ArgumentConfig);
    defaults are its defaults."""

    driving_option: str = "expression-friendly"  # or "pose-friendly"
    driving_multiplier: float = 1.0
    normalize_lip: bool = False      # flag_normalize_lip
    lip_threshold: float = 0.03      # lip_normalize_threshold
    stitching: bool = True           # flag_stitching

    def __post_init__(self) -> None:
        if self.driving_option not in ("expression-friendly", "pose-friendly"):
            raise ValueError(f"driving_option must be expression-friendly or pose-friendly, not {self.driving_option!r}")


@dataclasses.dataclass(frozen=True)
class CropOptions:
    """Which landmarks place the crops, and the rules (see `crop.py`)."""

    mode: str = "auto"               # auto: landmark.onnx when the folder has it, else the mesh
    source: CropRule = CropRule()    # official 2.3 / 0 / -0.125
    driving: CropRule = CropRule(scale=2.2, vx_ratio=0.0, vy_ratio=-0.1, rotate=False)
    crop_driving: bool = False       # flag_crop_driving_video (non-square frames are cropped anyway)
    mesh_box_ratio: float = 1.15
    mesh_center_shift: float = 0.05
    mask_dilate: float = 0.06        # of the face size: the paste-back mask grows past the mesh hull
    mask_feather: float = 0.05       # Gaussian sigma of the mask edge, of the face size

    def __post_init__(self) -> None:
        if self.mode not in ("auto", "landmarks", "mesh"):
            raise ValueError(f"crop mode must be auto, landmarks or mesh, not {self.mode!r}")


@dataclasses.dataclass
class _Source:
    crop: FaceCrop
    mask: np.ndarray
    feature: torch.Tensor  # (1, C, D, 64, 64)
    motion: kpt.Motion  # batch 1
    x_s: torch.Tensor  # (1, K, 3)
    lip_delta: torch.Tensor | None  # (1, K, 3): closes an open source mouth (official normalize_lip)
    lip_ratio: float


class LivePortraitAnimator(Animator):
    """Constructor kwargs (all but the first two are optional, for params.yaml):

    model_dir: the official `pretrained_weights/liveportrait/` folder (`base_models/`,
        `retargeting_models/`, and `landmark.onnx` for the official crop).
    device: "cuda", "cuda:1" or "cpu".
    bf16: bf16 autocast of the networks on CUDA (keypoint arithmetic stays fp32); ignored on CPU.
    batch_size: drivers per warp/decode batch on the device.
    driving: `DrivingOptions` (the official command line's defaults).
    crop: `CropOptions` (the official crop rules; which landmarks place them).
    driver_cache: how many driver frames' motion to remember (keyed by their pixels and crop):
        the same driver clips drive many neutral faces, so their motion is computed once.
    config: network sizes (default: the published ones; tests pass `LivePortraitConfig.tiny()`).

    Every result's info says which landmarks placed the source crop (`crop`), how the driver
    was framed (`driver_crop`: "none" = resized whole, as the official default for a square
    clip) and where the lip ratio came from.
    """

    name = "liveportrait"
    worker_local = ("models", "landmarks", "_driver_motion")

    def __init__(self, model_dir: str, device: str = "cuda", *, bf16: bool = True, batch_size: int = 8,
                 driving: DrivingOptions | None = None, crop: CropOptions | None = None,
                 driver_cache: int = 1024, config: LivePortraitConfig | None = None) -> None:
        self.model_dir = str(model_dir)
        self.device = device
        self.bf16 = bf16
        self.batch_size = batch_size
        self.driving = driving or DrivingOptions()
        self.crop = crop or CropOptions()
        self.config = config or LivePortraitConfig()
        self.meshes = FaceMeshDetector(max_faces=1)
        self.driver_cache = driver_cache
        self.models: LivePortraitModels | None = None
        self.landmarks: LandmarkModel | None = None
        self.crop_source = self._crop_source()
        self._driver_motion: collections.OrderedDict[bytes, kpt.Motion] = collections.OrderedDict()

    def _crop_source(self) -> str:
        """"landmark_onnx" or "face_mesh", decided from the params and the folder (no loading)."""
        present = (Path(self.model_dir) / LANDMARK_FILE).is_file()
        if self.crop.mode == "landmarks" and not present:
            raise WeightsFormatError(Path(self.model_dir) / LANDMARK_FILE, ACCEPTED,
                                     "missing, and animate.liveportrait_crop is 'landmarks'")
        return "landmark_onnx" if present and self.crop.mode != "mesh" else "face_mesh"

    def clear_driver_cache(self) -> None:
        self._driver_motion.clear()

    def setup(self) -> None:
        if self.crop_source == "landmark_onnx" and self.landmarks is None:  # CPU; checked before the GPU
            self.landmarks = LandmarkModel(Path(self.model_dir) / LANDMARK_FILE)
        if self.models is None:
            self.models = fold_spectral_norm(load_models(self.model_dir, self.config, self.device))

    # --- helpers ---------------------------------------------------------------------------

    def _autocast(self):
        if is_cuda(self.device) and self.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _mesh(self, image: np.ndarray, what: str) -> Mesh:
        mesh = self.meshes.detect_one(image)
        if mesh is None:
            raise Reject("no_face", f"LivePortrait: no face found in the {what}")
        return mesh

    def _face(self, image: np.ndarray, mesh: Mesh) -> FaceLandmarks:
        if self.crop_source == "landmark_onnx":
            return self.landmarks.detect(image, mesh)
        return FaceLandmarks.from_mesh(mesh)

    def _rule(self, rule: CropRule) -> CropRule:
        if self.crop_source == "landmark_onnx":
            return rule
        return rule.for_mesh(self.crop.mesh_box_ratio, self.crop.mesh_center_shift)

    def _tensor(self, crops: Sequence[np.ndarray]) -> torch.Tensor:
        x = torch.from_numpy(np.stack(crops)).to(self.device).permute(0, 3, 1, 2)
        return x.float().div_(255)

    def _motion(self, x: torch.Tensor) -> kpt.Motion:
        parts = []
        for i in range(0, x.shape[0], self.batch_size * 2):
            with self._autocast():
                parts.append(self.models.motion_extractor(x[i: i + self.batch_size * 2]))
        return kpt.Motion.from_heads({k: torch.cat([p[k] for p in parts]) for k in parts[0]})

    def _source(self, neutral: np.ndarray) -> _Source:
        mesh = self._mesh(neutral, "neutral image")
        face = self._face(neutral, mesh)
        crop = crop_rotated(neutral, face_square(face, self._rule(self.crop.source)), self.config.input_size)
        x = self._tensor([crop.image])
        with self._autocast():
            feature = self.models.appearance_feature_extractor(x).float()
        motion = self._motion(x)
        x_s = kpt.source_keypoints(motion)
        ratio = face.lip_open_ratio() if face.source == "landmark_onnx" else mesh_lip_open_ratio(mesh)
        lip_delta = None
        if self.driving.normalize_lip and ratio >= self.driving.lip_threshold:  # target lip ratio 0: closed
            lip_delta = kpt.retarget_lip(self.models.lip, x_s, torch.tensor([[ratio, 0.0]], device=x_s.device))
        mask = paste_mask(mesh, crop, neutral.shape[:2], self.crop.mask_dilate, self.crop.mask_feather)
        return _Source(crop, mask, feature, motion, x_s, lip_delta, ratio)

    def _driver_framing(self, pair: tuple[np.ndarray, np.ndarray]) -> str:
        """"none" (resized whole) or the landmarks that place the driving crop."""
        if all(f.shape[0] == f.shape[1] for f in pair) and not self.crop.crop_driving:
            return "none"
        return self.crop_source

    def _driver_crops(self, k: int, pair: tuple[np.ndarray, np.ndarray]) -> list[np.ndarray]:
        """The two frames as the networks see them. The official default resizes a square clip
        whole; a non-square one (or `crop_driving`) gets one unrotated box averaged over its
        frames, from their landmarks. (A frame's motion is cached by its pixels: the two frames
        of a pair always come from one clip, so a frame is always cropped with the same box.)"""
        size = self.config.input_size
        if self._driver_framing(pair) == "none":
            return [cv2.resize(f, (size, size), interpolation=cv2.INTER_LINEAR) for f in pair]
        rule = self._rule(self.crop.driving)
        faces = [self._face(f, self._mesh(f, f"driver {k} {what} frame")) for f, what in zip(pair, ("first", "last"))]
        box = mean_square([face_square(face, rule) for face in faces])
        return [crop_rotated(f, box, size, cv2.INTER_LINEAR).image for f in pair]

    def _driver_motions(self, drivers: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[kpt.Motion, list[str]]:
        """Motion of every driver frame, in order (first, last, first, last, ...): cached frames
        are looked up, the others cropped and run through the motion extractor in one batch."""
        keys, todo, framing = [], {}, []
        for k, pair in enumerate(drivers):
            pair_keys = [hashlib.blake2b(np.ascontiguousarray(f).data, digest_size=16, person=b"lp-driver").digest()
                         + repr(f.shape).encode() for f in pair]
            if any(key not in self._driver_motion for key in pair_keys):
                crops = self._driver_crops(k, pair)
                todo.update({key: crop for key, crop in zip(pair_keys, crops) if key not in self._driver_motion})
            framing.append(self._driver_framing(pair))
            keys.extend(pair_keys)
        fresh = {}
        if todo:
            new = self._motion(self._tensor(list(todo.values())))
            fresh = {key: new[i: i + 1] for i, key in enumerate(todo)}
        rows = [fresh[key] if key in fresh else self._driver_motion[key] for key in keys]
        for key in keys:  # most recently used last
            if key in fresh:
                self._driver_motion[key] = fresh[key]
            self._driver_motion.move_to_end(key)
        while len(self._driver_motion) > self.driver_cache:
            self._driver_motion.popitem(last=False)
        return kpt.Motion.cat(rows), framing

    # --- Animator --------------------------------------------------------------------------

    @torch.inference_mode()
    def animate_batch(self, neutral: np.ndarray, drivers: Sequence[tuple[np.ndarray, np.ndarray]], *,
                      seeds: Sequence[int], programs: Sequence[Any] | None = None) -> list[AnimatedImage]:
        """Deterministic: `seeds` are accepted for the interface and recorded, not used."""
        if len(seeds) != len(drivers):
            raise ValueError(f"{len(drivers)} drivers but {len(seeds)} seeds")
        if not drivers:
            return []
        self.setup()
        src = self._source(neutral)
        motion, framing = self._driver_motions(drivers)
        first, last = motion[0::2], motion[1::2]
        x_d = kpt.relative_driving_keypoints(src.motion, first, last)
        x_s = src.x_s.expand_as(x_d)
        multiplier = torch.ones(len(drivers), device=x_d.device)
        if self.driving.driving_option == "expression-friendly":  # official: relative motion, a driving clip
            x_d_first = kpt.relative_driving_keypoints(src.motion, first, first)
            multiplier = hull_multiplier(src.x_s, x_d_first)
            x_d = (x_d - x_d_first) * multiplier[:, None, None] + x_s
        moved = (x_d - x_s).norm(dim=-1).mean(dim=1)
        if self.driving.stitching:  # float32, outside autocast, as the official code
            x_d = kpt.stitch(self.models.stitching, x_s, x_d)
        if src.lip_delta is not None:
            x_d = x_d + src.lip_delta
        x_d = x_s + (x_d - x_s) * self.driving.driving_multiplier
        outputs = []
        for i in range(0, len(drivers), self.batch_size):
            n = min(self.batch_size, len(drivers) - i)
            with self._autocast():
                warped = self.models.warping_module(src.feature.expand(n, -1, -1, -1, -1),
                                                    kp_driving=x_d[i: i + n], kp_source=x_s[i: i + n])
                image = self.models.spade_generator(warped["out"])
            outputs.append((image.float().clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy())
        decoded = np.concatenate(outputs)
        pose_change = (last.pose - first.pose).cpu().numpy()
        return [AnimatedImage(paste_back_rotated(decoded[j], src.crop, neutral, src.mask),
                              {"backend": self.name, "crop": self.crop_source, "driver_crop": framing[j],
                               "keypoint_motion": float(moved[j]), "motion_multiplier": float(multiplier[j]),
                               "driver_pose_change_deg": [float(v) for v in pose_change[j]],
                               "lip_ratio": src.lip_ratio, "lip_normalized": src.lip_delta is not None,
                               "seed": int(seed)})
                for j, seed in enumerate(seeds)]

    def animate(self, neutral: np.ndarray, driver_first: np.ndarray, driver_last: np.ndarray, *,
                seed: int = 0) -> AnimatedImage:
        return self.animate_batch(neutral, [(driver_first, driver_last)], seeds=[seed])[0]


def from_params(params: AnimateParams) -> LivePortraitAnimator:
    """The animator `animate.backend: liveportrait` names (pipeline/backends/animators/factory.py): its
    driving and crop options as the `animate` params section spells them."""
    if not params.liveportrait_dir:
        raise ValueError("animate.backend is liveportrait but animate.liveportrait_dir is not set "
                         "(a folder with the official base_models/ and retargeting_models/ checkpoints)")
    from pipeline.device import device_name

    p = params
    device = device_name(p.device)
    driving = DrivingOptions(p.driving_option, p.driving_multiplier, p.normalize_lip, p.lip_normalize_threshold,
                             p.stitching)
    crop = CropOptions(mode=p.liveportrait_crop, source=CropRule(p.crop_scale, p.crop_vx_ratio, p.crop_vy_ratio),
                       driving=CropRule(p.driving_crop_scale, 0.0, p.driving_crop_vy_ratio, rotate=False),
                       crop_driving=p.crop_driving, mesh_box_ratio=p.mesh_box_ratio,
                       mesh_center_shift=p.mesh_center_shift)
    return LivePortraitAnimator(p.liveportrait_dir, device, batch_size=p.batch_size, driving=driving, crop=crop)
