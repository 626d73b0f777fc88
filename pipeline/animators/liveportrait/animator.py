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
from typing import Sequence

import numpy as np
import torch

from pipeline.animators.base import AnimatedImage, Animator
from pipeline.faces.mesh import LIP_LOWER_INNER, LIP_UPPER_INNER, MOUTH_L, MOUTH_R, FaceMeshDetector, Mesh
from pipeline.stage import Reject

from . import keypoints as kpt
from .checkpoints import LivePortraitModels, fold_spectral_norm, load_models
from .config import LivePortraitConfig
from .crop import CropRule, FaceCrop, crop_face, paste_back, paste_mask


def lip_open_ratio(mesh: Mesh) -> float:
    """Inner-lip gap over mouth width: the official `calc_lip_close_ratio` (which reads its own
    203-point landmarks) measured on the mediapipe mesh."""
    p = mesh.points
    return float(np.linalg.norm(p[LIP_UPPER_INNER] - p[LIP_LOWER_INNER])
                 / max(np.linalg.norm(p[MOUTH_L] - p[MOUTH_R]), 1e-6))


@dataclasses.dataclass
class _Source:
    crop: FaceCrop
    mask: np.ndarray
    feature: torch.Tensor  # (1, C, D, 64, 64)
    motion: kpt.Motion  # batch 1
    x_s: torch.Tensor  # (1, K, 3)
    lip_delta: torch.Tensor | None  # (1, K, 3): closes an open source mouth (official normalize_lip)


class LivePortraitAnimator(Animator):
    """Constructor kwargs (all but the first two are optional, for params.yaml):

    model_dir: folder with the official `base_models/` and `retargeting_models/` files.
    device: "cuda", "cuda:1" or "cpu".
    bf16: bf16 autocast of the networks on CUDA (keypoint arithmetic stays fp32); ignored on CPU.
    batch_size: drivers per warp/decode batch on the device.
    stitching: apply the stitching module (the official default for paste-back).
    normalize_lip: the official `flag_normalize_lip` (default on): a source whose lips are open by
        at least `lip_threshold` (0.03, the official value) is driven from a closed mouth, using
        the lip retargeting MLP, so the driver's mouth motion starts from closed as the driver's does.
    driver_cache: how many driver frames' motion to remember (keyed by their pixels): the same
        driver clips drive many neutral faces, so their face mesh, crop and motion are computed once.
    crop_scale, crop_shift_up, mask_dilate, mask_feather: see `crop.CropRule`.
    config: network sizes (default: the published ones; tests pass `LivePortraitConfig.tiny()`).
    """

    name = "liveportrait"
    worker_local = ("models", "_driver_motion")

    def __init__(self, model_dir: str, device: str = "cuda", *, bf16: bool = True, batch_size: int = 8,
                 stitching: bool = True, normalize_lip: bool = True, lip_threshold: float = 0.03,
                 driver_cache: int = 1024, crop_scale: float = 2.0, crop_shift_up: float = 0.075,
                 mask_dilate: float = 0.06, mask_feather: float = 0.05,
                 config: LivePortraitConfig | None = None) -> None:
        self.model_dir = str(model_dir)
        self.device = device
        self.bf16 = bf16
        self.batch_size = batch_size
        self.use_stitching = stitching
        self.normalize_lip = normalize_lip
        self.lip_threshold = lip_threshold
        self.rule = CropRule(crop_scale, crop_shift_up, mask_dilate, mask_feather)
        self.config = config or LivePortraitConfig()
        self.meshes = FaceMeshDetector(max_faces=1)
        self.driver_cache = driver_cache
        self.models: LivePortraitModels | None = None
        self._driver_motion: collections.OrderedDict[bytes, kpt.Motion] = collections.OrderedDict()

    def clear_driver_cache(self) -> None:
        self._driver_motion.clear()

    def setup(self) -> None:
        if self.models is None:
            self.models = fold_spectral_norm(load_models(self.model_dir, self.config, self.device))

    # --- helpers ---------------------------------------------------------------------------

    def _autocast(self):
        if torch.device(self.device).type == "cuda" and self.bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _mesh(self, image: np.ndarray, what: str) -> Mesh:
        mesh = self.meshes.detect_one(image)
        if mesh is None:
            raise Reject("no_face", f"LivePortrait: no face found in the {what}")
        return mesh

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
        crop = crop_face(neutral, mesh, self.config.input_size, self.rule)
        x = self._tensor([crop.image])
        with self._autocast():
            feature = self.models.appearance_feature_extractor(x).float()
        motion = self._motion(x)
        x_s = kpt.source_keypoints(motion)
        lip_delta = None
        ratio = lip_open_ratio(mesh)
        if self.normalize_lip and ratio >= self.lip_threshold:  # target lip ratio 0: closed
            lip_delta = kpt.retarget_lip(self.models.lip, x_s, torch.tensor([[ratio, 0.0]], device=x_s.device))
        return _Source(crop, paste_mask(mesh, crop, neutral.shape[:2], self.rule), feature, motion, x_s, lip_delta)

    def _driver_motions(self, drivers: Sequence[tuple[np.ndarray, np.ndarray]]) -> kpt.Motion:
        """Motion of every driver frame, in order (first, last, first, last, ...): cached frames
        are looked up, the others cropped and run through the motion extractor in one batch."""
        keys, todo = [], {}
        for k, pair in enumerate(drivers):
            for image, what in zip(pair, ("first", "last")):
                key = hashlib.blake2b(np.ascontiguousarray(image).data, digest_size=16,
                                      person=b"lp-driver").digest() + repr(image.shape).encode()
                keys.append(key)
                if key not in self._driver_motion and key not in todo:
                    mesh = self._mesh(image, f"driver {k} {what} frame")
                    todo[key] = crop_face(image, mesh, self.config.input_size, self.rule).image
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
        return kpt.Motion.cat(rows)

    # --- Animator --------------------------------------------------------------------------

    @torch.inference_mode()
    def animate_batch(self, neutral: np.ndarray, drivers: Sequence[tuple[np.ndarray, np.ndarray]], *,
                      seeds: Sequence[int]) -> list[AnimatedImage]:
        """Deterministic: `seeds` are accepted for the interface and recorded, not used."""
        if len(seeds) != len(drivers):
            raise ValueError(f"{len(drivers)} drivers but {len(seeds)} seeds")
        if not drivers:
            return []
        self.setup()
        src = self._source(neutral)
        motion = self._driver_motions(drivers)
        first, last = motion[0::2], motion[1::2]
        x_d = kpt.relative_driving_keypoints(src.motion, first, last)
        x_s = src.x_s.expand_as(x_d)
        moved = (x_d - x_s).norm(dim=-1).mean(dim=1)
        if self.use_stitching:  # float32, outside autocast, as the official code
            x_d = kpt.stitch(self.models.stitching, x_s, x_d)
        if src.lip_delta is not None:
            x_d = x_d + src.lip_delta
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
        return [AnimatedImage(paste_back(decoded[j], src.crop, neutral, src.mask),
                              {"backend": self.name, "keypoint_motion": float(moved[j]),
                               "driver_pose_change_deg": [float(v) for v in pose_change[j]],
                               "lip_normalized": src.lip_delta is not None, "seed": int(seed)})
                for j, seed in enumerate(seeds)]

    def animate(self, neutral: np.ndarray, driver_first: np.ndarray, driver_last: np.ndarray, *,
                seed: int = 0) -> AnimatedImage:
        return self.animate_batch(neutral, [(driver_first, driver_last)], seeds=[seed])[0]
