"""The `relight` stage and its backends: the offline SH relighter, NeuralGaffer (tiny random model
through the real loading path), environment maps and their SH projection."""
from __future__ import annotations

import dataclasses
import json
import types
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.config.relight import RelightParams
from pipeline.config.runner import RunnerParams
from tests.fixtures.face_standins import label_map
from pipeline.backends.relighters import envmaps as E
from pipeline.faces.paste import composite, feather
from pipeline.backends.relighters.base import region_mask
from pipeline.backends.relighters.sh import SHRelighter
from stages.relight import RelightStage, list_items, run, write_preview
from tests.fixtures.relight_inputs import make_fake_annotate_inputs, portrait_crop

SIZE = 512


def lobe_light(el: float, az: float, name: str = "lobe", sharpness: float = 20.0) -> E.EnvLight:
    """A white light from (elevation, azimuth from the camera towards image right) plus a little ambient."""
    d, _ = E.directions(64)
    radiance = 0.05 + E._lobe(d, E.from_azimuth(el, az), sharpness)[..., None] * 4.0 * np.ones(3)
    return E.EnvLight(radiance.astype(np.float32), name, 0.0)


@pytest.fixture(scope="module")
def astronaut():
    img, pts = portrait_crop("astronaut", SIZE)
    mask = region_mask(label_map((SIZE, SIZE), pts), RelightParams().regions)
    return img, mask


@pytest.fixture(scope="module")
def sh_relighter():
    return SHRelighter(RelightParams())


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    return make_fake_annotate_inputs(tmp_path_factory.mktemp("annotate"), size=SIZE)


def params_for(root: Path, animate: Path, segment: Path, **kw) -> RelightParams:
    return RelightParams(animate_dir=str(animate), segment_dir=str(segment), out_dir=str(root / "relight"), **kw)


def run_stage(params: RelightParams, seed: int = 0):
    return run(params, RunnerParams(workers=0, progress=False), seed)


# --- environment maps ----------------------------------------------------------------------------

@pytest.mark.parametrize("el,az", [(30, -70), (10, 60), (75, 0), (0, 180), (-40, 20)])
def test_sh_projection_gives_the_light_direction(el, az) -> None:
    light = lobe_light(el, az, sharpness=60.0)
    got = np.array(light.light_dir)
    want = E.from_azimuth(el, az)
    assert np.degrees(np.arccos(np.clip(got @ want, -1, 1))) < 3.0


def test_sh_irradiance_of_a_uniform_map_is_pi_times_radiance() -> None:
    d, _ = E.directions(32)
    sh = E.project_sh(np.full(d.shape, 0.5, np.float32))
    normals = np.array([[0, 0, 1.0], [1.0, 0, 0], [0, -1.0, 0]])
    assert np.allclose(E.irradiance(sh, normals), np.pi * 0.5, rtol=0.01)


def test_rotation_turns_the_light_about_the_vertical_axis() -> None:
    light = lobe_light(20, 0, sharpness=60.0)  # frontal: azimuth pi in map terms
    turned = E.EnvLight(E.rotate(light.radiance, 90.0), "turned", 90.0)
    # phi + 90 deg from the front (phi = pi) is phi = -pi/2: image left.
    assert turned.light_dir[0] < -0.85 and abs(turned.light_dir[2]) < 0.2


def test_colour_temperature_of_black_bodies() -> None:
    for kelvin in (3000, 5000, 6500, 9000):
        assert abs(E.color_temperature(E.kelvin_to_rgb(kelvin)) - kelvin) / kelvin < 0.08


