"""Best take's logic on plain data: people grouped across a burst by position and identity,
faces scored, the base shot and the picks chosen, a user's plan read and checked."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from facereplace.best_take import choose_plan, measure_scores, read_plan, score_people, total_score
from facereplace.burst import Shot, complete_shots, group_people
from pipeline.config.best_take import BestTakeParams, ScoreWeights
from pipeline.rejection import Reject
from tests.fixtures.fake_faces import FakeFace

P = BestTakeParams()
ALICE, BOB, CAROL = np.eye(8)[0], np.eye(8)[1], np.eye(8)[2]


def face(index: int, x: float, **kw) -> FakeFace:
    return FakeFace(index, (x, 100.0, x + 100.0, 220.0), **kw)


def shot(name: str, faces: list[FakeFace], who: list[np.ndarray], size=(800, 400)) -> Shot:
    return Shot(name, size, faces, [w + 0.01 * np.arange(8) for w in who])


def test_people_grouped_by_position_and_identity_across_drift_and_order() -> None:
    shots = [shot("a.jpg", [face(0, 100), face(1, 500)], [ALICE, BOB]),
             shot("b.jpg", [face(0, 130), face(1, 470)], [ALICE, BOB]),      # camera drift
             shot("c.jpg", [face(0, 505)], [BOB])]                              # Alice turned away
    people = group_people(shots, P.max_shift, 0.12)
    assert [p.faces for p in people] == [{0: 0, 1: 0}, {0: 1, 1: 1, 2: 0}]
    assert complete_shots(people, 3) == [0, 1]


def test_two_people_leaning_past_each_other_are_told_apart_by_identity() -> None:
    # Bob's face is nearer Alice's old place than Alice's is: position alone would swap them
    shots = [shot("a.jpg", [face(0, 100), face(1, 260)], [ALICE, BOB]),
             shot("b.jpg", [face(0, 170), face(1, 240)], [BOB, ALICE])]
    people = group_people(shots, 1.5, 0.12)
    assert people[0].faces == {0: 0, 1: 1} and people[1].faces == {0: 1, 1: 0}


def test_a_stranger_is_a_clear_refusal_naming_shot_face_and_distances() -> None:
    shots = [shot("a.jpg", [face(0, 100), face(1, 500)], [ALICE, BOB]),
             shot("b.jpg", [face(0, 100), face(1, 500)], [ALICE, CAROL])]
    with pytest.raises(Reject) as err:
        group_people(shots, P.max_shift, 0.12)
    assert err.value.code == "different_people"
    assert "b.jpg: face 1" in str(err.value) and "identity distance" in str(err.value) and "max 0.12" in str(err.value)


def test_a_face_far_from_everyone_is_a_refusal_even_without_embeddings() -> None:
    shots = [Shot("a.jpg", (800, 400), [face(0, 100)]), Shot("b.jpg", (800, 400), [face(0, 600)])]
    with pytest.raises(Reject, match=r"b.jpg: face 0 .* shift 4.56 face sizes \(max 1.0\)"):
        group_people(shots, P.max_shift, 0.12)


def test_sizes_short_bursts_and_faceless_shots_are_refused() -> None:
    with pytest.raises(Reject, match=r"burst_sizes_differ: .*a.jpg 800x400, b.jpg 640x480"):
        group_people([shot("a.jpg", [face(0, 100)], [ALICE]), shot("b.jpg", [face(0, 100)], [ALICE], size=(640, 480))], 1, 0.12)
    with pytest.raises(Reject, match="burst_too_short"):
        group_people([shot("a.jpg", [face(0, 100)], [ALICE])], 1, 0.12)
    with pytest.raises(Reject, match="no_face: b.jpg"):
        group_people([shot("a.jpg", [face(0, 100)], [ALICE]), shot("b.jpg", [], [])], 1, 0.12)


def test_scores_prefer_open_eyes_relative_to_the_person_and_floored() -> None:
    open_, shut = FakeFace(0, (0, 0, 1, 1), eyes_open=0.36), FakeFace(0, (0, 0, 1, 1), eyes_open=0.12)
    assert measure_scores(open_, [open_, shut], P)["eyes_open"] == 1.0
    assert measure_scores(shut, [open_, shut], P)["eyes_open"] == pytest.approx(0.12 / 0.36)
    both_shut = FakeFace(0, (0, 0, 1, 1), eyes_open=0.10)
    assert measure_scores(both_shut, [both_shut], P)["eyes_open"] == pytest.approx(0.10 / P.eyes_open_full)
    turned = FakeFace(0, (0, 0, 1, 1), yaw=12.5, gaze=(0.3, 0.0))
    parts = measure_scores(turned, [turned], P)
    assert parts["frontal"] == pytest.approx(0.5) and parts["gaze"] == pytest.approx(0.5)
    unread = FakeFace(0, (0, 0, 1, 1), eyes_open=None, smile=None, gaze=None, yaw=None, pitch=None)
    assert total_score(measure_scores(unread, [unread, open_], P), P) < 0.2
    only_eyes = dataclasses.replace(P, weights=ScoreWeights(eyes_open=1, smile=0, gaze=0, sharpness=0, frontal=0))
    assert total_score(measure_scores(shut, [open_, shut], only_eyes), only_eyes) == pytest.approx(0.12 / 0.36)


def _burst() -> tuple[list[Shot], list]:
    """Alice (the smaller face) blinks in a, Bob blinks in b, Alice looks away in c, and Bob is
    a little less sharp in a than in c."""
    bob = (500.0, 100.0, 640.0, 260.0)
    a = [face(0, 100, eyes_open=0.1), FakeFace(1, bob, sharpness=80.0)]
    b = [face(0, 100), FakeFace(1, bob, eyes_open=0.1)]
    c = [face(0, 100, yaw=20.0), FakeFace(1, bob)]
    shots = [shot(n, fs, [ALICE, BOB]) for n, fs in (("a.jpg", a), ("b.jpg", b), ("c.jpg", c))]
    return shots, group_people(shots, P.max_shift, 0.12)


def test_base_needs_fewest_then_smallest_replacements_then_best_total() -> None:
    shots, people = _burst()
    cands = score_people(people, [s.faces for s in shots], P)
    plan = choose_plan(cands, 3, people, P)
    # each shot needs one replacement; a and c replace Alice (smaller than Bob, whom b replaces);
    # with Alice from b in both, c's Bob (sharper than a's) gives the better total
    assert plan.base == 2 and plan.picks == [1, 2] and plan.replaced() == [0]
    assert plan.automatic == [True, True]


def test_small_differences_do_not_trigger_a_paste() -> None:
    shots = [shot("a.jpg", [face(0, 100, smile=0.09)], [ALICE]), shot("b.jpg", [face(0, 100, smile=0.095)], [ALICE])]
    people = group_people(shots, P.max_shift, 0.12)
    plan = choose_plan(score_people(people, [s.faces for s in shots], P), 2, people, P)
    assert plan.replaced() == []


def test_user_plan_chooses_per_person_and_is_checked(tmp_path: Path) -> None:
    shots, people = _burst()
    names = [s.name for s in shots]
    cands = score_people(people, [s.faces for s in shots], P)
    auto = choose_plan(cands, 3, people, P)
    saved = auto.to_json(names, cands, 2)
    assert saved["base"] == "c.jpg" and saved["people"] == {"0": "b.jpg", "1": "c.jpg"}
    for n, shots_ranked in saved["candidates"].items():  # each person's 2 best shots, best first
        scores = saved["scores"][n]
        assert len(shots_ranked) == 2 and scores[shots_ranked[0]]["score"] >= scores[shots_ranked[1]]["score"]
        assert all(scores[s]["score"] <= scores[shots_ranked[1]]["score"] for s in set(scores) - set(shots_ranked))
    assert saved["candidates"]["0"][0] == "b.jpg"  # Alice's pick is her best face
    assert set(saved["scores"]["0"]) == {"a.jpg", "b.jpg", "c.jpg"}
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps({"base": "b.jpg", "people": {"1": "a.jpg"}}))
    plan = read_plan(plan_file, names, cands, people, P)
    assert plan.base == 1 and plan.picks == [1, 0] and plan.automatic == [True, False]
    plan_file.write_text(json.dumps(saved))  # the saved plan reads back as it was
    assert read_plan(plan_file, names, cands, people, P).picks == auto.picks
    for bad, message in (({"base": "z.jpg"}, "base is 'z.jpg', not one of"), ({"people": {"7": "a.jpg"}}, "person '7'"),
                         ({"people": [1]}, "must map person numbers"), ({"cheese": 1}, "expected")):
        plan_file.write_text(json.dumps(bad))
        with pytest.raises(Reject, match=message):
            read_plan(plan_file, names, cands, people, P)
    plan_file.write_text("{not json")
    with pytest.raises(Reject, match="not a readable JSON plan"):
        read_plan(plan_file, names, cands, people, P)


def test_a_user_plan_cannot_pick_a_shot_without_that_person(tmp_path: Path) -> None:
    shots = [shot("a.jpg", [face(0, 100), face(1, 500)], [ALICE, BOB]), shot("b.jpg", [face(0, 505)], [BOB])]
    people = group_people(shots, P.max_shift, 0.12)
    cands = score_people(people, [s.faces for s in shots], P)
    plan_file = tmp_path / "plan.json"
    for bad, message in (({"people": {"0": "b.jpg"}}, "person 0 is not found in b.jpg"),
                         ({"base": "b.jpg"}, r"base b.jpg lacks person\(s\) \[0\]")):
        plan_file.write_text(json.dumps(bad))
        with pytest.raises(Reject, match=message):
            read_plan(plan_file, ["a.jpg", "b.jpg"], cands, people, P)
