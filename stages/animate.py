"""`piq animate`: each neutral face animated by `animate.per_face` drivers (paper 3.2, B.2).

Item = one ingest face. Its drivers are drawn from the library (`piq drivers`) with the item's
seed, distinct, weighted (subtle smiles oversampled), and with `prefer_dissimilar` spread out
in motion space (farthest-point choice from a larger weighted draw). The backend gets each
driver's first and last frames (relative motion) and returns the animated last frame. Writes
`sets/<face_id>/i00.jpg` (the neutral face) .. `iNN.jpg` and a labelled `contact.jpg`; the
manifest has one row per image with its driver and the pose and expression measured on it.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import cv2
import numpy as np
import pandas as pd

from pipeline.backends.animators.base import Animator
from pipeline.backends.animators.factory import build_animator
from pipeline.backends.animators.motion import Controls
from pipeline.backends.animators.programs import programs
from pipeline.backends.animators.signatures import verdict
from pipeline.engine.annotate import default_workers, gpu_resources
from pipeline.config.animate import AnimateParams
from pipeline.faces import mesh as fm
from pipeline.media.images import encode_jpeg, read_rgb
from pipeline.config.params import load_params
from pipeline.engine.runner import Runner, end_main
from pipeline.engine.stage import Item, ItemContext, Output, Stage
from pipeline.media.video import first_last


def list_items(params: AnimateParams) -> list[Item]:
    manifest = Path(params.ingest_dir) / "manifest.parquet"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: run `piq ingest` first (animate.ingest_dir)")
    faces = pd.read_parquet(manifest, columns=["face_id", "path", "participant_id", "video_id"])
    return [Item(r.face_id, {"path": str(Path(params.ingest_dir) / r.path), "participant_id": r.participant_id,
                             "video_id": r.video_id}) for r in faces.sort_values("face_id").itertuples(index=False)]


def load_drivers(params: AnimateParams) -> pd.DataFrame:
    manifest = Path(params.drivers_dir) / "manifest.parquet"
    if not manifest.is_file():
        raise FileNotFoundError(f"{manifest} not found: run `piq drivers` first (animate.drivers_dir)")
    drivers = pd.read_parquet(manifest).sort_values("driver_id").reset_index(drop=True)
    if len(drivers) < params.per_face:
        raise ValueError(f"{len(drivers)} usable driving clips in {params.drivers_dir}, fewer than animate.per_face "
                         f"{params.per_face}")
    return drivers


def program_controls(row: pd.Series) -> Controls | None:
    """The motion program a library driver was rendered from (None for a user's clip)."""
    if getattr(row, "source", "program") != "program":
        return None
    return {p.label: p.controls for p in programs()}.get(row.label)


def choose_drivers(drivers: pd.DataFrame, params: AnimateParams, rng: np.random.Generator) -> list[int]:
    """Row indices of `per_face` distinct drivers: weighted draw; with `prefer_dissimilar`, a
    draw `pool_factor` times larger thinned by farthest-point selection on the motion vectors."""
    weights = drivers["weight"].to_numpy(float)
    n = params.per_face
    pool_size = min(len(drivers), n * (params.pool_factor if params.prefer_dissimilar else 1))
    pool = list(rng.choice(len(drivers), size=pool_size, replace=False, p=weights / weights.sum()))
    if not params.prefer_dissimilar or pool_size == n:
        return pool[:n]
    vectors = np.stack([np.array(json.loads(v)) for v in drivers["vector"].iloc[pool]])
    chosen = [0]
    dist = np.linalg.norm(vectors - vectors[0], axis=1)
    while len(chosen) < n:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(vectors - vectors[nxt], axis=1))
    return [pool[i] for i in chosen]


def measure(detector: fm.FaceMeshDetector, rgb: np.ndarray) -> tuple[dict[str, float], dict[str, float] | None]:
    """(the manifest's pose and expression columns, every expression measure or None without a
    face mesh)."""
    mesh = detector.detect_one(rgb)
    if mesh is None:
        return {k: float("nan") for k in ("yaw", "pitch", "roll", "mouth_open", "smile", "eye_open", "brow_raise")}, None
    yaw, pitch, roll = fm.head_pose(mesh)
    e = fm.expression(mesh)
    return {"yaw": yaw, "pitch": pitch, "roll": roll, "mouth_open": e.mouth_open, "smile": e.smile,
            "eye_open": (e.eye_open_r + e.eye_open_l) / 2, "brow_raise": e.brow_raise}, fm.measures(mesh)