def test_hdr_files_from_a_user_folder(tmp_path) -> None:
    folder = tmp_path / "maps"
    folder.mkdir()
    light = lobe_light(15, -60)
    cv2.imwrite(str(folder / "studio.hdr"), np.ascontiguousarray(light.radiance[..., ::-1]))
    (folder / "notes.txt").write_text("not a map")
    files = E.list_envmaps(folder)
    assert [p.name for p in files] == ["studio.hdr"]
    loaded = E.load_envmap(files[0], 32)
    assert loaded.shape == (32, 64, 3) and loaded.dtype == np.float32
    assert np.degrees(np.arccos(E.dominant_direction(E.project_sh(loaded)) @ E.from_azimuth(15, -60))) < 5
    cv2.imwrite(str(folder / "studio2.exr"), np.ascontiguousarray(light.radiance[..., ::-1]))
    assert [p.name for p in E.list_envmaps(folder)] == ["studio.hdr", "studio2.exr"]
    assert np.allclose(E.load_envmap(folder / "studio2.exr", 32), loaded, atol=0.02 * loaded.max())
    cv2.imwrite(str(folder / "square.hdr"), np.ones((16, 16, 3), np.float32))
    with pytest.raises(ValueError, match="equirectangular"):
        E.load_envmap(folder / "square.hdr", 32)


def test_procedural_maps_differ_and_are_seeded() -> None:
    kinds = RelightParams().procedural_kinds
    a = E.draw_lights(5, np.random.default_rng(3), kinds=kinds, height=32)
    b = E.draw_lights(5, np.random.default_rng(3), kinds=kinds, height=32)
    assert [x.name for x in a] == [x.name for x in b]
    assert len({x.name.split("(")[0] for x in a}) == 5  # one of each kind
    assert all(np.isfinite(x.radiance).all() and x.radiance.min() >= 0 for x in a)


# --- the offline SH relighter ---------------------------------------------------------------------

