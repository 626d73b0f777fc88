"""The real-photo corpus (tests/corpus/: photos of real people no code of ours made, source and
licence in its README, truths in photos.csv) and every file variant a camera, phone or editor
writes, generated from it here, in the tests, never committed.

`write_variant(rgb, kind, path)` writes one variant of an RGB photo; `SHOWN_VARIANTS` are those
the tool must read as shown (their expected pixels: `shown(rgb, kind)`), `BAD_VARIANTS` those it
must refuse with one line naming the file (exit 2). `group_photo()` composes a group photo from
the corpus (the corpus has no group photo of its own: the faces are real, the arrangement is
ours) with the true face boxes.
"""
from __future__ import annotations

import csv
import dataclasses
import functools
import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

CORPUS = Path(__file__).resolve().parent / "corpus"


@dataclasses.dataclass(frozen=True)
class CorpusPhoto:
    """One row of photos.csv."""

    file: str
    person: str
    faces: int
    optional_faces: int
    expression: str
    pose: str

    @property
    def path(self) -> Path:
        return CORPUS / self.file


@functools.lru_cache(maxsize=1)
def corpus() -> tuple[CorpusPhoto, ...]:
    with open(CORPUS / "photos.csv", newline="") as fh:
        return tuple(CorpusPhoto(r["file"], r["person"], int(r["faces"]), int(r["optional_faces"]), r["expression"],
                                 r["pose"]) for r in csv.DictReader(fh))


@functools.lru_cache(maxsize=8)
def _rgb(name: str) -> np.ndarray:
    return np.asarray(Image.open(CORPUS / name).convert("RGB"))


def corpus_rgb(name: str) -> np.ndarray:
    """A corpus photo as shown, RGB uint8 (a copy: callers may write into it)."""
    return _rgb(name).copy()


# --- variants --------------------------------------------------------------------------------

# EXIF orientation o: the stored pixels are the shown ones put through the inverse of o's transform
_TO_STORED = {1: lambda a: a, 2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
              5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a[:, ::-1], 0, 1),
              7: lambda a: np.swapaxes(a[::-1, ::-1], 0, 1), 8: lambda a: np.swapaxes(a[::-1], 0, 1)}


def _exif(orientation: int) -> bytes:
    ex = Image.Exif()
    ex[0x0112] = orientation
    ex[0x010F] = "PiQ test camera"  # Make
    return ex.tobytes()


def _gray(rgb: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).convert("L"))


