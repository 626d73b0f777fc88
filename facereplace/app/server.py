"""`piq app [--port]`: the photo tool in a local web page, served from this machine.

The server is the shard browser's (pipeline/browse/http.py: standard library, static files,
JSON errors), the page static/index.html + static/app.js with the shared common.css; nothing
is loaded from outside. The work is `Session`'s (session.py).

API: POST `/api/photos?name=&role=photo|reference` (body: the file) opens a photo;
GET `/api/photos` lists them; GET `/api/photos/<id>/original.jpg`, `/result.jpg` (the page's
pictures), `/download` (the edited file: input's format, watermark, provenance);
GET `/api/photos/<id>/faces/<n>.jpg` a face's thumbnail, `/api/photos/<id>/faces/<n>/candidates`
the same person's faces elsewhere; POST `/api/replace` {photo, face, source, source_face},
POST `/api/photos/<id>/reset`. Bad input answers 400 with {"error": "<code>: <message>"}.
"""
from __future__ import annotations

import argparse
import json
from http import HTTPStatus
from http.server import ThreadingHTTPServer
from pathlib import Path

from facereplace.app.session import Session
from facereplace.errors import PhotoError
from pipeline.browse import http
from pipeline.browse.http import HTTPError, LocalHandler

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD = 256 * 1024 * 1024  # bytes; pixels are capped by replace.max_pixels when read


def make_handler(session: Session) -> type[LocalHandler]:
    class Handler(LocalHandler):
        static = STATIC
        max_body = MAX_UPLOAD

        def route(self, method: str, parts: list[str], query: dict[str, str]) -> None:
            try:
                self._route(method, parts, query)
            except PhotoError as err:
                raise HTTPError(HTTPStatus.BAD_REQUEST, str(err)) from err
            except (ValueError, KeyError, TypeError) as err:
                raise HTTPError(HTTPStatus.BAD_REQUEST, f"bad request: {err}") from err

        def _route(self, method: str, parts: list[str], query: dict[str, str]) -> None:
            if parts[:1] != ["api"]:
                raise HTTPError(HTTPStatus.NOT_FOUND, "not found")
            rest = parts[1:]
            if method == "POST" and rest == ["photos"]:
                return self.send_json(session.add(query.get("name", "photo.jpg"), self.body(), query.get("role", "photo")))
            if method == "POST" and rest == ["replace"]:
                req = json.loads(self.body() or b"{}")
                return self.send_json(session.replace(str(req["photo"]), int(req["face"]), str(req["source"]),
                                                      int(req["source_face"])))
            if method == "POST" and len(rest) == 3 and rest[0] == "photos" and rest[2] == "reset":
                return self.send_json(session.reset(rest[1]))
            if method != "GET":
                raise HTTPError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} /{'/'.join(parts)}")
            if rest == ["photos"]:
                return self.send_json({"photos": session.listing()})
            if len(rest) == 3 and rest[0] == "photos":
                photo_id, what = rest[1], rest[2]
                if what == "original.jpg":
                    return self.send(session.original_jpeg(photo_id), "image/jpeg")
                if what == "result.jpg":
                    return self.send(session.result_jpeg(photo_id), "image/jpeg", headers={"Cache-Control": "no-store"})
                if what == "download":
                    data, name = session.result_file(photo_id)
                    kind = "image/png" if name.lower().endswith(".png") else "image/jpeg"
                    return self.send(data, kind, headers={"Content-Disposition": f'attachment; filename="{name}"'})
            if len(rest) == 4 and rest[0] == "photos" and rest[2] == "faces" and rest[3].endswith(".jpg"):
                return self.send(session.face_jpeg(rest[1], int(rest[3][:-4])), "image/jpeg")
            if len(rest) == 5 and rest[0] == "photos" and rest[2] == "faces" and rest[4] == "candidates":
                return self.send_json({"candidates": session.candidates(rest[1], int(rest[3]))})
            raise HTTPError(HTTPStatus.NOT_FOUND, "not found")

    return Handler


def serve(session: Session, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server bound to (host, port) (port 0: a free one); call `serve_forever` on it."""
    return http.serve(make_handler(session), host, port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    parser.add_argument("--port", type=int, default=8766, help="port (0 = any free one)")
    parser.add_argument("--method", choices=("classical", "piq"), help="default: replace.method")


def main(args: argparse.Namespace) -> int:
    import dataclasses

    from pipeline.params import load_params

    params = load_params(args.params)
    if args.method:
        params = dataclasses.replace(params, replace=dataclasses.replace(params.replace, method=args.method))
    session = Session(params)
    return http.run(serve(session, args.host, args.port), "piq app: open photos, click a face, choose its replacement",
                    session.close)
