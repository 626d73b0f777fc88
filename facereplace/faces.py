"""Every face in a photo: MTCNN as ingest uses it (pipeline/faces/detect.py), retried on
rotated copies (tilted heads) and an upscaled copy (small faces), merged, numbered left to
right, each with its pose, eyes-open, smile, gaze and sharpness measured by the project's face
mesh (pipeline/faces/mesh.py) on ingest's crop of that face.

Why the retries: MTCNN's P-net is trained on upright faces of >= 12 px at its pyramid's finest
scale, so a head tilted past ~30 degrees or a face of a few dozen pixels in a 12 MP group photo
is missed; both are what users of open face tools report first.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from pipeline.quiet import native_stderr_filtered

import cv2
import numpy as np

from pipeline.config.ingest import IngestParams
from pipeline.config.replace import ReplaceParams
from pipeline.faces import mesh as fm
from pipeline.faces.crop import crop_matrix, extract_crop, sharpness
from pipeline.faces.detect import Face, FaceDetector, fit_factor, scaled_copy
from pipeline.faces.geometry import square_crop

MTCNN_MIN_FACE = 20  # px: MTCNN's min_face_size (its pyramid starts where such a face fills P-net's 12 px window)
ONET_SIZE = 48  # px: MTCNN's O-net regresses each box and its points on a resample of this side
MESH_SIZE = 512  # the face mesh runs on the face's crop at this size (mediapipe works at 192-256 px inside)


@functools.lru_cache(maxsize=2)
def _detector(min_face_size: int) -> FaceDetector:
    return FaceDetector(min_face_size=min_face_size)


@functools.lru_cache(maxsize=1)
def _mesher() -> fm.FaceMeshDetector:
    return fm.FaceMeshDetector(max_faces=3)


def _rotate(rgb: np.ndarray, deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(rgb rotated by `deg` about its centre on an enlarged canvas, 2x3 matrix back to rgb)."""
    h, w = rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), deg, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(math.ceil(h * sin + w * cos)), int(math.ceil(h * cos + w * sin))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    out = cv2.warpAffine(rgb, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out, cv2.invertAffineTransform(m)


def _map_detection(d: Face, back: np.ndarray) -> Face:
    """A detection of a transformed copy in the original's pixels: landmarks through the
    matrix, the box as the square-ish hull of the mapped box corners shrunk to the box's area
    (a rotated box's hull is larger than the face)."""
    pts = np.c_[d.landmarks, np.ones(5)] @ back.T
    x0, y0, x1, y1 = d.box
    corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], np.float64) @ back.T
    cx, cy = corners.mean(0)
    scale = math.sqrt(abs(np.linalg.det(back[:, :2])))
    hw, hh = (x1 - x0) * scale / 2, (y1 - y0) * scale / 2
    return Face((cx - hw, cy - hh, cx + hw, cy + hh), d.prob, pts)


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


RETRIES = ("auto", "always", "if_none", "never")


def _covers(d: Face, q: tuple[float, float, float], shape: tuple[int, int]) -> bool:
    """Whether detection `d` (photo pixels) is BlazeFace's proposal `q` (fractions of a photo
    of `shape`): the proposal's centre inside the box."""
    h, w = shape
    return d.box[0] <= q[0] * w <= d.box[2] and d.box[1] <= q[1] * h <= d.box[3]


PROPOSAL_ANGLES = (0.0, -45.0, 45.0, -90.0, 90.0)  # BlazeFace looks at copies rotated so (~7 ms each at 192 px)


def rotated_proposals(rgb: np.ndarray) -> list[tuple[float, float, float, float]]:
    """BlazeFace's faces on copies of `rgb` rotated by `PROPOSAL_ANGLES` (a head tilted past
    ~45 degrees is missed upright): (centre x, centre y, longer side, angle that found it), the
    first three as in `proposals`, in `rgb`'s frame; duplicates across angles dropped."""
    h, w = rgb.shape[:2]
    out: list[tuple[float, float, float, float]] = []
    for deg in PROPOSAL_ANGLES:
        img, back = (rgb, np.array([[1.0, 0, 0], [0, 1.0, 0]])) if deg == 0 else _rotate(rgb, deg)
        ih, iw = img.shape[:2]
        for cx, cy, size in proposals(img):
            x, y = back @ np.array([cx * iw, cy * ih, 1.0])
            side = size * max(iw, ih) / max(w, h)
            if all(math.hypot(x / w - q[0], y / h - q[1]) * max(w, h) > 0.5 * q[2] * max(w, h) for q in out):
                out.append((x / w, y / h, side, deg))
    return out


