"""Test sets (paper 4.2) as folders of triplets, built once from the release shards.

A test set is a flat folder of files `<pair_id>.<role>.png` and an `index.json`:

- `source`: the image whose face is replaced (model input, background kept);
- `driving`: the full image the driving face comes from (baselines align and paste from it);
- `driving_input`: the model's driving input (inner face, masked and distorted as in training);
  optional for user folders, made from `driving` with a face-mesh inner-face mask when absent;
- `target`: what the output is measured against (identity, pose / expression / gaze, pixels,
  FID). replacement-ID: the ground truth (the driving face's own image, the same set as the
  source); replacement-OOD: the driving image (another set of the same identity: there is no
  ground truth, as in the paper's OOD tables, whose PSNR of ~12 dB compares across scenes).
  Optional for user folders; defaults to `driving`.

The same layout is accepted for outside data (FFHQ or VoxCeleb crops): drop files named like
that into a folder and list it in `evaluate.user_triplets`.

Shards are read through `pipeline.release.reader.iter_sets` (the shared webdataset reader). Test sets
use the shards' test identities only: `evaluate.id_shards` and `evaluate.ood_shards` name the
release's `test_id` and `test_ood` splits (identity-disjoint from `train`, pipeline/release/splits.py).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import cv2
import numpy as np

from pipeline.config.data import DataParams
from pipeline.faces.driving_image import driving_image
from pipeline.media.images import read_rgb
from pipeline.faces.crop import resize_square

if TYPE_CHECKING:  # pipeline.release.shards / pipeline.release.reader import webdataset: only where shards are read
    from pipeline.release.shards import SetSample

ROLES = ("source", "driving", "driving_input", "target")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp")


# --- shard reading (through the shared release reader) -----------------------------------------

def finished_splits(paths: str | Path | Sequence[str | Path]) -> list[str]:
    """Release splits that hold finished shards (a missing or empty split is skipped: on the
    sample, every test identity may fall in one split)."""
    from pipeline.release.shards import finished_shards

    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    out = []
    for p in map(str, items):
        local = Path(p)
        if "://" not in p and not p.startswith("pipe:") and (not local.exists() or (local.is_dir() and not finished_shards(local))):
            continue
        out.append(p)
    return out


def iter_test_sets(paths: str | Path | Sequence[str | Path], keys: set[str] | None = None) -> Iterator["SetSample"]:
    """Identity sets of one or more release splits (folders, index.json files or shard URLs;
    see pipeline/release/reader.py), in index order. Images decode lazily, on first access; with
    `keys` only those sets are yielded."""
    from pipeline.release.reader import iter_sets

    for source in finished_splits(paths):
        for sample in iter_sets(source):
            if keys is None or sample.key in keys:
                yield sample


def iter_test_meta(paths: str | Path | Sequence[str | Path]) -> Iterator[tuple[str, dict]]:
    """(set key, meta.json) of every set, without decoding images."""
    for sample in iter_test_sets(paths):
        yield sample.key, sample.meta


# --- pair plans ------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class PairPlan:
    """Which images make one test pair. `target_set` == `source_set` for replacement-ID."""

    pair_id: str
    source_set: str
    source_index: str
    target_set: str
    target_index: str
    seed: int


def plan_pairs(meta: Sequence[tuple[str, dict]], kind: str, num_pairs: int, seed: int) -> list[PairPlan]:
    """Seeded pair plans over the test sets, cycling through them in a shuffled order so the
    pairs spread over every set before any set repeats.

    id: source and target from the same set (neutral / expressive moments apart), source !=
    target. ood: the target from another set of the same participant made from another clip
    (other background and lighting; pipeline/release/splits.py keeps such identities in test_ood);
    identities without two clips are skipped.
    """
    if kind not in ("id", "ood"):
        raise ValueError(f"test set kind {kind!r}: expected 'id' or 'ood'")
    indices = {k: [img["index"] for img in m["images"]] for k, m in meta}
    by_person: dict[str, list[tuple[str, str]]] = {}
    for k, m in meta:
        by_person.setdefault(str(m["participant_id"]), []).append((k, str(m.get("video_id"))))
    others = {k: [o for o, oc in group if oc != c] for group in by_person.values() for k, c in group}
    if kind == "id":
        eligible = [k for k, _ in meta if len(indices[k]) >= 2]
    else:
        eligible = [k for k, _ in meta if others[k]]
    if not eligible:
        raise ValueError(f"no set can make a replacement-{kind.upper()} pair "
                         f"({'two images per set' if kind == 'id' else 'two clips of one identity'} needed)")
    rng = np.random.default_rng([seed, 0 if kind == "id" else 1])
    order = [eligible[i] for i in rng.permutation(len(eligible))]
    plans = []
    for n in range(num_pairs):
        src_set = order[n % len(order)]
        r = np.random.default_rng([seed, 0 if kind == "id" else 1, n])
        src_idx = indices[src_set][int(r.integers(len(indices[src_set])))]
        if kind == "id":
            options = [i for i in indices[src_set] if i != src_idx]
            tgt_set = src_set
        else:
            tgt_set = others[src_set][int(r.integers(len(others[src_set])))]
            options = indices[tgt_set]
        tgt_idx = options[int(r.integers(len(options)))]
        plans.append(PairPlan(f"{kind}{n:05d}", src_set, src_idx, tgt_set, tgt_idx, int(r.integers(2**31))))
    return plans


def write_image(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    if not cv2.imwrite(str(tmp), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write {path}")
    tmp.replace(path)


read_image = read_rgb  # the project's one image reader (pipeline/media/images.py)


def build_test_set(shards: str | Path | Sequence[str | Path], out_dir: str | Path, kind: str, num_pairs: int, seed: int,
                   data: DataParams, resolution: int) -> Path:
    """Materialise a replacement-ID / -OOD test set as a triplet folder. Done once: a folder
    whose index.json matches the plan is kept. The driving input is made exactly as in
    training (pipeline.faces.driving_image.driving_image with the data params), from a generator seeded by
    the pair, so a test set is a pure function of (shards, kind, num_pairs, seed, params)."""
    out_dir = Path(out_dir)
    meta = list(iter_test_meta(shards))
    if not meta:
        raise FileNotFoundError(f"no finished shards in {shards}")
    plans = plan_pairs(meta, kind, num_pairs, seed)
    fingerprint = {"kind": kind, "num_pairs": num_pairs, "seed": seed, "resolution": resolution,
                   "data": dataclasses.asdict(data), "sets": sorted(k for k, _ in meta)}
    fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back (tuples -> lists)
    index_path = out_dir / "index.json"
    if index_path.exists() and json.loads(index_path.read_text()).get("fingerprint") == fingerprint:
        return out_dir
    by_set: dict[str, list[tuple[PairPlan, str]]] = {}
    for p in plans:
        by_set.setdefault(p.source_set, []).append((p, "source"))
        by_set.setdefault(p.target_set, []).append((p, "target"))
    for sample in iter_test_sets(shards, set(by_set)):
        for plan, role in by_set[sample.key]:
            if role == "source":
                write_image(out_dir / f"{plan.pair_id}.source.png", resize_square(sample.images[plan.source_index], resolution))
                continue
            idx = plan.target_index
            rng = np.random.default_rng(plan.seed)
            drv, _ = driving_image(sample.images[idx], sample.relit.get(idx, []), sample.labels[idx], data, rng)
            target = resize_square(sample.images[idx], resolution)
            write_image(out_dir / f"{plan.pair_id}.target.png", target)
            write_image(out_dir / f"{plan.pair_id}.driving.png", target)
            write_image(out_dir / f"{plan.pair_id}.driving_input.png", resize_square(drv, resolution))
    captions = {k: {img["index"]: img.get("caption", "") for img in m["images"]} for k, m in meta}
    pairs = [dict(dataclasses.asdict(p), caption=captions[p.target_set][p.target_index]) for p in plans]
    index_path.parent.mkdir(parents=True, exist_ok=True)
    index_path.write_text(json.dumps({"fingerprint": fingerprint, "pairs": pairs}, indent=1))
    return out_dir


# --- reading a triplet folder ----------------------------------------------------------------

@dataclasses.dataclass
class Triplet:
    """One test pair, images RGB uint8 at the test set's size."""

    pair_id: str
    source: np.ndarray
    driving: np.ndarray
    driving_input: np.ndarray
    target: np.ndarray
    caption: str = ""


