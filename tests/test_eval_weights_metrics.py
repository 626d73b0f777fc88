"""FID, 3DMM (AED / APD) and LPIPS from the files their users download: numeric equivalence
with the reference packages where they are installable (pytorch-fid, torchmetrics, torchvision,
lpips), the published layouts of the rest (Deep3DFaceRecon's epoch_20.pth), and a
`WeightsFormatError` naming the file for every kind of bad one."""
from __future__ import annotations

import types
from unittest import mock

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from skimage import data

from eval.metrics.fid import InceptionFeatures, check_fid, load_features
from eval.metrics.lpips import LPIPS, check_lpips, load_net
from eval.metrics.motion import (LM3D_FIVE, Face3DMM, MotionMetrics, align_3dmm, check_motion, fit_scale_translation,
                                 inspect_3dmm, load_3dmm)
from eval.nets import face_recon, fid_inception
from pipeline.config.evaluate import EvaluateParams
from pipeline.weight_files.checks import WeightsFormatError
from samples.make_sample import turn_head
from tests.fixtures import eval_weight_specs as specs


def _params(**kw):
    return types.SimpleNamespace(evaluate=EvaluateParams(**kw))


_spread_batch_norms = specs.spread_batch_norms


@pytest.fixture(scope="module")
def pytorch_fid_file(tmp_path_factory):
    """`pt_inception-2015-12-05-6726825d.pth` in pytorch-fid's layout (tests/fixtures/eval_weight_specs.py)."""
    return specs.write_pytorch_fid_inception(tmp_path_factory.mktemp("fid") / "pt_inception-2015-12-05-6726825d.pth")


# --- FID ---------------------------------------------------------------------------------------

def test_fid_inception_has_pytorch_fids_names_and_shapes(pytorch_fid_file):
    state = torch.load(pytorch_fid_file, weights_only=True)
    assert fid_inception.expected_shapes("pytorch_fid") == {k: tuple(v.shape) for k, v in state.items()}


