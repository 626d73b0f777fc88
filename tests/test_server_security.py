"""Issue 25: each attack a reviewer sent to `piq app` and `piq browse`, and the Bad input list,
against the real servers on 127.0.0.1 (raw sockets from bench/probe_servers.py: exact headers,
lying lengths, slow bytes). Each must get a 4xx with a short reason, leave the server answering
others and write nothing outside (or left over inside) the session's folder. The page's own
token flow in Chromium is in tests/test_app.py and tests/test_browse.py; SIGTERM and stale
folders with a fresh `piq app` subprocess here."""
from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

from bench.probe_servers import chunked, raw, zeros
from bench.probe_servers import request as send
from facereplace.app import server as app_server
from facereplace.app.folders import PREFIX, remove_stale
from facereplace.app.session import Entry, Session
from facereplace.compose import LoadedPhoto
from facereplace.photo_io import Photo
from pipeline.browse import http
from pipeline.browse.server import serve as serve_browse
from pipeline.config.params import load_params

REPO = Path(__file__).resolve().parents[1]
BURST = REPO / "samples" / "burst"
MIB = 1024 * 1024
EVIL = "http://evil.example"


def page(srv: http.LocalServer, kind: str = "application/json") -> dict[str, str]:
    """The headers of the page's own state-changing requests."""
    return {"X-PIQ-Token": srv.token, "Origin": srv.base, "Content-Type": kind}


def head_of(srv: http.LocalServer, path: str, headers: dict[str, str] | None = None) -> dict[str, str]:
    with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
        s.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nConnection: close\r\n"
                   + "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items()) + "\r\n").encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    lines = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    return {"status": lines[0].split(" ")[1], **{k.lower(): v.strip() for k, _, v in (h.partition(":") for h in lines[1:])}}


def error_of(body: bytes) -> str:
    return json.loads(body)["error"]


def files_in(folder: Path, settle_s: float = 5.0) -> list[str]:
    """The folder's files once the server's handlers are done with them (a connection's answer
    can come from the protocol layer while its handler still runs, e.g. after a missing length)."""
    deadline = time.time() + settle_s
    while (names := sorted(p.name for p in folder.iterdir())) and time.time() < deadline:
        time.sleep(0.05)
    return names


def _fake_photo(name: str) -> LoadedPhoto:
    """A photo already opened (no detection): the id, picture and cache routes need no face model."""
    from tests.fixtures.fake_faces import FakeAppFace

    rgb = np.full((120, 160, 3), 90, np.uint8)
    return LoadedPhoto(name, Photo(Path(name), rgb, "JPEG", "0" * 64), [FakeAppFace(0, (10.0, 10.0, 60.0, 60.0))], [None])


@pytest.fixture()
def app(monkeypatch):
    """`piq app`'s server on a session of small caps: 1 MiB uploads, 2 photos, one already open."""
    monkeypatch.setattr(http, "BODY_GRACE_S", 2.0)
    monkeypatch.setattr(http, "BODY_IDLE_S", 3.0)
    monkeypatch.setattr(http.GuardedH11, "header_timeout", 2.0)
    params = load_params(REPO / "params.yaml")
    params = dataclasses.replace(params, app=dataclasses.replace(params.app, max_photos=2, max_upload_mb=1))
    session = Session(params)
    session.entries[f"p1-{session.tag}"] = Entry(f"p1-{session.tag}", "photo", _fake_photo("a.jpg"), [0])
    srv = app_server.serve(session).start()
    yield srv, session
    srv.stop()
    session.close()


@pytest.fixture(scope="module")
def browse(tiny_release: Path, tmp_path_factory):
    """`piq browse` on a copy of the tiny release whose first shard also holds `<key>.x.html`."""
    from bench.probe_servers import _craft

    root = tmp_path_factory.mktemp("crafted") / "release"
    shutil.copytree(tiny_release, root)
    key = _craft(root / "train")
    srv = serve_browse(root).start()
    yield srv, key
    srv.stop()


# --- 1. only the user's own page drives the servers ------------------------------------------

