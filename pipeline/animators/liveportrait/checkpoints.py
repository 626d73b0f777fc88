"""Load the official LivePortrait checkpoints from a local folder (their published file names and
layout), strictly; and write random ones of the same layout for tests and benchmarks.

Layout (as released in KwaiVGI/LivePortrait's `pretrained_weights/liveportrait/`)::

    base_models/appearance_feature_extractor.pth   state dict of F
    base_models/motion_extractor.pth               state dict of M (keys under `detector.`)
    base_models/warping_module.pth                 state dict of W
    base_models/spade_generator.pth                state dict of G
    retargeting_models/stitching_retargeting_module.pth
        {"retarget_shoulder": S, "retarget_mouth": lip MLP, "retarget_eye": eye MLP}
        (keys may carry a DDP `module.` prefix, which the official loader strips too)
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from .appearance import AppearanceFeatureExtractor
from .config import LivePortraitConfig
from .motion import MotionExtractor
from .spade import SPADEDecoder
from .stitching import StitchingRetargetingNetwork
from .warping import WarpingNetwork

BASE_FILES = {
    "appearance_feature_extractor": "base_models/appearance_feature_extractor.pth",
    "motion_extractor": "base_models/motion_extractor.pth",
    "warping_module": "base_models/warping_module.pth",
    "spade_generator": "base_models/spade_generator.pth",
}
STITCHING_FILE = "retargeting_models/stitching_retargeting_module.pth"
STITCHING_KEYS = {"stitching": "retarget_shoulder", "lip": "retarget_mouth", "eye": "retarget_eye"}


@dataclasses.dataclass
class LivePortraitModels:
    """The five networks, in eval mode."""

    appearance_feature_extractor: AppearanceFeatureExtractor
    motion_extractor: MotionExtractor
    warping_module: WarpingNetwork
    spade_generator: SPADEDecoder
    stitching: StitchingRetargetingNetwork
    lip: StitchingRetargetingNetwork
    eye: StitchingRetargetingNetwork

    def modules(self) -> dict[str, nn.Module]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to(self, device: torch.device | str) -> "LivePortraitModels":
        for module in self.modules().values():
            module.to(device)
        return self


def build_models(cfg: LivePortraitConfig, device: torch.device | str = "cpu") -> LivePortraitModels:
    """Networks of `cfg`'s sizes with their default (random) initialisation, built on `device`
    (`"meta"` builds the parameter shapes without memory)."""
    with torch.device(device):
        models = LivePortraitModels(
            appearance_feature_extractor=AppearanceFeatureExtractor(cfg.appearance),
            motion_extractor=MotionExtractor(cfg.motion),
            warping_module=WarpingNetwork(cfg.warping),
            spade_generator=SPADEDecoder(cfg.spade),
            stitching=StitchingRetargetingNetwork(cfg.stitching.stitching),
            lip=StitchingRetargetingNetwork(cfg.stitching.lip),
            eye=StitchingRetargetingNetwork(cfg.stitching.eye),
        )
    for module in models.modules().values():
        module.eval()
    return models


def fold_spectral_norm(models: LivePortraitModels) -> LivePortraitModels:
    """Replace each spectral-normalised conv's weight by its normalised value, once: inference
    then skips the per-call normalisation (and its bf16 rounding). The state dict keys change, so
    do this after loading."""
    for module in models.modules().values():
        for m in module.modules():
            if hasattr(m, "weight_orig"):
                nn.utils.remove_spectral_norm(m)
    return models


def _read(folder: Path, name: str) -> dict:
    path = folder / name
    if not path.is_file():
        raise FileNotFoundError(
            f"LivePortrait checkpoint {name!r} is missing from {str(folder)!r}: put the official "
            f"pretrained_weights/liveportrait/ files there ({', '.join([*BASE_FILES.values(), STITCHING_FILE])})")
    return torch.load(path, map_location="cpu", weights_only=True)


def _strip_ddp(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("module."): v for k, v in state.items()}


def load_models(model_dir: str | Path, cfg: LivePortraitConfig | None = None,
                device: torch.device | str = "cpu") -> LivePortraitModels:
    """Build the networks and load every published file strictly (a missing or unexpected key,
    or a wrong shape, is an error naming the file)."""
    folder = Path(model_dir)
    models = build_models(cfg or LivePortraitConfig(), "cpu")
    for attr, name in BASE_FILES.items():
        try:
            getattr(models, attr).load_state_dict(_read(folder, name), strict=True)
        except RuntimeError as err:
            raise RuntimeError(f"{folder / name} does not match the LivePortrait architecture: {err}") from err
    bundle = _read(folder, STITCHING_FILE)
    for attr, key in STITCHING_KEYS.items():
        if key not in bundle:
            raise KeyError(f"{folder / STITCHING_FILE} has no {key!r} entry (has {sorted(bundle)})")
        try:
            getattr(models, attr).load_state_dict(_strip_ddp(bundle[key]), strict=True)
        except RuntimeError as err:
            raise RuntimeError(f"{folder / STITCHING_FILE}[{key!r}] does not match: {err}") from err
    return models.to(device)


def write_random_checkpoints(folder: str | Path, seed: int = 0, cfg: LivePortraitConfig | None = None) -> Path:
    """Random weights of `cfg`'s sizes (default: the published sizes) in the published layout:
    lets tests and benchmarks run the real loading path without the official files."""
    folder = Path(folder)
    torch.manual_seed(seed)
    models = build_models(cfg or LivePortraitConfig(), "cpu")
    with torch.no_grad():  # untrained batch norms would leave activations unscaled: give them spread
        for module in models.modules().values():
            for m in module.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 2.0)
    for attr, name in BASE_FILES.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        torch.save(getattr(models, attr).state_dict(), folder / name)
    (folder / STITCHING_FILE).parent.mkdir(parents=True, exist_ok=True)
    torch.save({key: getattr(models, attr).state_dict() for attr, key in STITCHING_KEYS.items()},
               folder / STITCHING_FILE)
    return folder
