"""FID between the outputs and the targets of a test set (paper tables 1, 3, 4).

Inception features come from a local weights file only (`evaluate.inception_weights`); without
one FID is "unavailable" with the reason, never computed with random features. Accepted files:
- pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (also torch-fidelity's
  `weights-inception-2015-12-05-6726825d.pth`): the TF FID Inception as a state dict, loaded
  into `eval.nets.fid_inception` and used as pytorch-fid uses it (bilinear resize to 299,
  [0, 1] -> [-1, 1]). Numbers comparable with published FIDs.
- NVIDIA's TorchScript `inception-2015-12-05.pt` (StyleGAN2-ADA / clean-fid): called as
  `model(x, return_features=True)` on float (B, 3, H, W) in [0, 255]; it resizes itself.
- torchvision's `inception_v3_google-0cc3c7bd.pth`: its ImageNet network, used as it was
  trained (`transform_input=True` on ImageNet-normalised 299 px input), pool features. Not the
  TF FID network: the report flags "paper metric not computed".
A file that is present but none of these raises `WeightsFormatError` (evaluate stops there).
FID has no per-pair value, hence no SEM (the paper reports none either).
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from eval.metrics import MetricResult, to_tensor, unavailable
from eval.nets import fid_inception
from pipeline.device import device_name
from pipeline.weight_files.formats import load_state_dict, strip_prefix, torch_file_kind
from pipeline.weight_files.checks import ComponentCheck, WeightsFormatError, compare_shapes, register_check, tensor_shapes


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray) -> float:
    import warnings

    from scipy import linalg

    with warnings.catch_warnings():  # near-singular covariances (few images) are expected
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        try:
            covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)  # scipy <= 1.17: (root, error estimate)
        except TypeError:  # newer scipy (the GPU image's) dropped `disp`: the root alone
            covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        eps = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + eps) @ (s2 + eps))
    covmean = np.real(covmean)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


def stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = features.astype(np.float64)
    return f.mean(0), np.cov(f, rowvar=False)


INCEPTION_FORMATS = (
    "pytorch-fid pt_inception-2015-12-05-6726825d.pth (FID Inception state dict, 1008 classes)",
    "NVIDIA TorchScript inception-2015-12-05.pt (model(x, return_features=True) -> (B, 2048))",
    "torchvision inception_v3_google-0cc3c7bd.pth (ImageNet Inception-v3 state dict)",
)
INCEPTION_RELEASE = ("pytorch-fid's release fid_weights/pt_inception-2015-12-05-6726825d.pth (github mseitzer/pytorch-fid), "
                     "or NVIDIA's inception-2015-12-05.pt (StyleGAN2-ADA metrics); set evaluate.inception_weights to the file")
FEATURES = 2048


def inspect_inception(path: str | Path) -> tuple[str, str]:
    """(kind, what was found): kind "pytorch_fid", "torchvision" or "torchscript", read on the
    CPU; `WeightsFormatError` for a missing, damaged, mis-keyed or unknown file."""
    path = Path(path)
    kind = torch_file_kind(path, INCEPTION_FORMATS)
    if kind == "torchscript":
        return "torchscript", "TorchScript Inception"
    shapes = strip_prefix(tensor_shapes(path, INCEPTION_FORMATS))
    fc = shapes.get("fc.weight")
    if fc == (fid_inception.FID_CLASSES, FEATURES):
        compare_shapes(path, shapes, fid_inception.expected_shapes("pytorch_fid"), INCEPTION_FORMATS)
        return "pytorch_fid", f"pytorch-fid FID Inception state dict ({len(shapes)} tensors)"
    if fc == (fid_inception.TORCHVISION_CLASSES, FEATURES):
        compare_shapes(path, shapes, fid_inception.expected_shapes("torchvision"), INCEPTION_FORMATS)
        return "torchvision", f"torchvision ImageNet Inception-v3 state dict ({len(shapes)} tensors)"
    what = f"fc.weight {fc}" if fc is not None else f"no fc.weight (first keys: {', '.join(list(shapes)[:3])})"
    raise WeightsFormatError(path, INCEPTION_FORMATS, f"a state dict with {what} (expected an Inception-v3 with fc.weight "
                                                      f"(1008, 2048) for pytorch-fid, (1000, 2048) for torchvision)")


class InceptionFeatures:
    """2048-d Inception pool features from a local file (see the module docstring). Torch
    files are checked and built on the CPU before they move to `device`."""

    def __init__(self, weights: str | Path, device: str | None = None) -> None:
        import torch

        self.weights = Path(weights)
        self.kind, self.found = inspect_inception(self.weights)
        self.device = device_name(device)
        self.paper_model = self.kind != "torchvision"
        if self.kind == "torchscript":
            try:
                model = torch.jit.load(str(self.weights), map_location="cpu").eval()
                with torch.inference_mode():
                    out = model(torch.zeros(1, 3, 64, 64), return_features=True)
            except Exception as exc:  # noqa: BLE001 - a damaged archive or another interface
                raise WeightsFormatError(self.weights, INCEPTION_FORMATS, "TorchScript that does not answer "
                                         f"model(x, return_features=True) ({type(exc).__name__}: {exc})") from exc
            if out.ndim != 2 or out.shape[0] != 1:  # NVIDIA's file gives (1, 2048)
                raise WeightsFormatError(self.weights, INCEPTION_FORMATS, f"TorchScript returning {tuple(out.shape)} for one image "
                                                                          "(expected (1, D) features, D = 2048 for NVIDIA's file)")
        else:
            model = fid_inception.fid_inception() if self.kind == "pytorch_fid" else fid_inception.torchvision_inception()
            model.load_state_dict(strip_prefix(load_state_dict(self.weights, INCEPTION_FORMATS)), strict=True)
        self.model = model.eval().to(self.device)
        self.name = f"inception:{self.weights.name}"

    def from_unit(self, x):
        """Features of float (B, 3, H, W) RGB in [0, 1] on `self.device`, each file used as its
        release uses it."""
        import torch
        import torch.nn.functional as F

        with torch.inference_mode():
            if self.kind == "torchscript":
                return self.model(x * 255.0, return_features=True)
            x = F.interpolate(x, size=(fid_inception.SIZE, fid_inception.SIZE), mode="bilinear", align_corners=False)
            if self.kind == "pytorch_fid":
                return fid_inception.pool_features(self.model, 2 * x - 1)
            mean = torch.tensor([0.485, 0.456, 0.406], device=x.device).view(1, 3, 1, 1)
            std = torch.tensor([0.229, 0.224, 0.225], device=x.device).view(1, 3, 1, 1)
            return fid_inception.pool_features(self.model, (x - mean) / std)

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        f = self.from_unit(to_tensor(images, self.device))
        return f.float().cpu().numpy().reshape(len(images), -1)


def load_features(weights: str | None, device: str | None = None):
    """(InceptionFeatures, None), or (None, why FID is unavailable) when no file is configured.
    A configured file that is missing or not usable raises `WeightsFormatError`."""
    if not weights:
        return None, "evaluate.inception_weights is not set"
    return InceptionFeatures(weights, device), None


INCEPTION_LAYOUT = """evaluate.inception_weights: one file, any of
  pt_inception-2015-12-05-6726825d.pth   pytorch-fid release (the TF FID Inception; same tensors as torch-fidelity's)
  inception-2015-12-05.pt                NVIDIA TorchScript (StyleGAN2-ADA / clean-fid)
  inception_v3_google-0cc3c7bd.pth       torchvision ImageNet Inception-v3 (not the FID network: flagged)
  (unset: FID unavailable)"""


@register_check("evaluate.fid", layout=INCEPTION_LAYOUT)
def check_fid(params) -> list[ComponentCheck]:
    weights = params.evaluate.inception_weights
    if not weights:
        return [ComponentCheck("evaluate.fid", "inception", None, True, "not configured: FID is reported unavailable "
                               f"(no offline stand-in); to compute it: {INCEPTION_RELEASE}")]
    try:
        kind, found = inspect_inception(weights)
    except WeightsFormatError as err:
        return [ComponentCheck("evaluate.fid", "inception", weights, False, str(err), INCEPTION_RELEASE)]
    if kind == "torchvision":
        found += " (ImageNet weights, not the TF FID network: FID not comparable with the paper's)"
    return [ComponentCheck("evaluate.fid", kind, weights, True, found)]


class FID:
    names = ("FID",)

    def __init__(self, features: InceptionFeatures | None = None, reason: str | None = None,
                 cache: dict | None = None) -> None:
        self.features, self.reason = features, reason
        self.backend = features.name if features is not None else "inception"
        self.cache = {} if cache is None else cache
        self._out: list[np.ndarray] = []
        self._tgt: list[np.ndarray] = []
        self._n = 0

    def update(self, outputs: Sequence[np.ndarray], targets: Sequence[np.ndarray], pair_ids: Sequence[str] = ()) -> None:
        self._n += len(outputs)
        if self.features is None:
            return
        self._out.append(self.features(outputs))
        ids = list(pair_ids)
        if ids and all(("fid", p) in self.cache for p in ids):
            self._tgt.append(np.stack([self.cache[("fid", p)] for p in ids]))
            return
        f = self.features(targets)
        for p, v in zip(ids, f):
            self.cache[("fid", p)] = v
        self._tgt.append(f)

    def per_pair(self) -> dict[str, list[float | None]]:
        return {}

    def results(self) -> dict[str, MetricResult]:
        if self.reason:
            return {"FID": unavailable("FID", self.backend, self.reason)}
        if self._n < 2:
            return {"FID": unavailable("FID", self.backend, f"FID needs at least 2 images, got {self._n}")}
        out, tgt = np.concatenate(self._out), np.concatenate(self._tgt)
        value = frechet_distance(*stats(out), *stats(tgt))
        return {"FID": MetricResult("FID", self.backend, mean=value, sem=None, n=len(out), failures=0,
                                    paper_metric=self.features.paper_model)}