def test_token_is_required_and_its_url_sets_a_strict_cookie(app) -> None:
    srv, session = app
    for path in ("/", "/api/photos", "/static/app.js", f"/api/photos/p1-{session.tag}/original.jpg"):
        status, body = send(srv, "GET", path, length=None)
        assert status == 401 and b"token" in body, path
    assert send(srv, "GET", "/?token=guessed", length=None)[0] == 403
    h = head_of(srv, f"/?token={srv.token}")
    assert h["status"] == "303" and h["location"] == "/"
    cookie = h["set-cookie"]
    assert cookie.startswith(f"piq-token-{srv.port}={srv.token}") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert head_of(srv, "/api/photos", {"Cookie": f"piq-token-{srv.port}={srv.token}"})["status"] == "200"
    assert head_of(srv, "/api/photos", {"Cookie": f"piq-token-{srv.port + 1}={srv.token}"})["status"] == "401"


def test_another_site_cannot_upload_replace_or_reset(app) -> None:
    srv, session = app
    photo = f"p1-{session.tag}"
    before = (len(session.entries), files_in(session.folder))
    shot = (BURST / "shot_0.jpg").read_bytes()
    replace = json.dumps({"photo": photo, "face": 0, "source": photo, "source_face": 0}).encode()
    attacks = [("/api/photos?name=x.jpg", {"Origin": EVIL, "Content-Type": "text/plain"}, shot, 401),  # a simple request
               ("/api/replace", {"Origin": EVIL, "Content-Type": "text/plain"}, replace, 401),
               (f"/api/photos/{photo}/reset", {"Origin": EVIL, "Content-Type": "text/plain"}, b"{}", 401),
               # even a page that somehow holds the token:
               ("/api/photos?name=x.jpg", {**page(srv, "image/jpeg"), "Origin": EVIL}, shot, 403),
               ("/api/replace", {**page(srv), "Origin": "null"}, replace, 403),
               ("/api/replace", {"X-PIQ-Token": srv.token, "Content-Type": "application/json"}, replace, 403),
               ("/api/replace", {"X-PIQ-Token": srv.token, "Content-Type": "application/json",
                                 "Sec-Fetch-Site": "cross-site"}, replace, 403),
               ("/api/replace", page(srv, "text/plain"), replace, 415),
               ("/api/photos?name=x.jpg", page(srv, "application/x-www-form-urlencoded"), shot, 415)]
    for path, headers, body, want in attacks:
        status, answer = send(srv, "POST", path, headers, body)
        assert status == want and len(error_of(answer)) < 120, (path, headers, status, answer)
    assert (len(session.entries), files_in(session.folder)) == before, "nothing opened, nothing written"
    cookie = {"Cookie": f"piq-token-{srv.port}={srv.token}"}  # another port of 127.0.0.1 is the same site: sent
    for site in ("same-site", "cross-site"):
        status, _ = send(srv, "GET", f"/api/photos/{photo}/original.jpg", {**cookie, "Sec-Fetch-Site": site}, length=None)
        assert status == 403, site
    status, _ = send(srv, "GET", "/", {**cookie, "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate"}, length=None)
    assert status == 200, "a link to the page from elsewhere still opens it"
    # the page's own request passes the guard (and reaches the session: same photo, refused there)
    status, answer = send(srv, "POST", "/api/replace", {"X-PIQ-Token": srv.token, "Sec-Fetch-Site": "same-origin",
                                                        "Content-Type": "application/json"}, replace)
    assert status == 400 and error_of(answer).startswith("same_photo")


def test_a_rebound_host_name_is_refused_on_both_servers(app, browse) -> None:
    srv, session = app
    for server, path in ((srv, f"/api/photos/p1-{session.tag}/download"), (srv, "/api/photos"),
                         (srv, f"/api/photos/p1-{session.tag}/original.jpg"), (browse[0], "/api/sets"),
                         (browse[0], f"/file/train/{browse[1]}/i00.jpg")):
        for host in ("rebind.attacker.example", f"rebind.attacker.example:{server.port}", f"127.0.0.1:{server.port + 1}",
                     "localhost.attacker.example"):
            status, _ = send(server, "GET", path, {"X-PIQ-Token": server.token}, length=None, host=host)
            assert status == 421, (path, host)
        for host in (f"localhost:{server.port}", f"[::1]:{server.port}", f"127.0.0.1:{server.port}"):
            assert send(server, "GET", path if server is browse[0] else "/api/photos", {"X-PIQ-Token": server.token},
                        length=None, host=host)[0] == 200, host


