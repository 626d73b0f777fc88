"""`piq params`: validate params.yaml and print it resolved; with `--profile` / `--set`, merge a
params profile (e.g. configs/paper.yaml: every paper backend and its weights folder) into it.

`piq params --profile configs/paper.yaml --weights-root /data/weights` prints the merged
configuration; `--write` writes it into params.yaml (comments and key order kept,
pipeline/config/profile.py), `--write FILE` into another file.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import yaml

from pipeline.config.params import load_params


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", default=None, metavar="YAML",
                        help="a partial params.yaml to merge in (configs/paper.yaml: the paper's backends and folders)")
    parser.add_argument("--weights-root", default=None, metavar="DIR",
                        help="folder the profile's relative weight paths (*_dir, *_weights, *_checkpoint) are under "
                             "(default: the profile's weights_root, else weights/)")
    parser.add_argument("--set", nargs="+", default=[], metavar="SECTION.KEY=VALUE", dest="sets",
                        help="more values on top of the profile (YAML), e.g. train.max_steps=100")
    parser.add_argument("--write", nargs="?", const="", default=None, metavar="FILE",
                        help="write the merge (default file: the --params file itself) instead of printing it")


def main(args: argparse.Namespace) -> int:
    profile, sets, write = getattr(args, "profile", None), getattr(args, "sets", []), getattr(args, "write", None)
    if profile is None and not sets:
        if write is not None:
            print("piq params: --write needs --profile or --set", file=sys.stderr)
            return 2
        params = load_params(args.params)
        print(yaml.safe_dump(_plain(dataclasses.asdict(params)), sort_keys=False), end="")
        return 0
    from pipeline.config.profile import ProfileError, apply, profile_overrides

    try:
        overrides = profile_overrides(profile, args.weights_root, sets)
        text = apply(args.params, overrides, (write or args.params) if write is not None else None)
    except (ProfileError, ValueError) as err:
        print(f"piq params: {err}", file=sys.stderr)
        return 1
    if write is None:
        print(text, end="")
    else:
        print(f"piq params: {len(overrides)} value(s) set in {write or args.params}", file=sys.stderr)
    return 0


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
