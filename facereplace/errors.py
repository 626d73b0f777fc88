"""The photo commands' error handling: bad input is a `pipeline.rejection.Reject` named with what
was wrong (the CLI prints it and exits non-zero; nothing is written)."""
from __future__ import annotations

from pipeline.rejection import Reject


def index_arg(value: str) -> int:
    """argparse type of a face number (`--face`, `--driving-face`): an integer >= 0, refused
    before any work otherwise."""
    import argparse

    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a face number (0, 1, ... as piq faces lists them)") from None
    if n < 0:
        raise argparse.ArgumentTypeError(f"{n}: face numbers start at 0 (as piq faces lists them)")
    return n


def _cache_outside_tmp() -> None:
    """torch makes its compiler cache folder (`torchinductor_<user>`) in the temporary folder
    when facenet-pytorch is imported; a photo command leaves nothing there: the cache goes to
    the user's cache folder instead (torch's own setting, unless the user set one)."""
    import os
    from pathlib import Path

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(base / "piq" / "torchinductor"))


def guarded(main):
    """A photo command's `main` that never ends in a traceback: a `Reject` is its one line
    and exit 2 (the command's own handling), anything else one line naming the command and
    the failure, exit 1 (`--verbose` shows the traceback), and Ctrl-C exit 130."""
    import functools
    import sys

    @functools.wraps(main)
    def run(args) -> int:
        _cache_outside_tmp()
        try:
            return main(args)
        except Reject as err:
            print(f"piq: error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("piq: interrupted; nothing written", file=sys.stderr)
            return 130
        except MemoryError:
            print("piq: error: out_of_memory: the photo is too large for this machine's memory; nothing written",
                  file=sys.stderr)
            return 2
        except Exception as err:  # noqa: BLE001 - the one net under every photo command
            if getattr(args, "verbose", False):
                raise
            text = " ".join(str(err).split())[:300]
            print(f"piq: error: internal: {type(err).__name__}: {text} (a bug in piq: rerun with --verbose for the "
                  f"traceback and report it); nothing written", file=sys.stderr)
            return 1

    return run
