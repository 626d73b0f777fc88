"""The local web server both pages share: `piq browse` (released shards, which may come from
anyone) and `piq app` (the photo tool, which holds a user's private photos).

Starlette on uvicorn (request parsing, limits and timeouts tested by many users), bound to this
machine by default; pages load nothing from outside, only their own static folder and this
one's shared files (`/common/<file>`: the look both pages share, static/common.css).

Only the user's own page can drive a server (issue 25), whatever page the browser also shows:
- a random token per run, printed in the URL at start (as Jupyter does): `GET /?token=T` sets
  it as an HttpOnly, SameSite=Strict cookie of this port and redirects to `/`; every other
  route needs that cookie (or the header `X-PIQ-Token: T`, for scripts);
- the Host header must name this server (localhost, 127.0.0.1 or [::1] with its port), so a
  DNS-rebound name is refused even before the token;
- a browser's request made by another site's page (`Sec-Fetch-Site` cross-site or same-site,
  which a page on another port of 127.0.0.1 is) is refused, but for a navigation to `/`;
- state-changing requests (anything but GET / HEAD) need a same-origin Origin (or
  `Sec-Fetch-Site: same-origin`) and a content type a web form cannot send (not text/plain,
  form-urlencoded or multipart), so another site cannot post without a preflight we never allow;
- every answer carries nosniff, a Content-Security-Policy allowing only the page's own
  scripts and styles, `Referrer-Policy: no-referrer` and `Cache-Control: no-store`.
Request bodies are read by `read_body` with a hard byte cap and a minimum rate; header reading
has a deadline (`GuardedH11`); uvicorn caps concurrent connections.
"""
from __future__ import annotations

import asyncio
import contextlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, unquote

import numpy as np
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("piq.server")