def test_an_explicit_public_bind_keeps_the_token_and_warns(capsys) -> None:
    """`--host 0.0.0.0`: the token stays, the Host list grows to this machine's names, a warning
    is printed (checked without opening a public socket: the lines `run` prints)."""
    hosts = http.allowed_hosts("0.0.0.0", 8766)
    assert "127.0.0.1:8766" in hosts and f"{socket.gethostname().lower()}:8766" in hosts and "0.0.0.0:8766" not in hosts
    assert http.allowed_hosts("127.0.0.1", 8766) == {"127.0.0.1:8766", "localhost:8766", "[::1]:8766"}
    lines = http.startup_lines("0.0.0.0", "http://127.0.0.1:8766/?token=abc", "piq app")
    assert any(line.startswith("WARNING") for line in lines) and any("token=abc" in line for line in lines)
    assert not any(line.startswith("WARNING") for line in http.startup_lines("127.0.0.1", "http://x/?token=abc", "piq app"))


# --- 2. uploads bounded and cleaned up -------------------------------------------------------

@pytest.mark.parametrize("how", ["negative", "missing", "lying", "chunked", "honest"])
def test_upload_cap_holds_whatever_content_length_says(app, how: str) -> None:
    srv, session = app
    body = {"negative": zeros(3 * MIB), "missing": zeros(3 * MIB), "lying": zeros(3 * MIB),
            "chunked": chunked(3 * MIB), "honest": zeros(3 * MIB)}[how]
    length = {"negative": -1, "missing": None, "lying": 1000, "chunked": "chunked", "honest": 3 * MIB}[how]
    status, answer = send(srv, "POST", "/api/photos?name=big.jpg", page(srv, "image/jpeg"), body, length)
    want = {"negative": 400, "missing": 400, "lying": 400, "chunked": 413, "honest": 413}[how]
    assert status == want, (how, status, answer[:200])
    assert files_in(session.folder) == [], "a refused upload is deleted at once"
    assert send(srv, "GET", "/api/photos", {"X-PIQ-Token": srv.token}, length=None)[0] == 200, "still answering"


def _png_header(w: int, h: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) + \
        chunk(b"IDAT", zlib.compress(bytes(w * 3 + 1))) + chunk(b"IEND", b"")


def test_pixel_cap_is_read_from_the_header_before_decoding(app, monkeypatch) -> None:
    srv, session = app
    decoded = []
    monkeypatch.setattr(session, "add", lambda *a: decoded.append(a))
    for w, h in ((100_000, 100_000), (20_000, 10_000)):  # a decompression bomb; just over replace.max_pixels
        status, answer = send(srv, "POST", "/api/photos?name=bomb.png", page(srv, "image/png"), _png_header(w, h))
        assert status == 400 and error_of(answer) == "too_many_pixels: bomb.png: too many pixels (replace.max_pixels)"
    assert decoded == [] and files_in(session.folder) == []


def test_refused_upload_is_deleted_and_its_error_names_no_server_path(app) -> None:
    srv, session = app
    status, answer = send(srv, "POST", "/api/photos?name=broken.jpg", page(srv, "image/jpeg"),
                          (BURST / "shot_0.jpg").read_bytes()[:3000])
    message = error_of(answer)
    assert status == 400 and message.startswith("unreadable_image: broken.jpg: ")
    assert str(session.folder) not in message and "/tmp" not in message and " at 0x" not in message and "<" not in message
    assert files_in(session.folder) == []


def test_a_session_opens_at_most_max_photos(app) -> None:
    srv, session = app
    session.entries[f"p2-{session.tag}"] = Entry(f"p2-{session.tag}", "photo", _fake_photo("b.jpg"), [1])
    status, answer = send(srv, "POST", "/api/photos?name=c.jpg", page(srv, "image/jpeg"), (BURST / "shot_0.jpg").read_bytes())
    assert status == 409 and "app.max_photos 2" in error_of(answer) and files_in(session.folder) == []


