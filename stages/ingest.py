"""`piq ingest`: neutral, frontal 1024 px faces from crowdsourced clips (paper B.2).

One item per clip. For each clip in a kept category, candidate frames are drawn (seeded) from
the segments where the subject looks at the camera; MTCNN gives boxes, probabilities and five
landmarks; a frame is accepted when it shows exactly one large-enough face that passes the
frontal filter (docs/DATA.md gives our reading of the paper's angles) and whose x2 crop stays
mostly inside the frame. The best `keep_per_video` accepted frames (frontal and sharp) are
cropped around the box midpoint with the box scaled by `box_scale` and resized to `out_size`.
A clip with no accepted frame is refused with the most common frame-level reason.
"""
from __future__ import annotations

import argparse
import dataclasses
from collections import Counter
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pipeline.config.ingest import IngestParams
from pipeline.faces.crop import extract_crop, sharpness
from pipeline.faces.detect import Face, FaceDetector, fit_factor, scaled_copy
from pipeline.faces.geometry import frontal_angles, frontal_reject_code, square_crop
from pipeline.faces.mesh import FaceMeshDetector
from pipeline.faces.neutral import Neutrality, limits_of, neutrality
from pipeline.media.images import encode_jpeg
from pipeline.config.params import load_params
from pipeline.rejection import Reject
from pipeline.release.removals import withhold
from pipeline.engine.runner import Runner, end_main
from pipeline.engine.stage import Item, ItemContext, Output, Stage
from pipeline.media.video import Clip, Frame, VideoInfo, parse_segments

METADATA_COLUMNS = ("video_id", "participant_id", "file", "category")
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
# Order in which frame-level codes win ties when a whole clip is refused (docs/DATA.md).
FRAME_CODES = ("no_face", "multiple_faces", "face_too_small", "not_frontal", "head_tilt", "crop_out_of_frame", "blurry",
               "not_neutral")


@dataclasses.dataclass(frozen=True)
class Candidate:
    """An accepted frame, before ranking."""

    frame: int
    face: Face
    angles: Any
    sharpness: float
    pad_fraction: float
    neutral: Neutrality


def list_items(params: IngestParams) -> list[Item]:
    """One item per metadata row, plus one per clip file that no row names (refused later as
    `missing_metadata`, so it shows in the rejects table instead of vanishing)."""
    csv_path, videos_dir = Path(params.metadata_csv), Path(params.videos_dir)
    if not csv_path.is_file():
        raise FileNotFoundError(f"metadata CSV {csv_path} not found (ingest.metadata_csv)")
    if not videos_dir.is_dir():
        raise FileNotFoundError(f"videos dir {videos_dir} not found (ingest.videos_dir)")
    meta = pd.read_csv(csv_path, dtype=str, keep_default_na=False)
    missing = [c for c in METADATA_COLUMNS if c not in meta.columns]
    if missing:
        raise ValueError(f"{csv_path}: missing column(s) {missing}; need {list(METADATA_COLUMNS)}")
    items: list[Item] = []
    seen_ids: set[str] = set()
    for line, row in enumerate(meta.to_dict("records"), start=2):
        video_id = row["video_id"].strip()
        problem = _id_problem(video_id, seen_ids)
        if problem:  # refused by the stage, so one bad row cannot stop the others
            items.append(Item(f"row:{line}", {"row": row, "path": "", "invalid": f"line {line}: {problem}"}))
            continue
        seen_ids.add(video_id)
        items.append(Item(video_id, {"row": row, "path": str(videos_dir / row["file"])}))
    named = set(meta["file"])
    for path in sorted(videos_dir.iterdir()):
        if path.name.startswith(".") or not path.is_file() or path.name in named:
            continue
        if path.suffix.lower() in VIDEO_SUFFIXES:
            items.append(Item(f"file:{path.name}", {"row": None, "path": str(path)}))
    return items


def _id_problem(video_id: str, seen: set[str]) -> str:
    if not video_id:
        return "empty video_id"
    if video_id in seen:
        return f"video_id {video_id!r} repeats an earlier row"
    if not all(c.isalnum() or c == "-" for c in video_id):
        return f"video_id {video_id!r} has characters other than letters, digits and '-'"
    return ""


