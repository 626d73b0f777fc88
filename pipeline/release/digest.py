"""What a release means, small enough to commit: `reports/release_digest.json`.

Written after `piq shard` (dvc.yaml), it holds what must be the same on any machine that runs
the pipeline, so a fresh `dvc repro` on another CPU can be compared with the committed one by
meaning when its bytes cannot match (OpenCV, mediapipe and torch pick SIMD code paths per CPU:
docs/INSTALL.md, "What may differ across machines"):

- ingest: every clip's outcome (`accept` or its reject code) and the faces kept;
- the sets of each split, each set's participant, clip and images, each image's driver;
- each image's caption and label map (the decoded ids), as 64-bit sha256 prefixes: equal, not close;
- each image as 2x2 block means per RGB channel and each relit variant as 2x2 block means of its
  luma (0-255, one decimal): images must agree within 1 level (`IMAGE_LEVELS`) there, the most a
  committed file of ~60 KB for the sample can check (full images are DVC outs, not in git).

`compare` lists every difference beyond those tolerances.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.release.reader import INDEX_FILE
from pipeline.release.shards import decode_image, iter_raw_samples
from pipeline.release.splits import SPLITS

IMAGE_LEVELS = 1.0  # images within 1 level of 255 (block means; + the digest's rounding)
ROUNDING = 0.05


def _blocks(rgb: np.ndarray, luma: bool = False) -> list[float]:
    """Means of the image's four quarters: per RGB channel, or of the luma (Rec. 601)."""
    img = rgb.astype(np.float64)
    if luma:
        img = (img @ np.array([0.299, 0.587, 0.114]))[..., None]
    h, w = img.shape[:2]
    out = []
    for rows in (slice(0, h // 2), slice(h // 2, h)):
        for cols in (slice(0, w // 2), slice(w // 2, w)):
            out += [round(float(v), 1) for v in img[rows, cols].reshape(-1, img.shape[2]).mean(axis=0)]
    return out


def _short(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def ingest_outcomes(ingest_dir: Path) -> dict[str, Any]:
    manifest = pd.read_parquet(ingest_dir / "manifest.parquet")
    path = ingest_dir / "rejects.parquet"
    rejects = pd.read_parquet(path) if path.is_file() else pd.DataFrame(columns=["item_id", "code"])
    outcome = {str(i): "accept" for i in manifest["item_id"]}
    outcome |= {str(r["item_id"]): str(r["code"]) for r in rejects.to_dict("records")}
    return {"clips": dict(sorted(outcome.items())), "faces": sorted(str(f) for f in manifest["face_id"])}


def digest(release: Path, ingest_dir: Path | None) -> dict[str, Any]:
    """The digest of a release folder (and of the ingest output it was made from)."""
    out: dict[str, Any] = {"ingest": ingest_outcomes(ingest_dir) if ingest_dir else None, "splits": {}, "sets": {}}
    for split in SPLITS:
        index_path = release / split / INDEX_FILE
        if not index_path.is_file():
            continue
        keys = []
        for entry in json.loads(index_path.read_text())["shards"]:
            for key, fields in iter_raw_samples(release / split / entry["name"]):
                keys.append(key)
                meta = json.loads(fields["meta.json"])
                images = {}
                for img in meta["images"]:
                    i = img["index"]
                    labels = decode_image(fields[f"{i}.seg.png"], f"{i}.seg.png")
                    relit = [f"{i}.r{k}.jpg" for k in range(1, int(meta["n_relit"]) + 1)]
                    images[i] = {"driver": img.get("driving_video"), "caption": _short(img["caption"].encode()),
                                 "labels": _short(np.ascontiguousarray(labels).tobytes()),
                                 "rgb": _blocks(decode_image(fields[f"{i}.jpg"], f"{i}.jpg")),
                                 "relit": [_blocks(decode_image(fields[f], f), luma=True) for f in relit]}
                out["sets"][key] = {"participant": meta["participant_id"], "video": meta["video_id"], "split": split,
                                    "images": images}
        out["splits"][split] = sorted(keys)
    return out


def changed(a: dict[str, Any], b: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    """The `fields` whose values differ between two records of the digest."""
    return [field for field in fields if a[field] != b[field]]


def compare(committed: dict[str, Any], fresh: dict[str, Any]) -> list[str]:
    """Every difference in meaning between two digests ([] when they agree)."""
    problems = []
    if committed.get("ingest") != fresh.get("ingest"):
        a, b = (committed.get("ingest") or {}).get("clips", {}), (fresh.get("ingest") or {}).get("clips", {})
        problems += [f"ingest {c}: {a.get(c)} -> {b.get(c)}" for c in sorted(set(a) | set(b)) if a.get(c) != b.get(c)]
        if (committed.get("ingest") or {}).get("faces") != (fresh.get("ingest") or {}).get("faces"):
            problems.append("ingest: the faces kept differ")
    if committed["splits"] != fresh["splits"]:
        problems.append(f"splits differ: {committed['splits']} -> {fresh['splits']}")
    for key in sorted(set(committed["sets"]) & set(fresh["sets"])):
        a, b = committed["sets"][key], fresh["sets"][key]
        problems += [f"{key}: {field} {a[field]} -> {b[field]}" for field in changed(a, b, ("participant", "video", "split"))]
        if sorted(a["images"]) != sorted(b["images"]):
            problems.append(f"{key}: images {sorted(a['images'])} -> {sorted(b['images'])}")
            continue
        for i in sorted(a["images"]):
            x, y = a["images"][i], b["images"][i]
            problems += [f"{key}/{i}: {field} differs ({x[field]!r} -> {y[field]!r})"
                         for field in changed(x, y, ("driver", "caption", "labels"))]
            if len(x["relit"]) != len(y["relit"]):
                problems.append(f"{key}/{i}: {len(x['relit'])} relit variants -> {len(y['relit'])}")
                continue
            pairs = [(f"{i}.jpg", x["rgb"], y["rgb"])]
            pairs += [(f"{i}.r{k}.jpg", u, v) for k, (u, v) in enumerate(zip(x["relit"], y["relit"]), start=1)]
            for name, u, v in pairs:
                worst = float(np.max(np.abs(np.subtract(u, v))))
                if worst > IMAGE_LEVELS + ROUNDING:
                    problems.append(f"{key}/{name}: {worst:.1f} levels from the committed image (tolerance {IMAGE_LEVELS})")
    return problems


def write(path: Path, data: dict[str, Any]) -> None:
    """One line per set (a diff names the sets that changed)."""
    def compact(v: Any) -> str:
        return json.dumps(v, sort_keys=True, separators=(",", ":"))
    sets = ",\n".join(f" {json.dumps(k)}: {compact(v)}" for k, v in sorted(data["sets"].items()))
    text = f'{{"ingest": {compact(data["ingest"])},\n"splits": {compact(data["splits"])},\n"sets": {{\n{sets}\n}}}}\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def main(args: Any) -> int:
    """`piq release digest`: write the digest of the release (params shard.out_dir) and its ingest."""
    from pipeline.config.params import load_params

    params = load_params(args.params)
    release = Path(args.release or params.shard.out_dir)
    ingest = Path(params.shard.ingest_dir)
    data = digest(release, ingest if (ingest / "manifest.parquet").is_file() else None)
    write(Path(args.out), data)
    n = sum(len(s["images"]) for s in data["sets"].values())
    print(f"release digest: {len(data['sets'])} sets, {n} images -> {args.out}")
    return 0
