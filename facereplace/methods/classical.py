"""The offline default: a classical face replacement (Bitouk et al. 2008 in spirit), the classical
face swap that evaluation's baseline uses too (pipeline/faces/classical_swap.py): REF's face
carried onto the source's face mesh (`replace.alignment: mesh`, piecewise affine over the 468
points; `similarity`: one fit, as the baseline; a head pose too far is refused), Lab colour and low-frequency lighting transfer,
then a Poisson blend into the source crop (OpenCV's seamlessClone, or its equations solved by a
DST: `replace.blend`)."""
from __future__ import annotations

import numpy as np

from pipeline.config.replace import ReplaceParams
from pipeline.faces.classical_swap import align_by_mesh, align_faces, transfer_appearance
from pipeline.faces.paste import poisson
from pipeline.rejection import Reject


POISSON_BLENDS = {"poisson": "opencv", "poisson_dst": "dst"}  # replace.blend -> pipeline.faces.paste.poisson's solver


class ClassicalMethod:
    name = "classical"
    model_hash = None
    reads_driving = False  # it aligns REF's whole face crop by the face mesh; REF's parse is not needed

    def __init__(self, params: ReplaceParams) -> None:
        self.blend = params.blend
        self.alignment, self.max_pose_difference = params.alignment, params.max_pose_difference

    def make_face(self, source: np.ndarray, reference: np.ndarray, driving: np.ndarray | None,
                  caption: str = "") -> tuple[np.ndarray, np.ndarray | None]:
        if self.alignment == "mesh":
            got = align_by_mesh(source, reference, self.max_pose_difference)
        else:
            got = align_faces(source, reference, "mesh")
        if got is None:
            raise Reject("no_face_mesh", "the face mesh found no face in the photo's or REF's face crop to align")
        warped, mask, ms = got
        if mask.sum() < 64:
            raise Reject("no_face_mesh", "REF's face does not overlap the photo's face after alignment")
        fg = transfer_appearance(warped, source, mask, ms)
        if self.blend in POISSON_BLENDS:
            fg = poisson(fg, source, mask, POISSON_BLENDS[self.blend])
        return fg, mask


def from_params(params: ReplaceParams, sample=None, device: str | None = None) -> ClassicalMethod:
    """The method `classical` (facereplace/methods/__init__.py): it reads `replace` only; the
    sampler's levers and the device are the piq method's."""
    return ClassicalMethod(params)
