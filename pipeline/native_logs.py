"""Quiet by default: the native libraries' informational log lines kept off the user's stderr.

mediapipe 0.10.21 logs through absl's C++ logging and TensorFlow Lite's minimal logger straight
to file descriptor 2 ("INFO: Created TensorFlow Lite XNNPACK delegate for CPU.", "WARNING: All
log messages before absl::InitializeLog() ...", "W0000 ... inference_feedback_manager.cc:114]
...", "landmark_projection_calculator.cc:186] ..."). Neither logger reads an environment
variable in that build (GLOG_minloglevel and TF_CPP_MIN_LOG_LEVEL change nothing; absl's
SetMinLogLevel and TF Lite's MinimalLogger are not exported from its bindings), so the lines
are caught where they are written: file descriptor 2 is pointed at a temporary file only
around mediapipe's own calls (`native_logs()`: a graph's creation and its runs), and what it
caught is sorted afterwards: the known informational lines are dropped, anything else (an
error, a fatal message) is passed on to stderr. The tool's own messages never go through it.

`PIQ_VERBOSE=1` (`piq ... --verbose`) leaves stderr alone: every library line shows.
"""
from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import threading

_lock = threading.RLock()
_depth = 0
_saved_fd: int | None = None
_sink = None

# informational lines of absl / TF Lite / glog: severity I or W with absl's prefix, TF Lite's INFO
NOISE = re.compile(r"^(INFO: |WARNING: All log messages before absl::InitializeLog\(\)|[IW]\d{4} [\d:.]+ +\d+ [\w.]+:\d+\] )")


def verbose() -> bool:
    return os.environ.get("PIQ_VERBOSE", "") not in ("", "0")


def _passed_on(text: str) -> str:
    return "".join(line for line in text.splitlines(keepends=True) if line.strip() and not NOISE.match(line))


@contextlib.contextmanager
def native_logs():
    """Around a mediapipe call: its informational native log lines dropped, others passed on
    (nested and threaded calls share one capture)."""
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
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _sink.seek(0)
                rest = _passed_on(_sink.read().decode("utf-8", "replace"))
                _sink.close()
                _sink, _saved_fd = None, None
                if rest:
                    sys.stderr.write(rest)
                    sys.stderr.flush()