def contact_sheet(images: list[np.ndarray], labels: list[str], tile: int, cols: int = 7) -> np.ndarray:
    """The set at a glance: thumbnails with their index and driver label."""
    rows = -(-len(images) // cols)
    sheet = np.full((rows * (tile + 20), cols * tile, 3), 255, np.uint8)
    for k, (img, label) in enumerate(zip(images, labels)):
        r, c = divmod(k, cols)
        y, x = r * (tile + 20), c * tile
        sheet[y : y + tile, x : x + tile] = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
        cv2.putText(sheet, label[: tile // 7], (x + 3, y + tile + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1,
                    cv2.LINE_AA)
    return sheet


@dataclasses.dataclass
class AnimateStage(Stage):
    params: AnimateParams
    name: ClassVar[str] = "animate"
    worker_local: ClassVar[tuple[str, ...]] = ("_animator", "_frames")
    manifest_columns: ClassVar[dict[str, str]] = {
        "face_id": "string", "image": "string", "path": "string", "kind": "string", "driving_video": "string",
        "driver_label": "string", "backend": "string", "crop": "string", "motion_magnitude": "float64", "yaw": "float64",
        "pitch": "float64", "roll": "float64", "mouth_open": "float64", "smile": "float64", "eye_open": "float64",
        "brow_raise": "float64", "participant_id": "string", "video_id": "string",
        "label_ok": "boolean", "label_misses": "string",
    }

    def __post_init__(self) -> None:
        self._animator: Animator | None = None
        self._drivers = load_drivers(self.params)
        self._frames: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self._detector = fm.FaceMeshDetector(max_faces=1)

    @property
    def resources(self) -> dict[str, float]:
        p = self.params
        return gpu_resources(p.backend == "liveportrait", p.device, p.num_gpus)

    def fingerprint(self) -> dict[str, Any]:
        """Besides params and code: the driver library's content (re-rendered drivers redo every face)."""
        base = super().fingerprint()
        library = self._drivers[["driver_id", "path", "vector", "weight"]].to_csv(index=False).encode()
        base["drivers"] = hashlib.sha256(library).hexdigest()[:16]
        return base

    def setup(self) -> None:
        if self._animator is None:
            self._animator = build_animator(self.params)
            self._animator.setup()

    def driver_frames(self, row: pd.Series) -> tuple[np.ndarray, np.ndarray]:
        if row.driver_id not in self._frames:
            self._frames[row.driver_id] = first_last(Path(self.params.drivers_dir) / row.path)
        return self._frames[row.driver_id]

    def process(self, item: Item, ctx: ItemContext) -> Output:
        self.setup()
        p, d = self.params, item.data
        neutral = read_rgb(d["path"])
        rng = np.random.default_rng(ctx.seed)
        picks = choose_drivers(self._drivers, p, rng)
        rows = [self._drivers.iloc[i] for i in picks]
        seeds = [int(s) for s in rng.integers(0, 2**62, size=len(rows))]
        animated = self._animator.animate_batch(neutral, [self.driver_frames(r) for r in rows], seeds=seeds,
                                                programs=[program_controls(r) for r in rows])
        out, images, labels = Output(), [neutral], ["i00 neutral"]
        common = {"face_id": item.id, "backend": self._animator.name, "participant_id": d["participant_id"],
                  "video_id": d["video_id"]}
        entries = [("i00", neutral, None, 0.0)] + [
            (f"i{k:02d}", a.image, r, float(a.info.get("motion_magnitude", r.motion_magnitude)))
            for k, (a, r) in enumerate(zip(animated, rows), start=1)]
        crops = [None] + [a.info.get("crop") for a in animated]  # which landmarks placed the LivePortrait crop
        base = None
        for (index, img, r, magnitude), crop in zip(entries, crops):
            rel = f"sets/{item.id}/{index}.jpg"
            out.files[rel] = encode_jpeg(img, p.jpeg_quality)
            columns, measures = measure(self._detector, img)
            # does the variant show its driver's label? (pipeline/backends/animators/signatures.py; recorded, never hidden)
            ok, misses = (None, "") if r is None or base is None else verdict(r.label, base, measures)
            base = measures if r is None else base
            out.rows.append({**common, "image": index, "path": rel, "kind": "neutral" if r is None else "expressive",
                             "driving_video": None if r is None else r.driver_id,
                             "driver_label": None if r is None else r.label, "motion_magnitude": magnitude,
                             "crop": crop, "label_ok": ok, "label_misses": misses, **columns})
            if r is not None:
                images.append(img)
                labels.append(f"{index} {'MISS ' if ok is False else ''}{r.driver_id} {r.label}")
        out.files[f"sets/{item.id}/contact.jpg"] = encode_jpeg(contact_sheet(images, labels, p.contact_tile), 90)
        return out


def run(params: AnimateParams, runner_params, seed: int):
    return Runner(runner_params, seed).run(AnimateStage(params), list_items(params), params.out_dir)


def main(args: argparse.Namespace) -> int:
    all_params = load_params(args.params)
    p, runner_params = all_params.animate, all_params.runner
    if p.backend == "liveportrait":  # one actor per GPU share (in-process without a GPU), not per core
        workers = default_workers(None, False, p.device, p.num_gpus, runner_params.workers)
        runner_params = dataclasses.replace(runner_params, workers=workers)
    summary = run(all_params.animate, runner_params, all_params.seed)
    s = summary.stats
    notes = []
    manifest = Path(all_params.animate.out_dir) / "manifest.parquet"
    if manifest.is_file():
        ok = pd.read_parquet(manifest, columns=["label_ok"])["label_ok"].dropna()
        if len(ok):
            notes.append(f"animate: {int(ok.sum())} of {len(ok)} variants show their driver's label by the face mesh; "
                         f"the others are marked label_ok=false with what they miss (label_misses)")
    return end_main(s, f"animate ({all_params.animate.backend}): {s['items']} faces, {s['done']} animated "
                       f"({s['rows']} images), {s['rejected']} refused {s['reject_codes']}, {summary.skipped} already "
                       f"done -> {all_params.animate.out_dir}", notes=notes)