def test_sh_changes_the_face_and_nothing_outside_its_mask(astronaut, sh_relighter) -> None:
    img, mask = astronaut
    relit = sh_relighter.relight(img, mask, [lobe_light(20, -70)])[0]
    out = composite(img, relit, feather(mask, 6))
    assert np.array_equal(out[~mask], img[~mask])  # bit-identical outside
    inner = cv2.erode(mask.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    changed = np.abs(out.astype(int) - img.astype(int)).max(-1)[inner]
    assert (changed > 8).mean() > 0.5


def test_light_from_image_left_brightens_the_left_half(astronaut, sh_relighter) -> None:
    img, mask = astronaut
    left, right = sh_relighter.relight(img, mask, [lobe_light(15, -75), lobe_light(15, 75)])
    ys, xs = np.nonzero(mask)
    mid = int(np.median(xs))
    band = mask & (np.arange(SIZE)[:, None] > ys.min() + 0.3 * (ys.max() - ys.min()))  # the face, below the hair

    def halves(x: np.ndarray) -> tuple[float, float]:
        lum = x.astype(float) @ [0.299, 0.587, 0.114]
        return lum[:, :mid][band[:, :mid]].mean(), lum[:, mid:][band[:, mid:]].mean()

    l_left, l_right = halves(left)
    r_left, r_right = halves(right)
    assert l_left > l_right + 10, (l_left, l_right)
    assert r_right > r_left + 10, (r_left, r_right)
    assert l_left > r_left and r_right > l_right


def test_sh_keeps_the_photo_exposure_on_average(astronaut, sh_relighter) -> None:
    img, mask = astronaut
    relit = sh_relighter.relight(img, mask, [lobe_light(30, 10)])[0]
    ratio = relit[mask].astype(float).mean() / img[mask].astype(float).mean()
    assert 0.75 < ratio < 1.3


# --- the stage ----------------------------------------------------------------------------------

def test_stage_writes_variants_manifest_and_preview(tmp_path, inputs) -> None:
    animate, segment = inputs
    params = params_for(tmp_path, animate, segment, variants=2)
    stats = run_stage(params).stats
    assert stats["complete"] and stats["done"] == 4 and stats["rows"] == 8
    man = pd.read_parquet(Path(params.out_dir) / "manifest.parquet")
    assert set(man.variant) == {"r1", "r2"} and set(man.backend) == {"sh"}
    assert set(man.item_id) == {f"v{k:04d}-f000000-i{i:02d}" for k in range(2) for i in range(2)}
    row = man.iloc[0]
    assert row.path == f"sets/{row.face_id}/{row.image}.{row.variant}.jpg"
    assert len(json.loads(row.light_dir)) == 3 and 1000 <= row.color_temp_k <= 25000
    # The written JPEG: changed inside the face, (JPEG-)unchanged away from the mask.
    src = cv2.imread(str(animate / "sets" / row.face_id / f"{row.image}.jpg")).astype(int)
    out = cv2.imread(str(Path(params.out_dir) / row.path)).astype(int)
    labels = cv2.imread(str(segment / "sets" / row.face_id / f"{row.image}.seg.png"), cv2.IMREAD_UNCHANGED)
    mask = region_mask(labels, params.regions)
    far = cv2.dilate(mask.astype(np.uint8), np.ones((25, 25), np.uint8)) == 0
    inner = cv2.erode(mask.astype(np.uint8), np.ones((25, 25), np.uint8)) > 0
    assert np.abs(out - src)[far].mean() < 1.5
    assert np.abs(out - src)[inner].mean() > 6
    preview = cv2.imread(str(Path(params.out_dir) / "preview.jpg"))
    assert preview is not None and preview.shape[1] == 3 * 256  # r0, r1, r2
    assert write_preview(params) is not None


def test_rejects_missing_label_map_no_face_and_tiny_mask(tmp_path) -> None:
    animate, segment = make_fake_annotate_inputs(tmp_path / "in", size=256, faces=(("astronaut", False),), images=3)
    face = "v0000-f000000"
    (segment / "sets" / face / "i00.seg.png").unlink()
    cv2.imwrite(str(animate / "sets" / face / "i01.jpg"), np.full((256, 256, 3), 128, np.uint8))  # no face
    cv2.imwrite(str(segment / "sets" / face / "i02.seg.png"), np.zeros((256, 256), np.uint8))  # empty mask
    params = params_for(tmp_path, animate, segment, variants=1)
    stats = run_stage(params).stats
    rejects = pd.read_parquet(Path(params.out_dir) / "rejects.parquet").set_index("item_id")
    assert stats["rejected"] == 3
    assert rejects.loc[f"{face}-i00", "code"] == "no_label_map"
    assert rejects.loc[f"{face}-i01", "code"] == "no_face"
    assert rejects.loc[f"{face}-i02", "code"] == "no_face_mask"


def test_stage_uses_user_envmaps_and_records_them(tmp_path) -> None:
    animate, segment = make_fake_annotate_inputs(tmp_path / "in", size=256, faces=(("hopper", False),), images=1)
    maps = tmp_path / "maps"
    maps.mkdir()
    for name, az in (("left.hdr", -70), ("right.hdr", 70)):
        cv2.imwrite(str(maps / name), np.ascontiguousarray(lobe_light(10, az).radiance[..., ::-1]))
    params = params_for(tmp_path, animate, segment, variants=2, envmap_dir=str(maps))
    run_stage(params)
    man = pd.read_parquet(Path(params.out_dir) / "manifest.parquet")
    assert set(man.envmap) == {"left.hdr", "right.hdr"}  # two variants, two maps, no repeat
    assert man.rotation_deg.between(-180, 180).all()


def test_piq_relight_command(tmp_path) -> None:
    """`piq relight` reads params.yaml's section, runs, writes the DVC metric and exits 0."""
    import yaml

    from pipeline.commands.piq import main

    animate, segment = make_fake_annotate_inputs(tmp_path / "in", size=256, faces=(("hopper", False),), images=1)
    root = Path(__file__).resolve().parents[1]
    data = yaml.safe_load((root / "params.yaml").read_text())
    data["relight"].update(animate_dir=str(animate), segment_dir=str(segment), out_dir=str(tmp_path / "out"), variants=2)
    data["runner"]["progress"] = False
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(data))
    report = tmp_path / "stats.json"
    assert main(["--params", str(tmp_path / "params.yaml"), "relight", "--workers", "0", "--report", str(report)]) == 0
    stats = json.loads(report.read_text())
    assert stats["complete"] and stats["rows"] == 2
    assert (tmp_path / "out" / "preview.jpg").is_file()


