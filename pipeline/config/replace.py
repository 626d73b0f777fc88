"""`replace` section: the photo tool (`piq faces`, `piq replace`, `piq verify`; facereplace/).

The crop itself is ingest's (`ingest.box_scale`, `ingest.out_size`, `ingest.pad_mode`): the
model must see a face cut exactly as in training, so those keys are not repeated here. How
much of that crop may leave the frame is the tool's own rule (`max_pad_fraction`), not
ingest's: ingest's limit curates a data set (a clip whose face is cut is dropped), a user's
tight portrait must still work (issue 24).
"""
from __future__ import annotations

import dataclasses
from typing import Literal


@dataclasses.dataclass(frozen=True)
class ReplaceParams:
    method: Literal["classical", "piq"] = "classical"
    model_dir: str = "models/piq"                  # trained pipeline (piq export); --method piq
    num_inference_steps: int = 50                  # paper A.1: 50
    guidance_scale: float = 1.5                    # paper A.1: 1.5
    seed: int = 0
    device: str | None = None                      # null: cuda when there is one
    identity_encoder: Literal["auto", "arcface", "dlib"] = "auto"   # evaluation's encoder (pipeline/faces/identity.py)
    identity_weights: str | None = None
    max_identity_distance: float = 0.08            # 1 - cosine of the identity embeddings (dlib: its 0.6 Euclidean)
    min_face_px: int = 64                          # shorter side of the face box, photo pixels
    min_face_prob: float = 0.90                    # MTCNN probability for a face to count
    verify_faces: bool = True                      # a candidate counts only when the face mesh agrees (or see next)
    unverified_min_prob: float = 0.995             # ... or, where the mesh cannot take it, MTCNN this sure and its points a face's
    detect_max_side: int = 1024                    # photos are downscaled to this for MTCNN
    detect_rotations: tuple[float, ...] = (-30.0, 30.0)   # retried on rotated copies (tilted heads)
    detect_upscale: float = 2.0                    # retried on a copy this much larger (small faces); 1 = off
    proposal_pad: float = 2.0                      # piq replace: MTCNN on squares this x BlazeFace's boxes first; 0 = off
    max_pixels: int = 100_000_000                  # larger photos are refused (decompression bombs)
    max_pad_fraction: float = 0.5                  # share of a face's crop allowed outside the photo (padded as ingest pads)
    max_face_outside: float = 0.2                  # share of the face box itself allowed outside the photo
    jpeg_quality: int = 95
    driving_erosion_px: int = 15                   # training draws it from data.erosion_px (paper [0, 30]); fixed here
    mask_erode_px: int = 12                        # paste mask eroded this much (at the 1024 px crop)
    feather_px: int = 24                           # ... and feathered inwards over this many (1024 px crop)
    rim_px: int = 16                               # colour matched on a ring this wide inside the mask edge
    # classical: Poisson blend (OpenCV's seamlessClone, or its equations by a DST: within a level, ~half the cost) then feathered paste
    blend: Literal["poisson", "poisson_dst", "feather"] = "poisson_dst"
    # classical: REF's face onto PHOTO's by their face meshes (mesh: piecewise affine, a turned head
    # lands on PHOTO's geometry) or by one similarity of the 468 points (similarity: as evaluation's baseline)
    alignment: Literal["mesh", "similarity"] = "mesh"
    max_pose_difference: float = 35.0              # degrees of yaw, pitch or roll between the two heads (mesh alignment)
    parse_px: int = 512                            # the face parser sees the crop at this side; labels upsampled (nearest)
    occluders: tuple[str, ...] = ("eye_g", "hat", "hair")  # parser labels kept in front of the new face
    hands: bool = True                             # mediapipe hand model: hands over the face stay in front
    hand_dilate_px: int = 24                       # hand hull grown by this (1024 px crop)
    region: Literal["face", "eyes", "mouth", "upper", "lower"] = "face"  # part of the face replaced (facereplace/regions.py)
    watermark_px: int = 1024                       # legacy square mark's side: verify still reads it in older outputs
    mark_cell: float = 0.11                        # face mark: cell side, x the face mesh's RMS radius (docs/BENCHMARKS.md)
    mark_step: float = 8.0                         # face mark: QIM step, luma levels (larger: more robust, more visible)
    mark_min_strength: float = 0.6                 # face mark: share of the step flat or dark cells get (>= 0.5)
    mark_margin: float = 0.5                       # face mark: paste mask grown by this x the mesh's RMS radius

    def validate(self) -> None:
        if self.min_face_px < 8 or self.max_pixels < 64 * 64:
            raise ValueError("replace.min_face_px >= 8 and max_pixels >= 4096")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError("replace.jpeg_quality must be within [1, 100]")
        if not 0 < self.max_identity_distance <= 2:
            raise ValueError("replace.max_identity_distance must be within (0, 2]")
        if self.proposal_pad != 0 and self.proposal_pad < 1.2:
            raise ValueError("replace.proposal_pad must be 0 (off) or >= 1.2 (MTCNN needs the face's surroundings)")
        if self.detect_upscale < 1 or self.detect_max_side < 64:
            raise ValueError("replace.detect_upscale >= 1 and detect_max_side >= 64")
        if min(self.mask_erode_px, self.feather_px, self.rim_px, self.hand_dilate_px, self.driving_erosion_px) < 0:
            raise ValueError("replace pixel widths must be >= 0")
        if self.alignment not in ("mesh", "similarity") or not 0 < self.max_pose_difference <= 180:
            raise ValueError("replace.alignment must be mesh or similarity and max_pose_difference within (0, 180]")
        if not 0 <= self.max_pad_fraction <= 0.75 or not 0 <= self.max_face_outside <= 0.5:
            raise ValueError("replace.max_pad_fraction must be within [0, 0.75] and max_face_outside within [0, 0.5]")
        if self.parse_px < 128:
            raise ValueError("replace.parse_px must be >= 128")
        if self.watermark_px < 256:
            raise ValueError("replace.watermark_px must be >= 256 (invisible-watermark's minimum)")
        if not (0 < self.mark_cell <= 0.5 and self.mark_step > 0 and 0.5 <= self.mark_min_strength <= 1
                and self.mark_margin >= 0):
            raise ValueError("replace.mark_cell in (0, 0.5], mark_step > 0, mark_min_strength in [0.5, 1], mark_margin >= 0")
