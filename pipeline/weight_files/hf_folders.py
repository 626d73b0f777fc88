"""Hugging Face model folders (diffusers and transformers): which weight files a folder holds,
whether they match the architecture its config describes, and a load that never keeps a
silently random weight.

Why this exists: the public releases come in several file layouts for one model. SDXL is most
often fetched as `*.fp16.safetensors` only (diffusers' "variant" naming), some folders mix fp16
and full-precision components, large models are sharded behind an `.index.json`, older ones
ship `pytorch_model.bin`. The libraries load each of these only when told the variant, and when
a key is renamed they do not fail: they report it and initialise that weight at random. Every
paper-model backend therefore goes through the three functions here:

- `find_weights(folder)`: the weight files of one component folder and the variant they carry,
  detected from the file names present (plain files preferred; else the one variant there).
- `inspect_folder(folder, cls)`: config and tensor names / shapes from the file headers,
  compared with the architecture built from the config on the meta device (no weight is read,
  nothing is allocated). Used by `piq models check` and before a load.
- `load_checked(cls, folder)`: `from_pretrained` on the CPU with the detected variant, refusing
  missing, mis-shaped or unreadable weights with `WeightsFormatError` naming the file.
"""
from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any, Sequence

from pipeline.weight_files.checks import WeightsFormatError, compare_shapes, tensor_shapes

_STEMS = r"diffusion_pytorch_model|model|pytorch_model"
_WEIGHT_RE = re.compile(rf"^(?P<stem>{_STEMS})(?:\.(?P<variant>[A-Za-z0-9_]+))?(?:-\d{{5}}-of-\d{{5}})?\.(?P<ext>safetensors|bin)$")
_INDEX_RE = re.compile(rf"^(?P<stem>{_STEMS})\.(?P<ext>safetensors|bin)\.index(?:\.(?P<variant>[A-Za-z0-9_]+))?\.json$")

DIFFUSERS_FORMATS = ("diffusers component folder: config.json + diffusion_pytorch_model.safetensors, "
                     "diffusion_pytorch_model.fp16.safetensors (variant), .bin, or shards with their .index.json",)
TRANSFORMERS_FORMATS = ("transformers model folder: config.json + model.safetensors, model.fp16.safetensors "
                        "(variant), pytorch_model.bin, or shards with model.safetensors.index.json",)


@dataclasses.dataclass(frozen=True)
class WeightsSet:
    """The weight files of one component folder that a load would read."""

    folder: Path
    variant: str | None          # e.g. "fp16"; None for plain file names
    files: tuple[Path, ...]      # one file, or every shard an index names
    index: Path | None = None

    def describe(self) -> str:
        names = self.files[0].name if len(self.files) == 1 else f"{len(self.files)} shards ({self.index.name})"
        return names + (f" ({self.variant} variant)" if self.variant else "")


def find_weights(folder: str | Path, accepted: Sequence[str] = DIFFUSERS_FORMATS) -> WeightsSet:
    """The weights `from_pretrained` should read in `folder`, with their variant.

    Plain names win when present (full precision, the libraries' default); otherwise the single
    variant present is used ("fp16" first if there are several). An index whose shards are not
    all there is an error naming the first missing shard."""
    folder = Path(folder)
    if not folder.is_dir():
        raise WeightsFormatError(folder, accepted, "no such folder")
    singles: dict[tuple[str | None, str], list[Path]] = {}
    indexes: dict[tuple[str | None, str], Path] = {}
    for path in sorted(folder.iterdir()):
        if m := _INDEX_RE.match(path.name):
            indexes[(m["variant"], m["ext"])] = path
        elif m := _WEIGHT_RE.match(path.name):
            singles.setdefault((m["variant"], m["ext"]), []).append(path)
    keys = set(singles) | set(indexes)
    if not keys:
        listing = ", ".join(sorted(p.name for p in folder.iterdir())) or "empty folder"
        raise WeightsFormatError(folder, accepted, f"no weights file (found: {listing})")
    variants = {v for v, _ in keys}
    if None in variants:
        variant = None
    else:
        variant = "fp16" if "fp16" in variants else sorted(variants)[0]
    ext = "safetensors" if (variant, "safetensors") in keys else "bin"
    index = indexes.get((variant, ext))
    if index is None:
        return WeightsSet(folder, variant, (singles[(variant, ext)][0],))
    try:
        weight_map = json.loads(index.read_text())["weight_map"]
    except (ValueError, KeyError, TypeError) as exc:
        raise WeightsFormatError(index, accepted, f"is not a weights index ({type(exc).__name__}: {exc})") from exc
    shards = tuple(folder / name for name in sorted(set(weight_map.values())))
    absent = [s.name for s in shards if not s.is_file()]
    if absent:
        raise WeightsFormatError(index, accepted, f"names shards that are missing: {', '.join(absent[:3])}")
    return WeightsSet(folder, variant, shards, index)