def test_list_items_needs_the_animate_manifest(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="piq animate"):
        list_items(RelightParams(animate_dir=str(tmp_path)))


# --- NeuralGaffer ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def gaffer_dir(tmp_path_factory) -> Path:
    from tests.fixtures.neural_gaffer_random import save_random_folder

    return save_random_folder(tmp_path_factory.mktemp("gaffer") / "neural_gaffer")


def gaffer_params(root: Path, animate: Path, segment: Path, model: Path, device: str = "cpu") -> RelightParams:
    return params_for(root, animate, segment, backend="neural_gaffer", neural_gaffer_dir=str(model), variants=2,
                      resolution=32, num_inference_steps=2, device=device, dtype="fp32")


def test_neural_gaffer_loads_the_folder_and_relights_inside_the_mask(tmp_path, gaffer_dir) -> None:
    animate, segment = make_fake_annotate_inputs(tmp_path / "in", size=256, faces=(("astronaut", False),), images=1)
    params = gaffer_params(tmp_path, animate, segment, gaffer_dir)
    stats = run_stage(params).stats
    assert stats["done"] == 1 and stats["rows"] == 2, stats
    man = pd.read_parquet(Path(params.out_dir) / "manifest.parquet")
    assert set(man.backend) == {"neural_gaffer"}
    # Through the stage object: the array before JPEG encoding is bit-identical outside the mask.
    stage = RelightStage(params)
    img, pts = portrait_crop("astronaut", 256)
    mask = region_mask(label_map((256, 256), pts), params.regions)
    relit = stage.relighter.relight(img, mask, E.draw_lights(2, np.random.default_rng(0), kinds=params.procedural_kinds, height=32), seed=3)
    assert [r.shape for r in relit] == [img.shape] * 2
    out = composite(img, relit[0], feather(mask, 4))
    assert np.array_equal(out[~mask], img[~mask]) and (out[mask] != img[mask]).any()


def test_neural_gaffer_names_missing_parts(tmp_path, gaffer_dir) -> None:
    import shutil

    from pipeline.backends.relighters.neural_gaffer import NeuralGafferModel
    from pipeline.weight_files.checks import WeightsFormatError

    broken = tmp_path / "broken"
    shutil.copytree(gaffer_dir, broken)
    shutil.rmtree(broken / "vae")
    (broken / "scheduler" / "scheduler_config.json").unlink()
    with pytest.raises(WeightsFormatError, match=r"broken: incomplete: missing vae/config.json, scheduler/scheduler_config.json"):
        NeuralGafferModel.from_folder(broken, device="cpu")


@pytest.fixture(scope="module")
def gaffer_release(tmp_path_factory):
    from tests.fixtures.neural_gaffer_release import write_release

    return write_release(tmp_path_factory.mktemp("gaffer_release"))


def test_neural_gaffer_from_the_two_published_pieces(tmp_path, gaffer_release) -> None:
    """Zero123-XL as published (8-input unet/, *.bin) + the released checkpoint folder: the
    newest checkpoint-<step>/ is loaded into the widened UNet, and the stage relights with it."""
    import torch

    from pipeline.backends.relighters.neural_gaffer import NeuralGafferModel

    base, ckpt_root, state = gaffer_release
    model = NeuralGafferModel.from_folder(base, device="cpu", dtype="fp32", checkpoint=ckpt_root)
    assert model.unet.config.in_channels == 16
    assert torch.equal(model.unet.conv_in.weight, state["conv_in.weight"])  # not the zeroed older step
    animate, segment = make_fake_annotate_inputs(tmp_path / "in", size=256, faces=(("astronaut", False),), images=1)
    params = dataclasses.replace(gaffer_params(tmp_path, animate, segment, base), neural_gaffer_checkpoint=str(ckpt_root))
    assert run_stage(params).stats["done"] == 1


