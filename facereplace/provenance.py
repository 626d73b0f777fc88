"""Marking an output as edited, and reading the mark back (`piq verify`).

Two independent marks, so that either survives what the other does not:
- an invisible mark inside each replaced face (`facereplace.facemark`: the 48-bit message
  diffusers' SDXL pipeline embeds, `WATERMARK_BITS`, laid in the face's own frame, in luma,
  only inside the paste mask grown by a margin, adapted to texture). `verify` finds the faces
  again and reads each, so it survives metadata stripping, JPEG re-saving at quality 75, a
  half-size resize and a crop that keeps the face (docs/BENCHMARKS.md, bench/watermark.py).
  The earlier mark (invisible-watermark's dwtDct over the photo's central square,
  `embed_watermark`) changed pixels far from the edit and did not survive a re-save; it is
  kept for reading files marked by earlier versions;
- an XMP packet: IPTC's DigitalSourceType of the method (`digital_source_type`:
  "compositeCapture" for the classical method, "compositeWithTrainedAlgorithmicMedia" for the
  trained model; IPTC Extension, Iptc4xmpExt), and the record of the edit: faces replaced (boxes), sha256 of every
  input, method, model hash, identity distances, cross-identity override, time, tool version.

The mark changes pixels only within the replaced faces' masks grown by `replace.mark_margin`
(~47 dB there); everywhere else the output is the input, bit for bit.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

import numpy as np

if TYPE_CHECKING:
    from facereplace.facemark import MarkParams

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
PIQ_NS = "https://github.com/piqperfect/piqperfect/ns/provenance/1.0/"
MIN_MATCH = 41  # of 48 bits (face mark): a random face matches >= 41 with p ~3e-7 (facemark.false_positive_rate)
LEGACY_MIN_MATCH = 44  # of 48 bits: the earlier dwtDct square mark


# The 48-bit message diffusers' SDXL pipeline embeds (Stability AI's; diffusers'
# pipelines/stable_diffusion_xl/watermark.py WATERMARK_MESSAGE, checked equal in
# tests/test_facemark.py). Written here: importing diffusers for it cost `piq verify` 2.6 s.
WATERMARK_MESSAGE = 0b101100111110110010010000011110111011000110011110


def watermark_bits() -> list[int]:
    """The message as the 48 bits invisible-watermark embeds, most significant first."""
    return [int(bit) for bit in bin(WATERMARK_MESSAGE)[2:]]


def mark_region(shape: tuple[int, int], side: int) -> tuple[int, int, int, int]:
    """x0, y0, x1, y1 of the central square (side min(side, H, W), 8-aligned) that carries the mark."""
    h, w = shape
    s = min(side, h, w) // 8 * 8
    x0, y0 = (w - s) // 2 // 8 * 8, (h - s) // 2 // 8 * 8
    return x0, y0, x0 + s, y0 + s


def embed_watermark(rgb: np.ndarray, side: int = 1024, copy: bool = True) -> np.ndarray:
    """`rgb` with the watermark in its central square (the rest untouched): invisible-watermark's
    dwtDct (what `WatermarkEncoder.encode(bgr, "dwtDct")` does) with its block loop vectorised
    (facereplace/watermark.py: the same bytes). `copy=False` marks `rgb` itself (a caller that
    owns it: a 12 MP copy costs more than the mark)."""
    from facereplace.watermark import FastEmbedMaxDct

    x0, y0, x1, y1 = mark_region(rgb.shape[:2], side)
    if x1 - x0 < 256:
        from pipeline.rejection import Reject

        raise Reject("too_small_to_mark", f"a {rgb.shape[1]}x{rgb.shape[0]} image cannot carry the invisible "
                                          f"watermark (it needs 256 px on each side)")
    bits = [int(b) % 2 for b in watermark_bits()]  # as WatermarkEncoder.set_watermark("bits", ...) keeps them
    out = rgb.copy() if copy else rgb
    bgr = np.ascontiguousarray(rgb[y0:y1, x0:x1, ::-1])
    out[y0:y1, x0:x1] = FastEmbedMaxDct(bits, wmLen=len(bits)).encode(bgr)[:, :, ::-1]
    return out


def decode_watermark(rgb: np.ndarray, side: int = 1024) -> int:
    """How many of the 48 message bits the image's mark region carries (>= MIN_MATCH: marked)."""
    from imwatermark import WatermarkDecoder

    x0, y0, x1, y1 = mark_region(rgb.shape[:2], side)
    if x1 - x0 < 256:
        return 0
    bits = WatermarkDecoder("bits", 48).decode(np.ascontiguousarray(rgb[y0:y1, x0:x1, ::-1]), "dwtDct")
    return int(sum(int(b) == m for b, m in zip(bits, watermark_bits())))