def _find(folder: Path, pair_id: str, role: str) -> Path | None:
    for ext in IMAGE_EXTS:
        p = folder / f"{pair_id}.{role}{ext}"
        if p.is_file():
            return p
    return None


def list_pairs(folder: str | Path) -> list[str]:
    """Pair ids of a triplet folder: every `<id>.source.<ext>` that has a `<id>.driving.<ext>`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no test-set folder {folder}")
    ids = sorted({p.name.split(".")[0] for p in folder.iterdir() if p.name.split(".")[1:2] == ["source"]})
    return [i for i in ids if _find(folder, i, "driving") is not None]


def inner_face_input(rgb: np.ndarray) -> np.ndarray:
    """A model driving input for user data without label maps: the face-mesh oval, eroded a
    little, everything else zero (the training input is the parsed inner face)."""
    from pipeline.faces.mesh_masks import face_mask

    mask = face_mask(rgb, erode_frac=0.05)
    return rgb * mask[..., None].astype(np.uint8) if mask is not None else np.zeros_like(rgb)


def iter_triplets(folder: str | Path, limit: int | None = None) -> Iterator[Triplet]:
    folder = Path(folder)
    captions = {}
    index = folder / "index.json"
    if index.exists():
        captions = {p["pair_id"]: p.get("caption", "") for p in json.loads(index.read_text())["pairs"]}
    for pair_id in list_pairs(folder)[:limit]:
        source = read_image(_find(folder, pair_id, "source"))
        driving = read_image(_find(folder, pair_id, "driving"))
        size = source.shape[0]
        p_in, p_tgt = _find(folder, pair_id, "driving_input"), _find(folder, pair_id, "target")
        drv_in = read_image(p_in) if p_in else inner_face_input(driving)
        target = read_image(p_tgt) if p_tgt else driving
        yield Triplet(pair_id, source, resize_square(driving, size), resize_square(drv_in, size), resize_square(target, size),
                      captions.get(pair_id, ""))


def batched(items: Iterable, n: int) -> Iterator[list]:
    batch = []
    for it in items:
        batch.append(it)
        if len(batch) == n:
            yield batch
            batch = []
    if batch:
        yield batch