def _rotated_in_regions(small: np.ndarray, to_photo: np.ndarray, missed: list[tuple[float, float, float, float]],
                        p: ReplaceParams) -> list[Face]:
    """MTCNN on the squares around proposals no upright face covers (a tilted head), rotated by
    the angle BlazeFace found each at (upright ones: by `p.detect_rotations`), in the photo's
    pixels."""
    det, out = _detector(MTCNN_MIN_FACE), []
    regions = proposal_regions([q[:3] for q in missed], small.shape[:2], max(p.proposal_pad, 2.0))
    for (x0, y0, x1, y1), q in zip(regions, missed):
        if x1 - x0 < MTCNN_MIN_FACE:
            continue
        region = np.ascontiguousarray(small[y0:y1, x0:x1])
        shift = to_photo @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        for deg in ((q[3],) if q[3] else p.detect_rotations):
            rotated, back = _rotate(region, deg)
            out += [_map_detection(d, shift @ np.vstack([back, [0, 0, 1]])) for d in det.detect(rotated)]
    return out


def detection_factor(shape: tuple[int, int], p: ReplaceParams, replaceable_only: bool = False) -> float:
    """Scale of the copy MTCNN first runs on. Listing every face: at most `detect_max_side`
    (smaller faces come from the upscaled retry). `replaceable_only` (piq replace: a face under
    `min_face_px` is refused anyway): the copy where a `min_face_px` face is MTCNN's smallest
    (`MTCNN_MIN_FACE`), so every replaceable face is found in this one copy and no upscaled copy
    is run (12 MP, min_face_px 64: one 1250 px copy instead of 1024 px + 2048 px; a 1600 px REF:
    500 px instead of 1024 px). Where that copy is smaller than the listing's, `detect_all`
    keeps its boxes only for faces O-net sees at full precision there (`ONET_SIZE`)."""
    listing = fit_factor(shape, p.detect_max_side)
    return min(1.0, MTCNN_MIN_FACE / p.min_face_px) if replaceable_only else listing


