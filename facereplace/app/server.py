"""`piq app [--port]`: the photo tool in a local web page, served from this machine.

The server is the shard browser's (pipeline/browse/http.py: Starlette on uvicorn, a token per
run printed in the URL, the Host / Origin / content-type guard, security headers), the page
static/index.html + static/app.js + static/app.css with the shared common.css; nothing is
loaded from outside. The work is `Session`'s (session.py); this module owns what serving a
user's private photos needs: uploads streamed to the session's folder under a byte cap, the
pixel cap read from the header before decoding, at most `app.max_photos`, refused uploads
deleted at once, errors without server paths, the folder deleted on every way out.

API: POST `/api/photos?name=&role=photo|reference` (body: the file, its image type) opens a
photo; GET `/api/photos` lists them; GET `/api/photos/<id>/original.jpg`, `/result.jpg` (the
page's pictures), `/download` (the edited file: input's format, watermark, provenance);
GET `/api/photos/<id>/faces/<n>.jpg` a face's thumbnail, `/api/photos/<id>/faces/<n>/candidates`
the same person's faces elsewhere; POST `/api/replace` {photo, face, source, source_face[, region]},
POST `/api/photos/<id>/reset`. Bad input answers 4xx with {"error": "<code>: <message>"}.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import re
import secrets
import sys
import warnings
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from facereplace.app.folders import remove_stale
from facereplace.app.session import Session
from pipeline.browse.http import (HTTPError, LocalServer, add_server_arguments, make_app, read_body, read_json,
                                  send_json, setup_logging, static_routes)
from pipeline.rejection import Reject

log = logging.getLogger("piq.app")
STATIC = Path(__file__).parent / "static"
UPLOAD_TYPES = ("image/jpeg", "image/png", "application/octet-stream")
# what the page says when a file cannot be read (the reader's own message names the server's path)
READ_REASONS = {"unreadable_image": "not a JPEG or PNG this tool can read, or damaged or truncated",
                "unsupported_format": "the tool reads and writes JPEG and PNG only",
                "too_many_pixels": "too many pixels (replace.max_pixels)"}
REPLACE_FIELDS = {"photo": str, "face": int, "source": str, "source_face": int}
REPLACE_OPTIONAL = {"region": str}  # the part replaced (facereplace/regions.py, or auto: what the source fixes); default replace.region


def public_error(err: Reject, name: str) -> HTTPError:
    """What the page is told of a refused photo: its name as uploaded and the reason, never a
    server path or a Python repr (the full message goes to the log)."""
    if err.code in READ_REASONS:
        return HTTPError(400, f"{err.code}: {name}: {READ_REASONS[err.code]}")
    text = re.sub(r"(/[^\s:'\"]+)+/", "", str(err))          # any folder part of a path
    return HTTPError(409 if err.code == "too_many_photos" else 400, re.sub(r"<[^<>]* at 0x[0-9a-f]+>", "...", text))


def check_header(path: Path, name: str, max_pixels: int) -> None:
    """Format and pixel count from the file's header alone, before anything is decoded."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as im:
                fmt, (w, h) = im.format, im.size
        except Image.DecompressionBombError:
            raise Reject("too_many_pixels", name) from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise Reject("unreadable_image", name) from None
    if fmt not in ("JPEG", "PNG"):
        raise Reject("unsupported_format", name)
    if w * h > max_pixels:
        raise Reject("too_many_pixels", f"{name}: {w}x{h}")


