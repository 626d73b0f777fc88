"""Upstream stage outputs in the exact layouts `piq shard` reads (docs/DATA.md), made with the
classical stand-ins of tests/face_standins.py, and a release built from them by the real
shard stage. Tests of the trainer, the sampler, the reader, `verify` and the browser all read
shards made this way, so they exercise the writer the release uses."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from pipeline.config.runner import RunnerParams
from pipeline.config.shard import ShardParams
from tests.face_standins import Light, Repose, label_map
from pipeline.labels import LABEL_NAMES
from pipeline.engine.manifest import REJECT_COLUMNS

BACKENDS = {"animate": "standin-warp", "caption": "standin-attributes", "segment": "standin-ellipses",
            "relight": "standin-lambert"}


def _jpg(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()


def _png(labels: np.ndarray) -> bytes:
    return cv2.imencode(".png", labels)[1].tobytes()


def _finish(folder: Path, rows: list[dict[str, Any]]) -> None:
    pd.DataFrame(rows).to_parquet(folder / "manifest.parquet", index=False)
    pd.DataFrame({c: pd.Series(dtype=t) for c, t in REJECT_COLUMNS.items()}).to_parquet(folder / "rejects.parquet", index=False)
    (folder / "stats.json").write_text(json.dumps({"complete": True, "rows": len(rows)}))


def make_upstream(root: Path, ingest_dir: Path, n_expressive: int = 2, n_relit: int = 2, size: int = 64,
                  seed: int = 0, relit_size: int | None = None, envmap_files: bool = False) -> dict[str, Path]:
    """animate / caption / segment / relight outputs for every face of an ingest dir.
    `relit_size`: relit variants written at this size instead of the image's (a relighter that
    renders at its own resolution). `envmap_files`: envmaps named like files of an HDRI library
    (one long token, e.g. `sh-dir_az+73_el-19_cool0.16_photostudio_4k.hdr`), as the relight
    stage records `relight.envmap_dir`'s files."""
    dirs = {s: root / s for s in ("animate", "caption", "segment", "relight")}
    for d in dirs.values():
        (d / "sets").mkdir(parents=True, exist_ok=True)
    rows: dict[str, list[dict[str, Any]]] = {s: [] for s in dirs}
    ingest = pd.read_parquet(ingest_dir / "manifest.parquet").sort_values("face_id")
    for n, face in enumerate(ingest.to_dict("records")):
        bgr = cv2.imread(str(ingest_dir / face["path"]))
        rgb = cv2.resize(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), (size, size), interpolation=cv2.INTER_AREA)
        lms = np.array(json.loads(face["landmarks_crop"]), float) * (size / bgr.shape[1])
        rng = np.random.default_rng([seed, n])
        neutral = label_map(rgb.shape[:2], lms)
        images = [("i00", rgb, neutral, None, "a photo of a person looking at the camera with a neutral expression, head upright")]
        for k in range(1, n_expressive + 1):
            repose = Repose.draw(rng, 12.0, 0.05)
            img, labels, _ = repose.apply(rgb, neutral, lms)
            images.append((f"i{k:02d}", img, labels, repose, repose.caption()))
        fid = face["face_id"]
        for d in dirs.values():
            (d / "sets" / fid).mkdir(exist_ok=True)
        for index, img, labels, repose, caption in images:
            (dirs["animate"] / "sets" / fid / f"{index}.jpg").write_bytes(_jpg(img))
            rows["animate"].append({
                "face_id": fid, "image": index, "path": f"sets/{fid}/{index}.jpg",
                "kind": "neutral" if repose is None else "expressive",
                "driving_video": None if repose is None else f"d{int(rng.integers(0, 200)):03d}",
                "driver_label": None if repose is None else caption.split(" with ")[1].split(",")[0],
                "backend": BACKENDS["animate"], "motion_magnitude": 0.0 if repose is None else abs(repose.rotate_deg) / 12,
                "yaw": float(rng.normal(0, 8)), "pitch": float(rng.normal(0, 5)),
                "roll": 0.0 if repose is None else repose.rotate_deg,
                "mouth_open": 0.0 if repose is None else repose.jaw * 8, "smile": 0.0 if repose is None else max(repose.smile, 0) * 6,
                "eye_open": 0.6, "brow_raise": 0.1, "participant_id": face["participant_id"], "video_id": face["video_id"],
            })
            rows["caption"].append({"face_id": fid, "image": index, "caption": caption, "backend": BACKENDS["caption"]})
            (dirs["segment"] / "sets" / fid / f"{index}.seg.png").write_bytes(_png(labels))
            counts = {LABEL_NAMES[i]: int(c) for i, c in zip(*np.unique(labels, return_counts=True))}
            rows["segment"].append({"face_id": fid, "image": index, "path": f"sets/{fid}/{index}.seg.png",
                                    "label_counts": json.dumps(counts), "backend": BACKENDS["segment"]})
            for r in range(1, n_relit + 1):
                light = Light.draw(rng)
                relit = light.apply(img, labels)
                if relit_size:
                    relit = cv2.resize(relit, (relit_size, relit_size), interpolation=cv2.INTER_CUBIC)
                (dirs["relight"] / "sets" / fid / f"{index}.r{r}.jpg").write_bytes(_jpg(relit))
                rows["relight"].append({"face_id": fid, "image": index, "variant": f"r{r}",
                                        "path": f"sets/{fid}/{index}.r{r}.jpg", "envmap": light.name.replace(" ", "_") + "_photostudio_4k.hdr" if envmap_files else light.name,
                                        "rotation_deg": float(r * 72), "light_dir": json.dumps(list(light.direction)),
                                        "color_temp_k": 6500.0, "backend": BACKENDS["relight"]})
    for stage, d in dirs.items():
        _finish(d, rows[stage])
    return dirs


def build_release(root: Path, ingest_dir: Path, **overrides: Any) -> Path:
    """Upstream outputs under root/, then `piq shard`'s build into root/shards. Returns that folder."""
    from stages.shard import build_release as build

    upstream = make_upstream(root, ingest_dir, **{k: overrides.pop(k) for k in ("n_expressive", "n_relit", "size", "relit_size", "envmap_files")
                                                  if k in overrides})
    params = ShardParams(ingest_dir=str(ingest_dir), **{f"{s}_dir": str(d) for s, d in upstream.items()},
                         out_dir=str(root / "shards"), **overrides)
    build(params, RunnerParams(workers=0, progress=False), seed=0)
    return root / "shards"


def shard_params(root: Path, ingest_dir: Path, **overrides: Any) -> ShardParams:
    return dataclasses.replace(ShardParams(ingest_dir=str(ingest_dir), out_dir=str(root / "shards"),
                                           **{f"{s}_dir": str(root / s) for s in ("animate", "caption", "segment", "relight")}),
                               **overrides)
