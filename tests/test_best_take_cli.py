"""`piq best-take` on the committed demo burst (samples/burst: the astronaut blinks in shot 0 and
looks away in shot 2, Hopper blinks in shot 1): the base and picks, the written files (marked,
provenance listing every input), bit-identity outside the replaced face, same bytes on a
rerun, a user's plan, and bad bursts refused with nothing written."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facereplace.best_take_cli import load_burst, make_best_take
from facereplace.compose import load_faces
from facereplace.contact_sheet import HEAD_H, SIDE_W
from facereplace.photo_io import Photo
from facereplace.provenance import digital_source_type, verify
from pipeline.commands.piq import main as piq
from pipeline.config.params import load_params
from pipeline.rejection import Reject

REPO = Path(__file__).resolve().parents[1]
PARAMS = REPO / "params.yaml"
BURST = [str(REPO / "samples" / "burst" / f"shot_{i}.jpg") for i in range(3)]

pytestmark = pytest.mark.slow  # face detection + identity on three photos: ~30 s on one core


@pytest.fixture(scope="module")
def params():
    return load_params(PARAMS)


@pytest.fixture(scope="module")
def shots(params):
    return load_burst(BURST, params)[0]


@pytest.fixture(scope="module")
def written(tmp_path_factory, shots) -> Path:
    """The CLI's outputs for the burst (the provenance time fixed, as the demo stage fixes it)."""
    out = tmp_path_factory.mktemp("best")
    assert piq(["--params", str(PARAMS), "best-take", *BURST, "-o", str(out / "best.jpg"), "--sheet", str(out / "sheet.jpg"),
                "--before-after", str(out / "ba.jpg"), "--save-plan", str(out / "plan.json"),
                "--edit-time", "2026-01-01T00:00:00Z"]) == 0
    return out


def test_base_is_the_shot_needing_one_replacement_from_the_best_face(written: Path) -> None:
    plan = json.loads((written / "plan.json").read_text())
    # the astronaut (person 0) is best in shot 1; Hopper's faces of shots 0 and 2 are within
    # min_gain of each other, so shot 2 (where the astronaut's face is smaller) needs the least
    assert plan["base"] == "shot_2.jpg" and plan["people"] == {"0": "shot_1.jpg", "1": "shot_2.jpg"}
    scores = plan["scores"]
    assert scores["0"]["shot_0.jpg"]["eyes_open"] < 0.5 < scores["0"]["shot_1.jpg"]["eyes_open"], "the blink is seen"
    assert scores["1"]["shot_1.jpg"]["eyes_open"] < scores["1"]["shot_0.jpg"]["eyes_open"]
    assert scores["0"]["shot_2.jpg"]["frontal"] < scores["0"]["shot_1.jpg"]["frontal"], "looking away is seen"
    # best_take.candidates (3): each person's best shots, best first; the astronaut's pick leads
    for n, ranked in plan["candidates"].items():
        assert sorted(ranked) == sorted(scores[n]) and [scores[n][s]["score"] for s in ranked] == sorted(
            (scores[n][s]["score"] for s in ranked), reverse=True)
    assert plan["candidates"]["0"][0] == "shot_1.jpg"


def test_output_is_marked_and_records_every_input(written: Path) -> None:
    v = verify(written / "best.jpg")
    assert v.marked and v.watermarked and v.metadata["digital_source_type"] == digital_source_type("classical")
    edit = v.metadata["edit"]
    assert edit["tool"] == "piq best-take" and edit["method"] == "classical" and edit["time"] == "2026-01-01T00:00:00+00:00"
    assert set(edit["inputs"]) == {"shot_0.jpg", "shot_1.jpg", "shot_2.jpg"}
    (face,) = edit["faces"]
    assert face["face"] == 0 and face["reference"] == "shot_1.jpg" and face["identity_distance"] < 0.12
    with Image.open(written / "best.jpg") as out, Image.open(BURST[2]) as base:
        assert out.size == base.size and out.format == "JPEG"
    for name in ("sheet.jpg", "ba.jpg"):
        img = np.asarray(Image.open(written / name))
        assert img.ndim == 3 and img.std() > 20, name
    sheet = np.asarray(Image.open(written / "sheet.jpg"))  # 2 people; the base's face and 3 best per person
    assert sheet.shape[:2] == (HEAD_H + 2 * (160 + 58 + 16), SIDE_W + 4 * (160 + 16))


