"""Params profiles: a partial params.yaml (e.g. `configs/paper.yaml`) merged into params.yaml.

A profile names only the keys it changes, section by section, as params.yaml is laid out. Its
relative weight paths (keys ending in `_dir`, `_weights`, `_checkpoint`) are taken under one
weights root, so a researcher who has the published weights changes one folder, not twenty
keys. `piq params --profile configs/paper.yaml --weights-root /data/weights --write` writes the
merge into params.yaml in place, line by line: every comment and key order of params.yaml stays,
only the values the profile sets change (a key params.yaml does not list is added at the end of
its section). The result is read back strictly (`load_params`) before it is written, so a
misspelt profile key fails without touching params.yaml.
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable

import yaml

WEIGHT_KEY_SUFFIXES = ("_dir", "_weights", "_checkpoint")
PROFILE_ONLY_KEYS = ("weights_root",)  # read from the profile itself, never written to params.yaml


class ProfileError(ValueError):
    """A profile or `--set` that cannot be merged."""


def load_profile(path: str | Path) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text()) or {}
    if not isinstance(data, dict):
        raise ProfileError(f"{path}: a profile is a mapping of params.yaml sections")
    return data


def flatten(profile: dict[str, Any]) -> dict[str, Any]:
    """{"train.batch_size": 16, "seed": 3, ...}: sections' keys as dotted paths (two levels:
    params.yaml's own depth; a deeper mapping is one value)."""
    out: dict[str, Any] = {}
    for key, value in profile.items():
        if key in PROFILE_ONLY_KEYS:
            continue
        if isinstance(value, dict):
            for sub, v in value.items():
                out[f"{key}.{sub}"] = v
        else:
            out[key] = value
    return out


def resolve_weights(overrides: dict[str, Any], root: str | Path) -> dict[str, Any]:
    """Relative paths of weight keys (`*_dir`, `*_weights`, `*_checkpoint`) joined to `root`.
    Absolute paths and nulls stay as they are."""
    out = {}
    for key, value in overrides.items():
        if (isinstance(value, str) and key.endswith(WEIGHT_KEY_SUFFIXES) and value and not os.path.isabs(value)):
            value = str(Path(root) / value)
        out[key] = value
    return out


def parse_sets(items: Iterable[str]) -> dict[str, Any]:
    """`--set train.max_steps=100 sample.shards=[a,b]`: values read as YAML."""
    out = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ProfileError(f"--set {item!r}: expected section.key=value")
        out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
    return out


def _flow(value: Any) -> str:
    """A value as one line of YAML flow style."""
    text = yaml.safe_dump({"k": value}, default_flow_style=True, width=10**9, sort_keys=False).strip()
    return text[len("{k: "):-1]


def _comment_start(rest: str) -> int | None:
    """Index of a ` #` comment in the text after `key:` (outside quotes), or None."""
    quote = None
    for i, ch in enumerate(rest):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or rest[i - 1] in " \t"):
            return i
    return None


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """First line after `start` that is not inside the block of the key at `indent` (more
    indented lines and blank lines between them belong to it)."""
    end = start + 1
    last = start + 1
    while end < len(lines):
        line = lines[end]
        if line.strip() and not line.lstrip().startswith("#"):
            if len(line) - len(line.lstrip()) <= indent:
                break
            last = end + 1
        elif line.strip() and len(line) - len(line.lstrip()) > indent:
            last = end + 1
        end += 1
    return last


def _find_key(lines: list[str], key: str, indent: int, lo: int, hi: int) -> int | None:
    pattern = re.compile(rf"^{' ' * indent}{re.escape(key)}:(\s|$)")
    for i in range(lo, hi):
        if pattern.match(lines[i]):
            return i
    return None


def _set_line(line: str, key: str, indent: int, value: Any) -> str:
    head = f"{' ' * indent}{key}:"
    rest = line[len(head):].rstrip("\n")
    cut = _comment_start(rest)
    new = f"{head} {_flow(value)}"
    if cut is None:
        return new + "\n"
    comment_col = len(head) + cut
    return new.ljust(comment_col) + (" " if len(new) >= comment_col else "") + rest[cut:] + "\n"


def merge_text(text: str, overrides: dict[str, Any]) -> str:
    """params.yaml's text with `overrides` ({"section.key" or "key": value}) set in place."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        if len(parts) == 1:
            i = _find_key(lines, parts[0], 0, 0, len(lines))
            if i is None:
                lines.append(f"{parts[0]}: {_flow(value)}\n")
                continue
            end = _block_end(lines, i, 0)
            lines[i:end] = [_set_line(lines[i], parts[0], 0, value)]
            continue
        if len(parts) != 2:
            raise ProfileError(f"{dotted}: profiles set sections' keys (section.key), not deeper")
        section, key = parts
        s = _find_key(lines, section, 0, 0, len(lines))
        if s is None:
            lines += [f"\n{section}:\n", f"  {key}: {_flow(value)}\n"]
            continue
        s_end = _block_end(lines, s, 0)
        i = _find_key(lines, key, 2, s + 1, s_end)
        if i is None:
            lines.insert(s_end, f"  {key}: {_flow(value)}\n")
            continue
        end = _block_end(lines, i, 2)
        lines[i:end] = [_set_line(lines[i], key, 2, value)]
    return "".join(lines)


def _expected(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    data = yaml.safe_load(yaml.safe_dump(base))
    for dotted, value in overrides.items():
        parts = dotted.split(".")
        target = data
        for p in parts[:-1]:
            target = target.setdefault(p, {})
        target[parts[-1]] = value
    return data


def apply(params_path: str | Path, overrides: dict[str, Any], out_path: str | Path | None = None) -> str:
    """Merge `overrides` into the params file's text, check it (the YAML reads back as the
    merge, and strictly as Params), and write it to `out_path` when given. Returns the text."""
    from pipeline.config.params import load_params

    text = Path(params_path).read_text()
    merged = merge_text(text, overrides)
    want = _expected(yaml.safe_load(text) or {}, overrides)
    got = yaml.safe_load(merged)
    if got != want:
        raise ProfileError("the merged params.yaml does not read back as the merge (a value params.yaml writes "
                           "over several lines in an unusual way?); nothing written")
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        fh.write(merged)
    try:
        load_params(fh.name)  # strict: unknown keys, wrong types
    finally:
        os.unlink(fh.name)
    if out_path is not None:
        out = Path(out_path)
        tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
        tmp.write_text(merged)
        os.replace(tmp, out)
    return merged


def profile_overrides(profile_path: str | Path | None, weights_root: str | Path | None = None,
                      sets: Iterable[str] = ()) -> dict[str, Any]:
    """The dotted overrides of a profile (weights resolved under `weights_root`, else the
    profile's own `weights_root`, else `weights`), then `--set` items on top."""
    overrides: dict[str, Any] = {}
    if profile_path is not None:
        profile = load_profile(profile_path)
        root = weights_root or profile.get("weights_root") or "weights"
        overrides = resolve_weights(flatten(profile), root)
    overrides.update(parse_sets(sets))
    return overrides
