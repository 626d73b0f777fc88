"""`piq app`'s session and the best-take pictures on plain data (no detection): people grouped
by identity alone across photos, candidates ranked by best take's score, the identity guard,
the contact sheet's layout and choice frame."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from facereplace.app.session import Entry, Session
from facereplace.best_take import Candidate, Plan
from facereplace.compose import LoadedPhoto
from facereplace.contact_sheet import CHOSEN, HEAD_H, SIDE_W, before_after, contact_sheet, thumbnail
from facereplace.photo_io import Photo
from pipeline.config.params import load_params
from pipeline.rejection import Reject
from tests.fixtures.fake_faces import FakeFace, FakeAppFace

REPO = Path(__file__).resolve().parents[1]
ALICE, BOB = np.eye(8)[0], np.eye(8)[1]


def _loaded(name: str, who: list[np.ndarray], xs: list[float]) -> LoadedPhoto:
    rgb = np.zeros((300, 800, 3), np.uint8)
    return LoadedPhoto(name, Photo(Path(name), rgb, "JPEG", "0" * 64),
                       [FakeFace(i, (x, 50.0, x + 100, 170.0)) for i, x in enumerate(xs)], who)


def _session(photos: list[LoadedPhoto]) -> Session:
    s = Session(load_params(REPO / "params.yaml"))
    for n, loaded in enumerate(photos, 1):
        loaded.faces = [FakeAppFace(**vars(f)) for f in loaded.faces]
        s.entries[f"p{n}"] = Entry(f"p{n}", "photo", loaded, [s._person_of(e) for e in loaded.embeddings])
    return s


def test_people_are_grouped_by_identity_whatever_their_place() -> None:
    s = _session([_loaded("a.jpg", [ALICE, BOB], [100, 500]),
                  _loaded("b.jpg", [BOB + 0.02, ALICE + 0.01], [100, 500]),   # swapped places: another scene
                  _loaded("c.jpg", [None], [300])])                            # no embedding: a person of its own
    try:
        assert [e.persons for e in s.entries.values()] == [[0, 1], [1, 0], [2]]
        cands = s.candidates("p1", 0)
        assert [(c["photo"], c["face"]) for c in cands] == [("p2", 1)] and cands[0]["distance"] < 0.01
        assert s.candidates("p3", 0) == []
        with pytest.raises(Reject, match="identity_mismatch: b.jpg face 0 .* not the same person"):
            s.replace("p1", 0, "p2", 0)
        with pytest.raises(Reject, match="same_photo"):
            s.replace("p1", 0, "p1", 1)
        with pytest.raises(Reject, match="bad_face_index"):
            s.candidates("p1", 5)
        with pytest.raises(Reject, match="unknown_photo"):
            s.entry("p9")
        with pytest.raises(Reject, match="not_edited"):
            s.result_file("p1")
        assert s.entries["p1"].download_name == "a_piq.jpg"
    finally:
        s.close()


def test_candidates_are_the_best_scored_faces_of_the_person() -> None:
    """The app offers best_take.candidates faces, best take's score first (an open-eyed face
    before a nearer blinking one), not every face by identity distance."""
    def photo(name: str, eyes: float, who: np.ndarray) -> LoadedPhoto:
        rgb = np.zeros((300, 800, 3), np.uint8)
        return LoadedPhoto(name, Photo(Path(name), rgb, "JPEG", "0" * 64),
                           [FakeAppFace(0, (100.0, 50.0, 200.0, 170.0), eyes_open=eyes)], [who])

    params = load_params(REPO / "params.yaml")
    s = Session(dataclasses.replace(params, best_take=dataclasses.replace(params.best_take, candidates=2)))
    try:
        shots = [photo("blink.jpg", 0.05, ALICE), photo("near_blink.jpg", 0.08, ALICE + 0.001),
                 photo("open.jpg", 0.30, ALICE + 0.02), photo("half.jpg", 0.18, ALICE + 0.01)]
        for n, loaded in enumerate(shots, 1):
            s.entries[f"p{n}"] = Entry(f"p{n}", "photo", loaded, [s._person_of(e) for e in loaded.embeddings])
        got = s.candidates("p1", 0)
        assert [c["name"] for c in got] == ["open.jpg", "half.jpg"]  # 2 offered; the nearest (near_blink) is not
        assert got[0]["score"] > got[1]["score"] and got[0]["distance"] > got[1]["distance"]
        ref = photo("ref.jpg", 0.06, ALICE + 0.005)  # an uploaded reference is offered whatever its score
        s.entries["p5"] = Entry("p5", "reference", ref, [s._person_of(e) for e in ref.embeddings])
        assert [c["name"] for c in s.candidates("p1", 0)] == ["open.jpg", "half.jpg", "ref.jpg"]
        # `auto`: what the source fixes, as best take chooses: the blink by the eyes
        assert s.region_for("p1", 0, "p3", 0) == "eyes"
        s.entries["p6"] = Entry("p6", "photo", photo("smile.jpg", 0.05, ALICE), [0])
        s.entries["p6"].loaded.faces[0].smile = 0.12
        assert s.region_for("p1", 0, "p6", 0) == "lower"  # the same eyes, a broader smile: the lower face
    finally:
        s.close()


def test_contact_sheet_shows_the_base_face_then_the_best_candidates() -> None:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (300, 800, 3), dtype=np.uint8) for _ in range(3)]
    parts = {k: 0.5 for k in ("eyes_open", "smile", "gaze", "sharpness", "frontal")}
    faces = [FakeFace(0, (100, 50, 200, 170)), FakeFace(1, (500, 50, 600, 170))]
    cands = [[Candidate(s, faces[0], parts, score) for s, score in ((0, 0.5), (1, 0.9), (2, 0.7))],
             [Candidate(s, faces[1], parts, score) for s, score in ((0, 0.2), (2, 0.6))]]  # person 1 not in shot 1
    plan = Plan(base=2, picks=[1, 0], automatic=[True, False])  # the plan gives person 1 their worse face
    tile = 96
    sheet = contact_sheet(images, ["a.jpg", "b.jpg", "c.jpg"], cands, plan, tile, k=1)
    cell_w, cell_h = tile + 16, tile + 58 + 16
    # person 0: base c.jpg, best b.jpg; person 1: base c.jpg, best c.jpg, then the plan's pick a.jpg
    assert sheet.shape == (HEAD_H + 2 * cell_h, SIDE_W + 3 * cell_w, 3)

    def cell(person: int, col: int) -> np.ndarray:
        x, y = SIDE_W + col * cell_w + 8, HEAD_H + person * cell_h + 8
        return sheet[y:y + tile, x:x + tile]

    def framed(person: int, col: int) -> bool:
        x, y = SIDE_W + col * cell_w + 8 - 3, HEAD_H + person * cell_h + 8 - 3
        return bool(np.all(sheet[y, x + tile // 2] == CHOSEN))

    assert framed(0, 1) and framed(1, 2) and not any(framed(0, c) for c in (0, 2)) and not any(framed(1, c) for c in (0, 1))
    assert np.array_equal(cell(0, 0), thumbnail(images[2], faces[0].box, tile))    # the base's face first
    assert np.array_equal(cell(0, 1), thumbnail(images[1], faces[0].box, tile))    # then the best one
    assert np.array_equal(cell(1, 2), thumbnail(images[0], faces[1].box, tile))    # the plan's pick last
    assert cell(0, 2).std() < 1, "person 0 has no third cell"
    pair = before_after(images[0], images[1], [(100, 50, 200, 170)], max_width=1000)
    assert pair.shape[1] == 1000 and pair.shape[0] == round((300 * 1000) / (1600 + 8))
