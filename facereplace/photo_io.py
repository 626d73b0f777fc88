"""Reading and writing the user's photos without losing what they carry.

Read: the photo as shown (EXIF orientation applied), 8-bit RGB for the face code, plus what is
needed to write it back the same: format, the full-depth pixels of a 16-bit PNG, the alpha
channel, the ICC profile, EXIF (orientation then normalised to 1) and PNG text chunks. CMYK
JPEGs are converted to RGB (through their ICC profile when they have one) with a warning.
A file over `max_pixels` is refused before it is decoded (decompression bombs).

Write: same format and size; JPEG at the quality from params; PNG keeps alpha and 16 bits;
the XMP packet (provenance) is embedded; the write goes to a temporary file in the target's
folder that replaces the target only when complete (a failure leaves no partial file).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import re
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from pipeline.rejection import Reject

FORMATS = ("JPEG", "PNG")
ORIENTATION = 0x0112


@dataclasses.dataclass
class Photo:
    """A decoded photo and what writing it back needs."""

    path: Path
    rgb: np.ndarray                       # (H, W, 3) uint8, as shown
    format: str                           # JPEG | PNG
    sha256: str                           # of the file's bytes
    deep: np.ndarray | None = None        # (H, W, 3) uint16 for 16-bit PNGs
    alpha: np.ndarray | None = None       # (H, W) uint8 / uint16 alpha channel
    icc_profile: bytes | None = None
    exif: bytes | None = None             # orientation normalised to 1
    text: dict[str, str] = dataclasses.field(default_factory=dict)   # PNG tEXt / iTXt (not XMP)
    xmp: bytes | None = None              # the input's XMP packet (the output's provenance joins it)
    gray: bool = False                    # a black-and-white file (JPEG L, PNG grey): written back grey
    warnings: list[str] = dataclasses.field(default_factory=list)

    @property
    def size(self) -> tuple[int, int]:
        return self.rgb.shape[1], self.rgb.shape[0]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _orient(array: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1..8 to an (H, W[, C]) array, as PIL's exif_transpose does."""
    ops = {2: lambda a: a[:, ::-1], 3: lambda a: a[::-1, ::-1], 4: lambda a: a[::-1],
           5: lambda a: np.swapaxes(a, 0, 1), 6: lambda a: np.swapaxes(a, 0, 1)[:, ::-1],
           7: lambda a: np.swapaxes(a, 0, 1)[::-1, ::-1], 8: lambda a: np.swapaxes(a, 0, 1)[::-1]}
    return np.ascontiguousarray(ops[orientation](array)) if orientation in ops else array


# What a file's first bytes say it is, for formats the tool does not read (a one-line refusal
# that names the kind, not Pillow's "cannot identify image file <_io.BytesIO object at 0x...>")
SIGNATURES: tuple[tuple[int, bytes, str], ...] = (
    (0, b"GIF87a", "a GIF"), (0, b"GIF89a", "a GIF"), (0, b"BM", "a BMP"), (0, b"II*\x00", "a TIFF (or camera raw)"),
    (0, b"MM\x00*", "a TIFF (or camera raw)"), (0, b"8BPS", "a Photoshop PSD"), (0, b"%PDF", "a PDF"),
    (0, b"\x00\x00\x00\x0cjP  ", "a JPEG 2000"), (0, b"\xff\x4f\xff\x51", "a JPEG 2000"),
    (0, b"\xff\x0a", "a JPEG XL"), (0, b"\x00\x00\x00\x0cJXL ", "a JPEG XL"), (0, b"FUJIFILMCCD-RAW", "a camera raw (RAF)"),
)
FTYP_BRANDS = {b"heic": "a HEIC", b"heix": "a HEIC", b"hevc": "a HEIC", b"heim": "a HEIC", b"heis": "a HEIC",
               b"mif1": "a HEIF", b"msf1": "a HEIF", b"avif": "an AVIF", b"avis": "an AVIF", b"crx ": "a camera raw (CR3)"}