def test_neural_gaffer_condition_latents_are_seeded_posterior_samples(gaffer_release) -> None:
    """As the official script (a list of generators): per item, the noise first, then the
    posterior SAMPLE of the image latent from the same generator -- not the mode."""
    import torch

    from pipeline.backends.relighters.neural_gaffer import NeuralGafferModel, item_generators

    base, ckpt_root, _ = gaffer_release
    model = NeuralGafferModel.from_folder(base, device="cpu", dtype="fp32", checkpoint=ckpt_root)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    gens = item_generators(5, 2, "cpu")
    got = model._latents(x, gens)
    again = model._latents(x, item_generators(5, 2, "cpu"))
    assert torch.equal(got, again)  # seeded
    posterior = model.vae.encode(x).latent_dist
    assert not torch.allclose(got, posterior.mode())
    expect = torch.cat([posterior.mean[i:i + 1] + posterior.std[i:i + 1] * torch.randn(
        posterior.mean[i:i + 1].shape, generator=g) for i, g in enumerate(item_generators(5, 2, "cpu"))])
    assert torch.allclose(got, expect, atol=1e-5)
    # Through sample(): same seeds, same images; each item its own generator.
    a = model.sample(x, x, x, steps=2, generator=item_generators(1, 2, "cpu"))
    b = model.sample(x, x, x, steps=2, generator=item_generators(1, 2, "cpu"))
    assert torch.equal(a, b) and not torch.equal(a[0], a[1])


@pytest.mark.parametrize("kind, message", [
    ("renamed", r"model.safetensors: missing: conv_in.weight; unexpected: renamed.conv_in.weight"),
    ("wrong_shape", r"model.safetensors: wrong shape: conv_in.weight \(32, 8, 3, 3\) \(expected \(32, 16, 3, 3\)\)"),
    ("truncated", r"model.safetensors: could not be read"),
    ("missing_part", r"zero123-xl: incomplete: missing image_encoder/config.json"),
    ("no_checkpoint", r"unet/config.json: a 8-input UNet .* relight.neural_gaffer_checkpoint is not set"),
])
def test_neural_gaffer_bad_pieces_are_errors_naming_the_file(tmp_path, gaffer_release, kind, message) -> None:
    import shutil

    from safetensors.torch import load_file, save_file

    from pipeline.backends.relighters.neural_gaffer import NeuralGafferModel, check_neural_gaffer
    from pipeline.weight_files.checks import WeightsFormatError

    base0, ckpt0, _ = gaffer_release
    base, ckpt = shutil.copytree(base0, tmp_path / "zero123-xl"), shutil.copytree(ckpt0, tmp_path / "ckpt")
    model_file = ckpt / "checkpoint-1200" / "model.safetensors"
    if kind in ("renamed", "wrong_shape"):
        state = load_file(str(model_file))
        if kind == "renamed":
            state["renamed.conv_in.weight"] = state.pop("conv_in.weight")
        else:
            state["conv_in.weight"] = state["conv_in.weight"][:, :8].contiguous()
        save_file(state, str(model_file))
    elif kind == "truncated":
        model_file.write_bytes(model_file.read_bytes()[:5000])
    elif kind == "missing_part":
        shutil.rmtree(base / "image_encoder")
    with pytest.raises(WeightsFormatError, match=message):
        NeuralGafferModel.from_folder(base, device="cpu", checkpoint=None if kind == "no_checkpoint" else ckpt)
    relight = dataclasses.replace(RelightParams(), backend="neural_gaffer", neural_gaffer_dir=str(base),
                                  neural_gaffer_checkpoint=None if kind == "no_checkpoint" else str(ckpt))
    lines = check_neural_gaffer(types.SimpleNamespace(relight=relight))
    assert not lines[-1].ok and "kxic/zero123-xl" in lines[-1].release


def test_neural_gaffer_models_check_on_the_published_pieces(gaffer_release) -> None:
    from pipeline.backends.relighters.neural_gaffer import check_neural_gaffer

    base, ckpt, _ = gaffer_release
    relight = dataclasses.replace(RelightParams(), backend="neural_gaffer", neural_gaffer_dir=str(base),
                                  neural_gaffer_checkpoint=str(ckpt))
    lines = check_neural_gaffer(types.SimpleNamespace(relight=relight))
    assert [c.component.split(".")[-1] for c in lines] == ["unet", "vae", "image_encoder", "checkpoint"]
    assert all(c.ok for c in lines), [c.line() for c in lines]
    assert "(8 input channels)" in lines[0].detail and lines[-1].path.endswith("checkpoint-1200/model.safetensors")
    assert check_neural_gaffer(types.SimpleNamespace(relight=RelightParams())) == []  # sh backend selected


