"""The local web server both pages share: `piq browse` (released shards) and `piq app` (the
photo tool). Standard library only (ThreadingHTTPServer), bound to this machine by default;
pages load nothing from outside, only their own static folder and this one's shared files
(`/common/<file>`: the look both pages share, static/common.css).

A page's handler subclasses `LocalHandler` and implements `route(method, parts, query)`.
"""
from __future__ import annotations

import json
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlparse

import numpy as np

COMMON = Path(__file__).parent / "static"
TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".json": "application/json", ".html": "text/html; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".css": "text/css"}


class HTTPError(Exception):
    """An error answer: status and a one-line message the page shows."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def plain(value: Any) -> Any:
    """json.dumps' default: numpy scalars as Python numbers, NaN as null."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    raise TypeError(type(value).__name__)


class LocalHandler(BaseHTTPRequestHandler):
    """GET / (the page's index.html), /static/<file> (the page's folder), /common/<file> (shared),
    and everything else through `route`."""

    static: Path = COMMON
    max_body: int = 0  # bytes a POST may carry (0: no POST)

    def log_message(self, *args: Any) -> None:  # quiet: the terminal shows the URL only
        pass

    def send(self, body: bytes, kind: str, status: HTTPStatus = HTTPStatus.OK, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store" if kind.startswith("application/json") else "max-age=3600")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, obj: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        self.send(json.dumps(obj, default=plain).encode(), "application/json", status)

    def send_file(self, folder: Path, name: str) -> bool:
        if "/" in name or name.startswith(".") or not (folder / name).is_file():
            return False
        self.send((folder / name).read_bytes(), TYPES.get(Path(name).suffix, "text/plain"))
        return True

    def body(self) -> bytes:
        size = int(self.headers.get("Content-Length") or 0)
        if size > self.max_body:
            raise HTTPError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"upload of {size} bytes is over {self.max_body}")
        return self.rfile.read(size)

    def route(self, method: str, parts: list[str], query: dict[str, str]) -> None:
        raise HTTPError(HTTPStatus.NOT_FOUND, "not found")

    def _dispatch(self, method: str) -> None:
        url = urlparse(self.path)
        parts = [unquote(p) for p in url.path.split("/") if p]
        query = {k: v[0] for k, v in parse_qs(url.query).items()}
        try:
            if method == "GET" and not parts:
                self.send((self.static / "index.html").read_bytes(), TYPES[".html"])
                return
            if method == "GET" and len(parts) == 2 and parts[0] in ("static", "common"):
                if self.send_file(self.static if parts[0] == "static" else COMMON, parts[1]):
                    return
                raise HTTPError(HTTPStatus.NOT_FOUND, "not found")
            self.route(method, parts, query)
        except HTTPError as err:
            self.send_json({"error": str(err)}, err.status) if parts[:1] == ["api"] else \
                self.send(str(err).encode(), "text/plain", err.status)

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self._dispatch("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")


def serve(handler: type[LocalHandler], host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """A server bound to (host, port) (port 0: a free one); call `serve_forever` on it."""
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    return server


def run(server: ThreadingHTTPServer, what: str, on_close: Callable[[], None] | None = None) -> int:
    """Serve until Ctrl-C, saying where."""
    host, port = server.server_address[:2]
    print(f"{what} at http://{host}:{port}/ (Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if on_close:
            on_close()
    return 0