def read_config(folder: str | Path, accepted: Sequence[str], name: str = "config.json") -> dict[str, Any]:
    """A component's JSON config; absent or unparsable: `WeightsFormatError` naming it."""
    path = Path(folder) / name
    if not path.is_file():
        raise WeightsFormatError(path, accepted, "missing")
    try:
        data = json.loads(path.read_text())
    except ValueError as exc:
        raise WeightsFormatError(path, accepted, f"is not valid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise WeightsFormatError(path, accepted, f"holds a {type(data).__name__}, not a JSON object")
    return data


def meta_model(cls: type, folder: str | Path, accepted: Sequence[str]):
    """`cls` built from the folder's config on the meta device: the architecture, no memory."""
    import torch

    config = read_config(folder, accepted)
    try:
        with torch.device("meta"):
            if hasattr(cls, "from_config"):           # diffusers ModelMixin
                return cls.from_config(config)
            return cls._from_config(cls.config_class.from_pretrained(str(folder), local_files_only=True))
    except WeightsFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to build the architecture is a config problem
        raise WeightsFormatError(Path(folder) / "config.json", accepted,
                                 f"does not describe a {cls.__name__} ({type(exc).__name__}: {exc})") from exc


def _published_keys_to_model(model, keys: list[str]) -> list[str]:
    """Checkpoint key names as the library renames them at load time (transformers 5 renames
    e.g. LLaVA's `language_model.model.*` to `model.language_model.*`; diffusers renames the
    old VAE attention names `query/key/value/proj_attn`)."""
    sd_keys = set(model.state_dict())
    if hasattr(model, "from_config"):  # diffusers
        old = {".query.": ".to_q.", ".key.": ".to_k.", ".value.": ".to_v.", ".proj_attn.": ".to_out.0."}
        out = []
        for key in keys:
            if key not in sd_keys:
                for a, b in old.items():
                    key = key.replace(a, b)
            out.append(key)
        return out
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping
        from transformers.core_model_loading import WeightConverter, rename_source_key

        transforms = get_model_conversion_mapping(model)
        renamings = [t for t in transforms if not isinstance(t, WeightConverter)]
        converters = [t for t in transforms if isinstance(t, WeightConverter)]
        meta_sd = model.state_dict()
        return [rename_source_key(k, renamings, converters, model.base_model_prefix, meta_sd)[0] for k in keys]
    except ImportError:  # transformers 4.x: the class's own regex renames, then its base-model prefix
        mapping = getattr(model, "_checkpoint_conversion_mapping", None) or {}
        prefix = getattr(model, "base_model_prefix", "")
        out = []
        for key in keys:
            for pattern, replacement in mapping.items():
                key = re.sub(pattern, replacement, key)
            if key not in sd_keys and prefix and f"{prefix}.{key}" in sd_keys:
                key = f"{prefix}.{key}"
            elif key not in sd_keys and prefix and key.startswith(prefix + ".") and key[len(prefix) + 1:] in sd_keys:
                key = key[len(prefix) + 1:]
            out.append(key)
        return out


def _tolerated(model) -> tuple[dict[str, set[str]], list[re.Pattern]]:
    """Tied weights (model keys sharing one tensor: a checkpoint needs only one of them) and
    checkpoint keys a model may carry unused (non-persistent buffers such as CLIP's
    `position_ids`, the class's own ignore patterns)."""
    by_tensor: dict[int, set[str]] = {}
    state = model.state_dict(keep_vars=True)
    for key, value in state.items():
        by_tensor.setdefault(id(value), set()).add(key)
    tied = {key: group - {key} for group in by_tensor.values() if len(group) > 1 for key in group}
    patterns = [re.compile(p) for p in (getattr(model, "_keys_to_ignore_on_load_unexpected", None) or [])]
    patterns += [re.compile(rf"(^|\\.){re.escape(name.split('.')[-1])}$") for name, _ in model.named_buffers()
                 if name not in state]
    return tied, patterns


def inspect_folder(folder: str | Path, cls: type, accepted: Sequence[str] | None = None) -> str:
    """Check one component folder without reading a weight: config builds `cls`, the weight
    files are readable, and their tensor names and shapes are those of the architecture.
    Returns a one-line summary; raises `WeightsFormatError` naming the file and the mismatch."""
    folder = Path(folder)
    accepted = accepted or (DIFFUSERS_FORMATS if hasattr(cls, "from_config") else TRANSFORMERS_FORMATS)
    model = meta_model(cls, folder, accepted)
    weights = find_weights(folder, accepted)
    found: dict[str, tuple[int, ...]] = {}
    for path in weights.files:
        found.update(tensor_shapes(path, accepted))
    renamed = dict(zip(_published_keys_to_model(model, list(found)), found.values()))
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    tied, ignorable = _tolerated(model)
    renamed = {k: s for k, s in renamed.items() if k in expected or not any(p.search(k) for p in ignorable)}
    for key, others in tied.items():
        if key not in renamed and others & set(renamed):
            expected.pop(key)
    # 1x1 convolutions stored for linears (old VAE attention) are the same weights
    renamed = {k: (expected[k] if k in expected and tuple(x for x in s if x != 1) == tuple(x for x in expected[k] if x != 1)
                   else s) for k, s in renamed.items()}
    target = weights.files[0] if len(weights.files) == 1 else weights.index
    unused = sorted(k for k in renamed if k not in expected)
    if any(k not in renamed or tuple(renamed[k]) != tuple(v) for k, v in expected.items()):
        compare_shapes(target, renamed, expected, accepted)  # names missing, mis-shaped and unused tensors
    note = f"; {len(unused)} unused tensor(s) the loader ignores: {', '.join(unused[:3])}" if unused else ""
    return f"{weights.describe()}, {len(expected)} tensors match {cls.__name__}{note}"


def load_checked(cls: type, folder: str | Path, accepted: Sequence[str] | None = None, dtype: Any = None, **kwargs):
    """`cls.from_pretrained(folder)` on the CPU, offline, with the variant the files carry, in
    `dtype` (None: the library's default). A missing or mis-shaped weight, or an unreadable
    file, is a `WeightsFormatError` naming the file: the libraries would otherwise initialise
    that weight at random and carry on."""
    folder = Path(folder)
    diffusers = hasattr(cls, "from_config")
    accepted = accepted or (DIFFUSERS_FORMATS if diffusers else TRANSFORMERS_FORMATS)
    if dtype is not None:  # diffusers calls it torch_dtype, transformers 5 dtype
        kwargs["torch_dtype" if diffusers else "dtype"] = dtype
    weights = find_weights(folder, accepted)
    target = weights.files[0] if len(weights.files) == 1 else weights.index
    try:
        model, info = cls.from_pretrained(str(folder), local_files_only=True, variant=weights.variant,
                                          output_loading_info=True, **kwargs)
    except WeightsFormatError:
        raise
    except Exception as exc:  # noqa: BLE001 - every reader / loader failure is a problem of these files
        try:  # the header-level inspection names the tensor (a size mismatch error often does not)
            inspect_folder(folder, cls, accepted)
        except WeightsFormatError as precise:
            raise precise from exc
        raise WeightsFormatError(target, accepted, f"could not be loaded ({type(exc).__name__}: {str(exc)[:300]})") from exc
    problems = []
    for label, key in (("missing", "missing_keys"), ("wrong shape", "mismatched_keys")):
        items = sorted(str(x) for x in info.get(key) or ())
        if items:
            problems.append(f"{label}: {', '.join(items[:5])}" + (f" and {len(items) - 5} more" if len(items) > 5 else ""))
    if info.get("error_msgs"):
        problems.append("; ".join(map(str, info["error_msgs"]))[:300])
    if problems:
        raise WeightsFormatError(target, accepted, "; ".join(problems) + f" (for {cls.__name__})")
    return model


def use_plain_names(folder: str | Path) -> None:
    """Rename a component folder's variant-named weight files (and index) to the plain names,
    bytes unchanged, when it holds no plain ones: a folder we write (the exported pipeline)
    then loads with a plain `from_pretrained`, whichever variant its frozen parts came in. The
    tensors keep their dtype; the loaders cast to the dtype asked for."""
    folder = Path(folder)
    weights = find_weights(folder)
    if weights.variant is None:
        return
    tag = f".{weights.variant}"
    renames = {p: p.with_name(p.name.replace(tag, "", 1)) for p in weights.files}
    if weights.index is not None:
        data = json.loads(weights.index.read_text())
        data["weight_map"] = {k: v.replace(tag, "", 1) for k, v in data["weight_map"].items()}
        weights.index.with_name(weights.index.name.replace(f".index{tag}.json", ".index.json")).write_text(json.dumps(data, indent=2))
        weights.index.unlink()
    for old, new in renames.items():
        old.rename(new)