@pytest.mark.gpu
def test_neural_gaffer_on_cuda(tmp_path, gaffer_dir) -> None:
    animate, segment = make_fake_annotate_inputs(tmp_path / "in", size=256, faces=(("hopper", False),), images=1)
    params = dataclasses.replace(gaffer_params(tmp_path, animate, segment, gaffer_dir, device="cuda"), dtype="bf16")
    stats = run_stage(params).stats
    assert stats["done"] == 1 and stats["rows"] == 2, stats


@pytest.mark.parametrize("az,column", [(90, 0.5), (0, 0.75), (-90, 0.0), (180, 0.25)])
def test_neural_gaffer_map_frame(az, column) -> None:
    """NeuralGaffer's camera-aligned map: phi = 0 (centre) looks to image right, phi = -pi/2
    (three quarters) towards the camera, pi/2 (one quarter) behind the subject."""
    from pipeline.backends.relighters.neural_gaffer import gaffer_envmaps

    hdr, ldr = gaffer_envmaps(lobe_light(0, az, sharpness=200.0), 64)
    row, col = np.unravel_index(np.argmax(hdr.sum(-1)), hdr.shape[:2])
    assert abs(row / 64 - 0.5) < 0.05
    assert min(abs(col / 64 - column), 1 - abs(col / 64 - column)) < 0.05
    assert hdr.max() == pytest.approx(1.0) and 0 <= ldr.min() and ldr.max() <= 1


@pytest.mark.slow  # 24 s on the 2-core machine under load
def test_benchmark_runs_on_cpu() -> None:
    """bench/relight.py: the sh figure through the stage, and the NeuralGaffer code with --tiny (not timed)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    for cmd, expect in ((["--images", "1", "--variants", "1", "--size", "256"], "images/s/core"),
                        (["--tiny", "--steps", "2", "--batches", "1", "2", "--repeats", "1", "--stage-images", "2", "--size", "256"],
                         "images/s (")):
        done = subprocess.run([sys.executable, "-m", "bench.relight", *cmd], cwd=root, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-2000:]
        assert expect in done.stdout, done.stdout


def test_relight_output_feeds_the_shard_stage(tmp_path) -> None:
    """`piq relight` on animate/segment outputs, then `piq shard` takes its variants into the
    release with no set refused and the manifest's light records in meta.json."""
    import tarfile

    from stages.shard import build_release
    from tests.fixtures.portraits import make_fake_ingest
    from tests.fixtures.release import make_upstream, shard_params

    ingest = make_fake_ingest(tmp_path / "ingest", size=256)
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    upstream = make_upstream(tmp_path / "up", ingest, n_expressive=1, n_relit=2, size=256)
    params = params_for(tmp_path, upstream["animate"], upstream["segment"], variants=2)
    relit = run_stage(params).stats
    assert relit["rejected"] == 0 and relit["rows"] == 3 * 2 * 2, relit
    shard = dataclasses.replace(shard_params(tmp_path / "up", ingest), relight_dir=params.out_dir)
    stats = build_release(shard, RunnerParams(workers=0, progress=False), seed=0)
    assert stats["sets_refused"] == {} and stats["relit_per_image"] == 2, stats
    tars = sorted(Path(shard.out_dir).glob("*/*.tar"))
    with tarfile.open(tars[0]) as tar:
        names = tar.getnames()
        meta = json.loads(tar.extractfile(next(n for n in names if n.endswith("meta.json"))).read())
    assert any(n.endswith(".i01.r2.jpg") for n in names)
    assert meta["backends"]["relight"] == "sh"
    assert meta["images"][0]["relit"][0]["envmap"].split("(")[0] in RelightParams().procedural_kinds