def _scaled_copy(rgb: np.ndarray, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """(rgb resized by `factor`, 2x3 matrix back to rgb's pixels)."""
    return scaled_copy(rgb, factor), np.array([[1 / factor, 0, 0], [0, 1 / factor, 0]], np.float64)


def detect_all(rgb: np.ndarray, p: ReplaceParams, retry: str = "always", replaceable_only: bool = False) -> list[Face]:
    """MTCNN on a copy of `detection_factor`, then on rotated copies and on an upscaled copy
    (`retry`: "always"; "auto": the rotated copies only where the first pass finds no face, and
    otherwise only on squares around faces BlazeFace proposes that no upright detection covers;
    "if_none": only when the first pass finds no face, for a reference photo that shows one
    person; "never"); merged by IoU (the most probable of overlapping
    detections wins). `replaceable_only`: only faces of at least `min_face_px` are looked for,
    so the upscaled copy is never needed; where its copy is smaller than the listing's and a
    face there is under `ONET_SIZE` px (or none is found), the pass is redone on the listing's
    copy, so no box is less precise than the listing's."""
    if retry not in RETRIES:
        raise ValueError(f"retry {retry!r}: expected one of {RETRIES}")
    det = _detector(MTCNN_MIN_FACE)
    factor = detection_factor(rgb.shape[:2], p, replaceable_only)
    small, to_photo = _scaled_copy(rgb, factor)
    found = [_map_detection(d, to_photo) for d in det.detect(small)]
    listing = detection_factor(rgb.shape[:2], p)
    sure = [d for d in found if d.prob >= p.min_face_prob]
    if replaceable_only and factor < listing and (not sure or min(d.short_side for d in sure) * factor < ONET_SIZE):
        factor = listing
        small, to_photo = _scaled_copy(rgb, factor)
        found = [_map_detection(d, to_photo) for d in det.detect(small)]
    sure = any(d.prob >= p.min_face_prob for d in found)
    if retry == "never" or (retry == "if_none" and sure):
        return _merge(found, p.min_face_prob)
    if retry == "auto" and sure:
        # rotated copies only where a face may be missed: a face BlazeFace proposes (it takes
        # tilted heads better than MTCNN's upright P-net) that no upright detection covers
        kept = _merge(found, p.min_face_prob)
        missed = [q for q in rotated_proposals(small) if not any(_covers(d, q, rgb.shape[:2]) for d in kept)]
        found += _rotated_in_regions(small, to_photo, missed, p) if p.detect_rotations else []
    else:
        for deg in p.detect_rotations:
            rotated, back = _rotate(small, deg)
            found += [_map_detection(d, to_photo @ np.vstack([back, [0, 0, 1]])) for d in det.detect(rotated)]
    h, w = rgb.shape[:2]
    scale = min(factor * p.detect_upscale, max(1.0, factor))  # never beyond full resolution unless it is small
    if scale > factor and not replaceable_only:
        big = cv2.resize(rgb, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
        up = scale / factor
        # only faces too small for the first pass (< 40 px there): the larger ones it found already
        found += [_map_detection(d, np.array([[1 / scale, 0, 0], [0, 1 / scale, 0]]))
                  for d in det.detect(big) if d.short_side < 40 * up]
    return _merge(found, p.min_face_prob)


PROPOSAL_MIN_SCORE = 0.5  # BlazeFace's score for a proposal (mediapipe's default); MTCNN then decides
PROPOSAL_MIN_FACE = 0.25  # of a proposal's size: the smallest face MTCNN looks for in its square (BlazeFace's
                          # box is within ~30 % of MTCNN's; the finer pyramid levels would cost ~half the time)


@functools.lru_cache(maxsize=1)
def _proposer():
    """mediapipe 0.10.21's bundled BlazeFace, full-range model (faces farther from the camera)."""
    from mediapipe.python.solutions import face_detection

    return face_detection.FaceDetection(model_selection=1, min_detection_confidence=PROPOSAL_MIN_SCORE)


def proposals(rgb: np.ndarray) -> list[tuple[float, float, float]]:
    """BlazeFace's faces as (centre x, centre y, longer side), fractions of the image's width,
    height and longer side. It looks at a 192 px copy: ~5-10 ms at any size, against MTCNN's
    ~0.5 s on a 12 MP photo's 1250 px copy."""
    h, w = rgb.shape[:2]
    with native_stderr_filtered(), fm.ieee_denormals():
        got = _proposer().process(np.ascontiguousarray(rgb))
    boxes = [d.location_data.relative_bounding_box for d in got.detections or []]
    return [(b.xmin + b.width / 2, b.ymin + b.height / 2, max(b.width * w, b.height * h) / max(w, h)) for b in boxes]


def proposal_regions(found: list[tuple[float, float, float]], shape: tuple[int, int],
                     pad: float) -> list[tuple[int, int, int, int]]:
    """Squares (x0, y0, x1, y1) of an image of `shape`, side `pad` x each proposal's longer
    side, centred on it and shifted (not cut) to stay inside the image, so MTCNN's pyramid sees
    the whole face with its surroundings even at the image's edge."""
    h, w = shape
    out = []
    for cx, cy, size in found:
        side = int(min(w, h, round(size * max(w, h) * pad)))
        x0 = int(np.clip(round(cx * w - side / 2), 0, w - side))
        y0 = int(np.clip(round(cy * h - side / 2), 0, h - side))
        out.append((x0, y0, x0 + side, y0 + side))
    return out


def _detect_in_regions(small: np.ndarray, to_photo: np.ndarray, found: list[tuple[float, float, float]],
                       p: ReplaceParams) -> list[Face]:
    """MTCNN on the proposals' squares of `small` (a copy of the photo; `to_photo` its matrix
    back), in the photo's pixels; a detection touching its square's edge inside the image (a
    neighbour's cut face) is dropped."""
    h, w = small.shape[:2]
    det = _detector(MTCNN_MIN_FACE)
    out: list[Face] = []
    for x0, y0, x1, y1 in proposal_regions(found, (h, w), p.proposal_pad):
        if x1 - x0 < MTCNN_MIN_FACE:  # holds no face MTCNN can find (and its pyramid would be empty)
            continue
        back = to_photo @ np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1]], np.float64)
        smallest = PROPOSAL_MIN_FACE * (x1 - x0) / p.proposal_pad
        for d in det.detect(np.ascontiguousarray(small[y0:y1, x0:x1]), smallest):
            bx0, by0, bx1, by1 = d.box
            cut = ((x0 > 0 and bx0 < 2) or (y0 > 0 and by0 < 2) or (x1 < w and bx1 > x1 - x0 - 2)
                   or (y1 < h and by1 > y1 - y0 - 2))
            if not cut:
                out.append(_map_detection(d, back))
    return _merge(out, p.min_face_prob)


