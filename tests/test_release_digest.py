"""Comparing releases by meaning across machines (issue 27 item 5): the committed digest and a
fresh one agree when only float rounding differs (images within 1 level), and every change of
meaning is named: a clip's outcome, a split, a caption, a label map, an image off by more."""
from __future__ import annotations

import copy
import json
from pathlib import Path

from pipeline.commands.platform_record import differences, fingerprint
from pipeline.release.digest import compare, digest, write

REPO = Path(__file__).resolve().parents[1]


def test_digests_agree_within_a_level_and_name_every_change_of_meaning(tiny_release: Path, tmp_path: Path) -> None:
    base = digest(tiny_release, None)
    write(tmp_path / "d.json", base)
    committed = json.loads((tmp_path / "d.json").read_text())
    assert committed == base and compare(committed, base) == []
    key = sorted(base["sets"])[0]
    image = base["sets"][key]["images"]["i01"]
    assert len(image["rgb"]) == 12 and [len(r) for r in image["relit"]] == [4, 4]
    assert len(image["caption"]) == len(image["labels"]) == 16
    near = copy.deepcopy(base)
    near["sets"][key]["images"]["i01"]["relit"][0] = [v + 1.0 for v in image["relit"][0]]
    near["sets"][key]["images"]["i01"]["rgb"] = [v - 1.0 for v in image["rgb"]]
    assert compare(committed, near) == [], "one level (float rounding on another CPU) is the same image"
    far = copy.deepcopy(near)
    far["sets"][key]["images"]["i01"]["relit"][0][3] += 2.0
    far["sets"][key]["images"]["i02"]["caption"] = "a different caption"
    far["sets"][key]["images"]["i00"]["labels"] = "0" * 64
    far["splits"]["train"] = far["splits"]["train"][1:]
    far["ingest"] = {"clips": {"v0000": "not_neutral"}, "faces": []}
    problems = compare(committed, far)
    assert any(p.startswith(f"{key}/i01.r1.jpg: 3.0 levels") for p in problems)
    assert any(p.startswith(f"{key}/i02: caption differs") for p in problems)
    assert any(p.startswith(f"{key}/i00: labels differs") for p in problems)
    assert any(p.startswith("splits differ") for p in problems) and "ingest v0000: None -> not_neutral" in problems


def test_the_platform_fingerprint_names_what_differs() -> None:
    here = fingerprint(REPO)
    assert here["simd"] and here["python"].startswith("3.") and here["installed_packages"] > 100
    assert differences(dict(here), here) == []
    other = {**here, "simd": ["sse4_2"] if here["simd"] != ["sse4_2"] else ["avx2"]}  # e.g. an AVX2-only EPYC
    assert [d.split(":")[0] for d in differences(other, here)] == ["simd"]
    assert differences(None, here) == ["no dvc.platform.json recorded beside dvc.lock"]