def mark_params(p) -> MarkParams:
    """The face mark's settings from `replace` params."""
    from facereplace.facemark import MarkParams

    return MarkParams(cell=p.mark_cell, step=p.mark_step, min_strength=p.mark_min_strength, margin=p.mark_margin,
                      min_bits=MIN_MATCH)


def composite_mesh(image: np.ndarray, face, ingest=None):
    """The face mesh of `face` (a photo's `pipeline.faces.detect.Face`) as the composite shows
    it: the mark is laid in the frame the decoder will find there, not in the replaced face's
    frame."""
    from facereplace.faces import measure
    from pipeline.config.ingest import IngestParams

    found = measure(image, face, face.index, ingest or IngestParams())
    return found.mesh if found.mesh is not None else face.mesh


def mark_faces(image: np.ndarray, edits: list[tuple[object, np.ndarray]], p, ingest=None,
               copy: bool = True) -> np.ndarray:
    """`image` with the face mark in each edited face: `edits` holds (face, paste alpha) pairs
    (`Result.face`, `Result.alpha`). Pixels outside every alpha > 0 grown by the margin stay
    `image`'s. A face without a mesh cannot carry it: `Reject`."""
    from facereplace import facemark
    from pipeline.rejection import Reject

    out = image.copy() if copy else image
    bits = [int(b) % 2 for b in watermark_bits()]
    meshes = [composite_mesh(image, face, ingest) for face, _ in edits]  # all read before any is marked
    for (face, alpha), mesh in zip(edits, meshes):
        if mesh is None:
            raise Reject("no_face_mesh", f"face {face.index}: no face mesh in the composite to lay the mark in")
        facemark.embed(image, mesh, alpha > 0, bits, mark_params(p), out=out)
    return out


def read_face_marks(rgb: np.ndarray, p) -> list[dict]:
    """Every face of `rgb` found and its mark read: [{'face', 'box', 'bits'}], most bits first."""
    from facereplace import facemark
    from facereplace.faces import find_faces

    message = watermark_bits()
    out = []
    for face in find_faces(rgb, p):
        if face.mesh is None:
            continue
        got = facemark.decode(rgb, face.mesh, message, mark_params(p))
        out.append({"face": face.index, "box": [round(v, 1) for v in face.box], "bits": got.matches})
    return sorted(out, key=lambda r: -r["bits"])


def edit_time() -> str:
    """Now (UTC, ISO 8601), or SOURCE_DATE_EPOCH's time where that is set: the reproducible-builds
    convention, so a rerun (the `demo` DVC stage) writes the same bytes."""
    import os

    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (datetime.datetime.fromtimestamp(int(epoch), datetime.timezone.utc) if epoch
            else datetime.datetime.now(datetime.timezone.utc))
    return when.isoformat(timespec="seconds")


