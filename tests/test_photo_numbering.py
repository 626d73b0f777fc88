"""One numbering (issue 24, item 3): the faces of a photo are numbered once, as `piq faces`
lists them, and that number is what `piq replace` prints, accepts and records in the output's
provenance, whether it chose the face by identity or was given `--face`. Run as a user runs
the commands: each in a fresh process."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.fixtures.corpus import CORPUS, group_with_small_face, run_piq

REF = CORPUS / "obama_lectern.jpg"


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    path = tmp_path_factory.mktemp("numbering") / "group.jpg"
    Image.fromarray(group_with_small_face()).save(path, "JPEG", quality=92)
    return path


@pytest.fixture(scope="module")
def listed(photo) -> list[dict]:
    got = run_piq("faces", photo, "--json")
    assert got.rc == 0, got.err
    return json.loads(got.out)["faces"]


def _obama(listed: list[dict]) -> int:
    """Obama's number in `piq faces`' list: the largest face of the leftmost quarter."""
    left = [f for f in listed if (f["box"][0] + f["box"][2]) / 2 < 320]
    return max(left, key=lambda f: f["box"][2] - f["box"][0])["face"]


def _recorded(path) -> dict:
    got = run_piq("verify", path, "--json")
    assert got.rc == 0, got.err
    return json.loads(got.out)["metadata"]["edit"]["faces"][0]


@pytest.mark.slow
def test_faces_lists_the_small_face_first(listed) -> None:
    assert [f["face"] for f in listed] == list(range(len(listed))) and len(listed) == 5
    assert _obama(listed) == 1 and listed[0]["box"][2] - listed[0]["box"][0] < 64  # face 0: the small one


@pytest.mark.slow
@pytest.mark.parametrize("how", ["identity", "--face"])
def test_replace_prints_and_records_piq_faces_number(photo, listed, tmp_path, how) -> None:
    n = _obama(listed)
    out = tmp_path / "out.jpg"
    extra = ["--face", str(n)] if how == "--face" else []
    got = run_piq("replace", photo, "--driving", REF, "-o", out, "--method", "classical", *extra)
    assert got.rc == 0, got.err
    assert f"face {n} replaced" in got.out, got.out
    rec = _recorded(out)
    assert rec["face"] == n
    assert max(abs(a - b) for a, b in zip(rec["box"], listed[n]["box"])) < 1.0  # the same box as piq faces lists
