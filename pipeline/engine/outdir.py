"""A stage's output folder: a local path or any fsspec URL, written atomically by every worker.

Workers write their items' files themselves (the driver never sees the bytes), so on a cluster
the out_dir must be a place every node reaches: a shared filesystem path or an object-store URL.
Every write is atomic: the bytes go to a temporary name in the same folder, then are renamed,
so a reader (or a resumed run) sees the old file or the whole new one, never a torn one.

Errors that no retry can fix (full disk, read-only or unwritable folder, unknown URL protocol)
are `OutDirError`: the runner stops with that message instead of refusing item after item.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import uuid
from pathlib import Path
from typing import IO, Any, Iterator

from pipeline.engine.worker_state import WorkerLocal

# errno values of a write that will fail again for every item: stop the run, name the cause.
FATAL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR})


class OutDirError(OSError):
    """The out_dir cannot take the stage's outputs (full, read-only, unreachable)."""


class OutDir(WorkerLocal):
    """Atomic reads and writes under one root; picklable (the filesystem is opened per process)."""

    worker_local = ("_fs", "_made")

    def __init__(self, url: str | os.PathLike, fsync: bool = False) -> None:
        self.url = os.fspath(url)
        self.fsync = fsync
        self._fs: Any = None
        self._made: set[str] = set()
        self.fs  # noqa: B018 - resolve the protocol now: an unknown one is an error at once

    @property
    def fs(self) -> Any:
        if self._fs is None:
            import fsspec
            from fsspec.implementations.local import LocalFileSystem

            try:
                fs, root = fsspec.core.url_to_fs(self.url)
            except (ValueError, ImportError) as err:
                raise OutDirError(f"out_dir {self.url!r} cannot be opened: {err}") from err
            self._fs, self.root, self.local = fs, root.rstrip("/"), isinstance(fs, LocalFileSystem)
            self._made = set()
        return self._fs

    def path(self, rel: str) -> str:
        self.fs  # noqa: B018
        return f"{self.root}/{rel}" if rel else self.root

    def __str__(self) -> str:
        return self.url

    # --- writing --------------------------------------------------------------------------------

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write `data` to `rel` atomically. A full disk or an unwritable folder is `OutDirError`."""
        final = self.path(rel)
        parent = final.rsplit("/", 1)[0]
        tmp = f"{parent}/.{final.rsplit('/', 1)[1]}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self._makedirs(parent)
            if self.local:
                with open(tmp, "wb") as fh:
                    fh.write(data)
                    if self.fsync:
                        fh.flush()
                        os.fsync(fh.fileno())
                os.replace(tmp, final)
            else:
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, final)
        except OSError as err:
            self._discard(tmp)
            raise self.classify(err, rel) from err

    @contextlib.contextmanager
    def writing(self, rel: str) -> Iterator[IO[bytes]]:
        """A binary file to stream `rel` into (a table too large to hold as bytes), published
        atomically when the block ends without an error; on an error nothing replaces `rel`."""
        final = self.path(rel)
        parent = final.rsplit("/", 1)[0]
        tmp = f"{parent}/.{final.rsplit('/', 1)[1]}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            self._makedirs(parent)
            with (open(tmp, "wb") if self.local else self.fs.open(tmp, "wb")) as fh:
                yield fh
                if self.local and self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            if self.local:
                os.replace(tmp, final)
            else:
                self.fs.mv(tmp, final)
        except OSError as err:
            self._discard(tmp)
            raise self.classify(err, rel) from err
        except BaseException:
            self._discard(tmp)
            raise

    def classify(self, err: OSError, rel: str) -> OSError:
        """`OutDirError` for a write error that will repeat for every item (full disk,
        read-only or unwritable folder), naming the out_dir and the file; else `err` itself."""
        if isinstance(err, OutDirError) or err.errno not in FATAL_ERRNOS:
            return err
        return OutDirError(err.errno, f"out_dir {self.url}: cannot write {rel}: {os.strerror(err.errno)} ({err})")

    def _makedirs(self, parent: str) -> None:
        if parent in self._made:
            return
        if self.local:
            os.makedirs(parent, exist_ok=True)
        else:
            self.fs.makedirs(parent, exist_ok=True)
        self._made.add(parent)

    def _discard(self, path: str) -> None:
        try:
            if self.local:
                os.unlink(path)
            else:
                self.fs.rm(path)
        except (OSError, FileNotFoundError):
            pass

    def check_writable(self) -> None:
        """Write and remove a probe file: an out_dir that cannot be written fails before any work."""
        probe = f"_state/.probe-{uuid.uuid4().hex[:8]}"
        try:
            self.write_bytes(probe, b"")
        except OutDirError:
            raise
        except Exception as err:  # noqa: BLE001 - any failure here means the folder is unusable
            raise OutDirError(f"out_dir {self.url} cannot be written: {type(err).__name__}: {err}") from err
        self.remove(probe)

    # --- reading and removing -------------------------------------------------------------------

    def read_bytes(self, rel: str) -> bytes:
        if self.local:
            with open(self.path(rel), "rb") as fh:
                return fh.read()
        return self.fs.cat_file(self.path(rel))

    def open_read(self, rel: str) -> IO[bytes]:
        """`rel` opened for reading (seekable: parquet reads its footer first, then row groups)."""
        return open(self.path(rel), "rb") if self.local else self.fs.open(self.path(rel), "rb")

    def exists(self, rel: str) -> bool:
        return os.path.exists(self.path(rel)) if self.local else self.fs.exists(self.path(rel))

    def listdir(self, rel: str) -> list[str]:
        """Names (not paths) in folder `rel`; empty when it does not exist."""
        path = self.path(rel)
        if self.local:
            return sorted(os.listdir(path)) if os.path.isdir(path) else []
        if not self.fs.isdir(path):
            return []
        return sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(path, detail=False))

    def remove(self, rel: str) -> None:
        self._discard(self.path(rel))

    def rmtree(self, rel: str) -> None:
        path = self.path(rel)
        if self.local:
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        elif self.fs.exists(path):
            self.fs.rm(path, recursive=True)
        self._made = {d for d in self._made if not d.startswith(path)}


# --- atomic writes of one local file (the card, indexes, reports: files outside a stage's records) ---

def json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def atomic_write_bytes(path: Any, data: bytes) -> None:
    """Write `data` to local `path` so that readers see the old file or the whole new one."""
    path = Path(path)
    OutDir(path.parent).write_bytes(path.name, data)


def atomic_write_json(path: Any, obj: Any) -> None:
    atomic_write_bytes(path, json.dumps(obj, indent=1, sort_keys=True, default=json_default).encode())
