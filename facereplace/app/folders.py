"""The private folder of one `piq app` session (its uploads), and the clean-up of folders left
by a run that could not clean up after itself (SIGKILL, a crash, a power cut).

A session's folder is `<tmp>/piq-app-<pid>-<random>`, readable by its user only; the session
deletes it on every way out it sees (Ctrl-C, SIGTERM, an exception: server.py). At the next
start, a folder of this user whose pid names no running process is a crashed run's, and is
removed; a running session's folder (its pid alive) is left alone.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

log = logging.getLogger("piq.app")
PREFIX = "piq-app-"
_OWNED = re.compile(rf"^{PREFIX}(\d+)-")


def session_folder() -> Path:
    """A new folder for this process's session (mode 0700)."""
    return Path(tempfile.mkdtemp(prefix=f"{PREFIX}{os.getpid()}-"))


def remove_stale(root: str | Path | None = None) -> list[Path]:
    """Delete the session folders of this user whose process is gone; the folders removed."""
    removed = []
    for folder in Path(root or tempfile.gettempdir()).glob(f"{PREFIX}*"):
        m = _OWNED.match(folder.name)
        try:
            if not m or not folder.is_dir() or folder.is_symlink() or folder.stat().st_uid != os.getuid():
                continue
        except OSError:
            continue
        if _alive(int(m.group(1))):
            continue
        shutil.rmtree(folder, ignore_errors=True)
        log.info("removed %s, left by a session that did not end cleanly", folder)
        removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
