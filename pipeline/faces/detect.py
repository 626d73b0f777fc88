"""Face detection with MTCNN (facenet-pytorch), whose P/R/O-net weights ship in the wheel.

The paper (B.2) extracts "facial landmarks and bounding boxes using FaceNet (Esler)", i.e.
facenet-pytorch's MTCNN: boxes, probabilities and five landmarks per face.
"""
from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True)
class Face:
    """One detection in the coordinates of the image passed to `detect`."""

    box: tuple[float, float, float, float]  # x0, y0, x1, y1
    prob: float
    landmarks: np.ndarray  # (5, 2): left eye, right eye, nose, left / right mouth corner

    @property
    def short_side(self) -> float:
        x0, y0, x1, y1 = self.box
        return min(x1 - x0, y1 - y0)

    def scaled(self, factor: float) -> "Face":
        """The same face in an image `factor` times larger."""
        return Face(tuple(float(v) * factor for v in self.box), self.prob, self.landmarks * factor)


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
