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
    landmark.onnx                                  203-point landmarks (see landmarks.py): the
                                                   official crop and lip ratio; optional

Every file is checked on the CPU against the architecture before any network is built on the
device; `piq models check` runs the same inspection (`check_liveportrait`) without loading values.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from pipeline.weight_files.checks import ComponentCheck, WeightsFormatError, compare_shapes, register_check, tensor_shapes

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


ACCEPTED = ("the released KwaiVGI/LivePortrait pretrained_weights/liveportrait/ files (torch state dicts: "
            + ", ".join([*BASE_FILES.values(), STITCHING_FILE]) + ")",)


def _read(folder: Path, name: str) -> dict:
    path = folder / name
    if not path.is_file():
        raise WeightsFormatError(path, ACCEPTED, "missing (put the official pretrained_weights/liveportrait/ files there)")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, corrupt or not a torch file
        raise WeightsFormatError(path, ACCEPTED, f"could not be read ({type(exc).__name__}: {exc})") from exc


def _strip_ddp(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k.removeprefix("module."): v for k, v in state.items()}


def _shapes(state: dict, path: Path) -> dict[str, tuple[int, ...]]:
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFormatError(path, ACCEPTED, f"holds a {type(state).__name__} that is not a state dict of tensors")
    return {k: tuple(v.shape) for k, v in state.items()}


def expected_shapes(cfg: LivePortraitConfig | None = None) -> dict[str, dict[str, tuple[int, ...]]]:
    """Parameter names and shapes of each network at `cfg`'s sizes (built on the meta device)."""
    models = build_models(cfg or LivePortraitConfig(), "meta")
    return {name: {k: tuple(v.shape) for k, v in m.state_dict().items()} for name, m in models.modules().items()}


def read_states(model_dir: str | Path, cfg: LivePortraitConfig | None = None) -> dict[str, dict[str, torch.Tensor]]:
    """Every published file read on the CPU and checked against the architecture: a missing
    file, a truncated one, a renamed key or a wrong shape is a `WeightsFormatError` naming the
    file and the mismatch. Returns the state dict of each network."""
    folder = Path(model_dir)
    expected = expected_shapes(cfg)
    states: dict[str, dict[str, torch.Tensor]] = {}
    for attr, name in BASE_FILES.items():
        state = _read(folder, name)
        compare_shapes(folder / name, _shapes(state, folder / name), expected[attr], ACCEPTED)
        states[attr] = state
    bundle = _read(folder, STITCHING_FILE)
    if not isinstance(bundle, dict):
        raise WeightsFormatError(folder / STITCHING_FILE, ACCEPTED, f"holds a {type(bundle).__name__}, not a dict")
    for attr, key in STITCHING_KEYS.items():
        if key not in bundle:
            raise WeightsFormatError(folder / STITCHING_FILE, ACCEPTED,
                                     f"no {key!r} entry (has {sorted(map(str, bundle))})")
        state = _strip_ddp(bundle[key]) if isinstance(bundle[key], dict) else bundle[key]
        path = Path(f"{folder / STITCHING_FILE}[{key!r}]")
        compare_shapes(path, _shapes(state, path), expected[attr], ACCEPTED)
        states[attr] = state
    return states


def load_models(model_dir: str | Path, cfg: LivePortraitConfig | None = None,
                device: torch.device | str = "cpu") -> LivePortraitModels:
    """Build the networks on the CPU, load every published file strictly (see `read_states`:
    any mismatch is an error before the device is touched), then move them to `device`."""
    states = read_states(model_dir, cfg)
    models = build_models(cfg or LivePortraitConfig(), "cpu")
    for attr, state in states.items():
        getattr(models, attr).load_state_dict(state, strict=True)
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


RELEASE = ("https://huggingface.co/KwaiVGI/LivePortrait: copy its pretrained_weights/liveportrait/ folder "
           "(base_models/, retargeting_models/, landmark.onnx) and point animate.liveportrait_dir at it")
LAYOUT = """<animate.liveportrait_dir>/        (KwaiVGI/LivePortrait pretrained_weights/liveportrait/)
  base_models/appearance_feature_extractor.pth
  base_models/motion_extractor.pth
  base_models/warping_module.pth
  base_models/spade_generator.pth
  retargeting_models/stitching_retargeting_module.pth   {retarget_shoulder, retarget_mouth, retarget_eye}
  landmark.onnx                     optional: 203-point landmarks for the official crop and lip ratio
                                    (absent: the mediapipe mesh places the crop, offline)"""


def _component(name: str, path: Path, expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str:
    compare_shapes(path, found, expected, ACCEPTED)
    return f"{len(found)} tensors, names and shapes as published"


@register_check("animate.liveportrait", layout=LAYOUT)
def check_liveportrait(params, cfg: LivePortraitConfig | None = None) -> list[ComponentCheck]:
    """One line per published file: names and shapes read from the files (no values, no GPU),
    against the published sizes (`cfg`: other sizes, for tests)."""
    from .landmarks import LANDMARK_FILE, inspect

    p = params.animate
    if p.backend != "liveportrait":
        return []
    if not p.liveportrait_dir:
        return [ComponentCheck("animate.liveportrait", "liveportrait", None, False,
                               "animate.liveportrait_dir is not set", RELEASE)]
    folder = Path(p.liveportrait_dir)
    expected = expected_shapes(cfg)
    lines = []
    for attr, name in [*BASE_FILES.items(), ("stitching_retargeting", STITCHING_FILE)]:
        path = folder / name
        try:
            found = tensor_shapes(path, ACCEPTED)
            if attr in BASE_FILES:
                detail = _component(attr, path, expected[attr], found)
            else:
                parts = []
                for net, key in STITCHING_KEYS.items():
                    sub = {k[len(key) + 1:].removeprefix("module."): v for k, v in found.items() if k.startswith(key + ".")}
                    if not sub:
                        raise WeightsFormatError(path, ACCEPTED, f"no {key!r} entry")
                    parts.append(f"{key}: " + _component(net, Path(f"{path}[{key!r}]"), expected[net], sub))
                detail = "; ".join(parts)
            lines.append(ComponentCheck(f"animate.liveportrait.{attr}", "liveportrait", str(path), True, detail))
        except WeightsFormatError as err:
            lines.append(ComponentCheck(f"animate.liveportrait.{attr}", "liveportrait", str(path), False,
                                        f"{err.found}", RELEASE))
    path = folder / LANDMARK_FILE
    if p.liveportrait_crop == "mesh":
        lines.append(ComponentCheck("animate.liveportrait.landmark", "liveportrait", str(path), True,
                                    "not used: animate.liveportrait_crop is 'mesh'"))
    elif not path.is_file():
        ok = p.liveportrait_crop != "landmarks"
        lines.append(ComponentCheck("animate.liveportrait.landmark", "liveportrait", str(path), ok,
                                    "absent: the mediapipe mesh places the crop (offline fallback, not the official crop)"
                                    if ok else "absent, and animate.liveportrait_crop is 'landmarks'", RELEASE))
    else:
        try:
            lines.append(ComponentCheck("animate.liveportrait.landmark", "liveportrait", str(path), True,
                                        inspect(path) + "; the official crop and lip ratio"))
        except WeightsFormatError as err:
            lines.append(ComponentCheck("animate.liveportrait.landmark", "liveportrait", str(path), False,
                                        err.found, RELEASE))
    return lines