COMMON = Path(__file__).parent / "static"
TYPES = {".jpg": "image/jpeg", ".png": "image/png", ".json": "application/json", ".html": "text/html; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
LOOPBACK = ("127.0.0.1", "localhost", "[::1]")
SAFE_METHODS = ("GET", "HEAD")
SIMPLE_TYPES = ("", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data")
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
HEADER_TIMEOUT_S = 10.0      # a request's line and headers must arrive within this
BODY_IDLE_S = 15.0           # no byte of a body for this long: 408
BODY_MIN_RATE = 16 * 1024    # bytes/s a body must average after BODY_GRACE_S (a slow client is dropped)
BODY_GRACE_S = 10.0
BACKLOG = 128
MAX_CONNECTIONS = 64         # uvicorn answers 503 beyond this many connections / tasks


class HTTPError(Exception):
    """An error answer: status and a one-line message the page shows (no server path, no repr)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def plain(value: Any) -> Any:
    """json.dumps' default: numpy scalars as Python numbers, NaN as null."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and np.isnan(value):
        return None
    raise TypeError(type(value).__name__)


def send_json(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj, default=plain), status, media_type="application/json")


def error_response(path: str, status: int, message: str) -> Response:
    """JSON {"error"} under /api (the page shows it), a line of text elsewhere."""
    if path.startswith("/api/"):
        return send_json({"error": message}, status)
    return PlainTextResponse(message, status)


# --- the guard: host, path, token, origin, content type, headers ----------------------------

@dataclass
class Guard:
    """What a request must show to be served: one of `hosts` (host:port) and `token`."""

    token: str
    hosts: frozenset[str]
    port: int

    @property
    def cookie(self) -> str:
        return f"piq-token-{self.port}"  # cookies are per host, not per port: one name per server


def allowed_hosts(host: str, port: int) -> frozenset[str]:
    """The Host headers that name this server: loopback names with its port; for an explicit
    non-loopback bind also that address, this machine's name and its addresses."""
    names = set(LOOPBACK)
    if not _is_loopback(host):
        names |= {host, socket.gethostname(), socket.getfqdn()}
        with contextlib.suppress(OSError):
            names |= {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    out = set()
    for name in names:
        if name in ("0.0.0.0", "::", ""):
            continue
        name = f"[{name}]" if ":" in name and not name.startswith("[") else name
        out.add(f"{name.lower()}:{port}")
    return frozenset(out)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_BAD_SEGMENT = re.compile(r"^\.\.?$|[\x00-\x1f\\]")


def bad_path(raw_path: bytes) -> str | None:
    """Why a request path is refused (None: fine): dot segments, encoded slashes or dots,
    NUL and control characters, backslashes; checked on the raw bytes and once decoded."""
    text = raw_path.decode("latin-1")
    if re.search(r"%2f|%5c|%00", text, re.IGNORECASE):
        return "encoded slash, backslash or NUL in the path"
    for part in unquote(text).split("/"):
        if _BAD_SEGMENT.search(part):
            return "dot segment, backslash or control character in the path"
    return None


class GuardMiddleware:
    """The checks of the module docstring, in front of every route (pure ASGI: bodies are
    streamed through untouched), and the security headers on every answer."""

    def __init__(self, app, guard: Guard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = self.check(scope)

        async def send_secured(message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", [])]
                names = {k.lower() for k, _ in headers}
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items() if k.lower().encode() not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        if refusal is not None:
            return await refusal(scope, receive, send_secured)
        await self.app(scope, receive, send_secured)

    def check(self, scope) -> Response | None:
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        path, method = scope["path"], scope["method"]
        host = headers.get("host", "").lower()
        if host not in self.guard.hosts:
            log.info("refused %s %s: Host %r", method, path, host)
            return error_response(path, 421, "this server answers only to its own address (Host header)")
        why = bad_path(scope.get("raw_path") or path.encode())
        if why:
            log.info("refused %s: %s", scope.get("raw_path"), why)
            return error_response(path, 400, f"bad path: {why}")
        fetched_from = headers.get("sec-fetch-site", "same-origin")
        if fetched_from not in ("same-origin", "none") and not (headers.get("sec-fetch-mode") == "navigate" and path == "/"):
            log.info("refused %s %s: Sec-Fetch-Site %r", method, path, fetched_from)  # another site's page asked
            return error_response(path, 403, "requests from another site's page are refused (Sec-Fetch-Site)")
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if method == "GET" and path == "/" and "token" in query:
            if not hmac.compare_digest(query["token"][0].encode(), self.guard.token.encode()):
                return PlainTextResponse("wrong token: open the URL printed in the terminal", 403)
            answer = RedirectResponse("/", 303)
            answer.set_cookie(self.guard.cookie, self.guard.token, httponly=True, samesite="strict", path="/")
            return answer
        if not self.has_token(headers):
            log.info("refused %s %s: no token", method, path)
            return error_response(path, 401, "no token: open the URL with ?token= printed in the terminal")
        if method not in SAFE_METHODS:
            origin = headers.get("origin")
            if origin is not None and origin.lower() != f"http://{host}":
                log.info("refused %s %s: Origin %r", method, path, origin)
                return error_response(path, 403, "cross-origin request refused (Origin)")
            if origin is None and headers.get("sec-fetch-site") != "same-origin":
                return error_response(path, 403, "state-changing requests need a same-origin Origin or Sec-Fetch-Site")
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            if kind in SIMPLE_TYPES:
                return error_response(path, 415, f"content type {kind or '(none)'!r} refused: send application/json or the image's type")
        return None

    def has_token(self, headers: dict[str, str]) -> bool:
        given = headers.get("x-piq-token")
        if given is None:
            for part in headers.get("cookie", "").split(";"):
                name, _, value = part.strip().partition("=")
                if name == self.guard.cookie:
                    given = value
        return given is not None and hmac.compare_digest(given.encode(), self.guard.token.encode())


# --- bodies ---------------------------------------------------------------------------------

async def read_body(request: Request, cap: int, sink: Callable[[bytes], None] | None = None) -> bytes:
    """The request's body, at most `cap` bytes whatever Content-Length says (missing, negative,
    lying or chunked: h11 frames the body, this counts what arrives), at a minimum rate.
    With `sink` the chunks go there (a file) and b"" is returned."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > cap:  # an honest large body: refused before a byte is read
        raise HTTPError(413, _too_large(cap))
    parts: list[bytes] = []
    size, start = 0, time.monotonic()
    stream = request.stream().__aiter__()
    while True:
        try:
            chunk = await asyncio.wait_for(stream.__anext__(), BODY_IDLE_S)
        except StopAsyncIteration:
            break
        except asyncio.TimeoutError:
            raise HTTPError(408, "the upload stalled") from None
        size += len(chunk)
        if size > cap:
            raise HTTPError(413, _too_large(cap))
        elapsed = time.monotonic() - start
        if elapsed > BODY_GRACE_S and size < BODY_MIN_RATE * elapsed:
            raise HTTPError(408, "the upload is too slow")
        if sink is not None:
            sink(chunk)
        else:
            parts.append(chunk)
    return b"".join(parts)


def _too_large(cap: int) -> str:
    return f"too large: more than {cap // (1024 * 1024)} MiB" if cap >= 1024 * 1024 else f"too large: more than {cap} bytes"


async def read_json(request: Request, cap: int = 64 * 1024) -> Any:
    try:
        return json.loads(await read_body(request, cap) or b"{}")
    except ValueError:
        raise HTTPError(400, "the body is not JSON") from None


# --- the application and its routes ---------------------------------------------------------

def static_routes(static: Path) -> list[BaseRoute]:
    """GET / (the page's index.html), /static/<file> (the page's folder), /common/<file> (shared)."""

    def index(request: Request) -> Response:
        return Response((static / "index.html").read_bytes(), media_type=TYPES[".html"])

    def file_of(folder: Path) -> Callable[[Request], Response]:
        def serve_file(request: Request) -> Response:
            name = request.path_params["name"]
            if name.startswith(".") or Path(name).suffix not in TYPES or not (folder / name).is_file():
                raise HTTPError(404, "not found")
            return Response((folder / name).read_bytes(), media_type=TYPES[Path(name).suffix],
                            headers={"Cache-Control": "no-cache"})
        return serve_file

    return [Route("/", index), Route("/static/{name}", file_of(static)), Route("/common/{name}", file_of(COMMON))]


def make_app(routes: list[BaseRoute], guard: Guard,
             errors: dict[type[Exception], Callable[[Exception], HTTPError]] | None = None) -> Any:
    """A Starlette app of `routes` behind the guard. `errors` maps an exception of the page's
    own (a Reject) to an answer; anything else is a 500 whose detail goes to the log only."""

    async def http_error(request: Request, err: HTTPError) -> Response:
        return error_response(request.url.path, err.status, str(err))

    async def starlette_error(request: Request, err: HTTPException) -> Response:
        return error_response(request.url.path, err.status_code, {404: "not found", 405: "method not allowed"}.get(
            err.status_code, "refused"))

    def mapped(to_error: Callable[[Exception], HTTPError]):
        async def handler(request: Request, err: Exception) -> Response:
            answer = to_error(err)
            log.info("%s %s: %s (answered %d: %s)", request.method, request.url.path, err, answer.status, answer)
            return error_response(request.url.path, answer.status, str(answer))
        return handler

    handlers = {HTTPError: http_error, HTTPException: starlette_error} | {k: mapped(v) for k, v in (errors or {}).items()}
    app = Starlette(routes=routes, exception_handlers=handlers, middleware=[Middleware(_Unexpected)])
    return GuardMiddleware(app, guard)


class _Unexpected:
    """A bug's exception: a 500 that says nothing of the server (no path, no repr); the
    traceback goes to the log. (Starlette's own 500 handler re-raises to the server.)"""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        started = False

        async def watch(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except ClientDisconnect:  # the client went away mid-body: nobody to answer
            log.info("%s %s: the client disconnected", scope.get("method"), scope.get("path"))
        except Exception:  # noqa: BLE001 - answered and logged
            log.exception("%s %s failed", scope.get("method"), scope.get("path"))
            if started:
                return
            await error_response(scope["path"], 500, "internal error (the server's log says more with --verbose)")(
                scope, receive, send)


# --- serving --------------------------------------------------------------------------------

class GuardedH11(H11Protocol):
    """uvicorn's h11 protocol with a deadline on a request's line and headers (uvicorn has none:
    a client sending one byte a second would hold its connection for ever)."""

    header_timeout = HEADER_TIMEOUT_S

    def connection_made(self, transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm()

    def _arm(self) -> None:
        if getattr(self, "_header_timer", None) is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._too_slow)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is None or self.cycle.response_complete:  # still waiting for a request's headers
            log.info("dropped a connection: no complete request headers in %.0f s", self.header_timeout)
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._arm()
        super().data_received(data)
        if self.cycle is not None and not self.cycle.response_complete:
            self._disarm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)


class LocalServer:
    """A uvicorn server of `app` on a socket bound now (port 0: a free one, known at once)."""

    def __init__(self, build: Callable[[Guard], Any], host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(BACKLOG)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.guard = Guard(secrets.token_urlsafe(24), allowed_hosts(host, self.port), self.port)
        config = uvicorn.Config(build(self.guard), http=GuardedH11, lifespan="off", backlog=BACKLOG,
                                limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=5, timeout_graceful_shutdown=5,
                                h11_max_incomplete_event_size=64 * 1024, server_header=False, date_header=False,
                                access_log=verbose, log_level="info" if verbose else "warning", log_config=None)
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> str:
        return self.guard.token

    @property
    def base(self) -> str:
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]"}.get(self.host, self.host)
        return f"http://{f'[{host}]' if ':' in host and not host.startswith('[') else host}:{self.port}"

    @property
    def url(self) -> str:
        """The page's address with its token: what the user opens."""
        return f"{self.base}/?token={self.token}"

    def start(self) -> "LocalServer":
        """Serve from a background thread (tests); `stop` ends it."""
        self._thread = threading.Thread(target=lambda: self.server.run(sockets=[self.sock]), daemon=True)
        self._thread.start()
        deadline = time.time() + 30
        while not self.server.started and time.time() < deadline:
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(30)
        self.sock.close()

    def run(self, what: str, on_close: Callable[[], None] | None = None) -> int:
        """Serve in the foreground until Ctrl-C or SIGTERM, saying where; `on_close` runs on
        every way out (a signal, an exception)."""
        print("\n".join(startup_lines(self.host, self.url, what)), flush=True)
        previous = signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM ends as Ctrl-C does
        try:
            self.server.run(sockets=[self.sock])
        except KeyboardInterrupt:
            pass
        finally:
            signal.signal(signal.SIGTERM, previous)
            self.sock.close()
            if on_close:
                on_close()
        return 0


def startup_lines(host: str, url: str, what: str) -> list[str]:
    """What a server prints at start: the page's URL with its token, and a warning when the
    user chose an address other machines can reach."""
    lines = [what, f"  {url}", "(Ctrl-C to stop)"]
    if not _is_loopback(host):
        lines.append(f"WARNING: listening on {host}: other machines can reach this server; it still needs the "
                     "token above. Use --host 127.0.0.1 to keep it on this machine.")
    return lines


def add_server_arguments(parser, port: int) -> None:
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only; "
                                                            "0.0.0.0 lets other machines in, with the token)")
    parser.add_argument("--port", type=int, default=port, help="port (0 = any free one)")
    # `--verbose` is piq's own option on every command (pipeline/commands/piq.py): for a server it also logs
    # every request and each refusal's full reason.


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    log.setLevel(logging.INFO if verbose else logging.WARNING)

