"""`piq browse DIR`: page through released sets in a local web page, served from this machine.

The server shared with `piq app` (pipeline/browse/http.py: Starlette on uvicorn, a token per
run, the Host / Origin guard); the page
(static/index.html, static/app.js, the shared static/common.css) loads nothing from outside.
Shards are read lazily: the first request into a shard lists its members
from the tar headers (`pipeline.release.shards.tar_offsets`, a few hundred KB read even for a 1 GB
shard), and every image is then one seek and one read. Filtering uses each split's
`sets.parquet` (one row per image), falling back to the sets' meta.json when it is absent.

API (all GET): `/api/sets?identity=&expression=&pose=` the matching sets, `/api/set/<split>/<key>`
meta.json and member names, `/file/<split>/<key>/<field>` a member's bytes,
`/overlay/<split>/<key>/<index>.png` the label map coloured with transparency. A member is
served only as a type it knows (`member_response`): a shard may come from anyone.
"""
from __future__ import annotations

import argparse
import json
import re
import threading
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from pipeline.browse.http import (HTTPError, LocalServer, add_server_arguments, make_app, send_json, setup_logging,
                                  static_routes)
from pipeline.labels import LABEL_NAMES
from pipeline.release.reader import INDEX_FILE
from pipeline.release.shards import read_range, tar_offsets
from pipeline.release.splits import SPLITS

STATIC = Path(__file__).parent / "static"
POSES = ("all", "frontal", "left", "right", "up", "down")
POSE_DEG = 10.0


def palette() -> np.ndarray:
    """RGBA colour per canonical label id; background transparent."""
    rng = np.random.default_rng(7)
    colours = np.concatenate([rng.integers(40, 256, (len(LABEL_NAMES), 3)), np.full((len(LABEL_NAMES), 1), 150)], axis=1)
    colours[0] = 0
    return colours.astype(np.uint8)


def pose_matches(pose: str, yaw: Any, pitch: Any) -> bool:
    if pose in ("", "all"):
        return True
    if yaw is None or pitch is None or (isinstance(yaw, float) and np.isnan(yaw)) or (isinstance(pitch, float) and np.isnan(pitch)):
        return False
    return {"frontal": abs(yaw) <= POSE_DEG and abs(pitch) <= POSE_DEG, "left": yaw < -POSE_DEG,
            "right": yaw > POSE_DEG, "up": pitch > POSE_DEG, "down": pitch < -POSE_DEG}[pose]


class Release:
    """The split folders of a release, their sets, and lazily built tar offset indexes."""

    def __init__(self, root: str | Path) -> None:
        root = Path(root)
        folders = [root] if (root / INDEX_FILE).exists() else [root / s for s in SPLITS if (root / s / INDEX_FILE).exists()]
        if not folders:
            raise FileNotFoundError(f"{root}: no {INDEX_FILE} here or in {'/'.join(SPLITS)} sub-folders (not a release)")
        self.sets: list[dict[str, Any]] = []
        self.where: dict[tuple[str, str], Path] = {}
        frames = []
        for folder in folders:
            index = json.loads((folder / INDEX_FILE).read_text())
            split = index.get("split", folder.name)
            for entry in index["shards"]:
                for key in entry["keys"]:
                    self.sets.append({"split": split, "shard": entry["name"], "key": key})
                    self.where[(split, key)] = folder / entry["name"]
            if (folder / "sets.parquet").exists():
                frames.append(pd.read_parquet(folder / "sets.parquet"))
        images = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", "set_id"])
        self.rows: dict[tuple[str, str], list[dict[str, Any]]] = {
            key: group.to_dict("records") for key, group in images.groupby(["split", "set_id"], sort=False)}
        self._offsets: dict[Path, dict[str, dict[str, tuple[int, int]]]] = {}
        self._lock = threading.Lock()
        self.colours = palette()

    def offsets(self, shard: Path) -> dict[str, dict[str, tuple[int, int]]]:
        with self._lock:
            if shard not in self._offsets:
                self._offsets[shard] = tar_offsets(shard)
            return self._offsets[shard]

    def member(self, split: str, key: str, field: str) -> bytes:
        shard = self.where[(split, key)]
        offset, size = self.offsets(shard)[key][field]
        return read_range(shard, offset, size)

    def meta(self, split: str, key: str) -> dict[str, Any]:
        return json.loads(self.member(split, key, "meta.json"))

    def image_rows(self, split: str, key: str) -> list[dict[str, Any]]:
        """One row per image of a set: from sets.parquet, else from its meta.json (kept)."""
        if (split, key) not in self.rows:
            meta = self.meta(split, key)
            self.rows[(split, key)] = [{"participant_id": meta.get("participant_id"), **img, "image": img["index"]}
                                       for img in meta["images"]]
        return self.rows[(split, key)]

    def identities(self) -> list[str]:
        return sorted({str(r[0]["participant_id"]) for s in self.sets if (r := self.image_rows(s["split"], s["key"]))})

    def find(self, identity: str = "", expression: str = "", pose: str = "") -> list[dict[str, Any]]:
        """Sets with at least one image matching every filter, with the matching images."""
        expression = expression.strip().lower()
        found = []
        for s in self.sets:
            rows = self.image_rows(s["split"], s["key"])
            if identity and (not rows or rows[0].get("participant_id") != identity):
                continue
            match = []
            for r in rows:
                words = " ".join(str(r.get(c) or "") for c in ("kind", "driver_label", "caption")).lower()
                if expression and expression not in words:
                    continue
                if not pose_matches(pose, r.get("yaw"), r.get("pitch")):
                    continue
                match.append(r["image"])
            if match:
                found.append({**s, "participant_id": rows[0].get("participant_id"), "match": match})
        return found

    def overlay(self, split: str, key: str, index: str) -> bytes:
        labels = cv2.imdecode(np.frombuffer(self.member(split, key, f"{index}.seg.png"), np.uint8), cv2.IMREAD_UNCHANGED)
        rgba = self.colours[np.clip(labels, 0, len(LABEL_NAMES) - 1)]
        return cv2.imencode(".png", cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))[1].tobytes()


