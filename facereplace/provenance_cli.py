"""`piq provenance init --dir DIR`: a local C2PA signing pair for users without a certificate
(facereplace/credentials.py: a self-signed root and a signing certificate it issued), and the
two params lines that make `piq replace`, `best-take` and `app` sign their outputs with it."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pipeline.rejection import Reject


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True)
    init = sub.add_parser("init", help="make a local signing pair (root.pem, signer.pem, signer.key) in --dir")
    init.add_argument("--dir", default="credentials", help="folder for the pair (default: ./credentials)")
    init.add_argument("--days", type=int, default=730, help="validity of the signing certificate (days)")
    init.add_argument("--force", action="store_true", help="replace a pair already there")


def main(args: argparse.Namespace) -> int:
    from facereplace.credentials import init_pair

    if args.days < 1:
        print("piq: error: --days must be >= 1", file=sys.stderr)
        return 2
    try:
        cert, key = init_pair(Path(args.dir), args.days, args.force)
    except Reject as err:
        print(f"piq: error: {err}", file=sys.stderr)
        return 2
    print(f"{cert}: signing certificate (issued by the local root {Path(args.dir) / 'root.pem'}), key {key}")
    print("set in params.yaml:")
    print("provenance:")
    print(f"  certificate: {cert.resolve()}")
    print(f"  private_key: {key.resolve()}")
    print("readers validate the signature as Valid, not Trusted: see docs/PHOTO_TOOL.md, 'Content credentials'")
    return 0
