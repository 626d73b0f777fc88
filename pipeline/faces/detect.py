"""Face detection with MTCNN (facenet-pytorch), whose P/R/O-net weights ship in the wheel, and
the one `Face` record of the project (a detection; a photo's numbered, measured face).

The paper (B.2) extracts "facial landmarks and bounding boxes using FaceNet (Esler)", i.e.
facenet-pytorch's MTCNN: boxes, probabilities and five landmarks per face.
"""
from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import cv2
import numpy as np

from pipeline.faces.geometry import SquareCrop, square_crop

if TYPE_CHECKING:
    from pipeline.config.ingest import IngestParams
    from pipeline.faces.mesh import Mesh


@dataclasses.dataclass(frozen=True)
class Face:
    """One face: MTCNN's detection in the coordinates of the image passed to `detect` (box,
    probability, five points); the photo tool (facereplace/faces.py) adds its number and the
    face mesh's measures on its crop, in the photo's pixels (as shown: EXIF orientation applied).
    """

    box: tuple[float, float, float, float]      # x0, y0, x1, y1
    prob: float                                 # MTCNN probability
    landmarks: np.ndarray                       # (5, 2) MTCNN order: image-left eye, image-right eye, nose, mouth corners
    index: int = 0                              # the photo tool's number: 0-based, left to right by box centre
    mesh: Mesh | None = None                    # 478 face-mesh points in photo pixels, None when the mesh found nothing
    yaw: float | None = None                    # degrees (pipeline/faces/mesh.py conventions)
    pitch: float | None = None
    roll: float | None = None
    eyes_open: float | None = None              # eye opening / eye width, the eyes weighted by how much of each is seen
    #                                             (~0.25-0.35 open, < 0.1 shut)
    smile: float | None = None                  # mouth-corner lift over the lip centre, head frame, per interocular
    gaze: tuple[float, float] | None = None     # iris in the eye opening, (0, 0) = looking ahead
    sharpness: float = 0.0                      # variance of the Laplacian of the box at 256 px

    @property
    def short_side(self) -> float:
        x0, y0, x1, y1 = self.box
        return min(x1 - x0, y1 - y0)

    def scaled(self, factor: float) -> "Face":
        """The same detection in an image `factor` times larger."""
        return Face(tuple(float(v) * factor for v in self.box), self.prob, self.landmarks * factor)

    def crop(self, ingest: IngestParams) -> SquareCrop:
        """Ingest's square crop of this face (box x `box_scale` around its midpoint)."""
        return square_crop(self.box, ingest.box_scale)

    def as_dict(self) -> dict:
        """JSON-ready summary (`piq faces --json`, best-take plans)."""
        r = lambda v: None if v is None else round(float(v), 4)  # noqa: E731
        return {"face": self.index, "box": [round(v, 1) for v in self.box], "score": r(self.prob),
                "yaw": r(self.yaw), "pitch": r(self.pitch), "roll": r(self.roll), "eyes_open": r(self.eyes_open),
                "smile": r(self.smile), "gaze": None if self.gaze is None else [r(g) for g in self.gaze],
                "sharpness": r(self.sharpness)}


def fit_factor(shape: tuple[int, ...], max_side: int) -> float:
    """The downscale that brings an image of `shape` to at most `max_side` px on its longer side
    (1.0 for one that is smaller): the copy the detector runs on (ingest, the photo tool)."""
    return min(1.0, max_side / max(shape[:2]))


def scaled_copy(rgb: np.ndarray, factor: float) -> np.ndarray:
    """`rgb` resized by `factor` (area-averaged, at least 1 px a side); `rgb` itself at 1.0."""
    if factor == 1.0:
        return rgb
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)


def _as_float_array(value: object) -> np.ndarray:
    # Under numpy 2, MTCNN.detect may return object arrays; normalise through lists.
    return np.asarray(np.asarray(value, dtype=object).tolist(), dtype=np.float64)


class FaceDetector:
    """MTCNN on CPU (or a given device). Loaded lazily: constructing one is cheap."""

    def __init__(self, device: str = "cpu", min_face_size: int = 20) -> None:
        self.device = device
        self.min_face_size = min_face_size
        self._mtcnn = None

    def _model(self):
        if self._mtcnn is None:
            from facenet_pytorch import MTCNN

            self._mtcnn = MTCNN(keep_all=True, device=self.device, min_face_size=self.min_face_size)
        return self._mtcnn

    def detect(self, rgb: np.ndarray, min_face_size: int | None = None) -> list[Face]:
        """All faces in an RGB uint8 (H, W, 3) image, most probable first; `min_face_size`
        (px) overrides the detector's for this call (where a caller knows the face's size
        roughly, the finer pyramid levels are not needed)."""
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise ValueError(f"expected an RGB uint8 image, got shape {rgb.shape} dtype {rgb.dtype}")
        smallest = self.min_face_size if min_face_size is None else max(self.min_face_size, int(min_face_size))
        if min(rgb.shape[:2]) < smallest:  # no face of that size fits: MTCNN's pyramid would be empty (torch.cat error)
            return []
        model = self._model()
        model.min_face_size = smallest
        try:
            boxes, probs, landmarks = model.detect(rgb, landmarks=True)
        finally:
            model.min_face_size = self.min_face_size
        if boxes is None:
            return []
        boxes, probs, landmarks = _as_float_array(boxes), _as_float_array(probs), _as_float_array(landmarks)
        faces = [
            Face(tuple(float(v) for v in box), float(prob), lms.reshape(5, 2))
            for box, prob, lms in zip(boxes, probs, landmarks)
        ]
        return sorted(faces, key=lambda f: -f.prob)
