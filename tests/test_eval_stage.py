"""Test sets from release shards, user triplet folders, and `piq evaluate` end to end with the
offline baselines and a tiny trained-model stand-in (eval/data.py, stages/evaluate.py)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from diffusers import EulerDiscreteScheduler
from skimage import data

from eval.data import build_test_set, iter_test_meta, iter_triplets, list_pairs, plan_pairs, read_image
from pipeline.commands.piq import main as piq
from pipeline.config.data import DataParams


@pytest.fixture(scope="module")
def meta(tiny_shards):
    return list(iter_test_meta(tiny_shards))


def test_id_pairs_stay_in_one_set_and_are_seeded(meta):
    plans = plan_pairs(meta, "id", 7, seed=3)
    assert len(plans) == 7 and all(p.source_set == p.target_set and p.source_index != p.target_index for p in plans)
    assert len({p.source_set for p in plans}) == 3  # spread over every set before repeating
    assert plans == plan_pairs(meta, "id", 7, seed=3) and plans != plan_pairs(meta, "id", 7, seed=4)


def test_ood_pairs_take_the_target_from_another_set_of_the_same_identity(meta):
    person = {k: m["participant_id"] for k, m in meta}
    plans = plan_pairs(meta, "ood", 6, seed=0)
    for p in plans:
        assert p.source_set != p.target_set and person[p.source_set] == person[p.target_set]
    assert {person[p.source_set] for p in plans} == {"pastronaut"}  # hopper has one set: no OOD pair
    only_one = [(k, m) for k, m in meta if m["participant_id"] == "phopper"]
    with pytest.raises(ValueError, match="two clips of one identity"):
        plan_pairs(only_one, "ood", 2, seed=0)


def test_test_set_is_built_once_and_reproducibly(tiny_shards, tmp_path):
    p = DataParams()
    a = build_test_set(tiny_shards, tmp_path / "a", "id", 4, 0, p, 64)
    stamp = (a / "index.json").stat().st_mtime_ns
    assert build_test_set(tiny_shards, tmp_path / "a", "id", 4, 0, p, 64) == a
    assert (a / "index.json").stat().st_mtime_ns == stamp  # kept: same plan
    b = build_test_set(tiny_shards, tmp_path / "b", "id", 4, 0, p, 64)
    assert list_pairs(a) == list_pairs(b) == [f"id{i:05d}" for i in range(4)]
    for pid in list_pairs(a):
        for role in ("source", "driving_input", "target"):
            assert np.array_equal(read_image(a / f"{pid}.{role}.png"), read_image(b / f"{pid}.{role}.png"))
    t = next(iter_triplets(a))
    assert t.source.shape == (64, 64, 3) and t.caption
    assert (t.driving_input == 0).all(axis=2).mean() > 0.2  # the inner face only, as in training
    assert not np.array_equal(t.source, t.target)


def test_user_triplets_without_driving_input_get_a_face_mask(tmp_path):
    face = cv2.resize(data.astronaut()[5:235, 109:339], (128, 128), interpolation=cv2.INTER_AREA)
    for role, img in (("source", face), ("driving", face[:, ::-1])):
        cv2.imwrite(str(tmp_path / f"ffhq_0001.{role}.png"), cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2BGR))
    (t,) = list(iter_triplets(tmp_path))
    assert np.array_equal(t.target, t.driving)  # no target file: measured against the driving image
    inside = (t.driving_input != 0).any(axis=2)
    assert 0.1 < inside.mean() < 0.6 and inside[64, 64] and not inside[2, 2]


def _tiny_model(path: Path) -> None:
    from train.backbones import tiny_components
    from train.model import PiQModel
    from train.piq_pipeline import PiQPerfectPipeline

    comps = tiny_components("sdxl", seed=2)
    PiQModel(comps, "spatial", 32)
    PiQPerfectPipeline(comps.unet, comps.vae, comps.text_encoder, comps.tokenizer,
                       EulerDiscreteScheduler.from_config(comps.scheduler.config), comps.text_encoder_2,
                       comps.tokenizer_2, concat="spatial", resolution=32).save_pretrained(path)


def test_piq_evaluate_writes_the_report(tiny_shards, tmp_path, monkeypatch):
    _tiny_model(tmp_path / "model")
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["evaluate"].update(id_shards=[str(tiny_shards), str(tmp_path / "absent")], ood_shards=[str(tiny_shards)],
                              testset_dir=str(tmp_path / "sets"), out_dir=str(tmp_path / "report"), num_pairs=3, resolution=64,
                              batch_size=2,
                              methods=["source", "paste", "classical", "ipadapter", "liveportrait", "piq"],
                              model_dir=str(tmp_path / "model"), num_inference_steps=2, grid_pairs=2)
    params["train"]["reports_dir"] = str(tmp_path / "train")  # the trainer's loss, copied into the headline
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "metrics.json").write_text(json.dumps({"initial_loss": 1.5, "final_loss": 0.25, "steps": 9}))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert piq(["--params", str(tmp_path / "params.yaml"), "evaluate"]) == 0
    out = tmp_path / "report"
    metrics = json.loads((out / "metrics.json").read_text())  # headline figures of the trained model only
    assert set(metrics) == {"piq_id", "piq_ood", "loss"}
    assert metrics.pop("loss") == {"initial": 1.5, "final": 0.25}
    for ds in metrics.values():
        # what is measurable on 64 px random-model outputs: no FID / LPIPS weights here, no SSIM (not headline)
        assert "PSNR" in ds and set(ds) <= {"CSIM", "FID", "AED", "APD", "AGD", "LPIPS", "PSNR"}
    report = json.loads((out / "report.json").read_text())
    for ds in report["datasets"].values():  # every method's full table stays in the report
        rows = {r["method"]: r["table"] for r in ds}
        assert {m for m, t in rows.items() if t} == {"source", "paste", "classical", "piq"}  # ipadapter: no weights
        assert rows["piq"]["pairs"] == 3 and 0 < rows["piq"]["SSIM"] < 1 and "FID" not in rows["piq"]
        src = rows["source"]  # the unchanged source has a face to measure (the tiny model's noise has none)
        assert src["CSIM_backend"] == "dlib_resnet_v1" and src["CSIM_paper_metric"] is False
        assert src["APD_backend"] == "mesh" and src["APD_paper_metric"] is False and "PSNR_paper_metric" not in src
    tables = (out / "tables.md").read_text()
    assert "| ipadapter | unavailable" in tables and "| liveportrait | unavailable" in tables and "FID: unavailable" in tables
    assert "CSIM: dlib_resnet_v1 † paper metric not computed (the paper uses ArcFace)" in tables
    assert "APD: mesh † paper metric not computed" in tables and "† paper metric not computed: a stand-in" in tables
    report = json.loads((out / "report.json").read_text())
    piq_row = next(r for r in report["datasets"]["piq_id"] if r["method"] == "piq")
    assert piq_row["metrics"]["PSNR"]["n"] == 3 and piq_row["metrics"]["LPIPS"]["unavailable"]
    grid = read_image(out / "grids" / "piq_id_piq.png")
    assert grid.shape[1] == 4 * 160
    # every method got its inputs at the model's resolution (32), scored at evaluate.resolution (64)
    assert read_image(next((tmp_path / "sets" / "piq_id").glob("*.source.png"))).shape[:2] == (32, 32)
    assert report["meta"]["input_resolution"] == 32 and report["meta"]["resolution"] == 64
    plot = (out / "plots" / "PSNR.csv").read_text().splitlines()
    assert plot[0] == "name,value" and any(line.startswith("piq_ood/piq,") for line in plot)


def test_a_bad_configured_weights_file_stops_evaluate_with_its_name(tmp_path):
    """Before any test set is built or model loaded: every bad file named, with what was found."""
    (tmp_path / "backbone.pth").write_bytes(b"PK\x03\x04 cut short")
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["evaluate"].update(identity_weights=str(tmp_path / "backbone.pth"), inception_weights=str(tmp_path / "pt_inceptoin.pth"),
                              id_shards=[], ood_shards=[], out_dir=str(tmp_path / "report"))
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    with pytest.raises(SystemExit) as info:
        piq(["--params", str(tmp_path / "params.yaml"), "evaluate"])
    msg = str(info.value)
    assert "CSIM (evaluate.identity_weights)" in msg and "backbone.pth" in msg and "truncated" in msg
    assert "FID (evaluate.inception_weights)" in msg and "pt_inceptoin.pth: no such file" in msg
    assert not (tmp_path / "report").exists()


def test_bench_runs_on_cpu():
    """bench/evaluate.py exercises every metric and baseline (not timed here)."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-m", "bench.evaluate", "--pairs", "2", "--batch", "2", "--resolution", "128"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("pairs/s") == 8