@dataclasses.dataclass
class EditRecord:
    """What `piq replace` did, written into the output's XMP."""

    method: str
    inputs: dict[str, str]                  # role (photo, reference) -> sha256
    faces: list[dict]                       # per replaced face: index, box, crop, identity distance
    model_hash: str | None = None
    identity_encoder: str | None = None
    cross_identity: bool = False
    tool: str = "piq replace"
    time: str = dataclasses.field(default_factory=lambda: edit_time())

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def build_xmp(record: EditRecord, base: bytes | None = None) -> bytes:
    """An XMP packet: IPTC DigitalSourceType and the edit record (JSON in one piq property).
    With `base` (the input's own packet: a camera's or an editor's), the record joins it as one
    more rdf:Description, so the input's XMP is kept; a base that already carries a
    DigitalSourceType (an earlier edit) is replaced."""
    description = _description(record)
    if base and b"</rdf:RDF>" in base and b"DigitalSourceType" not in base:
        at = base.rindex(b"</rdf:RDF>")
        return base[:at] + description.encode("utf-8") + b"\n " + base[at:]
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        f'{description}\n'
        ' </rdf:RDF>\n'
        '</x:xmpmeta>\n'
        '<?xpacket end="w"?>'
    ).encode("utf-8")


def digital_source_type(method: str) -> str:
    """IPTC's digital source type of an output of `method`: `compositeCapture` for captured
    photos combined by the classical method, `compositeWithTrainedAlgorithmicMedia` for a face
    the trained model made (facereplace/credentials.py, the C2PA action's, says the same)."""
    from facereplace.credentials import digital_source_type as by_method

    return by_method(method)


def _description(record: EditRecord) -> str:
    body = json.dumps(record.as_dict(), sort_keys=True, separators=(",", ":"))
    return (
        '  <rdf:Description rdf:about=""\n'
        '    xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/"\n'
        '    xmlns:xmp="http://ns.adobe.com/xap/1.0/"\n'
        f'    xmlns:piq="{PIQ_NS}"\n'
        f'    Iptc4xmpExt:DigitalSourceType="{digital_source_type(record.method)}"\n'
        f'    xmp:CreatorTool="{escape(record.tool)}"\n'
        f'    xmp:ModifyDate="{escape(record.time)}"\n'
        f'    piq:Edit="{escape(body, {chr(34): "&quot;"})}"/>'
    )


_PACKET = re.compile(rb"<x:xmpmeta.*?</x:xmpmeta>", re.S)


def read_xmp(data: bytes) -> dict | None:
    """{'digital_source_type': ..., 'edit': {...}} from the first XMP packet in a file's bytes
    carrying a DigitalSourceType (JPEG APP1 and PNG iTXt both hold it uncompressed), or None."""
    import html

    for m in _PACKET.finditer(data):
        text = m.group(0).decode("utf-8", "replace")
        dst = re.search(r'Iptc4xmpExt:DigitalSourceType="([^"]*)"', text)
        if not dst:
            continue
        edit = re.search(r'piq:Edit="([^"]*)"', text)
        try:
            record = json.loads(html.unescape(edit.group(1))) if edit else None
        except json.JSONDecodeError:
            record = None
        return {"digital_source_type": html.unescape(dst.group(1)), "edit": record}
    return None


@dataclasses.dataclass
class Verification:
    path: str
    watermark_bits: int            # of 48 matching: the best face's mark (or the legacy square's)
    metadata: dict | None
    faces: list[dict] = dataclasses.field(default_factory=list)   # per face found: its mark's bits
    legacy_bits: int = 0           # the earlier dwtDct square mark's bits

    @property
    def watermarked(self) -> bool:
        return (any(f["bits"] >= MIN_MATCH for f in self.faces) or self.legacy_bits >= LEGACY_MIN_MATCH)

    @property
    def marked(self) -> bool:
        return self.watermarked or self.metadata is not None


def verify(path: str | Path, side: int = 1024, max_pixels: int = 100_000_000, params=None) -> Verification:
    """Both marks of an image file, read back: the face mark of every face found (`params`:
    ReplaceParams, default the defaults), the legacy square mark, the XMP record."""
    from facereplace.photo_io import read_photo
    from pipeline.config.replace import ReplaceParams

    photo = read_photo(path, max_pixels)
    data = Path(path).read_bytes()
    faces = read_face_marks(photo.rgb, params or ReplaceParams(max_pixels=max_pixels))
    legacy = decode_watermark(photo.rgb, side)
    best = max([f["bits"] for f in faces] + [0])
    return Verification(str(path), best if best >= MIN_MATCH or legacy < LEGACY_MIN_MATCH else legacy,
                        read_xmp(data), faces, legacy)