KNOWN = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".json": "application/json"}
MEMBER_CSP = "default-src 'none'; img-src 'self'; frame-ancestors 'none'; sandbox"


def member_response(field: str, data: bytes) -> Response:
    """A shard member as its known type (images, label maps, JSON); anything else a download
    (application/octet-stream, attachment): a shard from anyone never runs script in the page's
    origin. Even a known type is sandboxed (CSP) and never sniffed (nosniff, by the guard)."""
    kind = KNOWN.get(Path(field).suffix.lower())
    headers = {"Content-Security-Policy": MEMBER_CSP}
    if kind is None:
        kind = "application/octet-stream"
        headers["Content-Disposition"] = f'attachment; filename="{re.sub(r"[^A-Za-z0-9._-]", "_", field)}"'
    return Response(data, media_type=kind, headers=headers)


def routes(release: Release) -> list[BaseRoute]:
    def sets(request: Request) -> Response:
        q = request.query_params
        if q.get("pose", "") not in ("", *POSES):
            raise HTTPError(400, f"pose: one of {', '.join(POSES)}")
        return send_json({"sets": release.find(q.get("identity", ""), q.get("expression", ""), q.get("pose", "")),
                          "identities": release.identities(), "poses": list(POSES), "total": len(release.sets)})

    def one_set(request: Request) -> Response:
        split, key = request.path_params["split"], request.path_params["key"]
        return send_json({"meta": release.meta(split, key), "fields": sorted(release.offsets(release.where[(split, key)])[key])})

    def member(request: Request) -> Response:
        p = request.path_params
        return member_response(p["field"], release.member(p["split"], p["key"], p["field"]))

    def overlay(request: Request) -> Response:
        p = request.path_params
        return Response(release.overlay(p["split"], p["key"], p["index"]), media_type=KNOWN[".png"],
                        headers={"Content-Security-Policy": MEMBER_CSP})

    return [*static_routes(STATIC), Route("/api/sets", sets), Route("/api/set/{split}/{key}", one_set),
            Route("/file/{split}/{key}/{field}", member), Route("/overlay/{split}/{key}/{index}.png", overlay)]


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 0, verbose: bool = False) -> LocalServer:
    """A server bound to (host, port) (port 0: a free one); `start()` it (a thread) or `run()` it."""
    release = Release(root)
    return LocalServer(lambda guard: make_app(routes(release), guard, {KeyError: lambda err: HTTPError(404, 'not in this release')}),
                       host, port, verbose)


def main(args: argparse.Namespace) -> int:
    setup_logging(args.verbose)
    return serve(args.dir, args.host, args.port, args.verbose).run(f"browse: {args.dir}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="a release folder (data/shards) or one split folder")
    add_server_arguments(parser, 8765)
