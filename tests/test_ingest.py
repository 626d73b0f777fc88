"""The ingest stage on clips synthesised in the test: what it keeps, what it refuses and why."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from skimage import data

from pipeline.config.ingest import PAPER_CATEGORIES, IngestParams
from pipeline.config.runner import RunnerParams
from pipeline.engine.runner import Runner
from stages.ingest import IngestStage, list_items

KEPT = PAPER_CATEGORIES[0]


def write_clip(path: Path, frames: list[np.ndarray], fps: int = 25) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for rgb in frames:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()


def moving(img: np.ndarray, n: int = 12, roll: float = 0.0) -> list[np.ndarray]:
    """Gentle head motion: a small translation and in-plane rotation around `roll` degrees."""
    h, w = img.shape[:2]
    out = []
    for t in range(n):
        m = cv2.getRotationMatrix2D((w / 2, h / 2), roll + 1.5 * np.sin(t / 3), 1.0)
        m[0, 2] += 4 * np.sin(t / 4)
        out.append(cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REFLECT))
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("clips")
    videos = root / "videos"
    videos.mkdir()
    astronaut = data.astronaut()
    write_clip(videos / "good.mp4", moving(astronaut))
    write_clip(videos / "tilted.mp4", moving(astronaut, roll=20.0))
    write_clip(videos / "pair.mp4", moving(np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)))
    write_clip(videos / "scene.mp4", moving(data.coffee()[:, :512]))
    small = np.full((640, 640, 3), 90, np.uint8)
    small[280:360, 280:360] = cv2.resize(astronaut[40:200, 150:310], (80, 80), interpolation=cv2.INTER_AREA)
    write_clip(videos / "small.mp4", moving(small))
    (videos / "corrupt.mp4").write_bytes((videos / "good.mp4").read_bytes()[:2000] + b"\x00garbage" * 300)
    (videos / "zero.mp4").write_bytes(b"")
    write_clip(videos / "orphan.mp4", moving(astronaut, n=4))
    rows = [
        ("v01", "p1", "good.mp4", KEPT, "0-0.4"),
        ("v02", "p1", "tilted.mp4", KEPT, ""),
        ("v03", "p1", "pair.mp4", PAPER_CATEGORIES[2], ""),
        ("v04", "p2", "scene.mp4", PAPER_CATEGORIES[3], ""),
        ("v05", "p1", "small.mp4", KEPT, ""),
        ("v06", "p1", "corrupt.mp4", KEPT, ""),
        ("v07", "p1", "zero.mp4", KEPT, ""),
        ("v08", "p1", "good.mp4", "dancing on a table", ""),
        ("v09", "p1", "absent.mp4", KEPT, ""),
        ("v10", "p1", "good.mp4", KEPT, "5-9"),
        ("v11", "p1", "good.mp4", KEPT, "two-three"),
        ("v01", "p1", "good.mp4", KEPT, ""),
        ("v.12", "p1", "good.mp4", KEPT, ""),
    ]
    meta = pd.DataFrame(rows, columns=["video_id", "participant_id", "file", "category", "camera_segments"])
    meta.to_csv(root / "metadata.csv", index=False)
    return root, videos


def params_for(root: Path, **overrides) -> IngestParams:
    base = IngestParams(
        videos_dir=str(root / "videos"), metadata_csv=str(root / "metadata.csv"), out_dir=str(root / "out"),
        candidates_per_video=3, keep_per_video=2, out_size=1024,
        neutral_filter="flag",  # the astronaut smiles, teeth showing: tests/test_neutral.py covers refuse
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture(scope="module")
def ingested(clips) -> Path:
    root, _ = clips
    params = params_for(root)  # the "small" clip's ~44 px face is below the 64 px floor
    Runner(RunnerParams(workers=0, progress=False), seed=3).run(IngestStage(params), list_items(params), params.out_dir)
    return Path(params.out_dir)


def test_every_clip_gets_its_reason(ingested: Path) -> None:
    rejects = pd.read_parquet(ingested / "rejects.parquet").set_index("item_id")["code"].to_dict()
    assert rejects == {
        "v02": "head_tilt",
        "v03": "multiple_faces",
        "v04": "no_face",
        "v05": "face_too_small",
        "v06": "truncated_video",  # an MP4 cut after 2000 bytes (then garbage): it ends before its index
        "v07": "empty_video",
        "v08": "wrong_category",
        "v09": "missing_file",
        "v10": "bad_segments",
        "v11": "bad_segments",
        "file:orphan.mp4": "missing_metadata",
        "row:13": "invalid_metadata",
        "row:14": "invalid_metadata",
    }


def test_kept_faces_are_1024_frontal_and_match_the_manifest(ingested: Path) -> None:
    manifest = pd.read_parquet(ingested / "manifest.parquet")
    assert manifest["item_id"].tolist() == ["v01", "v01"]
    assert manifest["rank"].tolist() == [0, 1]
    assert set(manifest["frame"]) <= set(range(0, 10)), "frames come from the 0-0.4 s segment"
    files = sorted(p.relative_to(ingested).as_posix() for p in (ingested / "faces").glob("*"))
    assert files == sorted(manifest["path"])
    for row in manifest.itertuples():
        img = cv2.imread(str(ingested / row.path))
        assert img.shape == (1024, 1024, 3)
        assert row.face_id == f"v01-f{row.frame:06d}"
        assert max(row.eye_nose_deg, row.mouth_nose_deg, abs(row.vertical_deg)) <= 10.0
        lms = np.array(json.loads(row.landmarks_crop))
        assert lms.shape == (5, 2) and (lms > 256).all() and (lms < 768).all(), "the face sits in the middle half"
        x0, y0, x1, y1 = json.loads(row.crop_box)
        bx0, by0, bx1, by1 = json.loads(row.bbox)
        assert x1 - x0 == round(2 * max(bx1 - bx0, by1 - by0))


def test_rerun_is_deterministic(clips, ingested: Path, tmp_path: Path) -> None:
    root, _ = clips
    params = params_for(root, out_dir=str(tmp_path / "again"))
    good = [i for i in list_items(params) if i.id == "v01"]
    Runner(RunnerParams(workers=0, progress=False), seed=3).run(IngestStage(params), good, params.out_dir)
    a = pd.read_parquet(ingested / "manifest.parquet")
    b = pd.read_parquet(tmp_path / "again" / "manifest.parquet")
    assert a["frame"].tolist() == b["frame"].tolist() and a["bbox"].tolist() == b["bbox"].tolist()


def test_malformed_metadata_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    (tmp_path / "metadata.csv").write_text("video_id,file\nv1,a.mp4\n")
    with pytest.raises(ValueError, match="missing column"):
        list_items(params_for(tmp_path))
