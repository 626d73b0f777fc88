"""Metrics pinned on known cases (eval/metrics): identical images, a turned head, the SEM by
hand, missing weights -> unavailable with a reason, the paper-model loading paths."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision
from skimage import data

from eval.metrics import sem, summarize
from eval.metrics.fid import FID, frechet_distance, load_features
from eval.metrics.csim import CSIM, load_encoder
from eval.metrics.lpips import LPIPS, load_net
from eval.metrics.motion import MotionMetrics, load_3dmm
from eval.metrics.pixel import PixelMetrics
from pipeline.faces.identity import load_identity_encoder
from pipeline.weight_files.checks import WeightsFormatError
from samples.make_sample import turn_head


def test_identical_images_psnr_inf_ssim_one_csim_one():
    a = data.astronaut()
    px = PixelMetrics("cpu")
    px.update([a], [a.copy()])
    assert px.per_pair()["PSNR"] == [math.inf]
    assert px.per_pair()["SSIM"][0] == pytest.approx(1.0, abs=1e-6)
    csim = CSIM(load_identity_encoder())
    csim.update([a], [a.copy()], ["p0"])
    assert csim.per_pair()["CSIM"][0] == pytest.approx(1.0, abs=1e-4)
    assert csim.results()["CSIM"].backend == "dlib_resnet_v1"


def test_psnr_ssim_values_against_skimage():
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    a = data.astronaut()[:128, :128]
    b = np.clip(a.astype(int) + np.random.default_rng(0).integers(-20, 21, a.shape), 0, 255).astype(np.uint8)
    px = PixelMetrics("cpu")
    px.update([b], [a])
    assert px.per_pair()["PSNR"][0] == pytest.approx(peak_signal_noise_ratio(a, b), abs=1e-3)
    expected = structural_similarity(a, b, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                     data_range=255, channel_axis=2)
    assert px.per_pair()["SSIM"][0] == pytest.approx(expected, abs=1e-5)


def test_turned_head_has_larger_pose_distance(hopper):
    turned = turn_head(hopper, nose=(269.0, 239.0), face_width=180.0, shift=72.0)
    m = MotionMetrics()
    m.update([hopper, turned], [hopper, hopper], ["still", "turned"])
    apd = m.per_pair()["APD"]
    assert apd[0] == pytest.approx(0.0, abs=1e-9)
    assert apd[1] > 0.05  # radians: a visibly turned head
    r = m.results()
    assert r["APD"].backend == "mesh" and r["AGD"].backend == "mesh" and r["APD"].n == 2


def test_no_face_is_a_failure_not_a_number():
    blank = np.full((128, 128, 3), 120, np.uint8)
    a = data.astronaut()
    m, c = MotionMetrics(), CSIM(load_identity_encoder())
    for metric in (m, c):
        metric.update([blank, a], [a, a])
    assert m.results()["APD"].failures == 1 and m.results()["APD"].n == 1
    assert c.results()["CSIM"].failures == 1


def test_sem_matches_hand_computation():
    v = [0.2, 0.5, 0.9, 0.4]
    mean = sum(v) / 4
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / 3)
    assert sem(v) == pytest.approx(sd / 2)
    r = summarize("CSIM", "x", v + [None])
    assert r.mean == pytest.approx(mean) and r.sem == pytest.approx(sd / 2) and r.n == 4 and r.failures == 1
    assert sem([1.0]) is None and sem([math.inf, 1.0]) is None


def test_unconfigured_weights_are_unavailable_and_missing_configured_files_are_errors(tmp_path):
    a = data.astronaut()[:64, :64]
    for metric, name, why in ((FID(*load_features(None)), "FID", "evaluate.inception_weights is not set"),
                              (LPIPS(*load_net(None)), "LPIPS", "evaluate.lpips_alexnet_weights is not set"),
                              (CSIM(*load_encoder("arcface", None)), "CSIM", "identity_weights is not set"),
                              (MotionMetrics(*load_3dmm("3dmm", None)), "APD", "motion_3dmm_dir is not set")):
        metric.update([a, a], [a, a])
        r = metric.results()[name]
        assert r.mean is None and r.sem is None and why in r.unavailable
    assert load_3dmm("auto", None) == (None, None)  # auto falls back to the mesh backend, named in the result
    missing = str(tmp_path / "absent.pth")
    for load in (lambda: load_features(missing), lambda: load_net(missing), lambda: load_encoder("arcface", missing),
                 lambda: load_encoder("auto", missing), lambda: load_3dmm("auto", missing), lambda: load_3dmm("3dmm", missing)):
        with pytest.raises(WeightsFormatError, match="absent.pth"):  # a configured path that is wrong: an error
            load()


def test_lpips_loads_a_local_file(tmp_path):
    """(torchvision Inception files: tests/test_eval_weights_metrics.py, against torchvision's
    own use of the file; FID of 2048-d features on a handful of images is a minutes-long sqrtm.)"""
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), tmp_path / "alexnet.pth")
    lp = LPIPS(*load_net(str(tmp_path / "alexnet.pth"), "cpu"))
    a = data.astronaut()[:128, :128]
    lp.update([a, a[::-1].copy()], [a, a])
    d = lp.per_pair()["LPIPS"]
    assert d[0] == pytest.approx(0.0, abs=1e-6) and d[1] > d[0]


def test_frechet_distance_of_shifted_gaussians():
    mu = np.zeros(3)
    assert frechet_distance(mu, np.eye(3), mu + 2, np.eye(3)) == pytest.approx(12.0, abs=1e-6)


def test_frechet_distance_with_a_scipy_that_dropped_disp(monkeypatch):
    """Newer scipy's `sqrtm` takes no `disp` and returns the root alone (the GPU image's did, issue
    29's acceptance run: evaluate stopped in FID); the distance is the same."""
    from scipy import linalg

    real = linalg.sqrtm
    monkeypatch.setattr(linalg, "sqrtm", lambda a: real(a, disp=False)[0])
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(40, 3)), rng.normal(size=(40, 3)) + 1
    args = (a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))
    monkeypatch.undo()
    want = frechet_distance(*args)
    monkeypatch.setattr(linalg, "sqrtm", lambda a: real(a, disp=False)[0])
    assert frechet_distance(*args) == pytest.approx(want, rel=1e-12)