def detect_proposed(rgb: np.ndarray, p: ReplaceParams) -> list[Face]:
    """The replaceable faces where BlazeFace proposes them: MTCNN on each proposal's square
    (`proposal_regions`) of the copy `detect_all` uses for replaceable faces
    (`detection_factor`), so every box is MTCNN's at that resolution, looking there for faces
    of at least `PROPOSAL_MIN_FACE` of the proposal's size. It agrees with the whole copy's
    pass within a few % of the face's size (tests/test_photo_cpu_levers.py: < 6 %, 4.7 % at
    most on the test portraits), as MTCNN agrees with itself on the same photo cropped by a few
    pixels (its pyramid's grid moves: up to 5.6 % on the same portraits). As in `detect_all`, where that copy is smaller
    than the listing's and a face there is under O-net's 48 px, the squares are redone on the
    listing's copy. Faces BlazeFace misses (small ones, mostly) are not found:
    `facereplace.target` runs the whole pass when none of these is REF's person."""
    factor = detection_factor(rgb.shape[:2], p, replaceable_only=True)
    small, to_photo = _scaled_copy(rgb, factor)
    found = proposals(small)
    if not found:
        return []
    kept = _detect_in_regions(small, to_photo, found, p)
    listing = detection_factor(rgb.shape[:2], p)
    if factor < listing and any(d.short_side * factor < ONET_SIZE for d in kept):
        kept = _detect_in_regions(*_scaled_copy(rgb, listing), found, p)
    return kept


def _merge(found: list[Face], min_prob: float) -> list[Face]:
    kept: list[Face] = []
    for d in sorted((d for d in found if d.prob >= min_prob), key=lambda d: -d.prob):
        if all(_iou(d.box, k.box) < 0.3 for k in kept):
            kept.append(d)
    return kept


def measure(rgb: np.ndarray, d: Face, index: int, ingest: IngestParams) -> Face:
    """The face mesh's measures of one detection, run on its crop (the one face near the
    crop's centre), points mapped back to the photo."""
    crop = square_crop(d.box, ingest.box_scale)
    patch = extract_crop(rgb, crop, MESH_SIZE, ingest.pad_mode)
    meshes = _mesher().detect(patch)
    centre = np.array([MESH_SIZE / 2, MESH_SIZE / 2])
    meshes = [m for m in meshes if np.linalg.norm(m.xy[:468].mean(0) - centre) < MESH_SIZE / 4]
    face = Face(tuple(float(v) for v in d.box), float(d.prob), np.asarray(d.landmarks, np.float64), index=index,
                sharpness=sharpness(rgb, d.box))
    if not meshes:
        return face
    m = min(meshes, key=lambda m: np.linalg.norm(m.xy[:468].mean(0) - centre))
    back = cv2.invertAffineTransform(crop_matrix(crop, MESH_SIZE))
    pts = m.points.copy()
    pts[:, :2] = np.c_[m.xy, np.ones(len(pts))] @ back.T
    pts[:, 2] *= crop.size / MESH_SIZE
    mesh = fm.Mesh(pts, rgb.shape[1], rgb.shape[0])
    yaw, pitch, roll = fm.head_pose(mesh)
    ex = fm.expression(mesh)
    return dataclasses.replace(face, mesh=mesh, yaw=yaw, pitch=pitch, roll=roll,
                               eyes_open=ex.eyes_open, smile=ex.smile,
                               gaze=fm.gaze(mesh))


