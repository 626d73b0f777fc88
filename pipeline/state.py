"""A stage's on-disk progress: one record per finished item, written last and atomically.

Layout under a stage's out_dir:

    <files the stage made>              written first, each atomically
    _state/fingerprint.json             what the outputs depend on; a mismatch wipes the state
    _state/records/<item>.json          written after the item's files: the item is finished
    manifest.parquet, rejects.parquet   consolidated from the records at the end of a run
    stats.json                          written last: the run is complete

A crash leaves at worst files without a record; the item is then redone and its files are
overwritten, so nothing half-written is ever mistaken for finished.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

STATE_DIR = "_state"
RECORDS_DIR = "records"
FINGERPRINT_FILE = "fingerprint.json"
# Reject codes that a later run tries again: the cause may have been fixed (a flaky disk, a
# model that ran out of memory). Codes raised by a stage for bad input are final.
RETRYABLE_CODES = frozenset({"stage_error", "worker_died"})


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=_json_default).encode())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def record_name(item_id: str) -> str:
    """A filesystem-safe, collision-free file name for an item id."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "_", item_id)[:80]
    digest = hashlib.blake2b(item_id.encode(), digest_size=4).hexdigest()
    return f"{safe}-{digest}.json"


def fingerprint_digest(fingerprint: dict[str, Any]) -> str:
    blob = json.dumps(fingerprint, sort_keys=True, default=_json_default).encode()
    return hashlib.sha256(blob).hexdigest()


class StageState:
    """Records of finished items of one stage, keyed by item id."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        self.state_dir = self.out_dir / STATE_DIR
        self.records_dir = self.state_dir / RECORDS_DIR

    def open(self, fingerprint: dict[str, Any]) -> bool:
        """Prepare the state for a run under `fingerprint`. Returns False when earlier
        records were made under another fingerprint and have been wiped (with their files)."""
        digest = fingerprint_digest(fingerprint)
        fp_path = self.state_dir / FINGERPRINT_FILE
        kept = True
        if fp_path.exists():
            old = json.loads(fp_path.read_text())
            if old.get("digest") != digest:
                self.wipe()
                kept = False
        self.records_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(fp_path, {"digest": digest, "fingerprint": fingerprint})
        return kept

    def wipe(self) -> None:
        """Remove every output of earlier runs: the files their records name, the records,
        and the consolidated tables."""
        for record in self.load_all().values():
            for rel in record.get("files", []):
                (self.out_dir / rel).unlink(missing_ok=True)
        shutil.rmtree(self.state_dir, ignore_errors=True)
        for name in ("manifest.parquet", "rejects.parquet", "stats.json"):
            (self.out_dir / name).unlink(missing_ok=True)

    def path(self, item_id: str) -> Path:
        return self.records_dir / record_name(item_id)

    def load_all(self) -> dict[str, dict[str, Any]]:
        records: dict[str, dict[str, Any]] = {}
        if not self.records_dir.is_dir():
            return records
        for path in self.records_dir.glob("*.json"):
            try:
                record = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue  # unreadable record: the item counts as unfinished and is redone
            records[record["item_id"]] = record
        return records

    def finished(self) -> dict[str, dict[str, Any]]:
        """Records that a new run must not redo."""
        return {
            k: r
            for k, r in self.load_all().items()
            if r["status"] == "done" or r.get("code") not in RETRYABLE_CODES
        }

    def write_done(self, item_id: str, rows: list[dict], files: dict[str, bytes], attempts: int) -> None:
        for rel, data in files.items():
            atomic_write_bytes(self.out_dir / rel, data)
        atomic_write_json(
            self.path(item_id),
            {"item_id": item_id, "status": "done", "rows": rows, "files": sorted(files), "attempts": attempts},
        )

    def write_reject(self, item_id: str, code: str, detail: str, attempts: int) -> None:
        atomic_write_json(
            self.path(item_id),
            {"item_id": item_id, "status": "rejected", "code": code, "detail": detail, "attempts": attempts},
        )
