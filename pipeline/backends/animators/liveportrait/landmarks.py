"""The 203-point face landmarks of LivePortrait's weights folder (`landmark.onnx`), run on the CPU
through onnxruntime, as the official `LandmarkRunner` runs them.

The published model takes one input named `input`: (1, 3, 224, 224) float32 RGB in [0, 1], a
224 px crop around the face; of its three outputs the official code reads the third, 203 x 2
coordinates normalised to the crop ([0, 1]). The other two outputs are undocumented and unused.
The runner's own crop is the official crop rule at scale 1.5, vertical shift -0.1, placed from a
previous set of landmarks: the official pipeline seeds it with InsightFace's 106 points (weights
outside this folder); we seed it with the mediapipe mesh and then, as the official video
tracking does from frame to frame, run it once more from its own 203 points.

A file that is present but is not such a model (truncated, another input size or name, too few
outputs) is a `pipeline.weight_files.checks.WeightsFormatError` naming the file, before anything runs.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from pipeline.faces.mesh import Mesh
from pipeline.weight_files.checks import WeightsFormatError

from .crop import CropRule, FaceLandmarks, face_square, square_matrix, warp

LANDMARK_FILE = "landmark.onnx"
INPUT_NAME = "input"
INPUT_SIZE = 224
N_POINTS = 203
POINTS_OUTPUT = 2  # the official code reads out[2]
RUNNER_RULE = CropRule(scale=1.5, vx_ratio=0.0, vy_ratio=-0.1)
ACCEPTED = (f"LivePortrait's {LANDMARK_FILE} (ONNX; input '{INPUT_NAME}' of shape (1, 3, {INPUT_SIZE}, {INPUT_SIZE}), "
            f"a third output of {N_POINTS * 2} values), from the released pretrained_weights/liveportrait/",)


def _dims(shape: list[Any]) -> list[int | None]:
    return [d if isinstance(d, int) else None for d in shape]


def _session(path: Path):
    import onnxruntime as ort

    if not path.is_file():
        raise WeightsFormatError(path, ACCEPTED, "no such file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - truncated / not ONNX / unsupported graph: a format problem
        raise WeightsFormatError(path, ACCEPTED, f"could not be read as ONNX ({type(exc).__name__}: "
                                 f"{str(exc).splitlines()[0][:200]})") from exc


def check_signature(session, path: Path) -> str:
    """Raise `WeightsFormatError` unless the session has the official input and outputs; return
    a one-line description of what was found."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if len(inputs) != 1 or inputs[0].name != INPUT_NAME:
        raise WeightsFormatError(path, ACCEPTED, f"inputs {[i.name for i in inputs]}, expected one named '{INPUT_NAME}'")
    dims = _dims(inputs[0].shape)
    want = [None, 3, INPUT_SIZE, INPUT_SIZE]
    if len(dims) != 4 or any(d is not None and w is not None and d != w for d, w in zip(dims, want)):
        raise WeightsFormatError(path, ACCEPTED, f"input '{INPUT_NAME}' has shape {inputs[0].shape}, "
                                 f"expected (1, 3, {INPUT_SIZE}, {INPUT_SIZE})")
    if len(outputs) <= POINTS_OUTPUT:
        raise WeightsFormatError(path, ACCEPTED, f"{len(outputs)} outputs, the landmarks are the third")
    out = _dims(outputs[POINTS_OUTPUT].shape)
    known = [d for d in out[1:] if d is not None]
    if len(known) == len(out) - 1 and int(np.prod(known or [0])) != N_POINTS * 2:
        raise WeightsFormatError(path, ACCEPTED, f"third output '{outputs[POINTS_OUTPUT].name}' has shape "
                                 f"{outputs[POINTS_OUTPUT].shape}, expected {N_POINTS * 2} values per image")
    return (f"ONNX input '{INPUT_NAME}' {inputs[0].shape}, {len(outputs)} outputs, landmarks "
            f"'{outputs[POINTS_OUTPUT].name}' {outputs[POINTS_OUTPUT].shape}")


def inspect(path: str | Path) -> str:
    """What `piq models check` reports for a landmark.onnx (CPU only; raises WeightsFormatError)."""
    path = Path(path)
    return check_signature(_session(path), path)


class LandmarkModel:
    """203 landmarks of one face, in image pixels."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.session = _session(self.path)
        check_signature(self.session, self.path)

    def _run(self, image: np.ndarray, seed: FaceLandmarks) -> FaceLandmarks:
        matrix = square_matrix(face_square(seed, RUNNER_RULE), INPUT_SIZE)
        crop = warp(image, matrix, INPUT_SIZE)
        x = (crop.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
        out = self.session.run(None, {INPUT_NAME: x})[POINTS_OUTPUT]
        pts = np.asarray(out, np.float64).reshape(-1)
        if pts.size != N_POINTS * 2:
            raise WeightsFormatError(self.path, ACCEPTED, f"the third output held {pts.size} values, expected "
                                     f"{N_POINTS * 2}")
        local = pts.reshape(N_POINTS, 2) * INPUT_SIZE
        inverse = np.linalg.inv(np.vstack([matrix, [0, 0, 1]]))[:2]
        return FaceLandmarks.from_203(local @ inverse[:, :2].T + inverse[:, 2])

    def detect(self, image: np.ndarray, mesh: Mesh) -> FaceLandmarks:
        """Seeded by the mesh, refined once from its own points (the official tracking step)."""
        return self._run(image, self._run(image, FaceLandmarks.from_mesh(mesh)))