@pytest.mark.slow
def test_pytorch_fid_file_gives_pytorch_fids_and_torchmetrics_features(pytorch_fid_file):
    """Same random file in all three: ours (any size, bilinear to 299, 2x - 1) equals
    pytorch-fid's InceptionV3 pool3; on 299 px uint8 input our network on (x - 128) / 128
    equals torchmetrics' FID extractor (torch-fidelity's port of the TF graph)."""
    import pytorch_fid.inception as pfi
    from torchmetrics.image.fid import NoTrainInceptionV3

    ours = InceptionFeatures(pytorch_fid_file, "cpu")
    assert ours.kind == "pytorch_fid" and ours.paper_model
    state = torch.load(pytorch_fid_file, weights_only=True)
    with mock.patch.object(pfi, "load_state_dict_from_url", return_value=state):
        ref = pfi.InceptionV3([pfi.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    a = data.astronaut()
    images = [a[:200, :160].copy(), a[100:300, 200:360].copy()]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        expected = ref(x)[0].flatten(1).numpy()
    got = ours(images)
    assert got.shape == (2, 2048)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    tm = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"], feature_extractor_weights_path=str(pytorch_fid_file))
    u8 = torch.from_numpy(np.stack([np.asarray(Image.fromarray(i).resize((299, 299))) for i in images])).permute(0, 3, 1, 2)
    with torch.no_grad():
        expected_tm = tm(u8).numpy()
        got_tm = fid_inception.pool_features(ours.model, (u8.float() - 128) / 128).numpy()
    np.testing.assert_allclose(got_tm, expected_tm, rtol=1e-4, atol=1e-4 * np.abs(expected_tm).max())


@pytest.mark.slow
def test_torchvision_inception_is_used_as_it_was_trained(tmp_path):
    """`inception_v3_google-*.pth`: our features equal torchvision's own use of the file
    (transform_input=True on ImageNet-normalised 299 px input), and FID flags the stand-in."""
    torch.manual_seed(0)
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "inception_v3_google-0cc3c7bd.pth"
    torch.save(_spread_batch_norms(net.state_dict()), path)
    ref = torchvision.models.inception_v3(weights=None, aux_logits=True, transform_input=True, init_weights=False)
    ref.load_state_dict(torch.load(path, weights_only=True))
    ref.fc = torch.nn.Identity()
    ref.eval()
    images = [data.astronaut()[i * 40: i * 40 + 299, :299].copy() for i in range(2)]
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255
    x = torchvision.transforms.functional.normalize(x, [0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    with torch.no_grad():
        expected = ref(x).numpy()
    ours = InceptionFeatures(path, "cpu")
    np.testing.assert_allclose(ours(images), expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert ours.kind == "torchvision" and ours.paper_model is False  # FID's result carries this flag
    [line] = check_fid(_params(inception_weights=str(path)))
    assert line.ok and "not the TF FID network" in line.detail


def _refused(fn, path, *parts):
    with pytest.raises(WeightsFormatError) as info:
        fn(path)
    msg = str(info.value)
    assert str(path) in msg and "Accepted formats" in msg, msg
    for part in parts:
        assert part in msg, msg


def test_bad_inception_files_are_errors(pytorch_fid_file, tmp_path):
    raw = pytorch_fid_file.read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[: len(raw) // 3])
    _refused(load_features, tmp_path / "cut.pth", "truncated")
    state = torch.load(pytorch_fid_file, weights_only=True)
    renamed = {("Mixed_5b.branch_pool.conv.w" if k == "Mixed_5b.branch_pool.conv.weight" else k): v for k, v in state.items()}
    torch.save(renamed, tmp_path / "renamed.pth")
    _refused(load_features, tmp_path / "renamed.pth", "missing: Mixed_5b.branch_pool.conv.weight")
    wrong = dict(state, **{"Mixed_7c.branch1x1.conv.weight": torch.zeros(320, 2048, 3, 3)})
    torch.save(wrong, tmp_path / "wrong.pth")
    _refused(load_features, tmp_path / "wrong.pth", "Mixed_7c.branch1x1.conv.weight (320, 2048, 3, 3)")
    torch.save(dict(state, **{"fc.weight": torch.zeros(10, 2048), "fc.bias": torch.zeros(10)}), tmp_path / "classes.pth")
    _refused(load_features, tmp_path / "classes.pth", "fc.weight (10, 2048)")
    (tmp_path / "inception.txt").write_text("hello")
    _refused(load_features, tmp_path / "inception.txt", "not a torch file")

    class NoFeatures(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean((2, 3))

    torch.jit.script(NoFeatures()).save(str(tmp_path / "inception-2015-12-05.pt"))
    _refused(load_features, tmp_path / "inception-2015-12-05.pt", "return_features")
    _refused(load_features, tmp_path / "absent.pth", "no such file")
    [line] = check_fid(_params(inception_weights=str(tmp_path / "cut.pth")))
    assert not line.ok and "pytorch-fid" in line.release
    [line] = check_fid(_params(inception_weights=str(pytorch_fid_file)))
    assert line.ok and line.backend == "pytorch_fid"
    [line] = check_fid(_params())
    assert line.ok and "unavailable" in line.detail and "pt_inception-2015-12-05-6726825d.pth" in line.detail


# --- 3DMM --------------------------------------------------------------------------------------

def test_face_recon_has_deep3dfacerecons_names_and_shapes():
    assert face_recon.expected_shapes() == specs.deep3d_net_recon()
    assert face_recon.COEFFICIENTS == 257 and face_recon.EXP == slice(80, 144) and face_recon.ANGLE == slice(224, 227)


def test_alignment_puts_the_template_where_deep3dfacerecon_puts_it():
    """Five points that are a frontal projection of the 3D template (scale 150 px, centre
    (300, 260)): the crop is the image scaled by 102 / 150 and shifted so the template lands at
    112 + 102 * (x, -y), as align_img does (to its integer rounding)."""
    scale, centre = 150.0, np.array([300.0, 260.0])
    five = np.c_[LM3D_FIVE[:, 0] * scale + centre[0], -LM3D_FIVE[:, 1] * scale + centre[1]]
    h0 = 520
    up = five.copy()
    up[:, 1] = h0 - 1 - up[:, 1]
    t, s = fit_scale_translation(up, LM3D_FIVE)
    assert s == pytest.approx(scale, rel=1e-6)
    image = np.zeros((h0, 600, 3), np.uint8)
    for x, y in five.round().astype(int):
        image[y - 2: y + 3, x - 2: x + 3] = 255
    crop = align_3dmm(image, five)
    assert crop.shape == (224, 224, 3)
    expect = np.c_[112 + 102 * LM3D_FIVE[:, 0], 112 - 102 * LM3D_FIVE[:, 1]]
    for ex, ey in expect:
        window = crop[int(ey) - 4: int(ey) + 5, int(ex) - 4: int(ex) + 5, 0]
        assert window.max() > 100, (ex, ey)


@pytest.fixture(scope="module")
def deep3d_checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("deep3d") / "checkpoints"
    specs.write_deep3d_checkpoint(root)
    return root


@pytest.mark.slow
def test_epoch_20_pth_gives_the_3dmm_metrics(deep3d_checkpoints, hopper):
    file = deep3d_checkpoints / "face_recon_feat0.2_augment" / "epoch_20.pth"
    for configured in (deep3d_checkpoints, file.parent, file):  # checkpoints/, its model folder, the file
        assert inspect_3dmm(configured)[:2] == (file, "deep3d")
    dmm, reason = load_3dmm("auto", str(deep3d_checkpoints), "cpu")
    assert isinstance(dmm, Face3DMM) and reason is None and dmm.kind == "deep3d"
    m = MotionMetrics(dmm)
    turned = turn_head(hopper, nose=(269.0, 239.0), face_width=180.0, shift=72.0)
    m.update([hopper, turned], [hopper, hopper])
    r = m.results()
    assert r["APD"].backend == r["AED"].backend == "3dmm:epoch_20.pth" and r["AGD"].backend == "mesh"
    assert r["APD"].paper_metric and r["AED"].paper_metric and r["AGD"].paper_metric is None
    assert m.per_pair()["APD"][0] == pytest.approx(0.0, abs=1e-6) and m.per_pair()["AED"][1] > 0
    six = MotionMetrics(dmm, pose="angles_translation")
    six.update([turned], [hopper])
    assert six.per_pair()["APD"][0] != pytest.approx(m.per_pair()["APD"][1])


def test_motion_auto_without_a_folder_is_the_flagged_mesh(tmp_path):
    assert load_3dmm("auto", None) == (None, None)
    m = MotionMetrics(*load_3dmm("auto", None))
    a = data.astronaut()
    m.update([a], [a])
    assert m.results()["APD"].backend == "mesh" and m.results()["APD"].paper_metric is False
    [line] = check_motion(_params())
    assert line.ok and "not the paper's" in line.detail
    with pytest.raises(WeightsFormatError, match="no such file or folder"):  # a typo is an error, not the mesh
        load_3dmm("auto", str(tmp_path / "checkpionts"))


def test_bad_3dmm_files_are_errors(deep3d_checkpoints, tmp_path):
    good = deep3d_checkpoints / "face_recon_feat0.2_augment" / "epoch_20.pth"
    ckpt = torch.load(good, weights_only=True)
    net = ckpt["net_recon"]
    renamed = dict(ckpt, net_recon={k.replace("final_layers.1.", "final_layers.exp."): v for k, v in net.items()})
    torch.save(renamed, tmp_path / "renamed.pth")
    _refused(Face3DMM, tmp_path / "renamed.pth", "missing: final_layers.1.weight")
    wrong = dict(ckpt, net_recon=dict(net, **{"final_layers.1.weight": torch.zeros(32, 2048, 1, 1),
                                              "final_layers.1.bias": torch.zeros(32)}))
    torch.save(wrong, tmp_path / "wrong.pth")
    _refused(Face3DMM, tmp_path / "wrong.pth", "final_layers.1.weight (32, 2048, 1, 1)")
    torch.save({"model": net}, tmp_path / "other.pth")
    _refused(Face3DMM, tmp_path / "other.pth", "without net_recon")
    raw = good.read_bytes()
    (tmp_path / "cut.pth").write_bytes(raw[:1000])
    _refused(Face3DMM, tmp_path / "cut.pth", "truncated")
    (tmp_path / "empty").mkdir()
    _refused(Face3DMM, tmp_path / "empty", "without epoch_20.pth")
    [line] = check_motion(_params(motion_3dmm_dir=str(tmp_path / "wrong.pth")))
    assert not line.ok and "Deep3DFaceRecon" in line.release
    [line] = check_motion(_params(motion_3dmm_dir=str(deep3d_checkpoints)))
    assert line.ok and line.path.endswith("epoch_20.pth")


# --- LPIPS -------------------------------------------------------------------------------------

def test_configured_alexnet_file_matches_the_lpips_package(tmp_path):
    """torchvision's `alexnet-owt-7be5be79.pth` layout, configured as evaluate.lpips_alexnet_weights,
    through load_net and the metric: equals `lpips.LPIPS(net="alex")` with the same trunk."""
    import lpips

    torch.manual_seed(0)
    alex = torchvision.models.alexnet()
    path = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save(alex.state_dict(), path)
    ref = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)
    trunk = [m for s in (ref.net.slice1, ref.net.slice2, ref.net.slice3, ref.net.slice4, ref.net.slice5) for m in s.children()]
    for ours_layer, ref_layer in zip(alex.features, trunk):
        if hasattr(ref_layer, "weight"):
            ref_layer.weight.data, ref_layer.bias.data = ours_layer.weight.data.clone(), ours_layer.bias.data.clone()
    a = data.astronaut()[:128, :128]
    b = np.ascontiguousarray(a[::-1])

    def to_ref(im):
        return torch.from_numpy(im).permute(2, 0, 1)[None].float() / 127.5 - 1

    with torch.no_grad():
        expected = [ref(to_ref(b), to_ref(a)).item(), ref(to_ref(a), to_ref(a)).item()]
    metric = LPIPS(*load_net(str(path), "cpu"))
    metric.update([b, a], [a, a])
    assert metric.per_pair()["LPIPS"] == pytest.approx(expected, rel=1e-4, abs=1e-7)
    r = metric.results()["LPIPS"]
    assert r.backend == "lpips_alex_v0.1:alexnet-owt-7be5be79.pth" and r.paper_metric
    [line] = check_lpips(_params(lpips_alexnet_weights=str(path)))
    assert line.ok


def test_bad_alexnet_files_are_errors(tmp_path):
    state = torchvision.models.alexnet().state_dict()
    torch.save({k.replace("features.0.", "conv0."): v for k, v in state.items()}, tmp_path / "renamed.pth")
    _refused(load_net, tmp_path / "renamed.pth", "missing: features.0.weight")
    torch.save(dict(state, **{"features.0.weight": torch.zeros(64, 3, 3, 3)}), tmp_path / "wrong.pth")
    _refused(load_net, tmp_path / "wrong.pth", "features.0.weight (64, 3, 3, 3) (expected (64, 3, 11, 11))")
    _refused(load_net, tmp_path / "absent.pth", "no such file")
    assert load_net(None) == (None, "evaluate.lpips_alexnet_weights is not set")
    [line] = check_lpips(_params())  # nothing configured: not a failure, LPIPS is reported unavailable
    assert line.ok and "unavailable" in line.detail and "alexnet-owt-7be5be79.pth" in line.detail


# --- full size on the GPU ----------------------------------------------------------------------

@pytest.mark.gpu
def test_full_size_evaluation_networks_agree_on_cuda_and_cpu(tmp_path, pytorch_fid_file, deep3d_checkpoints, hopper):
    """iresnet100 backbone.pth, the FID Inception and Deep3DFaceRecon's ResNet-50 with random
    weights in their published layouts, on CUDA against the CPU."""
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from pipeline.faces.identity import ArcFaceEncoder

    backbone = specs.write_arcface_backbone(tmp_path / "backbone.pth", specs.IRESNET100)
    crops = np.stack([np.asarray(Image.fromarray(hopper).resize((112, 112)))] * 4)
    emb = {d: ArcFaceEncoder(backbone, d).embed_aligned(crops) for d in ("cpu", "cuda")}
    np.testing.assert_allclose(emb["cuda"], emb["cpu"], atol=2e-3)
    images = [hopper[:400, :400].copy(), hopper[100:500, 50:450].copy()]
    feats = {d: InceptionFeatures(pytorch_fid_file, d)(images) for d in ("cpu", "cuda")}
    np.testing.assert_allclose(feats["cuda"], feats["cpu"], rtol=2e-3, atol=2e-3 * np.abs(feats["cpu"]).max())
    coeffs = {d: Face3DMM(deep3d_checkpoints, d).coefficients([align_3dmm(hopper, LM3D_FIVE[:, :2] * [150, -150] + [260, 240])])
              for d in ("cpu", "cuda")}
    np.testing.assert_allclose(coeffs["cuda"], coeffs["cpu"], rtol=2e-3, atol=2e-3 * np.abs(coeffs["cpu"]).max())
