"""`piq faces`, `piq replace`, `piq verify`: the photo tool's command line.

Every bad input is a `Reject`: one line on stderr naming the file and what was wrong, exit
code 2 (verify: 1 for an unmarked image), and no output file (writes are atomic).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import types
from pathlib import Path

from facereplace.errors import guarded, index_arg
from pipeline.rejection import Reject


def _fail(err: Reject) -> int:
    print(f"piq: error: {err}", file=sys.stderr)
    return 2


# --- piq faces -------------------------------------------------------------------------------

def faces_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", help="a JPEG or PNG photo")
    parser.add_argument("--preview", help="write the photo with every face outlined and numbered (JPEG/PNG)")
    parser.add_argument("--json", action="store_true", help="print the faces as JSON")


def faces_main(args: argparse.Namespace) -> int:
    from facereplace.photo_io import read_photo, write_atomic
    from pipeline.config.params import load_params

    params = load_params(args.params)
    try:
        photo = read_photo(args.photo, params.replace.max_pixels)  # a bad file is refused before the models load
        import cv2

        from facereplace.faces import draw_faces, find_faces

        found = find_faces(photo.rgb, params.replace, params.ingest)
        if args.preview:
            ext = Path(args.preview).suffix.lower()
            ok, enc = cv2.imencode(ext if ext in (".png", ".jpg", ".jpeg") else ".jpg",
                                   cv2.cvtColor(draw_faces(photo.rgb, found), cv2.COLOR_RGB2BGR))
            if not ok:
                raise Reject("encode_failed", f"could not encode {args.preview}")
            write_atomic(args.preview, enc.tobytes())
    except Reject as err:
        return _fail(err)
    if args.json:
        print(json.dumps({"photo": str(args.photo), "size": list(photo.size), "faces": [f.as_dict() for f in found]}))
    else:
        print(f"{args.photo}: {photo.size[0]}x{photo.size[1]}, {len(found)} face(s)")
        for f in found:
            d = f.as_dict()
            print(f"  face {d['face']}: box {d['box']} score {d['score']:.3f} yaw {d['yaw']} pitch {d['pitch']} "
                  f"roll {d['roll']} eyes_open {d['eyes_open']} smile {d['smile']} sharpness {d['sharpness']}")
    return 0


# --- piq replace -----------------------------------------------------------------------------

def replace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("photo", help="the photo whose face is replaced (JPEG or PNG)")
    parser.add_argument("--driving", required=True, help="REF: a photo of the same person with the face wanted")
    parser.add_argument("-o", "--output", required=True, help="output file, same format as PHOTO")
    parser.add_argument("--face", type=index_arg, help="face of PHOTO to replace (piq faces numbers); default: REF's identity")
    parser.add_argument("--driving-face", type=index_arg, help="face of REF to use (needed when REF shows several)")
    parser.add_argument("--method", choices=("classical", "piq"), help="default: replace.method")
    parser.add_argument("--allow-cross-identity", action="store_true",
                        help="replace even when REF is another person (recorded in the provenance)")
    parser.add_argument("--caption", default="", help="prompt for --method piq (training's captions; default empty)")
    parser.add_argument("--json", action="store_true", help="print what was done as JSON (one object on stdout)")
    parser.add_argument("--region", choices=("face", "eyes", "mouth", "upper", "lower"),
                        help="part of the face replaced (eyes: a blink; mouth / lower: a smile); default: replace.region")


def run_replace(args: argparse.Namespace, params, method=None) -> dict:
    """Everything `piq replace` does; returns the seconds of each part (bench/replace.py)."""
    from facereplace.methods import build_method
    from facereplace.photo_io import encode_photo, read_photo, write_atomic
    from facereplace.provenance import EditRecord, build_xmp, mark_faces
    from facereplace.replace import ReplaceConfig, replace_face
    from facereplace.target import find_target

    import dataclasses

    from facereplace.credentials import load_signer

    if getattr(args, "region", None):
        params = dataclasses.replace(params, replace=dataclasses.replace(params.replace, region=args.region))
    p = params.replace
    credentials = load_signer(params.provenance)  # a bad pair is refused before any work
    times: dict[str, float] = {}
    t = time.perf_counter()
    photo = read_photo(args.photo, p.max_pixels)
    ref = read_photo(args.driving, p.max_pixels)
    if ref.sha256 == photo.sha256 and not getattr(args, "allow_cross_identity", False):  # one person's face onto itself: nothing to do
        raise Reject("same_file", f"REF {args.driving} is the same picture as PHOTO {args.photo}: REF is another "
                                  f"photo of the person, with the face wanted")
    times["decode"] = time.perf_counter() - t
    target = find_target(photo.rgb, ref.rgb, p, params.ingest, args.face, args.driving_face, args.allow_cross_identity,
                         (args.photo, args.driving), times)
    choice, ref_face, faces = target.choice, target.reference_face, target.faces
    method = method or build_method(args.method or p.method, p, params.sample)
    # PHOTO's pixels are this run's own: the face is pasted into them (no 12 MP copy), except
    # for a 16-bit PNG, whose writer adds the change (result - photo.rgb) to its full depth
    result = replace_face(photo.rgb, faces, choice.index, ref.rgb, ref_face, method, ReplaceConfig.from_params(params),
                          getattr(args, "caption", ""), in_place=photo.deep is None)
    times.update(result.timings)
    t = time.perf_counter()
    marked = mark_faces(result.image, [(result.face, result.alpha)], p, params.ingest, copy=False)  # this run's own
    times["watermark"] = time.perf_counter() - t
    t = time.perf_counter()
    record = EditRecord(method=method.name, inputs={"photo": photo.sha256, "reference": ref.sha256},
                        faces=[{"face": choice.index, "box": [round(v, 1) for v in result.face.box],
                                "crop": list(result.crop_box), "identity_distance": round(choice.distance, 4),
                                "reference_face": ref_face.index, "region": p.region}],
                        model_hash=method.model_hash, identity_encoder=target.encoder, cross_identity=choice.cross_identity)
    data = encode_photo(photo, marked, p.jpeg_quality, build_xmp(record, photo.xmp))
    data = sign_output(data, photo, [ref], Path(args.output).name, method.name, "piq replace", credentials, record)
    write_atomic(args.output, data)
    times["encode"] = time.perf_counter() - t
    warnings = photo.warnings + ref.warnings
    if credentials is None:
        warnings.append(f"{Path(args.output).name}: no C2PA content credentials (provenance.certificate is null; "
                        f"`piq provenance init --dir DIR` makes a local pair)")
    if getattr(args, "json", False):  # one object on stdout, the warnings inside it: stderr stays quiet
        print(json.dumps({"output": str(args.output), "photo": str(args.photo), "reference": str(args.driving),
                          **record.faces[0], "method": method.name, "identity_encoder": target.encoder,
                          "cross_identity": choice.cross_identity, "c2pa": credentials is not None,
                          "warnings": warnings}))
        return times
    for w in warnings:
        print(f"piq: warning: {w}", file=sys.stderr)
    print(f"{args.output}: face {choice.index} replaced ({method.name}, identity distance {choice.distance:.3f}"
          f"{', CROSS-IDENTITY' if choice.cross_identity else ''})")
    return times


def sign_output(data: bytes, photo, refs: list, title: str, method: str, tool: str, credentials, record) -> bytes:
    """`data` with C2PA content credentials (facereplace/credentials.py) when params name a
    pair; else as it is (the caller's warnings say so)."""
    if credentials is None:
        return data
    from facereplace.credentials import Ingredient, sign

    ingredient = lambda ph: Ingredient(Path(ph.path).name, ph.format, Path(ph.path).read_bytes())  # noqa: E731
    return sign(data, photo.format, title, ingredient(photo), [ingredient(r) for r in refs], method, tool, credentials,
                record.as_dict())


def replace_main(args: argparse.Namespace) -> int:
    from pipeline.config.params import load_params

    params = load_params(args.params)
    out = Path(args.output)
    want = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG"}.get(out.suffix.lower())
    if want is None:
        return _fail(Reject("wrong_output_format", f"{out}: name the output .jpg or .png, as PHOTO"))
    if Path(args.photo).resolve() == Path(args.driving).resolve() and not getattr(args, "allow_cross_identity", False):
        return _fail(Reject("same_file", f"REF {args.driving} is PHOTO {args.photo}: REF is another photo of "
                                         f"the person, with the face wanted (swapping two people of one photo: --allow-cross-identity)"))
    if out.resolve() in (Path(args.photo).resolve(), Path(args.driving).resolve()):
        return _fail(Reject("output_is_input", f"{out}: write the result to a new file, not over an input"))
    try:
        from facereplace.photo_io import photo_format

        fmt = photo_format(args.photo)  # its header only: run_replace decodes it (and names what is wrong with it)
        if fmt is not None and fmt != want:
            raise Reject("wrong_output_format", f"{out}: the output keeps PHOTO's format; use PHOTO's suffix")
        run_replace(args, params)
    except Reject as err:
        return _fail(err)
    return 0


# --- piq verify ------------------------------------------------------------------------------

def verify_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", help="an image written by piq replace (or any JPEG / PNG)")
    parser.add_argument("--json", action="store_true")


def verify_main(args: argparse.Namespace) -> int:
    from facereplace.credentials import as_json, describe, read_credentials
    from facereplace.provenance import MIN_MATCH, verify
    from pipeline.config.params import load_params

    params = load_params(args.params)
    try:
        v = verify(args.image, params.replace.watermark_px, params.replace.max_pixels, params.replace)
    except Reject as err:
        return _fail(err)
    c2pa = read_credentials(args.image)
    if args.json:
        print(json.dumps({"image": v.path, "watermark_bits": v.watermark_bits, "watermarked": v.watermarked,
                          "metadata": v.metadata, "faces": v.faces, "c2pa": as_json(c2pa)}))
    else:
        print(f"{v.path}: watermark {'FOUND' if v.watermarked else 'not found'} ({v.watermark_bits}/48 bits, "
              f"needs {MIN_MATCH})")
        for f in v.faces:
            print(f"  face {f['face']} at {f['box']}: mark {f['bits']}/48 bits")
        if v.metadata:
            print(f"  DigitalSourceType: {v.metadata['digital_source_type']}")
            print(f"  edit: {json.dumps(v.metadata['edit'], sort_keys=True)}")
        else:
            print("  no provenance metadata")
        print("\n".join(describe(c2pa)) if c2pa else "  no C2PA content credentials")
    return 0 if v.marked or c2pa is not None else 1


faces = types.SimpleNamespace(add_arguments=faces_arguments, main=guarded(faces_main))
replace = types.SimpleNamespace(add_arguments=replace_arguments, main=guarded(replace_main))
verify = types.SimpleNamespace(add_arguments=verify_arguments, main=guarded(verify_main))
