"""The classical method's pose-aware alignment (#26 item 2) on a real corpus portrait: REF's face
carried onto PHOTO's face mesh beats one similarity when REF's head is turned or mirrored, and a
REF whose head is turned too far is refused with both poses named, before anything is written."""
from __future__ import annotations

import numpy as np
import pytest
import yaml
from PIL import Image

from pipeline.faces.classical_swap import align_by_mesh
from pipeline.faces.mesh import head_pose
from pipeline.rejection import Reject
from tests.fixtures.corpus import CORPUS, run_piq

from bench.alignment import face_crop, replaced_psnr


@pytest.fixture(scope="module")
def crop() -> np.ndarray:
    return face_crop("biden_portrait.jpg")


def test_a_mirrored_ref_lands_on_the_photos_geometry(crop) -> None:
    mirrored = np.ascontiguousarray(crop[:, ::-1])
    similarity, mesh = replaced_psnr(crop, mirrored, "similarity"), replaced_psnr(crop, mirrored, "mesh")
    assert mesh > similarity + 2.0, (similarity, mesh)  # measured 19.4 -> 24.1 dB in the paste mask


def test_the_same_face_aligned_by_its_own_mesh_is_itself(crop) -> None:
    warped, mask, _ = align_by_mesh(crop, crop, 35.0)
    assert mask.mean() > 0.1 and np.abs(warped[mask].astype(int) - crop[mask]).max() <= 1


def test_a_pose_beyond_the_limit_is_refused_naming_both(crop) -> None:
    mirrored = np.ascontiguousarray(crop[:, ::-1])
    with pytest.raises(Reject) as refused:
        align_by_mesh(crop, mirrored, max_pose_difference=0.5)
    assert refused.value.code == "pose_too_far" and "PHOTO's face is at yaw" in refused.value.detail
    assert "REF's at" in refused.value.detail and "max_pose_difference" in refused.value.detail


@pytest.mark.slow  # a fresh `piq replace`: ~10 s of imports and models
def test_piq_replace_refuses_a_turned_ref_and_writes_nothing(tmp_path) -> None:
    photo = CORPUS / "biden_portrait.jpg"
    rgb = np.asarray(Image.open(photo).convert("RGB"))
    mirrored = tmp_path / "mirrored.jpg"
    Image.fromarray(np.ascontiguousarray(rgb[:, ::-1])).save(mirrored, quality=95)
    params = tmp_path / "params.yaml"
    config = yaml.safe_load((CORPUS.parents[1] / "params.yaml").read_text())
    config["replace"]["max_pose_difference"] = 0.5
    params.write_text(yaml.safe_dump(config))
    out = tmp_path / "out.jpg"
    got = run_piq("--params", params, "replace", photo, "--driving", mirrored, "-o", out, "--json")
    assert got.rc == 2 and not out.exists(), got
    assert "pose_too_far" in got.out + got.err, got


def test_mirroring_turns_the_head_the_other_way(crop) -> None:
    """What the refusal test relies on: the portrait's head is not exactly frontal."""
    from pipeline.faces.identity import face_mesh

    yaw, _, _ = head_pose(face_mesh(crop))
    mirrored_yaw, _, _ = head_pose(face_mesh(np.ascontiguousarray(crop[:, ::-1])))
    assert abs(yaw - mirrored_yaw) > 0.5