@dataclasses.dataclass
class IngestStage(Stage):
    """The pure per-clip function; models are loaded once per worker in `setup`."""

    params: IngestParams
    name: ClassVar[str] = "ingest"
    worker_local: ClassVar[tuple[str, ...]] = ("_detector", "_mesher")
    manifest_columns: ClassVar[dict[str, str]] = {
        "face_id": "string", "participant_id": "string", "video_id": "string", "category": "string",
        "path": "string", "frame": "int64", "time_s": "float64", "src_width": "int64", "src_height": "int64",
        "bbox": "object", "prob": "float64", "landmarks": "object", "landmarks_crop": "object",
        "crop_box": "object", "pad_fraction": "float64", "scale": "float64", "eye_nose_deg": "float64",
        "mouth_nose_deg": "float64", "vertical_deg": "float64", "sharpness": "float64", "score": "float64",
        "rank": "int64", "license": "string", "consent": "string",
        "codec": "string", "rotation": "int64", "transfer": "string",
        "neutral": "bool", "neutral_fail": "string", "mouth_open": "float64", "smile": "float64", "eye_open": "float64",
        "brow_raise": "float64", "neutral_distance": "float64",
    }

    def __post_init__(self) -> None:
        self._detector: FaceDetector | None = None
        self._mesher: FaceMeshDetector | None = None
        self._neutral_fails: Counter = Counter()

    def setup(self) -> None:
        self._detector = FaceDetector()
        self._mesher = FaceMeshDetector(max_faces=1)

    @property
    def detector(self) -> FaceDetector:
        if self._detector is None:
            self.setup()
        return self._detector

    def process(self, item: Item, ctx: ItemContext) -> Output:
        p = self.params
        self._neutral_fails.clear()
        row = item.data["row"]
        if row is None:
            raise Reject("missing_metadata", f"{Path(item.data['path']).name} has no row in {p.metadata_csv}")
        if item.data.get("invalid"):
            raise Reject("invalid_metadata", item.data["invalid"])
        if row["category"] not in p.keep_categories:
            raise Reject("wrong_category", f"category {row['category']!r} is not kept")
        path = Path(item.data["path"])
        with Clip(path) as clip:  # one pass: the packets' index, then only the GOPs of the candidates
            segments = parse_segments(row.get("camera_segments"), clip.times, clip.info.duration_s)
            indices = self._candidate_frames(segments, ctx.seed)
            candidates, codes, frames = [], Counter(), {}
            for frame in clip.read(indices):
                verdict = self._judge(frame.rgb)
                if isinstance(verdict, str):
                    codes[verdict] += 1
                else:
                    candidates.append(dataclasses.replace(verdict, frame=frame.index))
                    frames[frame.index] = frame
            info, undecodable = clip.info, len(clip.undecodable)
        if not candidates:
            self._refuse(codes, len(indices), undecodable, info)
        kept = self._rank(candidates)[: p.keep_per_video]
        out = Output()
        for rank, (cand, score) in enumerate(kept):
            self._emit(out, row, info, frames[cand.frame], cand, score, rank)
        return out

    def _candidate_frames(self, segments: list[np.ndarray], seed: int) -> list[int]:
        pool = np.unique(np.concatenate(segments)).astype(np.int64)
        if pool.size == 0:
            raise Reject("bad_segments", "the looking-at-camera segments hold no frame")
        n = min(self.params.candidates_per_video, pool.size)
        rng = np.random.default_rng(seed)
        return sorted(int(i) for i in rng.choice(pool, size=n, replace=False))

    def _judge(self, rgb: np.ndarray) -> Candidate | str:
        """A Candidate, or the frame-level reject code."""
        p = self.params
        h, w = rgb.shape[:2]
        factor = fit_factor(rgb.shape, p.detect_max_side)
        faces = [f.scaled(1.0 / factor) for f in self.detector.detect(scaled_copy(rgb, factor))]
        faces = [f for f in faces if f.prob >= min(p.min_face_prob, p.second_face_prob)]
        main = [f for f in faces if f.prob >= p.min_face_prob]
        if not main:
            return "no_face"
        if sum(f.prob >= p.second_face_prob for f in faces) > 1:
            return "multiple_faces"
        face = main[0]
        if face.short_side < p.min_face_px:
            return "face_too_small"
        angles = frontal_angles(face.landmarks)
        code = frontal_reject_code(angles, p.max_eye_nose_deg, p.max_mouth_nose_deg, p.max_vertical_deg)
        if code:
            return code
        pad = square_crop(face.box, p.box_scale).pad_fraction(w, h)
        if pad > p.max_pad_fraction:
            return "crop_out_of_frame"
        sharp = sharpness(rgb, face.box)
        if sharp < p.min_sharpness:
            return "blurry"
        if self._mesher is None:
            self.setup()
        neutral = neutrality(self._mesher, rgb, face.box, limits_of(p))
        if not neutral.ok and p.neutral_filter == "refuse":
            self._neutral_fails[neutral.fail] += 1
            return "not_neutral"
        return Candidate(frame=-1, face=face, angles=angles, sharpness=sharp, pad_fraction=pad, neutral=neutral)

    def _refuse(self, codes: Counter, n_candidates: int, undecodable: int, info: VideoInfo) -> None:
        if not codes:
            raise Reject("unreadable_video", f"none of the {n_candidates} candidate frames decodes ({info.codec} in "
                         f"{info.container}, {info.frames} frames)")
        top = max(codes.values())
        code = next(c for c in FRAME_CODES if codes.get(c) == top)
        counts = ", ".join([f"{c}={codes[c]}" for c in FRAME_CODES if codes.get(c)] +
                           ([f"undecodable={undecodable}"] if undecodable else []))
        why = ", ".join(f"{k} {n}" for k, n in self._neutral_fails.most_common())
        counts += f"; not neutral by the face mesh: {why} (ingest.neutral_*)" if why else ""
        raise Reject(code, f"{top} of {n_candidates} candidate frames ({counts})")

    def _rank(self, candidates: list[Candidate]) -> list[tuple[Candidate, float]]:
        """Neutral, frontal and sharp first: score = w_s * z(log sharpness) - z(worst angle)
        - w_n * z(distance from a neutral face), z within the clip; with `neutral_filter: flag`
        every neutral frame ranks before any other."""
        p = self.params
        sharp = np.log1p([c.sharpness for c in candidates])
        worst = np.array([c.angles.worst() for c in candidates])
        distance = np.array([min(c.neutral.distance, 1e3) for c in candidates])

        def z(v: np.ndarray) -> np.ndarray:
            return (v - v.mean()) / v.std() if v.std() > 1e-9 else np.zeros_like(v)

        scores = p.sharpness_weight * z(sharp) - z(worst) - p.neutral_weight * z(distance)
        order = sorted(range(len(candidates)),
                       key=lambda i: (not candidates[i].neutral.ok, -scores[i], candidates[i].frame))
        return [(candidates[i], float(scores[i])) for i in order]

    def _emit(self, out: Output, row: dict, info: VideoInfo, frame: Frame, cand: Candidate, score: float,
              rank: int) -> None:
        p, rgb = self.params, frame.rgb
        crop = square_crop(cand.face.box, p.box_scale)
        face_img = extract_crop(rgb, crop, p.out_size, p.pad_mode)
        face_id = f"{row['video_id']}-f{cand.frame:06d}"
        rel = f"faces/{face_id}.jpg"
        out.files[rel] = encode_jpeg(face_img, p.jpeg_quality)
        scale = p.out_size / crop.size
        lms_crop = (cand.face.landmarks - np.array([crop.x0, crop.y0])) * scale
        out.rows.append({
            "face_id": face_id, "participant_id": row["participant_id"], "video_id": row["video_id"],
            "category": row["category"], "path": rel, "frame": cand.frame, "time_s": round(frame.time_s, 4),
            "src_width": int(rgb.shape[1]), "src_height": int(rgb.shape[0]),
            "bbox": [round(v, 2) for v in cand.face.box], "prob": round(cand.face.prob, 6),
            "landmarks": np.round(cand.face.landmarks, 2).tolist(), "landmarks_crop": np.round(lms_crop, 2).tolist(),
            "crop_box": list(crop.box), "pad_fraction": round(cand.pad_fraction, 4), "scale": round(scale, 5),
            "eye_nose_deg": round(cand.angles.eye_nose, 3), "mouth_nose_deg": round(cand.angles.mouth_nose, 3),
            "vertical_deg": round(cand.angles.vertical, 3), "sharpness": round(cand.sharpness, 3),
            "score": round(score, 4), "rank": rank,
            # optional metadata columns, carried to the release's dataset card ("" when absent)
            "license": row.get("license") or "", "consent": row.get("consent") or "",
            # how the clip was read: its codec, the clockwise turn applied to show it upright, its transfer
            "codec": info.codec, "rotation": info.rotation, "transfer": info.transfer,
            "neutral": cand.neutral.ok, "neutral_fail": cand.neutral.fail, **cand.neutral.columns(),
        })