def landmarks_plausible(face: Face) -> bool:
    """MTCNN's five points arranged as a face's, in the frame of its eye line: both eyes above
    the nose, the nose above the mouth corners and between the eyes, the eyes 0.2-0.8 of the
    box's width apart, the mouth corners on the eyes' order (a texture's points rarely are)."""
    le, re_, nose, lm, rm = np.asarray(face.landmarks, np.float64)
    eye = re_ - le
    dist = float(np.hypot(*eye))
    width = face.box[2] - face.box[0]
    if not 0.2 * width <= dist <= 0.8 * width:
        return False
    ux = eye / dist
    uy = np.array([-ux[1], ux[0]])  # down the face
    mid = (le + re_) / 2
    down = lambda q: float((q - mid) @ uy)  # noqa: E731
    across = lambda q: float((q - mid) @ ux)  # noqa: E731
    return (0.1 * dist < down(nose) < down((lm + rm) / 2) < 1.6 * dist and abs(across(nose)) < 0.6 * dist
            and across(lm) < across(rm))


def mesh_agrees(face: Face) -> bool:
    """The second, independent check: mediapipe's face mesh (its own detector and landmark
    model) finds a face on this candidate's crop, centred inside the candidate's box and of its
    size (half to twice its side)."""
    if face.mesh is None:
        return False
    x0, y0, x1, y1 = face.mesh.box
    bx0, by0, bx1, by1 = face.box
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    ratio = max(x1 - x0, y1 - y0) / max(bx1 - bx0, by1 - by0, 1e-6)
    return bx0 <= cx <= bx1 and by0 <= cy <= by1 and 0.5 <= ratio <= 2.0


def is_face(face: Face, p: ReplaceParams) -> bool:
    """A candidate box is a face when a second, independent check agrees (issue 24: a tattoo
    scored 0.994 by MTCNN, a car-seat texture 0.972): the face mesh finds it, or, where the mesh
    cannot take it (a head turned far, a small face), MTCNN is surer than
    `replace.unverified_min_prob` and its five points are arranged as a face's."""
    return mesh_agrees(face) or (face.prob >= p.unverified_min_prob and landmarks_plausible(face))


UNMEASURED = dict(mesh=None, yaw=None, pitch=None, roll=None, eyes_open=None, smile=None, gaze=None)


def find_faces(image: np.ndarray, params: ReplaceParams | None = None, ingest: IngestParams | None = None,
               retry: str = "auto", replaceable_only: bool = False, measured: bool = True,
               proposed: bool = False) -> list[Face]:
    """Every face of an RGB uint8 photo, numbered left to right (box centre x). `retry` and
    `replaceable_only`: see `detect_all`; `proposed`: only the replaceable faces BlazeFace
    proposes (`detect_proposed`; `retry` and `replaceable_only` then do not apply). Each
    candidate is checked by the face mesh (`is_face`, `replace.verify_faces`) before it is
    numbered. `measured=False` returns no face-mesh measures (pose, eyes, smile, gaze: what
    `piq faces` and best-take read, not what replacing needs)."""
    p, ing = params or ReplaceParams(), ingest or IngestParams()
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an RGB uint8 image, got shape {image.shape} dtype {image.dtype}")
    if min(image.shape[:2]) < MTCNN_MIN_FACE:  # too small or thin to hold a face the detector can see
        return []
    found = detect_proposed(image, p) if proposed else detect_all(image, p, retry, replaceable_only)
    dets = sorted(found, key=lambda d: (d.box[0] + d.box[2]) / 2)
    if p.verify_faces or measured:
        faces = [measure(image, d, i, ing) for i, d in enumerate(dets)]
    else:
        faces = [Face(tuple(float(v) for v in d.box), float(d.prob), np.asarray(d.landmarks, np.float64), index=i,
                      sharpness=sharpness(image, d.box)) for i, d in enumerate(dets)]
    if p.verify_faces:
        faces = [f for f in faces if is_face(f, p)]
    return [dataclasses.replace(f, index=i, **({} if measured else UNMEASURED)) for i, f in enumerate(faces)]


def draw_faces(image: np.ndarray, faces: list[Face]) -> np.ndarray:
    """A preview: each face's box, landmarks and number."""
    out = image.copy()
    thick = max(2, round(max(image.shape[:2]) / 400))
    for f in faces:
        x0, y0, x1, y1 = (int(round(v)) for v in f.box)
        cv2.rectangle(out, (x0, y0), (x1, y1), (255, 215, 0), thick)
        for x, y in f.landmarks:
            cv2.circle(out, (int(round(x)), int(round(y))), thick + 1, (0, 255, 128), -1)
        label = str(f.index)
        scale = max(0.6, (x1 - x0) / 120)
        cv2.putText(out, label, (x0, max(0, y0 - 4 * thick)), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 215, 0), thick, cv2.LINE_AA)
    return out
