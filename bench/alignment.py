"""The classical method's alignment of REF onto PHOTO (#26 item 2): the face meshes'
piecewise-affine map (`replace.alignment: mesh`) against one similarity of the 468 points
(`similarity`, evaluation's baseline), on the corpus portraits with a mirrored REF and with REF
turned +-25 degrees by the offline animator. PSNR (dB) of the replaced face against the original,
inside the paste mask, after the whole classical method (colour, lighting, Poisson blend).

    python bench/alignment.py
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from pipeline.backends.animators import motion as mo
from pipeline.backends.animators.mesh_animator import MeshAnimator
from pipeline.faces.classical_swap import align_by_mesh, align_faces, transfer_appearance
from pipeline.faces.identity import face_mesh
from pipeline.faces.paste import poisson

PORTRAITS = ("obama_portrait.jpg", "biden_portrait.jpg")


def face_crop(name: str) -> np.ndarray:
    """The portrait's face with half a face of margin (what the photo tool's crop holds)."""
    rgb = np.asarray(Image.open(f"tests/corpus/{name}").convert("RGB"))
    m = face_mesh(rgb)
    (x0, y0), (x1, y1) = m.xy.min(0).astype(int), m.xy.max(0).astype(int)
    pad = (x1 - x0) // 2
    return np.ascontiguousarray(rgb[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad])


def replaced_psnr(crop: np.ndarray, ref: np.ndarray, alignment: str) -> float:
    got = align_by_mesh(crop, ref, 180.0) if alignment == "mesh" else align_faces(crop, ref, "mesh")
    warped, mask, ms = got
    out = poisson(transfer_appearance(warped, crop, mask, ms), crop, mask, "dst")
    d = out[mask].astype(np.float64) - crop[mask]
    return float(10 * np.log10(255 ** 2 / (d ** 2).mean()))


def main() -> None:
    animator = MeshAnimator()
    print("| photo | REF | similarity (dB) | mesh (dB) | gain |")
    print("|---|---|---|---|---|")
    gains = []
    for name in PORTRAITS:
        crop = face_crop(name)
        base = animator.mesh(crop, name)
        refs = {"mirrored": np.ascontiguousarray(crop[:, ::-1])}
        for yaw in (-25.0, 25.0):
            refs[f"turned {yaw:+.0f} deg"] = animator.apply(crop, base, mo.program_motion(base, mo.Controls(yaw=yaw))).image
        for label, ref in refs.items():
            sim, mesh = replaced_psnr(crop, ref, "similarity"), replaced_psnr(crop, ref, "mesh")
            gains.append(mesh - sim)
            print(f"| {name} | {label} | {sim:.1f} | {mesh:.1f} | {mesh - sim:+.1f} |")
    print(f"\nmean gain of the mesh alignment: {np.mean(gains):+.1f} dB over {len(gains)} pairs")


if __name__ == "__main__":
    main()