def test_user_images_are_not_cached_and_ids_are_unique_per_session(app) -> None:
    srv, session = app
    for path in (f"/api/photos/p1-{session.tag}/original.jpg", f"/api/photos/p1-{session.tag}/faces/0.jpg", "/api/photos"):
        h = head_of(srv, path, {"X-PIQ-Token": srv.token})
        assert h["status"] == "200" and h["cache-control"] == "no-store", path
    other = Session(session.params)
    try:
        assert other.tag != session.tag and other.folder != session.folder and other.folder.name.startswith(f"{PREFIX}{os.getpid()}-")
    finally:
        other.close()
    assert not other.folder.exists()


def test_50_concurrent_uploads_are_answered_and_leave_nothing(app) -> None:
    srv, session = app
    data = (BURST / "shot_1.jpg").read_bytes()[:20000]
    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        send(srv, "POST", "/api/photos?name=c.jpg", page(srv, "image/jpeg"), data)[0])) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert len(results) == 50 and set(results) <= {400, 429, 503}, sorted(set(results))
    assert send(srv, "GET", "/api/photos", {"X-PIQ-Token": srv.token}, length=None)[0] == 200
    assert files_in(session.folder) == []


def _subprocess_app(tmp: Path, *args: str) -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), "TMPDIR": str(tmp)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.commands.piq", "app", "--port", "0", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    while not any("token=" in line for line in lines):
        line = proc.stdout.readline()
        assert line or proc.poll() is None, "".join(lines)
        lines.append(line)
    return proc, re.search(r"(http://\S+)", "".join(lines)).group(1)