class _Tiny3DMM(torch.nn.Module):
    """Random net with the Deep3DFaceRecon interface: (B, 3, 224, 224) -> (B, 257)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 8, stride=8)
        self.fc = torch.nn.Linear(4, 257)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean((2, 3)))


def test_3dmm_backend_loads_through_its_folder(tmp_path, hopper):
    torch.manual_seed(0)
    torch.jit.script(_Tiny3DMM()).save(str(tmp_path / "face_recon.pt"))
    m = MotionMetrics(*load_3dmm("auto", str(tmp_path), "cpu"))
    turned = turn_head(hopper, nose=(269.0, 239.0), face_width=180.0, shift=72.0)
    m.update([hopper, turned], [hopper, hopper])
    r = m.results()
    assert r["APD"].backend == r["AED"].backend == "3dmm:face_recon.pt" and r["AGD"].backend == "mesh"
    assert m.per_pair()["APD"][0] == pytest.approx(0.0, abs=1e-6) and m.per_pair()["APD"][1] > 0


@pytest.mark.gpu
def test_torch_metrics_agree_on_cuda_and_cpu(tmp_path):
    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet().state_dict(), tmp_path / "alexnet.pth")
    a = data.astronaut()[:256, :256]
    b = np.ascontiguousarray(a[:, ::-1])
    values = {}
    for dev in ("cpu", "cuda"):
        px, lp = PixelMetrics(dev), LPIPS(*load_net(str(tmp_path / "alexnet.pth"), dev))
        px.update([a, b], [a, a])
        lp.update([a, b], [a, a])
        values[dev] = px.per_pair()["SSIM"] + px.per_pair()["PSNR"][1:] + lp.per_pair()["LPIPS"]
    assert values["cuda"] == pytest.approx(values["cpu"], rel=1e-3, abs=1e-4)


class _TinyFIDNet(torch.nn.Module):
    """The interface of the NVIDIA / clean-fid TorchScript Inception: (B, 3, H, W) in [0, 255],
    `return_features=True` -> (B, D)."""

    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1) / 255.0


def test_fid_torchscript_inception_path(tmp_path):
    torch.jit.script(_TinyFIDNet()).save(str(tmp_path / "inception-2015-12-05.pt"))
    imgs = [data.astronaut()[i * 30 : i * 30 + 64, :64].copy() for i in range(6)]
    same = FID(*load_features(str(tmp_path / "inception-2015-12-05.pt"), "cpu"))
    same.update(imgs, imgs)
    darker = FID(*load_features(str(tmp_path / "inception-2015-12-05.pt"), "cpu"))
    darker.update([(i * 0.5).astype(np.uint8) for i in imgs], imgs)
    assert abs(same.results()["FID"].mean) < 1e-6 and darker.results()["FID"].mean > 0.01
    assert same.results()["FID"].backend == "inception:inception-2015-12-05.pt"
