"""docs/PHOTO_TOOL.md's eyes-only blink fix: `piq best-take` on a burst made from a real photo.

    python samples/make_eyes_only_fix.py --out docs/eyes_only_fix.jpg

The burst: the group photo composed from real public-domain photos (the corpus's White House
photographs, tests/corpus, and the pip packages' NASA and US Navy portraits) as three shots, each
with one person blinking, made by the project's offline animator (tests/fixtures/corpus.blink_burst;
Obama's head is turned 40 degrees in every shot). Shots are PNG, so the difference is the edit alone. `piq
best-take` picks the base shot and fixes its blink with that person's eyes from another shot
(`best_take` chooses the eyes region for a blink). The picture: the base shot's blinking face,
the best take's, and their difference x4 (zero outside the eyes and the mark's margin around
them); the script prints how many pixels of the photo changed and in which rows.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


def piq(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "pipeline.commands.piq", *args], cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode:
        raise SystemExit(f"piq {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(REPO / "docs" / "eyes_only_fix.jpg"))
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    from samples.make_before_after import label
    from tests.fixtures.corpus import blink_burst

    with tempfile.TemporaryDirectory() as tmp:
        shots = []
        for k, rgb in enumerate(blink_burst()):
            shots.append(Path(tmp) / f"shot_{k}.png")  # lossless, so the difference is the edit alone
            Image.fromarray(rgb).save(shots[-1])
        out = Path(tmp) / "best.png"
        done = json.loads(piq("best-take", *map(str, shots), "-o", str(out), "--json"))
        base = int(done["base"].split("_")[1].split(".")[0])  # "shot_2.png" -> 2
        regions = done["plan"].get("regions") or {}
        fixed = [r["person"] for r in done["replaced"]]
        before = np.asarray(Image.open(shots[base]).convert("RGB"))
        after = np.asarray(Image.open(out).convert("RGB"))
        faces = json.loads(piq("faces", str(shots[base]), "--json"))["faces"]
    person = fixed[0]
    x0, y0, x1, y1 = (int(round(v)) for v in faces[person]["box"])
    pad = (x1 - x0) // 4
    x0, y0, x1, y1 = max(0, x0 - pad), max(0, y0 - pad), x1 + pad, y1 + pad
    diff = np.abs(after.astype(int) - before.astype(int)).max(-1)
    changed = diff > 0
    rows, cols = np.nonzero(changed)
    print(f"base {done['base']}; person {person} fixed with region {regions.get(str(person), '?')}; "
          f"{changed.sum()} pixels changed in the whole photo, rows {rows.min()}-{rows.max()} "
          f"(face box rows {y0}-{y1})")
    crop = (slice(y0, y1), slice(x0, x1))
    side = 300
    tiles = [cv2.resize(img[crop], (side, side * (y1 - y0) // (x1 - x0))) for img in
             (before, after, np.repeat(np.clip(diff * 4, 0, 255).astype(np.uint8)[..., None], 3, 2))]
    picture = np.hstack([label(tiles[0], "base shot: blink"), label(tiles[1], "best take: eyes only"),
                         label(tiles[2], "difference x4")])
    cv2.imwrite(args.out, cv2.cvtColor(picture, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {args.out} ({Path(args.out).stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
