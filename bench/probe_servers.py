"""Probe `piq app` and `piq browse` as a security reviewer would (issue 25), on 127.0.0.1 only:
start both as a user does (fresh `piq` subprocesses), send each attack of the issue with raw
sockets (exact headers, lying lengths, slow bytes), print one line per probe with its status
code, and the session folder's disk use before and after a SIGTERM.

    python -m bench.probe_servers            # the table of the issue's closing note

An attacker knows no token: the attack probes send none. Where a server prints a token URL,
the legitimate steps (opening two photos, one replacement) send it, as the page does, so the
probes that need an edited photo have one.
"""
from __future__ import annotations

import glob
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
BURST = REPO / "samples" / "burst"
EVIL = "http://evil.example"
MIB = 1024 * 1024


class Server:
    """A `piq` server subprocess and what it printed: its URL, port, token (None: none printed)."""

    def __init__(self, args: list[str]) -> None:
        self.before = set(glob.glob(os.path.join(tempfile.gettempdir(), "piq-app-*")))
        self.proc = subprocess.Popen([sys.executable, "-m", "pipeline.commands.piq", *args], cwd=REPO, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
        self.log: list[str] = []
        deadline = time.time() + 120
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            self.log.append(line)
            if m := re.search(r"(http://[^\s]+)", line):
                break
            if not line and self.proc.poll() is not None:
                raise RuntimeError("".join(self.log))
        url = urlparse(m.group(1))
        self.port = url.port
        self.token = (re.search(r"token=([A-Za-z0-9_-]+)", url.query) or [None, None])[1]
        threading.Thread(target=lambda: self.log.extend(self.proc.stdout), daemon=True).start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def folder(self) -> Path | None:
        new = set(glob.glob(os.path.join(tempfile.gettempdir(), "piq-app-*"))) - self.before
        return Path(sorted(new)[0]) if new else None

    def peak_rss_mb(self) -> float:
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", text).group(1)) / 1024

    def legit(self) -> dict[str, str]:
        """The headers the page's own requests carry."""
        return {"X-PIQ-Token": self.token, "Origin": self.origin} if self.token else {}

    def stop(self, sig: int = signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        try:
            return self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


def raw(port: int, head: bytes, body=b"", timeout: float = 120, half_close: bool = False) -> tuple[int, bytes]:
    """Send `head` (request line + headers, CRLF-terminated) and `body` (bytes or an iterable of
    chunks) and read the answer: (status, body); status 0 when the server closed without one.
    `half_close`: end the body by closing our side (the only end a negative length has)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(head)
            for chunk in [body] if isinstance(body, bytes) else body:
                s.sendall(chunk)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except socket.timeout:
            raise
        except OSError:  # the server refused and closed first (EPIPE, ECONNRESET, ENOTCONN): read its answer
            pass
        data = b""
        try:
            while chunk := s.recv(65536):
                data += chunk
        except (ConnectionResetError, socket.timeout):
            pass
    if not data.startswith(b"HTTP/1."):
        return 0, data
    head_end = data.find(b"\r\n\r\n")
    return int(data.split(b" ", 2)[1]), data[head_end + 4:]


def request(srv, method: str, path: str, headers: dict[str, str] | None = None, body=b"",
            length: int | None | str = "auto", host: str | None = None) -> tuple[int, bytes]:
    """One request on its own connection to `srv` (anything with a `port`); `length`: "auto"
    (the body's), None (no Content-Length), a number (any, even a lie) or "chunked"."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host or f'127.0.0.1:{srv.port}'}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if length == "auto":
        lines.append(f"Content-Length: {len(body)}")
    elif length == "chunked":
        lines.append("Transfer-Encoding: chunked")
    elif length is not None:
        lines.append(f"Content-Length: {length}")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode()
    return raw(srv.port, head, body, half_close=length == -1)


def headers_of(srv: Server, path: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{srv.port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in (extra or {}).items()]
    with socket.create_connection(("127.0.0.1", srv.port), timeout=60) as s:
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return {"status": head[0].split(" ")[1], **{k.lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}}


def zeros(total: int, chunk: int = MIB):
    sent = 0
    while sent < total:
        n = min(chunk, total - sent)
        yield bytes(n)
        sent += n


def chunked(total: int, chunk: int = MIB):
    for part in zeros(total, chunk):
        yield f"{len(part):x}\r\n".encode() + part + b"\r\n"
    yield b"0\r\n\r\n"


def folder_bytes(folder: Path | None) -> int:
    if folder is None or not folder.exists():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def upload(srv: Server, name: str, data: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict]:
    status, body = request(srv, "POST", f"/api/photos?name={name}&role=photo",
                              {"Content-Type": "image/jpeg", **srv.legit(), **(headers or {})}, data)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, {"raw": body[:200].decode("latin-1")}


def out(probe: str, result) -> None:
    print(f"| {probe} | {result} |", flush=True)


def probe_app() -> None:
    srv = Server(["app", "--port", "0"])
    try:
        shot0, shot2 = (BURST / "shot_0.jpg").read_bytes(), (BURST / "shot_2.jpg").read_bytes()
        s1, p1 = upload(srv, "shot_0.jpg", shot0)
        s2, p2 = upload(srv, "shot_2.jpg", shot2)
        out("setup: two photos opened by the page's own requests", f"{s1} {s2}; first id {p1.get('id')!r}")
        evil_plain = {"Origin": EVIL, "Content-Type": "text/plain"}
        out("1 upload, Origin evil.example, text/plain, no token",
            upload(srv, "evil.jpg", shot0, {"Origin": EVIL, "Content-Type": "text/plain", "X-PIQ-Token": ""})[0])
        body = json.dumps({"photo": p1["id"], "face": 0, "source": p2["id"], "source_face": 0}).encode()
        out("1 replace, Origin evil.example, text/plain, no token",
            request(srv, "POST", "/api/replace", evil_plain, body)[0])
        out("1 reset, Origin evil.example, text/plain, no token",
            request(srv, "POST", f"/api/photos/{p1['id']}/reset", evil_plain, b"{}")[0])
        if srv.token:
            with_token = {**evil_plain, "X-PIQ-Token": srv.token}
            out("1 replace, Origin evil.example, text/plain, WITH the token",
                request(srv, "POST", "/api/replace", with_token, body)[0])
            out("1 replace, same Origin, text/plain, with the token",
                request(srv, "POST", "/api/replace", {**srv.legit(), "Content-Type": "text/plain"}, body)[0])
            out("1 replace, no Origin, no Sec-Fetch-Site, with the token",
                request(srv, "POST", "/api/replace", {"X-PIQ-Token": srv.token, "Content-Type": "application/json"}, body)[0])
        ok = request(srv, "POST", "/api/replace", {**srv.legit(), "Content-Type": "application/json"}, body)[0]
        out("setup: one replacement by the page's own request", ok)
        rebind = "rebind.attacker.example"
        for path in ("/api/photos", f"/api/photos/{p1['id']}/download", f"/api/photos/{p1['id']}/original.jpg"):
            out(f"1 GET {path}, Host {rebind}, no token", request(srv, "GET", path, host=rebind, length=None)[0])
            if srv.token:
                out(f"1 GET {path}, Host {rebind}, WITH the token",
                    request(srv, "GET", path, {"X-PIQ-Token": srv.token}, host=rebind, length=None)[0])
        out("1 GET /api/photos from 127.0.0.1, no token", request(srv, "GET", "/api/photos", length=None)[0])
        h = headers_of(srv, f"/api/photos/{p1['id']}/original.jpg", {"X-PIQ-Token": srv.token} if srv.token else None)
        out("3 original.jpg Cache-Control", h.get("cache-control"))
        out("5 app nosniff / CSP / Referrer-Policy (index)", _security_headers(srv, "/"))
        before_files = folder_bytes(srv.folder())
        rss0 = srv.peak_rss_mb()
        t = time.time()
        status = request(srv, "POST", "/api/photos?name=big.jpg", {"Content-Type": "image/jpeg", **srv.legit()},
                         zeros(300 * MIB), length=-1)[0]
        grew = folder_bytes(srv.folder()) - before_files
        out("2 Content-Length: -1, 300 MiB body", f"{status}; folder +{grew / MIB:.0f} MiB; peak RSS {rss0:.0f} -> "
            f"{srv.peak_rss_mb():.0f} MB; {time.time() - t:.1f} s")
        status = request(srv, "POST", "/api/photos?name=big.jpg", {"Content-Type": "image/jpeg", **srv.legit()},
                         chunked(300 * MIB), length="chunked")[0]
        out("2 chunked 300 MiB body", f"{status}; folder +{(folder_bytes(srv.folder()) - before_files) / MIB:.0f} MiB")
        status = request(srv, "POST", "/api/photos?name=big.jpg", {"Content-Type": "image/jpeg", **srv.legit()},
                         zeros(300 * MIB), length=None)[0]
        out("2 no Content-Length, 300 MiB body", f"{status}; folder +{(folder_bytes(srv.folder()) - before_files) / MIB:.0f} MiB")
        status = request(srv, "POST", "/api/photos?name=big.jpg", {"Content-Type": "image/jpeg", **srv.legit()},
                         zeros(300 * MIB), length=300 * MIB)[0]
        out("2 honest Content-Length 300 MiB", status)
        status = request(srv, "POST", "/api/photos?name=lie.jpg", {"Content-Type": "image/jpeg", **srv.legit()},
                         zeros(8 * MIB), length=1000)[0]
        out("2 Content-Length 1000, 8 MiB sent", status)
        out("2 pixel bomb (PNG header 100000x100000)", _bomb(srv))
        status, err = upload(srv, "broken.jpg", shot0[:3000])
        time.sleep(1)  # a refused request's handler may end just after its connection's answer
        left = folder_bytes(srv.folder()) - before_files
        out("3 refused upload (broken.jpg)", f"{status}; folder +{left / 1024:.0f} KiB after it")
        out("4 error text", repr(err.get("error", err))[:160])
        _bad_input(srv, p1["id"], body)
        folder = srv.folder()
        size = folder_bytes(folder)
        code = srv.stop(signal.SIGTERM)
        out("3 SIGTERM: session folder", f"{size / 1024:.0f} KiB before -> "
            f"{'gone' if folder is None or not folder.exists() else f'{folder_bytes(folder) / 1024:.0f} KiB left'}; exit {code}")
    finally:
        if srv.proc.poll() is None:
            srv.stop()
    again = Server(["app", "--port", "0"])
    try:
        out("3 next session's first id", upload(again, "shot_0.jpg", (BURST / "shot_0.jpg").read_bytes())[1].get("id"))
    finally:
        again.stop()


def _bomb(srv: Server) -> str:
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(bytes(100000 * 4))) + chunk(b"IEND", b"")
    status, err = upload(srv, "bomb.png", png)
    return f"{status} {err.get('error', '')[:100]!r}"


def _security_headers(srv: Server, path: str) -> str:
    h = headers_of(srv, path)
    return " / ".join(str(h.get(k)) for k in ("x-content-type-options", "content-security-policy", "referrer-policy"))


def _bad_input(srv: Server, photo: str, body: bytes) -> None:
    tok = srv.legit()
    for path in ("/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py", f"/api/photos/{photo}%00/original.jpg",
                 "/static/%5c..%5cserver.py"):
        out(f"bad path {path}", request(srv, "GET", path, tok, length=None)[0])
    out("request line of 1 MB", raw(srv.port, f"GET /{'a' * MIB} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())[0])
    out("header of 1 MB", raw(srv.port, f"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {'a' * MIB}\r\n\r\n".encode())[0])
    boundary = "xyz"
    two = (f"--{boundary}\r\nContent-Disposition: form-data; name=a; filename=a.jpg\r\n\r\nAAA\r\n"
           f"--{boundary}\r\nContent-Disposition: form-data; name=b; filename=b.jpg\r\n\r\nBBB\r\n--{boundary}--\r\n").encode()
    out("multipart body with two files", request(srv, "POST", "/api/photos?name=m.jpg",
                                                 {**tok, "Content-Type": f"multipart/form-data; boundary={boundary}"}, two)[0])
    out("multipart body with no file", request(srv, "POST", "/api/photos?name=m.jpg",
                                               {**tok, "Content-Type": f"multipart/form-data; boundary={boundary}"},
                                               f"--{boundary}--\r\n".encode())[0])
    for wrong in ({"photo": photo, "face": "0", "source": photo, "source_face": 0}, {"photo": [1], "face": 0},
                  {"photo": photo, "face": True, "source": photo, "source_face": 1e9}, [1, 2]):
        status, err = request(srv, "POST", "/api/replace", {**tok, "Content-Type": "application/json"}, json.dumps(wrong).encode())
        out(f"JSON of wrong types {json.dumps(wrong)[:50]}", f"{status} {err[:90]!r}")
    _slow(srv)
    _concurrent(srv)


def _slow(srv: Server) -> None:
    """A client sending one byte a second (headers, then a body): when the server drops it, and
    whether others are answered meanwhile."""
    for what, head in (("headers", b"GET /api/photos HTTP/1.1\r\nHost: 127.0.0.1\r\n"),
                       ("body", f"POST /api/photos?name=s.jpg HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nContent-Length: 100000\r\n"
                                f"Content-Type: image/jpeg\r\nOrigin: {srv.origin}\r\nX-PIQ-Token: {srv.token}\r\n\r\n".encode())):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        t, answered, closed, out_of = time.time(), [], None, ""
        s.sendall(head if what == "body" else head[:1])
        for i in range(20):
            status = request(srv, "GET", "/api/photos", srv.legit(), length=None)[0] if i % 10 == 0 else None
            if status is not None:
                answered.append(status)
            try:
                s.sendall(b"x" if what == "body" else head[1 + i:2 + i] or b"X")
                s.settimeout(1.0)
                try:
                    answer = s.recv(4096)  # an answer (408) or the connection closed (b"")
                    closed = time.time() - t
                    out_of = answer.split(b"\r\n", 1)[0].decode("latin-1") or "closed"
                    break
                except socket.timeout:
                    pass
            except (BrokenPipeError, ConnectionResetError):
                closed = time.time() - t
                break
        s.close()
        out(f"slow client, one byte a second ({what})", f"dropped after {closed:.0f} s ({out_of})" if closed else
            f"still open after {time.time() - t:.0f} s" + f"; others answered {answered}")


def _concurrent(srv: Server) -> None:
    data = (BURST / "shot_1.jpg").read_bytes()[:20000]  # not decodable: each is read and refused
    results: list[int] = []

    def one() -> None:
        results.append(upload(srv, "c.jpg", data)[0])

    threads = [threading.Thread(target=one) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    answered = request(srv, "GET", "/api/photos", srv.legit(), length=None)[0]
    counts = {c: results.count(c) for c in sorted(set(results))}
    out("50 concurrent uploads", f"{counts}; then GET /api/photos {answered}; folder {folder_bytes(srv.folder()) / 1024:.0f} KiB")


def probe_browse() -> None:
    from tests.fixtures.portraits import make_fake_ingest
    from tests.fixtures.release import build_release

    root = Path(tempfile.mkdtemp(prefix="probe-browse-"))
    ingest = make_fake_ingest(root / "ingest")
    (ingest / "stats.json").write_text(json.dumps({"complete": True}))
    release = build_release(root, ingest, n_expressive=1, n_relit=1, size=64, max_sets_per_shard=1,
                            test_id_fraction=0.0, test_ood_fraction=0.0)
    key = _craft(release / "train")
    srv = Server(["browse", str(release), "--port", "0"])
    try:
        q = f"?token={srv.token}" if srv.token else ""
        tok = {"X-PIQ-Token": srv.token} if srv.token else {}
        h = headers_of(srv, f"/file/train/{key}/x.html", tok)
        out("5 shard member x.html (with the token)", f"{h['status']} {h.get('content-type')} / "
            f"{h.get('content-disposition')} / nosniff {h.get('x-content-type-options')} / CSP {h.get('content-security-policy')}")
        h = headers_of(srv, f"/file/train/{key}/i00.jpg", tok)
        out("5 shard member i00.jpg (with the token)", f"{h['status']} {h.get('content-type')}")
        out("5 browse nosniff / CSP / Referrer-Policy (index)", _security_headers(srv, "/" + q))
        for path in ("/api/sets", f"/file/train/{key}/i00.jpg"):
            out(f"1 browse GET {path}, Host rebind.attacker.example, no token",
                request(srv, "GET", path, host="rebind.attacker.example", length=None)[0])
        out("1 browse GET /api/sets from 127.0.0.1, no token", request(srv, "GET", "/api/sets", length=None)[0])
        for path in (f"/file/train/{key}/..%2f..%2fmeta.json", "/file/train/%2e%2e/x", f"/file/train/{key}/a%00.jpg",
                     f"/file/train/{key}/..%5cx.jpg"):
            out(f"browse bad path {path[len('/file/train/'):]}", request(srv, "GET", path, tok, length=None)[0])
    finally:
        srv.stop()


def _craft(split: Path) -> str:
    """Append a member `<key>.x.html` (a script) to the first shard of a split: a shard from anyone."""
    import tarfile

    index = json.loads((split / "index.json").read_text())
    shard = split / index["shards"][0]["name"]
    key = index["shards"][0]["keys"][0]
    with tarfile.open(shard) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar if m.isfile()]
    page = b"<script>document.title = 'ran'</script>"
    info = tarfile.TarInfo(f"{key}.x.html")
    info.size = len(page)
    with tarfile.open(shard, "w") as tar:
        for m, data in members:
            tar.addfile(m, __import__("io").BytesIO(data))
        tar.addfile(info, __import__("io").BytesIO(page))
    return key


def main() -> int:
    print("| probe | answer |\n|---|---|")
    probe_browse()
    probe_app()
    return 0


if __name__ == "__main__":
    sys.exit(main())
