"""Quiet runs: no library's log lines under the progress bar unless `piq --verbose`.

Each library is silenced in its own way:
- Ray: its Python loggers ("ray") at ERROR in the driver (the token-authentication notice is a
  WARNING), and `log_to_driver=False`, so workers' output stays in Ray's own log files
  (`/tmp/ray/session_latest/logs/worker-*.err`) instead of the terminal (`pipeline/engine/runner.py`).
- FFmpeg (inside PyAV): PyAV leaves FFmpeg's logging off unless `av.logging.set_level` is
  called; `--verbose` sets it to WARNING and routes it through Python's logging.
- mediapipe 0.10.21: its C++ code logs through absl before `absl::InitializeLog()`, which this
  build offers no switch for (GLOG_minloglevel, TF_CPP_MIN_LOG_LEVEL and ABSL_MIN_LOG_LEVEL are
  all ignored, tried) and TFLite prints its XNNPACK notice directly: those lines come once per
  model, when its graph first runs (and some on later runs), so mediapipe's calls run with the
  process's stderr file descriptor pointed at a temporary file (`native_stderr_filtered`), and what it caught is
  written back unless it is an INFO / WARNING line (absl's "I"/"W" prefixes, TFLite's "INFO:").
"""
from __future__ import annotations

import contextlib
import logging
import os
import re
import sys
import tempfile
import threading
from typing import Iterator

VERBOSE_ENV = "PIQ_VERBOSE"  # inherited by Ray workers and subprocesses
_QUIET_LINE = re.compile(r"^(?:[IW]\d{4} |INFO: |WARNING: All log messages before absl::InitializeLog)")


def verbose() -> bool:
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def configure(verbose_run: bool) -> None:
    """Set this process (and the workers it starts, through the environment) loud or quiet."""
    if verbose_run:
        os.environ[VERBOSE_ENV] = "1"
    else:
        os.environ.pop(VERBOSE_ENV, None)
    apply()


def apply() -> None:
    """The Python-side switches, in this process (called again in each worker)."""
    loud = verbose()
    logging.getLogger("ray").setLevel(logging.INFO if loud else logging.ERROR)
    if "av" in sys.modules or loud:
        import av.logging

        av.logging.set_level(av.logging.WARNING if loud else None)
    if loud and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")


def passed_on(text: str) -> str:
    """What a capture hands back to stderr: every line but the native INFO / WARNING ones."""
    return "".join(line for line in text.splitlines(keepends=True) if line.strip() and not _QUIET_LINE.match(line))


_lock = threading.RLock()
_depth = 0
_saved_fd: int | None = None
_sink = None


@contextlib.contextmanager
def native_stderr_filtered() -> Iterator[None]:
    """Run a block with file descriptor 2 pointed at a temporary file, then write back what it
    caught except native INFO / WARNING lines (everything, when verbose). Nested and threaded
    calls (the app's request threads, a stage's worker threads) share one capture."""
    global _depth, _saved_fd, _sink
    if verbose():
        yield
        return
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()
                _sink = tempfile.TemporaryFile()
                _saved_fd = os.dup(2)
                os.dup2(_sink.fileno(), 2)
            except OSError:  # no fd 2 to redirect (an embedding host): leave it
                _sink, _saved_fd = None, None
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                sys.stderr.flush()
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _sink.seek(0)
                rest = passed_on(_sink.read().decode("utf-8", "replace"))
                _sink.close()
                _sink, _saved_fd = None, None
                if rest:
                    sys.stderr.write(rest)
                    sys.stderr.flush()
