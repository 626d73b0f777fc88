"""Seams and colour casts of the offline relighter on real faces (#31 item 3).

    python -m bench.relight_seams --faces DIR [--variants 5] [--sheet docs/relight_real.jpg]

DIR holds face crops (ingest-style, any size; `python -m bench.label_agreement --faces-out DIR`
writes the real faces it uses: carphone clip frames and corpus photos). Each face is parsed
by the dense-mesh parser, relit `--variants` times by the `sh` backend under the stage's
procedural lights (seeded), and composited through the stage's inward feather, as `piq relight`
does. Per variant:

- seam: the 99th percentile, inside the skin label, of the gradient of log(relit / original
  luminance), times the face width (the skin's box width), at 256 px. A relighting is a smooth
  field over the face: the log-ratio changes by ~1-3 across a whole face; a hard band where the
  face mesh ends adds a step of ~0.2-0.5 within a pixel or two, i.e. tens per face width.
- cast: the largest per-channel departure, over the skin, of the relit/original colour ratio
  from the light's own colour on a face turned to the camera (the map's irradiance on the
  normal (0, 0, 1), at the relighter's `color_strength`), in per cent of luminance: a tint that
  the light does not give a frontal face.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

SIZE = 256


def seam_and_cast(original: np.ndarray, relit: np.ndarray, skin: np.ndarray, light_rgb: np.ndarray) -> tuple[float, float]:
    from pipeline.backends.relighters.envmaps import LUMA, srgb_to_linear

    def small(img: np.ndarray) -> np.ndarray:
        return cv2.resize(srgb_to_linear(img / 255.0).astype(np.float32), (SIZE, SIZE), interpolation=cv2.INTER_AREA)

    a, b = small(original), small(relit)
    region = cv2.resize(skin.astype(np.uint8), (SIZE, SIZE), interpolation=cv2.INTER_NEAREST) > 0
    region = cv2.erode(region.astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    if region.sum() < 50:
        return float("nan"), float("nan")
    la, lb = a @ LUMA.astype(np.float32), b @ LUMA.astype(np.float32)
    log_ratio = np.log(lb + 1e-3) - np.log(la + 1e-3)
    gx, gy = cv2.Sobel(log_ratio, cv2.CV_32F, 1, 0, ksize=3) / 8, cv2.Sobel(log_ratio, cv2.CV_32F, 0, 1, ksize=3) / 8
    inner = cv2.erode(region.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0  # Sobel reads one pixel around
    xs = np.nonzero(region)[1]
    width = float(xs.max() - xs.min() + 1)
    seam = float(np.percentile(np.hypot(gx, gy)[inner], 99) * width)
    ratio = (b[region].sum(0) + 1e-6) / (a[region].sum(0) + 1e-6)
    ratio = ratio / float(ratio @ LUMA)
    expected = light_rgb / float(light_rgb @ LUMA)
    cast = float(np.abs(ratio - expected).max() * 100)
    return seam, cast


def evaluate(faces: dict[str, np.ndarray], variants: int = 5, seed: int = 0):
    """Rows (face, variant, light, seam, cast) and, per face, (original, relit images)."""
    from pipeline.config.relight import RelightParams
    from pipeline.config.segment import SegmentParams
    from pipeline.faces.paste import composite, feather
    from pipeline.labels import LABEL_IDS
    from pipeline.backends.parsers.mesh_parser import MeshParser
    from pipeline.backends.relighters.base import region_mask
    from pipeline.backends.relighters.envmaps import LUMA, draw_lights, irradiance
    from pipeline.backends.relighters.sh import SHRelighter

    params = RelightParams()
    parser, relighter = MeshParser(SegmentParams()), SHRelighter(params)
    rows, shown = [], {}
    for name, face in faces.items():
        labels = parser.parse([face])[0]
        if not isinstance(labels, np.ndarray):
            print(f"{name}: {labels}")
            continue
        mask = region_mask(labels, params.regions)
        rng = np.random.default_rng(seed)
        lights = draw_lights(variants, rng, kinds=params.procedural_kinds, rotation_deg=params.rotation_deg,
                             exposure=params.exposure, height=params.envmap_width // 2)
        relit = relighter.relight(face, mask, lights, seed=int(rng.integers(2**62)))
        alpha = feather(mask, params.feather_px * max(face.shape[:2]) / 1024)
        finals = [composite(face, new, alpha) for new in relit]
        skin = labels == LABEL_IDS["skin"]
        for k, (light, final) in enumerate(zip(lights, finals), start=1):
            front = np.clip(irradiance(light.sh, np.array([0.0, 0.0, 1.0])), 1e-6, None)
            dc = (front / float(front @ LUMA)) ** params.color_strength
            seam, cast = seam_and_cast(face, final, skin, dc)
            rows.append({"face": name, "variant": f"r{k}", "light": light.name.split("(")[0], "seam": seam, "cast": cast})
        shown[name] = (face, finals, [lt.name.split("(")[0] for lt in lights])
    return rows, shown


def sheet(face: np.ndarray, finals: list[np.ndarray], names: list[str], tile: int = 200) -> np.ndarray:
    tiles = [(face, "original")] + list(zip(finals, names))
    out = np.full((tile + 18, tile * len(tiles), 3), 255, np.uint8)
    for k, (img, text) in enumerate(tiles):
        out[:tile, k * tile : (k + 1) * tile] = cv2.resize(img, (tile, tile), interpolation=cv2.INTER_AREA)
        cv2.putText(out, text, (k * tile + 3, tile + 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", required=True, help="folder of face crops (jpg/png)")
    parser.add_argument("--variants", type=int, default=5)
    parser.add_argument("--sheet", default=None, help="write the first face's original + variants here")
    args = parser.parse_args()
    paths = sorted(p for p in Path(args.faces).iterdir() if p.suffix.lower() in (".jpg", ".png"))
    faces = {p.stem: cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths}
    rows, shown = evaluate(faces, args.variants)
    print("| face | variant | light | seam | cast % |\n|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['face']} | {r['variant']} | {r['light']} | {r['seam']:.1f} | {r['cast']:.1f} |")
    seams, casts = np.array([r["seam"] for r in rows]), np.array([r["cast"] for r in rows])
    print(f"all {len(rows)} variants: seam median {np.nanmedian(seams):.1f}, max {np.nanmax(seams):.1f}; "
          f"cast median {np.nanmedian(casts):.1f}%, max {np.nanmax(casts):.1f}%")
    if args.sheet and shown:
        face, finals, names = next(iter(shown.values()))
        cv2.imwrite(args.sheet, cv2.cvtColor(sheet(face, finals, names), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 80])


if __name__ == "__main__":
    main()