def routes(session: Session) -> list[BaseRoute]:
    app = session.params.app
    cap = app.max_upload_mb * 1024 * 1024
    slots = asyncio.Semaphore(app.max_uploads_at_once)

    async def open_photo(request: Request) -> Response:
        name = request.query_params.get("name", "photo.jpg")[:200]
        role = request.query_params.get("role", "photo")
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in UPLOAD_TYPES:
            raise HTTPError(415, f"upload the file itself ({', '.join(UPLOAD_TYPES)}), not {kind or 'no type'}")
        if len(session.entries) >= app.max_photos:
            raise HTTPError(409, f"a session opens at most app.max_photos {app.max_photos} photos")
        if slots.locked():
            raise HTTPError(429, "busy with other uploads: try again")
        async with slots:
            path = session.folder / f"upload-{secrets.token_hex(8)}"
            try:
                with path.open("xb") as fh:
                    await read_body(request, cap, fh.write)
                await run_in_threadpool(check_header, path, name, session.params.replace.max_pixels)
                described = await run_in_threadpool(session.add, name, path, role)
            except BaseException as err:
                path.unlink(missing_ok=True)  # a refused upload is deleted at once
                if isinstance(err, Reject):
                    log.info("refused upload %r: %s", name, err)
                    raise public_error(err, Path(name).name) from None
                raise
            path.rename(session.folder / f"{described['id']}_{described['name']}")  # kept until the session ends
            return send_json(described)

    def listing(request: Request) -> Response:
        return send_json({"photos": session.listing()})

    def picture(request: Request) -> Response:
        photo, what = request.path_params["photo"], request.path_params["what"]
        if what == "original.jpg":
            return Response(session.original_jpeg(photo), media_type="image/jpeg")
        if what == "result.jpg":
            return Response(session.result_jpeg(photo), media_type="image/jpeg")
        if what == "download":
            data, name = session.result_file(photo)
            kind = "image/png" if name.lower().endswith(".png") else "image/jpeg"
            return Response(data, media_type=kind, headers={"Content-Disposition": f'attachment; filename="{name}"'})
        raise HTTPError(404, "not found")

    def face(request: Request) -> Response:
        return Response(session.face_jpeg(request.path_params["photo"], request.path_params["face"]), media_type="image/jpeg")

    def candidates(request: Request) -> Response:
        return send_json({"candidates": session.candidates(request.path_params["photo"], request.path_params["face"])})

    async def replace(request: Request) -> Response:
        from facereplace.regions import REGIONS

        req = fields(await read_json(request), REPLACE_FIELDS, REPLACE_OPTIONAL)
        region = req.get("region")
        if region is not None and region not in ("auto", *REGIONS):
            raise HTTPError(400, f"region: expected one of auto, {', '.join(REGIONS)}")
        return send_json(await run_in_threadpool(session.replace, req["photo"], req["face"], req["source"], req["source_face"],
                                                 region))

    async def reset(request: Request) -> Response:
        await read_json(request)
        return send_json(await run_in_threadpool(session.reset, request.path_params["photo"]))

    return [*static_routes(STATIC),
            Route("/api/photos", open_photo, methods=["POST"]), Route("/api/photos", listing, methods=["GET"]),
            Route("/api/replace", replace, methods=["POST"]),
            Route("/api/photos/{photo}/reset", reset, methods=["POST"]),
            Route("/api/photos/{photo}/faces/{face:int}.jpg", face),
            Route("/api/photos/{photo}/faces/{face:int}/candidates", candidates),
            Route("/api/photos/{photo}/{what}", picture)]


def fields(req: Any, schema: dict[str, type], optional: dict[str, type] | None = None) -> dict[str, Any]:
    """The request's fields, each of its type (a bool is not an int); `optional` ones may be
    left out; 400 naming the first wrong one."""
    optional = optional or {}
    if not isinstance(req, dict):
        raise HTTPError(400, f"the body must be a JSON object with {', '.join(schema)}")
    unknown = sorted(set(req) - set(schema) - set(optional))
    if unknown:
        raise HTTPError(400, f"unknown field {unknown[0][:40]}")
    for key, kind in {**schema, **{k: t for k, t in optional.items() if k in req}}.items():
        value = req.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise HTTPError(400, f"{key}: expected {'an integer' if kind is int else 'a string'}")
    return req


def serve(session: Session, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> LocalServer:
    """A server bound to (host, port) (port 0: a free one); `start()` it (a thread) or `run()` it."""
    return LocalServer(lambda guard: make_app(routes(session), guard, {Reject: lambda err: public_error(err, "")}),
                       host, port, verbose)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_server_arguments(parser, 8766)
    parser.add_argument("--method", choices=("classical", "piq"), help="default: replace.method")


def main(args: argparse.Namespace) -> int:
    import dataclasses

    from pipeline.config.params import load_params

    setup_logging(args.verbose)
    params = load_params(args.params)
    if args.method:
        params = dataclasses.replace(params, replace=dataclasses.replace(params.replace, method=args.method))
    remove_stale()
    try:
        session = Session(params)
    except Reject as err:  # e.g. the signing pair: one line, before anything listens
        print(f"piq app: error: {err}", file=sys.stderr)
        return 2
    try:
        server = serve(session, args.host, args.port, args.verbose)
    except BaseException:
        session.close()
        raise
    return server.run("piq app: open photos, click a face, choose its replacement", session.close)
