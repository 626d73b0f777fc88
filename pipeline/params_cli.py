"""`piq params`: validate params.yaml and print the resolved configuration."""
from __future__ import annotations

import argparse
import dataclasses

import yaml

from pipeline.params import load_params


def main(args: argparse.Namespace) -> int:
    params = load_params(args.params)
    print(yaml.safe_dump(_plain(dataclasses.asdict(params)), sort_keys=False), end="")
    return 0


def _plain(obj):
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj
