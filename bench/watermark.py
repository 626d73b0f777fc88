"""Invisible marks side by side on real replaced photos: methods x attacks (issue 26, item 5).

    python -m bench.watermark                 # prints the markdown table of docs/BENCHMARKS.md

The photos: each face of the real-photo corpus (tests/corpus/: public-domain White House
photos) replaced by the classical method with another photo of the same person, or with its own
mirror image where the corpus has one photo of that person (`PAIRS`), plus the two
public-domain portraits pip packages ship (astronaut, Grace Hopper) replaced by their mirror.
Each composite is marked by every method, attacked (JPEG quality 75; a 0.5x resize; a crop to
the face's box grown by half its size, saved at JPEG 90), and read back. The same attacks on
the unmarked photos give the false positives.

Methods:
- `facemark` (facereplace/facemark.py, what the tool writes): 48 bits in the face's frame,
  only in the paste mask grown by the margin; the decoder finds the face again (MTCNN + mesh);
- `dwtDct square` (the tool's earlier mark): invisible-watermark's dwtDct over the central
  1024 px square, read at the same place (after a resize or crop that place has moved: what
  a decoder without synchronisation reads);
- `dwtDctSvd region` and `rivaGan region`: invisible-watermark's other two methods, laid on the
  paste mask's bounding box (dwtDctSvd on the luma channel; rivaGan's 32 bits at 256 px, its
  change resized back) and pasted under the grown mask; read at the box *where the attack moved
  it* (an oracle placement: better than a real decoder could do).

A read detects when its matching bits reach the threshold whose binomial tail is <= 1e-6 for
its message length (48 bits: 41, with the tries over faces accounted; 32 bits: 30). PSNR is
over the pixels the method may change (the grown mask, or the square), and `outside` is the
share of changed pixels outside the grown paste mask.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import math
import time
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "corpus"
PAIRS = (("obama_portrait.jpg", "obama_lectern.jpg"), ("obama_lectern.jpg", "obama_portrait.jpg"),
         ("biden_portrait.jpg", "mirror"), ("obama_standing.jpg", "obama_portrait.jpg"))
ATTACKS = ("none", "jpeg75", "resize0.5", "crop")


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def attack(rgb: np.ndarray, name: str, box: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    """(attacked image, 2x3 matrix from the original's pixels to the attacked one's)."""
    if name == "none":
        return rgb, np.array([[1.0, 0, 0], [0, 1, 0]])
    if name == "jpeg75":
        return _jpeg(rgb, 75), np.array([[1.0, 0, 0], [0, 1, 0]])
    if name == "resize0.5":
        h, w = rgb.shape[:2]
        return (cv2.resize(rgb, (w // 2, h // 2), interpolation=cv2.INTER_AREA),
                np.array([[(w // 2) / w, 0, 0], [0, (h // 2) / h, 0]]))
    x0, y0, x1, y1 = (int(v) for v in box)
    m = (x1 - x0) // 2
    cx, cy = max(0, x0 - m), max(0, y0 - m)
    return _jpeg(np.ascontiguousarray(rgb[cy:y1 + m, cx:x1 + m]), 90), np.array([[1.0, 0, -cx], [0, 1, -cy]])


def threshold(n_bits: int, rate: float = 1e-6, tries: int = 1) -> int:
    from facereplace.facemark import false_positive_rate

    return next(k for k in range(n_bits // 2, n_bits + 1) if false_positive_rate(n_bits, k, tries) <= rate)


def replaced_photos() -> list[dict]:
    """The composites: image, paste alpha, the face replaced (its mesh in the composite)."""
    from pipeline.rejection import Reject
    from facereplace.faces import find_faces
    from facereplace.methods import build_method
    from facereplace.replace import ReplaceConfig, replace_face
    from pipeline.config.params import load_params
    from tests.fixtures.photos import astronaut, hopper

    params = load_params(REPO / "params.yaml")
    # the lectern photo's face sits near the top edge: its crop is ~25 % outside the frame
    params = dataclasses.replace(params, ingest=dataclasses.replace(params.ingest, max_pad_fraction=0.35))
    p = params.replace
    method = build_method("classical", p)
    cfg = ReplaceConfig.from_params(params)
    read = lambda name: np.asarray(Image.open(CORPUS / name).convert("RGB"))  # noqa: E731
    items = [(name, read(name), read(ref) if ref != "mirror" else np.ascontiguousarray(read(name)[:, ::-1]))
             for name, ref in PAIRS]
    items += [("astronaut", astronaut(), np.ascontiguousarray(astronaut()[:, ::-1])),
              ("hopper", hopper(768), np.ascontiguousarray(hopper(768)[:, ::-1]))]
    out = []
    for name, photo, ref in items:
        faces = find_faces(photo, p, params.ingest)
        target = max(range(len(faces)), key=lambda i: faces[i].short_side)
        ref_faces = find_faces(ref, p, params.ingest)
        ref_face = max(ref_faces, key=lambda f: f.short_side)
        try:
            result = replace_face(photo, faces, target, ref, ref_face, method, cfg)
        except Reject as err:  # said, not hidden: the table's n counts the photos that were replaced
            print(f"{name}: not replaced ({err})", flush=True)
            continue
        out.append({"name": name, "original": photo, "image": result.image, "alpha": result.alpha, "face": result.face})
    return out


class FaceMark:
    name, bits = "facemark (ours)", 48

    def __init__(self, params) -> None:
        from facereplace.provenance import mark_params, watermark_bits

        self.p, self.ingest, self.mp = params.replace, params.ingest, mark_params(params.replace)
        self.message = [int(b) % 2 for b in watermark_bits()]

    def embed(self, item: dict) -> np.ndarray:
        from facereplace.provenance import mark_faces

        return mark_faces(item["image"], [(item["face"], item["alpha"])], self.p, self.ingest)

    def area(self, item: dict) -> np.ndarray:
        from facereplace.facemark import Frame

        unit = Frame.of_mesh(item["face"].mesh).unit
        grow = max(1, int(round(self.mp.margin * unit)))
        k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 3,) * 2)
        return cv2.dilate((item["alpha"] > 0).astype(np.uint8), k) > 0

    def read(self, rgb: np.ndarray, item: dict, to: np.ndarray) -> int:
        from facereplace.provenance import read_face_marks

        got = read_face_marks(rgb, self.p)
        return got[0]["bits"] if got else 0


class Square:
    name, bits = "dwtDct square (before)", 48

    def embed(self, item: dict) -> np.ndarray:
        from facereplace.provenance import embed_watermark

        return embed_watermark(item["image"], 1024)

    def area(self, item: dict) -> np.ndarray:
        from facereplace.provenance import mark_region

        x0, y0, x1, y1 = mark_region(item["image"].shape[:2], 1024)
        a = np.zeros(item["image"].shape[:2], bool)
        a[y0:y1, x0:x1] = True
        return a

    def read(self, rgb: np.ndarray, item: dict, to: np.ndarray) -> int:
        from facereplace.provenance import decode_watermark

        return decode_watermark(rgb, 1024)


class RegionBox:
    """invisible-watermark's method on the paste mask's bounding box, pasted under the grown mask."""

    def __init__(self, method: str, face_mark: FaceMark) -> None:
        from facereplace.provenance import watermark_bits

        self.method, self.fm = method, face_mark
        self.bits = 32 if method == "rivaGan" else 48
        self.name = f"{method} region (oracle placement)"
        self.message = [int(b) % 2 for b in watermark_bits()][: self.bits]

    def _box(self, item: dict) -> tuple[int, int, int, int]:
        ys, xs = np.nonzero(self.fm.area(item))
        return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1

    def _encode(self, bgr: np.ndarray) -> np.ndarray:
        if self.method == "rivaGan":
            from imwatermark.rivaGan import RivaWatermark

            RivaWatermark.loadModel()
            small = cv2.resize(bgr, (256, 256), interpolation=cv2.INTER_AREA)
            change = RivaWatermark(self.message, 32).encode(small).astype(np.float32) - small
            return np.clip(bgr + cv2.resize(change, bgr.shape[1::-1], interpolation=cv2.INTER_LINEAR), 0, 255).astype(np.uint8)
        from imwatermark.dwtDctSvd import EmbedDwtDctSvd

        return EmbedDwtDctSvd(self.message, wmLen=48, scales=[36, 0, 0]).encode(bgr)

    def embed(self, item: dict) -> np.ndarray:
        x0, y0, x1, y1 = self._box(item)
        out = item["image"].copy()
        marked = self._encode(np.ascontiguousarray(out[y0:y1, x0:x1, ::-1]))[:, :, ::-1]
        keep = self.fm.area(item)[y0:y1, x0:x1, None]
        out[y0:y1, x0:x1] = np.where(keep, marked, out[y0:y1, x0:x1])
        return out

    def area(self, item: dict) -> np.ndarray:
        return self.fm.area(item)

    def read(self, rgb: np.ndarray, item: dict, to: np.ndarray) -> int:
        x0, y0, x1, y1 = self._box(item)
        (ax0, ay0), (ax1, ay1) = (to @ np.array([x0, y0, 1.0])).round().astype(int), (to @ np.array([x1, y1, 1.0])).round().astype(int)
        patch = np.ascontiguousarray(rgb[max(0, ay0):ay1, max(0, ax0):ax1, ::-1])
        if min(patch.shape[:2]) < 32:
            return 0
        if self.method == "rivaGan":
            from imwatermark.rivaGan import RivaWatermark

            RivaWatermark.loadModel()
            got = RivaWatermark([], 32).decode(cv2.resize(patch, (256, 256), interpolation=cv2.INTER_AREA))
        else:
            from imwatermark.dwtDctSvd import EmbedDwtDctSvd

            got = EmbedDwtDctSvd([], wmLen=48, scales=[36, 0, 0]).decode(patch)
        return int(sum(int(g) == m for g, m in zip(got, self.message)))


def psnr(a: np.ndarray, b: np.ndarray, where: np.ndarray) -> float:
    d = (a.astype(np.float64) - b)[where]
    mse = float(np.mean(d ** 2)) if d.size else 0.0
    return math.inf if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def run() -> list[dict]:
    from pipeline.config.params import load_params

    params = load_params(REPO / "params.yaml")
    items = replaced_photos()
    fm = FaceMark(params)
    methods = [fm, Square(), RegionBox("dwtDctSvd", fm), RegionBox("rivaGan", fm)]
    rows = []
    for m in methods:
        need = threshold(m.bits, tries=3 if m is fm else 1)
        row = {"method": m.name, "bits": m.bits, "threshold": need, "acc": {}, "det": {}, "fp": {}, "psnr": [],
               "outside": [], "time": []}
        for item in items:
            t = time.perf_counter()
            marked = m.embed(item)
            row["time"].append(time.perf_counter() - t)
            area = m.area(item)
            changed = (marked != item["image"]).any(2)
            row["psnr"].append(psnr(marked, item["image"], area))
            row["outside"].append(float((changed & ~fm.area(item)).sum() / max(1, changed.sum())))
            for a in ATTACKS:
                got, to = attack(marked, a, item["face"].box)
                bits = m.read(got, item, to)
                row["acc"].setdefault(a, []).append(bits / m.bits)
                row["det"].setdefault(a, []).append(bits >= need)
                plain, to = attack(item["original"], a, item["face"].box)
                row["fp"].setdefault(a, []).append(m.read(plain, item, to) >= need)
        rows.append(row)
        print(f"{m.name}: done", flush=True)
    return rows


def table(rows: list[dict], n: int) -> str:
    head = "| method (bits, threshold) | " + " | ".join(f"{a}: bit acc / detected / FP" for a in ATTACKS) + \
           " | PSNR over its area (dB) | changed px outside the grown mask | embed s |"
    lines = [head, "|" + "---|" * (len(ATTACKS) + 4)]
    for r in rows:
        cells = [f"{np.mean(r['acc'][a]):.3f} / {sum(r['det'][a])}/{n} / {sum(r['fp'][a])}/{n}" for a in ATTACKS]
        lines.append(f"| {r['method']} ({r['bits']}, {r['threshold']}) | " + " | ".join(cells) +
                     f" | {min(r['psnr']):.1f}-{max(r['psnr']):.1f} | {100 * np.mean(r['outside']):.1f} % | "
                     f"{np.median(r['time']):.3f} |")
    return "\n".join(lines)


def main() -> None:
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    rows = run()
    print(table(rows, len(rows[0]["time"])))


if __name__ == "__main__":
    main()