def _ycck_jpeg(rgb: np.ndarray, path: Path) -> None:
    """A YCCK JPEG (Adobe APP14 transform 2, as Photoshop writes CMYK): Pillow writes CMYK
    with transform 0; its stored channels are set to Y, Cb, Cr of the inverted CMY and K,
    then the APP14 transform byte is set to 2."""
    cmyk = np.asarray(Image.fromarray(rgb).convert("CMYK")).astype(np.float64)
    c, m, y, k = (cmyk[..., i] for i in range(4))
    # libjpeg: YCCK -> C' M' Y' = 255 - RGB(Y, Cb, Cr), K' = K; Pillow reads Adobe CMYK inverted:
    # C = 255 - C' = R(Y, Cb, Cr), K = 255 - K'
    yy = 0.299 * c + 0.587 * m + 0.114 * y
    cb = -0.168736 * c - 0.331264 * m + 0.5 * y + 128
    cr = 0.5 * c - 0.418688 * m - 0.081312 * y + 128
    stored = np.clip(np.rint(np.dstack([yy, cb, cr, 255 - k])), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(255 - stored, "CMYK").save(buf, "JPEG", quality=95)  # Pillow inverts CMYK on writing
    data = bytearray(buf.getvalue())
    at = data.find(b"\xff\xee")
    assert at > 0 and data[at + 4 : at + 9] == b"Adobe", "Pillow wrote no Adobe APP14 segment"
    data[at + 15] = 2  # transform: YCCK
    path.write_bytes(bytes(data))


def _png_header_only(path: Path, w: int, h: int) -> None:
    """A PNG whose header says w x h (its data: one row of it): the tool's pixel cap must refuse
    it from the header, without decoding (a real one would be a decompression bomb)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * (3 * w + 1)))
                     + chunk(b"IEND", b""))


def _jpeg_with_size(rgb: np.ndarray, path: Path, w: int, h: int) -> None:
    """A JPEG whose SOF header says w x h (a bomb's header over a small image's data)."""
    buf = io.BytesIO()
    Image.fromarray(rgb[:64, :64]).save(buf, "JPEG", quality=80)
    data = bytearray(buf.getvalue())
    at = data.find(b"\xff\xc0")
    data[at + 5 : at + 9] = struct.pack(">HH", h, w)
    path.write_bytes(bytes(data))


def _save(rgb: np.ndarray, path: Path, **kw) -> None:
    Image.fromarray(rgb).save(path, "JPEG", **{"quality": 92, **kw})


def _mpo(rgb: np.ndarray, path: Path) -> None:
    """A multi-picture JPEG (MPO: cameras' and phones' JPEG with a second, smaller image)."""
    im = Image.fromarray(rgb)
    im.save(path, "MPO", save_all=True, append_images=[im.resize((im.width // 4, im.height // 4))], quality=92)


def _png16(rgb: np.ndarray, path: Path) -> None:
    deep = rgb.astype(np.uint16) * 257 + np.random.default_rng(0).integers(0, 200, rgb.shape, dtype=np.uint16)
    cv2.imwrite(str(path), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))


def _cmyk(rgb: np.ndarray, path: Path) -> None:
    Image.fromarray(rgb).convert("CMYK").save(path, "JPEG", quality=95)


WRITERS = {
    # read as shown
    "baseline": lambda rgb, p: _save(rgb, p),
    "grayscale": lambda rgb, p: Image.fromarray(_gray(rgb)).save(p, "JPEG", quality=92),
    "cmyk": _cmyk,
    "ycck": _ycck_jpeg,
    "progressive": lambda rgb, p: _save(rgb, p, progressive=True),
    "sub420": lambda rgb, p: _save(rgb, p, subsampling=2),
    "sub422": lambda rgb, p: _save(rgb, p, subsampling=1),
    "sub444": lambda rgb, p: _save(rgb, p, subsampling=0),
    "mpo": _mpo,
    **{f"orient{o}": (lambda o: lambda rgb, p: _save(np.ascontiguousarray(_TO_STORED[o](rgb)), p, exif=_exif(o)))(o)
       for o in range(1, 9)},
    "png_orient6": lambda rgb, p: Image.fromarray(np.ascontiguousarray(_TO_STORED[6](rgb))).save(p, "PNG", exif=_exif(6)),
    "png_rgb": lambda rgb, p: Image.fromarray(rgb).save(p, "PNG"),
    "png16": _png16,
    "png16_gray": lambda rgb, p: cv2.imwrite(str(p), _gray(rgb).astype(np.uint16) * 257),
    "png_gray": lambda rgb, p: Image.fromarray(_gray(rgb)).save(p, "PNG"),
    "png_gray_alpha": lambda rgb, p: Image.fromarray(_gray(rgb)).convert("LA").save(p, "PNG"),
    "png_palette": lambda rgb, p: Image.fromarray(rgb).quantize(256).save(p, "PNG"),
    "png_alpha": lambda rgb, p: Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)])).save(p, "PNG"),
    # refused, one line naming the file
    "truncated": lambda rgb, p: (_save(rgb, p), p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
    "png_truncated": lambda rgb, p: (Image.fromarray(rgb).save(p, "PNG"), p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])),
    "empty": lambda rgb, p: p.write_bytes(b""),
    "text": lambda rgb, p: p.write_text("this is not a photo\n"),
    "huge_png": lambda rgb, p: _png_header_only(p, 20000, 20000),
    "over_cap_png": lambda rgb, p: _png_header_only(p, 11000, 11000),
    "huge_jpeg": lambda rgb, p: _jpeg_with_size(rgb, p, 30000, 30000),
    "webp": lambda rgb, p: Image.fromarray(rgb).save(p, "WEBP", quality=90),
    "tiff": lambda rgb, p: Image.fromarray(rgb).save(p, "TIFF"),
    "gif": lambda rgb, p: Image.fromarray(rgb).save(p, "GIF"),
}

SUFFIX = {k: ".png" for k in WRITERS if k.startswith("png") or k in ("huge_png", "over_cap_png")} | {
    "webp": ".webp", "tiff": ".tif", "gif": ".gif"}

SHOWN_VARIANTS = ("baseline", "grayscale", "cmyk", "ycck", "progressive", "sub420", "sub422", "sub444", "mpo",
                  *(f"orient{o}" for o in range(1, 9)), "png_orient6", "png_rgb", "png16", "png16_gray", "png_gray",
                  "png_gray_alpha", "png_palette", "png_alpha")
GRAY_VARIANTS = ("grayscale", "png16_gray", "png_gray", "png_gray_alpha")
# variant -> the error code the tool must give
BAD_VARIANTS = {"truncated": "unreadable_image", "png_truncated": "unreadable_image", "empty": "unreadable_image",
                "text": "unreadable_image", "huge_png": "too_many_pixels", "over_cap_png": "too_many_pixels",
                "huge_jpeg": "too_many_pixels", "webp": "unsupported_format", "tiff": "unsupported_format",
                "gif": "unsupported_format"}


def write_variant(rgb: np.ndarray, kind: str, folder: Path, stem: str = "photo") -> Path:
    """`rgb` written as variant `kind` into `folder`; returns its path (suffix by kind: the
    tool keeps the input's format, so a PNG variant is named .png)."""
    path = Path(folder) / f"{stem}_{kind}{SUFFIX.get(kind, '.jpg')}"
    WRITERS[kind](rgb, path)
    return path


def shown(rgb: np.ndarray, kind: str) -> np.ndarray:
    """What a reader must show of variant `kind` of `rgb` (grey variants: the grey in RGB)."""
    if kind in GRAY_VARIANTS:
        return np.repeat(_gray(rgb)[..., None], 3, axis=2)
    return rgb


# --- sizes the detector cannot hold ------------------------------------------------------------

def tiny_and_thin(folder: Path) -> dict[str, Path]:
    """Images too small or too thin to hold a face: 1x1, 16x16, 300x1, 1280x18 (PNG and JPEG)."""
    rng = np.random.default_rng(1)
    out = {}
    for w, h, fmt in ((1, 1, "PNG"), (16, 16, "JPEG"), (300, 1, "PNG"), (1280, 18, "JPEG"), (29, 29, "PNG"),
                      (18, 1280, "PNG")):
        path = Path(folder) / f"size_{w}x{h}.{'png' if fmt == 'PNG' else 'jpg'}"
        Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(path, fmt)
        out[f"{w}x{h}"] = path
    return out


# --- a group photo composed from the corpus ----------------------------------------------------

GROUP_TILES = ("obama_portrait.jpg", "biden_portrait.jpg", "astronaut", "hopper")


def _tile_source(name: str) -> np.ndarray:
    if name == "astronaut":
        from skimage import data

        return data.astronaut()
    if name == "hopper":
        from matplotlib import cbook

        return np.asarray(Image.open(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)).convert("RGB"))
    return _rgb(name)


# each tile's horizontal centre in its source (fraction of the width): the face's
_TILE_CENTRE = {"obama_portrait.jpg": 0.5, "biden_portrait.jpg": 0.5, "astronaut": 0.45, "hopper": 0.5}


@functools.lru_cache(maxsize=4)
def _group(width: int) -> np.ndarray:
    tile = width // len(GROUP_TILES)
    height = round(width * 886 / 1280)
    canvas = np.full((height, width, 3), 96, np.uint8)
    for i, name in enumerate(GROUP_TILES):
        src = _tile_source(name)
        sh, sw = src.shape[:2]
        cw, ch = min(sw, round(sh * tile / height)), min(sh, round(sw * height / tile))  # the tile's aspect
        x0 = int(np.clip(round(sw * _TILE_CENTRE[name] - cw / 2), 0, sw - cw))
        strip = cv2.resize(src[:ch, x0 : x0 + cw], (tile, height), interpolation=cv2.INTER_AREA)
        canvas[:, i * tile : (i + 1) * tile] = strip
    return canvas


def group_photo(width: int = 1280) -> np.ndarray:
    """A group photo composed from the corpus (and the two portraits pip packages ship): four
    people side by side, left to right `GROUP_TILES` (obama, biden, the astronaut, Grace
    Hopper), 1280 x 886 by default (1.1 MP); `width` 4200 gives a 12 MP photo."""
    return _group(width).copy()


# --- the commands as a user runs them ----------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Run:
    """One `piq` command run in a fresh process."""

    rc: int
    out: str
    err: str
    seconds: float

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


def piq_command() -> list[str]:
    """The `piq` a user runs: the console script beside this interpreter, else the module."""
    import shutil
    import sys

    script = Path(sys.executable).with_name("piq")
    if script.exists():
        return [str(script)]
    found = shutil.which("piq")
    return [found] if found else [sys.executable, "-m", "pipeline.commands.piq"]


def run_piq(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 600) -> Run:
    """`piq ARGS...` in a fresh process (cwd: the repository, where params.yaml is)."""
    import os
    import subprocess
    import time

    t = time.perf_counter()
    got = subprocess.run([*piq_command(), *map(str, args)], cwd=cwd or CORPUS.parents[1], capture_output=True,
                         text=True, timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL)
    return Run(got.returncode, got.stdout, got.stderr, time.perf_counter() - t)


def group_with_small_face() -> np.ndarray:
    """`group_photo()` with a small face (the astronaut's, ~45 px) at its far left, above Obama's
    shoulder: `piq faces` lists it as face 0 (too small to replace: under replace.min_face_px),
    so Obama is face 1; a search that skips faces too small to replace would call him face 0."""
    from skimage import data

    g = group_photo()
    small = cv2.resize(data.astronaut()[20:300, 100:380], (88, 88), interpolation=cv2.INTER_AREA)
    g[60:148, 8:96] = small
    return g


# --- a burst made from the corpus with the project's animator ---------------------------------

# shot -> person (GROUP_TILES order) -> the animator's controls; obama's head is turned in every
# shot (the animator's yaw 40, a landmark-driven warp: the mesh measures ~25 degrees of it)
TURNED = dict(yaw=40.0)
BURST_SHOTS = (
    {0: dict(TURNED, blink_r=1.0, blink_l=1.0), 1: {}, 2: dict(smile=0.5)},
    {0: dict(TURNED), 1: dict(blink_r=1.0, blink_l=1.0), 2: {}},
    {0: dict(TURNED), 1: dict(smile=0.4), 2: dict(blink_r=1.0, blink_l=1.0)},
)


@functools.lru_cache(maxsize=1)
def _burst() -> tuple[np.ndarray, ...]:
    from pipeline.backends.animators import motion as mo
    from pipeline.backends.animators.mesh_animator import MeshAnimator

    animator = MeshAnimator()
    g = group_photo()
    tile = g.shape[1] // len(GROUP_TILES)
    strips = [np.ascontiguousarray(g[:, i * tile : (i + 1) * tile]) for i in range(len(GROUP_TILES))]
    meshes = [animator.mesh(s, name) for s, name in zip(strips, GROUP_TILES)]
    shots = []
    for k, plan in enumerate(BURST_SHOTS):
        shot = g.copy()
        for i, controls in plan.items():
            c = mo.Controls(**controls)
            img = animator.apply(strips[i], meshes[i], mo.program_motion(meshes[i], c)).image
            shot[:, i * tile : (i + 1) * tile] = img
        shots.append(np.roll(shot, (k * 2 - 2, k * 3 - 3), axis=(0, 1)))  # the hand-held camera drifts
    return tuple(shots)


def blink_burst() -> list[np.ndarray]:
    """Three shots of the corpus group photo, each with one person blinking (the project's
    offline animator, as the demo burst is made): shot 0 Obama, his head turned (in every shot),
    shot 1 Biden, shot 2 the astronaut; Grace Hopper keeps still."""
    return [s.copy() for s in _burst()]
