"""docs/PHOTO_TOOL.md's before/after picture of the photo tool, from the public-domain portraits.

    python samples/make_before_after.py --out docs/photo_before_after.jpg

PHOTO: the astronaut and Grace Hopper side by side (tests/fixtures/photos.group_photo); REF:
another "photo" of the astronaut (mirrored, smaller, warmer). `piq replace --method classical`
picks the astronaut by identity and replaces her face; the picture shows the photo, REF, the
result and the result's difference to the photo (x4: zero outside the pasted face), plus the
`piq verify` line of the result.
"""
from __future__ import annotations

import argparse
import io
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = np.full((img.shape[0] + 34, img.shape[1], 3), 255, np.uint8)
    out[34:] = img
    cv2.putText(out, text, (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.7, (20, 20, 20), 2, cv2.LINE_AA)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "docs" / "photo_before_after.jpg"))
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from tests.fixtures.photos import astronaut_reference, group_photo, save_jpeg

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        photo, ref = save_jpeg(root / "group.jpg", group_photo()), save_jpeg(root / "ref.jpg", astronaut_reference())
        out = root / "out.jpg"
        piq = [sys.executable, "-m", "pipeline.commands.piq", "--params", str(REPO / "params.yaml")]
        subprocess.run([*piq, "replace", str(photo), "--driving", str(ref), "-o", str(out)], check=True, cwd=REPO)
        verdict = subprocess.run([*piq, "verify", str(out)], capture_output=True, text=True, cwd=REPO).stdout.splitlines()[0]
        before, after = np.asarray(Image.open(photo)), np.asarray(Image.open(out))
    box = np.s_[20:330, 90:400]  # the astronaut's head
    diff = np.clip(np.abs(after.astype(int) - before.astype(int)) * 4, 0, 255).astype(np.uint8)
    ref_small = cv2.resize(astronaut_reference(), (310, 310), interpolation=cv2.INTER_AREA)
    row = np.concatenate([label(before[box], "PHOTO"), label(ref_small, "REF (same person)"),
                          label(after[box], "piq replace (classical)"), label(diff[box], "|after - before| x4")], axis=1)
    whole = np.concatenate([label(before, "before"), label(after, "after")], axis=1)
    whole = cv2.resize(whole, (row.shape[1], round(whole.shape[0] * row.shape[1] / whole.shape[1])), interpolation=cv2.INTER_AREA)
    foot = np.full((36, row.shape[1], 3), 255, np.uint8)
    cv2.putText(foot, "piq verify: " + verdict.split(": ", 1)[-1], (8, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (20, 20, 20), 1, cv2.LINE_AA)
    picture = np.concatenate([row, whole, foot], axis=0)
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "JPEG", quality=85)
    Path(args.out).write_bytes(buf.getvalue())
    print(f"{args.out}: {picture.shape[1]}x{picture.shape[0]}, {len(buf.getvalue()) // 1024} KB")


if __name__ == "__main__":
    main()