def main(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    ingest = params.ingest
    items = withhold(list_items(ingest), params.removals)  # clips of people removed on request (removals.csv)
    runner_params = params.runner if args.workers is None else dataclasses.replace(params.runner, workers=args.workers)
    summary = Runner(runner_params, params.seed).run(IngestStage(ingest), items, ingest.out_dir)
    stats = summary.stats
    flagged = _not_neutral(ingest.out_dir)
    notes = [f"ingest: warning: {flagged} kept face(s) are not neutral by the face mesh (kept because "
             f"ingest.neutral_filter is flag; refuse drops them)"] if flagged else []
    return end_main(stats, f"ingest: {stats['items']} clips, {stats['done']} with faces ({stats['rows']} faces), "
                           f"{stats['rejected']} refused {stats['reject_codes']}, {summary.skipped} already done -> "
                           f"{ingest.out_dir}", args.report, notes)


def _not_neutral(out_dir: str) -> int:
    manifest = Path(out_dir) / "manifest.parquet"
    if not manifest.is_file():
        return 0
    return int((~pd.read_parquet(manifest, columns=["neutral"])["neutral"].astype(bool)).sum())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, default=None, help="override runner.workers (0 = no Ray)")
    parser.add_argument("--report", default="reports/ingest_stats.json", help="where to copy stats.json (stats without timings)")