def sniff(data: bytes) -> str | None:
    """"JPEG" or "PNG" from a file's signature, else what it looks like ("a HEIC", "a WebP",
    ...), else None (no image signature the tool knows)."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "a WebP"
    if data[4:8] == b"ftyp":
        return FTYP_BRANDS.get(data[8:12], "an ISO media file (HEIF, AVIF or video)")
    for at, sig, name in SIGNATURES:
        if data[at : at + len(sig)] == sig:
            return name
    return None


def clean_message(err: BaseException) -> str:
    """A library's error text for one line: no Python object reprs (`<_io.BytesIO object at
    0x...>`), no line breaks."""
    text = re.sub(r"<[^<>]* object at 0x[0-9a-fA-F]+>", "the file", str(err) or type(err).__name__)
    return " ".join(text.split())


@contextlib.contextmanager
def _own_pixel_cap():
    """Pillow's decompression-bomb check off: the tool applies its own cap (`max_pixels`) from
    the header, before decoding, with its own message."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def photo_format(path: str | Path) -> str | None:
    """The format named by the file's signature ("JPEG", "PNG") without decoding it (`piq
    replace` checks the output's suffix before any work), or None where it is neither
    (`read_photo` then names what is wrong)."""
    try:
        with open(path, "rb") as fh:
            kind = sniff(fh.read(32))
    except OSError:
        return None
    return kind if kind in FORMATS else None


def _header(path: Path, data: bytes, max_pixels: int) -> Image.Image:
    """The file opened by Pillow (its header read, nothing decoded), checked: a JPEG or PNG
    (an MPO, the multi-picture JPEG of cameras and phones, is its first picture, a JPEG)
    within `max_pixels`."""
    if not data:
        raise Reject("unreadable_image", f"{path} is empty (0 bytes)")
    kind = sniff(data)
    if kind is None:
        raise Reject("unreadable_image", f"{path} is not an image: its first bytes are no JPEG or PNG signature")
    if kind not in FORMATS:
        raise Reject("unsupported_format", f"{path} is {kind} image; the tool reads and writes JPEG and PNG "
                                           f"(convert it to one of them first)")
    with _own_pixel_cap():
        try:
            im = Image.open(io.BytesIO(data))
            w, h = im.size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, struct.error) as err:
            raise Reject("unreadable_image", f"{path} is a damaged {kind} ({clean_message(err)})") from err
    if w * h > max_pixels:
        raise Reject("too_many_pixels", f"{path} is {w}x{h} = {w * h / 1e6:.0f} MP, over the tool's limit of "
                                        f"{max_pixels / 1e6:.0f} MP (replace.max_pixels {max_pixels}); "
                                        f"it is not decoded")
    if w < 1 or h < 1:
        raise Reject("unreadable_image", f"{path} is a damaged {kind} (its header says {w}x{h} pixels)")
    return im


def read_photo(path: str | Path, max_pixels: int = 100_000_000) -> Photo:
    """The photo at `path`; `Reject` for a missing, empty, unreadable, truncated,
    unsupported or too large file, one line naming the file (the size is checked from the
    header, before anything is decoded)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise Reject("unreadable_image", f"{path}: {err.strerror or clean_message(err)}") from err
    im = _header(path, data, max_pixels)
    fmt = "JPEG" if im.format == "MPO" else im.format
    xmp = im.info.get("xmp") or im.info.get("XML:com.adobe.xmp")
    photo = Photo(path, np.zeros((0, 0, 3), np.uint8), fmt, _sha256(data), icc_profile=im.info.get("icc_profile"),
                  xmp=xmp.encode("utf-8") if isinstance(xmp, str) else xmp)
    with _own_pixel_cap():
        try:
            exif = im.getexif()
            orientation = int(exif.get(ORIENTATION, 1) or 1)
            if exif:
                exif[ORIENTATION] = 1
                photo.exif = exif.tobytes()
        except Exception as err:  # noqa: BLE001 - a damaged EXIF block is dropped, not fatal
            orientation, photo.exif = 1, None
            photo.warnings.append(f"{path}: its EXIF block is damaged ({clean_message(err)}) and is not kept")
        try:
            if fmt == "PNG":
                _decode_png(photo, data, im, orientation)
            else:
                _decode_jpeg(photo, data, im, orientation)
        except (OSError, SyntaxError, ValueError, struct.error, cv2.error) as err:
            raise Reject("unreadable_image", f"{path} is damaged or truncated ({clean_message(err)})") from err
    if not photo.rgb.flags.writeable:  # the face is pasted into these pixels in place
        photo.rgb = photo.rgb.copy()
    return photo


def jpeg_complete(data: bytes) -> bool:
    """Whether a JPEG stream reaches its end-of-image marker after its first scan: the marker
    segments are walked by their lengths (an EXIF thumbnail's own markers stay inside its
    APP1 segment), then FF D9 is looked for in what follows (in entropy-coded data an FF byte
    is always followed by 00 or a restart marker, so FF D9 there is the end)."""
    at = 2 if data[:2] == b"\xff\xd8" else -1
    while 0 <= at < len(data) - 3:
        if data[at] != 0xFF:
            return False
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
        elif marker == 0xDA:  # start of scan: the entropy-coded data and any later scans follow
            return data.find(b"\xff\xd9", at + 2) >= 0
        elif 0xD0 <= marker <= 0xD7 or marker == 0x01:  # no length field
            at += 2
        else:
            at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return False


def _decode_jpeg(photo: Photo, data: bytes, im: Image.Image, orientation: int) -> None:
    if im.mode == "RGB":
        # OpenCV's libjpeg-turbo gives PIL's pixels (tests/test_photo_cpu_levers.py) without
        # PIL's conversion to an array (~0.09 s of 0.14 at 12 MP); unlike PIL it decodes a
        # truncated file without a word, hence the completeness check first
        if not jpeg_complete(data):
            raise OSError("image file is truncated (no end-of-image marker)")
        rgb = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR_RGB | cv2.IMREAD_IGNORE_ORIENTATION)
        if rgb is None or rgb.shape[:2] != (im.size[1], im.size[0]):
            raise OSError("OpenCV could not decode it")
        photo.rgb = _orient(rgb, orientation)
        return
    im.load()  # a truncated file raises here (PIL does not load truncated images by default)
    if im.mode == "CMYK":
        msg = f"{photo.path}: CMYK JPEG converted to RGB"
        if photo.icc_profile:
            try:
                src = ImageCms.ImageCmsProfile(io.BytesIO(photo.icc_profile))
                srgb = ImageCms.createProfile("sRGB")
                im = ImageCms.profileToProfile(im, src, srgb, outputMode="RGB")
                photo.icc_profile = ImageCms.ImageCmsProfile(srgb).tobytes()
                msg += " through its ICC profile; the output carries an sRGB profile"
            except (ImageCms.PyCMSError, OSError):
                im, photo.icc_profile = im.convert("RGB"), None
                msg += " (its ICC profile was unusable and is dropped)"
        else:
            im = im.convert("RGB")
        photo.warnings.append(msg)
    elif im.mode != "RGB":
        photo.gray = im.mode in ("L", "1", "I;16", "I")
        im = im.convert("RGB")
    photo.rgb = _orient(np.array(im), orientation)


def _decode_png(photo: Photo, data: bytes, im: Image.Image, orientation: int) -> None:
    im.load()
    photo.text = {k: v for k, v in im.info.items() if isinstance(v, str) and k != "XML:com.adobe.xmp"}
    raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError("OpenCV could not decode it")
    if raw.ndim == 2:
        raw = raw[..., None]
    channels = raw.shape[2]
    photo.gray = channels in (1, 2) or im.mode in ("L", "LA", "I;16", "I", "1")
    colour = raw[..., :3] if channels >= 3 else np.repeat(raw[..., :1], 3, axis=2)
    colour = cv2.cvtColor(np.ascontiguousarray(colour), cv2.COLOR_BGR2RGB) if channels >= 3 else colour
    if channels in (2, 4):
        photo.alpha = _orient(np.ascontiguousarray(raw[..., -1]), orientation)
    colour = _orient(colour, orientation)
    if colour.dtype == np.uint16:
        photo.deep = colour
        photo.rgb = ((colour.astype(np.uint32) + 128) // 257).astype(np.uint8)
    else:
        photo.rgb = np.ascontiguousarray(colour.astype(np.uint8))


# --- writing ---------------------------------------------------------------------------------

def _deepen(photo: Photo, rgb: np.ndarray) -> np.ndarray:
    """16-bit pixels of an edited 8-bit image: the original's where nothing changed, the edit
    (x 257) added to the original's fine levels where it did."""
    delta = rgb.astype(np.int32) - photo.rgb.astype(np.int32)
    return np.clip(photo.deep.astype(np.int32) + delta * 257, 0, 65535).astype(np.uint16)


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def _png_bytes(photo: Photo, rgb: np.ndarray, xmp: bytes | None) -> bytes:
    """PNG of `rgb` (16 bits and alpha as the input had them) with the input's ICC profile,
    EXIF and text chunks and the XMP packet, inserted before the image data."""
    colour = _deepen(photo, rgb) if photo.deep is not None else rgb
    bgr = cv2.cvtColor(colour, cv2.COLOR_RGB2BGR)
    if photo.gray and photo.alpha is None:  # grey stays grey (OpenCV writes no grey + alpha: that one is RGBA)
        bgr = np.rint(colour.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(colour.dtype)
    if photo.alpha is not None:
        alpha = photo.alpha
        if alpha.dtype != bgr.dtype:
            alpha = (alpha.astype(np.uint32) * 257).astype(np.uint16) if bgr.dtype == np.uint16 else (alpha // 257).astype(np.uint8)
        bgr = np.dstack([bgr, alpha])
    ok, enc = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    if not ok:
        raise Reject("encode_failed", f"PNG encoding failed for {photo.path}")
    png = enc.tobytes()
    extra = b""
    if photo.icc_profile:
        extra += _png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(photo.icc_profile))
    if photo.exif:
        extra += _png_chunk(b"eXIf", photo.exif[6:] if photo.exif.startswith(b"Exif\x00\x00") else photo.exif)
    for key, value in photo.text.items():
        if key.isascii() and 0 < len(key) < 80 and key not in ("icc_profile", "exif", "dpi", "gamma"):
            extra += _png_chunk(b"iTXt", key.encode() + b"\x00\x00\x00\x00\x00" + value.encode("utf-8"))
    if xmp:
        extra += _png_chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + xmp)
    at = png.index(b"IDAT") - 4  # chunk length field of the first IDAT
    return png[:at] + extra + png[at:]


def _jpeg_bytes(photo: Photo, rgb: np.ndarray, quality: int, xmp: bytes | None) -> bytes:
    buf = io.BytesIO()
    kwargs = {"quality": quality, "subsampling": 0 if quality >= 90 else 2}  # 4:4:4 at high quality: no colour bleed at the seam
    if photo.icc_profile:
        kwargs["icc_profile"] = photo.icc_profile
    if photo.exif:
        kwargs["exif"] = photo.exif
    if xmp:
        kwargs["xmp"] = xmp
    im = Image.fromarray(rgb, "RGB")
    (im.convert("L") if photo.gray else im).save(buf, "JPEG", **kwargs)  # a black-and-white photo stays one
    return buf.getvalue()


def encode_photo(photo: Photo, rgb: np.ndarray, quality: int = 95, xmp: bytes | None = None) -> bytes:
    """The bytes `write_photo` writes."""
    if rgb.shape != photo.rgb.shape or rgb.dtype != np.uint8:
        raise ValueError(f"output {rgb.shape} {rgb.dtype} does not match the input's {photo.rgb.shape} uint8")
    return _png_bytes(photo, rgb, xmp) if photo.format == "PNG" else _jpeg_bytes(photo, rgb, quality, xmp)


def current_umask() -> int:
    """The process's umask (reading it means setting it: set back at once)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, rename: a reader never sees a partial
    file, and a failure leaves none. The file gets the mode a plain `open(path, "w")` gives
    (0666 less the umask), not mkstemp's private 0600."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_photo(photo: Photo, rgb: np.ndarray, path: str | Path, quality: int = 95, xmp: bytes | None = None) -> None:
    """`rgb` written as `photo` was stored (format, depth, alpha, ICC, EXIF), plus `xmp`. The
    output's suffix must fit the input's format (a JPEG stays a JPEG)."""
    path = Path(path)
    want = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(path.suffix.lower())
    if want != photo.format:
        raise Reject("wrong_output_format", f"{path}: the output keeps the input's format ({photo.format}); "
                                            f"name it {'.jpg' if photo.format == 'JPEG' else '.png'}")
    write_atomic(path, encode_photo(photo, rgb, quality, xmp))