@pytest.mark.gpu
def test_piq_method_on_cuda_is_loaded_like_piq_sample(tmp_path):
    """On a GPU the model runs as `piq sample` runs it (bf16, compiled), batched, and comes back
    at the test set's size."""
    from eval.baselines.piq import PiQMethod
    from eval.data import Triplet
    from pipeline.config.evaluate import EvaluateParams

    _tiny_model(tmp_path / "model")
    method = PiQMethod(EvaluateParams(model_dir=str(tmp_path / "model"), num_inference_steps=2, device="cuda"))
    assert method.pipe.device.type == "cuda"
    face = cv2.resize(data.astronaut()[5:235, 109:339], (96, 96), interpolation=cv2.INTER_AREA)
    batch = [Triplet(f"p{i}", face, face, face, face, "a smile") for i in range(3)]
    out = method.run(batch)
    assert len(out) == 3 and all(o.shape == (96, 96, 3) and o.dtype == np.uint8 for o in out)
    assert np.array_equal(out[0], method.run(batch)[0])  # seeded by the pair


@pytest.mark.slow
def test_piq_evaluate_with_the_published_weights_names_the_paper_models(tiny_shards, tmp_path):
    """ArcFace (arcface_torch backbone.pth), LPIPS (torchvision AlexNet) and Deep3DFaceRecon
    (checkpoints/<name>/epoch_20.pth), random values in their published layouts: the report
    names each file as the backend and flags nothing but what has no paper model."""
    import torch
    import torchvision

    from pipeline.faces import iresnet
    from tests.fixtures import eval_weight_specs as specs

    specs.write_arcface_backbone(tmp_path / "backbone.pth", iresnet.DEPTHS["iresnet18"])
    torch.save(torchvision.models.alexnet().state_dict(), tmp_path / "alexnet-owt-7be5be79.pth")
    specs.write_deep3d_checkpoint(tmp_path / "checkpoints")
    params = yaml.safe_load(Path("params.yaml").read_text())
    params["evaluate"].update(id_shards=[str(tiny_shards)], ood_shards=[str(tiny_shards)], testset_dir=str(tmp_path / "sets"),
                              out_dir=str(tmp_path / "report"), num_pairs=2, resolution=96, batch_size=2, methods=["source", "paste"],
                              grid_pairs=0, identity_weights=str(tmp_path / "backbone.pth"),
                              lpips_alexnet_weights=str(tmp_path / "alexnet-owt-7be5be79.pth"),
                              motion_3dmm_dir=str(tmp_path / "checkpoints"), device="cpu")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    assert piq(["--params", str(tmp_path / "params.yaml"), "evaluate"]) == 0
    report = json.loads((tmp_path / "report" / "report.json").read_text())  # the full per-method table
    row = next(r for r in report["datasets"]["piq_id"] if r["method"] == "source")["table"]
    assert row["CSIM_backend"] == "arcface:backbone.pth" and row["CSIM_paper_metric"] is True
    assert row["AED_backend"] == row["APD_backend"] == "3dmm:epoch_20.pth" and row["APD_paper_metric"] is True
    assert row["LPIPS_backend"] == "lpips_alex_v0.1:alexnet-owt-7be5be79.pth" and -1 <= row["CSIM"] <= 1
    tables = (tmp_path / "report" / "tables.md").read_text()
    assert "- CSIM: arcface:backbone.pth" in tables and "†" not in tables