def test_composite_touches_only_the_replaced_face_and_reruns_to_the_same_bytes(written: Path, shots, params,
                                                                                monkeypatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1767225600")  # the other way to fix the time: the same one
    take = make_best_take(shots, params, identity_encoder="dlib_resnet_v1")
    assert take.composite.data == (written / "best.jpg").read_bytes(), "a rerun writes the same bytes"
    base = shots[2].photo.rgb
    changed = np.any(take.composite.unmarked != base, axis=2)
    x0, y0, x1, y1 = take.composite.record.faces[0]["crop"]
    assert changed.sum() > 2000, "the astronaut's face was replaced"
    inside = np.zeros_like(changed)
    inside[max(0, y0):y1, max(0, x0):x1] = True
    assert not changed[~inside].any(), "nothing outside the replaced face's crop changed"
    hx0, hy0, hx1, hy1 = (int(v) for v in shots[2].faces[1].box)
    assert not changed[hy0:hy1, hx0:hx1].any(), "Hopper's face is untouched"


def test_a_user_plan_chooses_per_person(shots, params, tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"base": "shot_1.jpg", "people": {"1": "shot_0.jpg"}}))
    take = make_best_take(shots, params, plan_path=str(plan))
    assert take.plan.base == 1 and take.plan.picks == [1, 0] and take.plan.automatic == [True, False]
    (face,) = take.composite.record.faces
    assert face["face"] == 1 and face["reference"] == "shot_0.jpg"


def _refused(args: list[str], out: Path, capsys) -> str:
    assert piq(["--params", str(PARAMS), "best-take", *args, "-o", str(out / "best.jpg"), "--sheet", str(out / "sheet.jpg"),
                "--save-plan", str(out / "plan.json")]) == 2
    assert list(out.iterdir()) == [], "no partial output"
    return capsys.readouterr().err


def test_bad_bursts_are_refused_with_nothing_written(tmp_path: Path, capsys) -> None:
    small = tmp_path / "in" / "small.jpg"
    small.parent.mkdir()
    Image.open(BURST[0]).resize((512, 280)).save(small)
    out = tmp_path / "out"
    out.mkdir()
    err = _refused([BURST[0], str(small)], out, capsys)
    assert "burst_sizes_differ" in err and "shot_0.jpg 1024x560" in err and "small.jpg 512x280" in err
    assert "burst_too_short" in _refused([BURST[0]], out, capsys)
    assert "duplicate_names" in _refused([BURST[0], BURST[0]], out, capsys)
    broken = tmp_path / "in" / "broken.jpg"
    broken.write_bytes(Path(BURST[1]).read_bytes()[:2000])
    assert "broken.jpg" in _refused([BURST[0], str(broken)], out, capsys)


def test_different_people_are_refused(shots, params) -> None:
    """The burst's shot mirrored: the same two people, but each where the other stood."""
    mirrored = shots[0].photo.rgb[:, ::-1].copy()
    photo = Photo(Path("mirrored.jpg"), mirrored, "JPEG", "0" * 64)
    other = load_faces(photo, "mirrored.jpg", params)
    with pytest.raises(Reject) as err:
        make_best_take([shots[0], other], params)
    assert err.value.code == "different_people" and "mirrored.jpg: face" in str(err.value)


def test_the_trained_model_can_make_the_faces(shots, params, tmp_path: Path) -> None:
    """`best_take.method: piq`: the replacement goes through the trained pipeline (a tiny random
    one, as the trainer writes it) and its hash is recorded."""
    import dataclasses

    from facereplace.methods import build_method
    from pipeline.config.train import SampleParams
    from train.backbones import tiny_components
    from train.export import write_pipeline_folder

    comps = tiny_components("sdxl", seed=3)
    model = write_pipeline_folder(comps, comps.unet, "spatial", 32, tmp_path / "piq")
    p = dataclasses.replace(params.replace, model_dir=str(model), num_inference_steps=2)
    method = build_method("piq", p, SampleParams(compile="none"), device="cpu")
    take = make_best_take(shots, dataclasses.replace(params, replace=p), method=method)
    record = take.composite.record
    assert record.method == "piq" and record.model_hash == method.model_hash and len(record.model_hash) == 64
    assert [f["reference"] for f in record.faces] == ["shot_1.jpg"]