def _du(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


@pytest.mark.slow  # a fresh `piq app` process: ~10 s of imports
def test_sigterm_deletes_the_session_folder_and_a_start_removes_crashed_ones(tmp_path: Path) -> None:
    """A fresh `piq app` (TMPDIR here) removes a crashed run's folder (its pid gone) and keeps a
    live one's; SIGTERM in the middle of an upload (5 MiB on disk) deletes its own folder."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    crashed, live = tmp_path / f"{PREFIX}{dead.pid}-abc", tmp_path / f"{PREFIX}{os.getpid()}-def"
    for folder in (crashed, live):
        folder.mkdir()
        (folder / "p1-x_photo.jpg").write_bytes(bytes(1000))
    proc, url = _subprocess_app(tmp_path)
    try:
        assert not crashed.exists() and live.exists()
        (mine,) = [p for p in tmp_path.glob(f"{PREFIX}{proc.pid}-*")]
        port, token = int(re.search(r":(\d+)/", url).group(1)), url.split("token=")[1]
        head = (f"POST /api/photos?name=big.jpg HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-PIQ-Token: {token}\r\n"
                f"Origin: http://127.0.0.1:{port}\r\nContent-Type: image/jpeg\r\nContent-Length: {100 * MIB}\r\n\r\n").encode()
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(head)
        for _ in range(5):
            s.sendall(bytes(MIB))
        deadline = time.time() + 30
        while _du(mine) < 5 * MIB and time.time() < deadline:
            time.sleep(0.05)
        during = _du(mine)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
        s.close()
    finally:
        if proc.poll() is None:
            proc.kill()
    print(f"session folder during the upload: {during} bytes; after SIGTERM: "
          f"{'gone' if not mine.exists() else _du(mine)}; exit {code}")
    assert during >= 5 * MIB and not mine.exists() and code == 0


def test_the_session_folder_goes_on_an_exception_too(monkeypatch) -> None:
    session = Session(load_params(REPO / "params.yaml"))
    srv = app_server.serve(session)
    closed = []
    monkeypatch.setattr(srv.server, "run", lambda **_: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError):
        srv.run("test", lambda: closed.append(session.close()))
    assert closed and not session.folder.exists()


def test_remove_stale_keeps_other_users_and_live_sessions(tmp_path: Path) -> None:
    (tmp_path / f"{PREFIX}{os.getpid()}-live").mkdir()
    (tmp_path / f"{PREFIX}legacy").mkdir()
    (tmp_path / "other").mkdir()
    assert remove_stale(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([f"{PREFIX}{os.getpid()}-live", f"{PREFIX}legacy", "other"])


# --- 3. errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("body, reason", [
    ({"photo": "p1", "face": "0", "source": "p1", "source_face": 0}, "face: expected an integer"),
    ({"photo": ["p1"], "face": 0, "source": "p1", "source_face": 0}, "photo: expected a string"),
    ({"photo": "p1", "face": True, "source": "p1", "source_face": 0}, "face: expected an integer"),
    ({"photo": "p1", "face": 0, "source": "p1", "source_face": 0, "x": 1}, "unknown field x"),
    ({"photo": "p1", "face": 0, "source": "p1", "source_face": 0, "region": 3}, "region: expected a string"),
    ({"photo": "p1", "face": 0, "source": "p1", "source_face": 0, "region": "nose"},
     "region: expected one of auto, face, eyes, mouth, upper, lower"),
    ([1, 2], "the body must be a JSON object with photo, face, source, source_face"),
    ("{not json", "the body is not JSON")])
def test_json_of_wrong_types_is_refused_with_a_short_reason(app, body, reason: str) -> None:
    srv, _ = app
    data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
    status, answer = send(srv, "POST", "/api/replace", page(srv), data)
    assert status == 400 and error_of(answer) == reason


def test_multipart_bodies_with_two_files_or_none_are_refused(app) -> None:
    srv, session = app
    two = (b"--b\r\nContent-Disposition: form-data; name=a; filename=a.jpg\r\n\r\nAAA\r\n"
           b"--b\r\nContent-Disposition: form-data; name=b; filename=b.jpg\r\n\r\nBBB\r\n--b--\r\n")
    for body in (two, b"--b--\r\n"):
        status, answer = send(srv, "POST", "/api/photos?name=m.jpg", page(srv, "multipart/form-data; boundary=b"), body)
        assert status == 415 and "content type" in error_of(answer)
    assert files_in(session.folder) == []


# --- 4. a shard never runs script; both servers' headers -----------------------------------------

def test_browse_serves_only_known_types_and_the_rest_as_downloads(browse) -> None:
    srv, key = browse
    tok = {"X-PIQ-Token": srv.token}
    h = head_of(srv, f"/file/train/{key}/x.html", tok)
    assert h["status"] == "200" and h["content-type"] == "application/octet-stream"
    assert h["content-disposition"] == 'attachment; filename="x.html"' and "sandbox" in h["content-security-policy"]
    for field, kind in (("i00.jpg", "image/jpeg"), ("i00.seg.png", "image/png"), ("meta.json", "application/json")):
        assert head_of(srv, f"/file/train/{key}/{field}", tok)["content-type"] == kind, field


@pytest.mark.parametrize("which", ["app", "browse"])
def test_both_servers_send_the_security_headers(app, browse, which: str) -> None:
    srv = app[0] if which == "app" else browse[0]
    for path in ("/", "/static/app.js", "/api/nothing", "/?token=wrong"):
        h = head_of(srv, path, {"X-PIQ-Token": srv.token})
        assert h["x-content-type-options"] == "nosniff", path
        assert h["content-security-policy"].startswith("default-src 'self'; frame-ancestors 'none'"), path
        assert h["referrer-policy"] == "no-referrer" and h["cache-control"] in ("no-store", "no-cache"), path


@pytest.mark.parametrize("path", ["/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py",
                                  "/static/app.js%00.png", "/static/%5c..%5cserver.py", "/static/..\\server.py"])
def test_bad_paths_are_refused_on_both_servers(app, browse, path: str) -> None:
    for srv in (app[0], browse[0]):
        status, answer = send(srv, "GET", path.replace("/static/", "/file/train/x/") if srv is browse[0] else path,
                              {"X-PIQ-Token": srv.token}, length=None)
        assert status == 400 and b"bad path" in answer, (path, status, answer)


def test_a_1_mb_request_line_or_header_is_refused(app) -> None:
    srv, _ = app
    for head in (f"GET /{'a' * MIB} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n\r\n",
                 f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nX-Big: {'a' * MIB}\r\n\r\n"):
        assert 400 <= raw(srv.port, head.encode(), timeout=30)[0] < 500
    assert send(srv, "GET", "/api/photos", {"X-PIQ-Token": srv.token}, length=None)[0] == 200


@pytest.mark.parametrize("what", ["headers", "body"])
def test_a_client_sending_one_byte_a_second_is_dropped(app, what: str) -> None:
    srv, session = app
    if what == "headers":
        first, drip = b"G", b"ET /api/photos HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    else:
        first = (f"POST /api/photos?name=s.jpg HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\nX-PIQ-Token: {srv.token}\r\n"
                 f"Origin: {srv.base}\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n").encode()
        drip = b"x" * 30
    start, answer = time.time(), b""
    with socket.create_connection(("127.0.0.1", srv.port), timeout=1) as s:
        s.sendall(first)
        for byte in drip:
            assert send(srv, "GET", "/api/photos", {"X-PIQ-Token": srv.token}, length=None)[0] == 200, "others answered"
            try:
                s.sendall(bytes([byte]))
                answer = s.recv(4096)
                break  # an answer (408) or the connection closed
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                break
    took = time.time() - start
    assert took < 10, f"still connected after {took:.0f} s"
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:100]
    assert files_in(session.folder) == []


# --- the token flow and a hostile page in headless Chromium ------------------------------------

EVIL_PAGE = """<!doctype html><html><body><img id="steal" src="{app}/api/photos/{photo}/original.jpg"><script>
const app = "{app}", results = [];
const post = (path, body, type) => fetch(app + path, {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": type}}, body}}).then(() => "sent", (e) => "blocked");
Promise.all([
  post("/api/photos/{photo}/reset", "{{}}", "text/plain"),
  post("/api/replace", '{{"photo": "{photo}", "face": 0, "source": "{photo}", "source_face": 0}}', "text/plain"),
  post("/api/photos?name=evil.jpg", "not a photo", "text/plain"),
  fetch(app + "/api/photos", {{credentials: "include"}}).then((r) => r.text()).then((t) => "read " + t, () => "unread"),
]).then((r) => {{ const img = document.getElementById("steal");
  document.title = "done " + JSON.stringify(r.concat([img.complete && img.naturalWidth > 0 ? "image read" : "no image"])); }});
</script></body></html>"""


def test_in_chromium_the_token_opens_the_page_and_another_site_cannot_drive_it(app, tmp_path: Path, caplog) -> None:
    """The user opened the app (its token URL: the cookie is in the browser), then visits a
    hostile page on another port of 127.0.0.1 (the same site for cookies: SameSite does not
    help there): the server refuses its posts, its <img> of the user's photo and its read
    (Sec-Fetch-Site; behind it the Origin check, Cross-Origin-Resource-Policy, no CORS headers).
    Without the token the page is a 401; the page itself breaks no rule of its CSP."""
    import http.server

    from tests.fixtures.chrome import chrome, require_chromium

    require_chromium()
    from selenium.webdriver.support.ui import WebDriverWait

    caplog.set_level("INFO", logger="piq.server")
    srv, session = app
    photo = f"p1-{session.tag}"
    sentinel = object()
    session.entries[photo].composite = sentinel  # a reset that got through would clear it
    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text(EVIL_PAGE.format(app=srv.base, photo=photo))
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: http.server.SimpleHTTPRequestHandler(
        *a, directory=str(tmp_path / "site")))
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    driver = chrome(tmp_path / "profile")
    try:
        driver.get(srv.base + "/")
        assert "no token" in driver.page_source
        driver.get(srv.url)
        WebDriverWait(driver, 30).until(lambda d: d.current_url == srv.base + "/" and d.find_elements("id", "open"))
        assert not [e for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
        driver.get(f"http://127.0.0.1:{evil.server_address[1]}/index.html")
        WebDriverWait(driver, 30).until(lambda d: d.title.startswith("done"))
        results = json.loads(driver.title[len("done "):])
    finally:
        driver.quit()
        evil.shutdown()
        evil.server_close()
    assert results[3] == "unread" and results[4] == "no image", results
    refused = [r.getMessage() for r in caplog.records if r.getMessage().startswith("refused")]
    for what in (f"POST /api/photos/{photo}/reset", "POST /api/replace", "POST /api/photos", "GET /api/photos",
                 f"GET /api/photos/{photo}/original.jpg"):
        assert f"refused {what}: Sec-Fetch-Site 'same-site'" in refused, (what, refused)
    assert session.entries[photo].composite is sentinel and len(session.entries) == 1 and files_in(session.folder) == []
