"""The dataset card of a release: `README.md` in the release folder, with pose and expression
histograms as PNG pictures beside it. Everything on it is computed from the released sets'
meta.json records, the per-split `index.json` and `sets.parquet`, so the card always describes
the shards next to it (and is rewritten by `piq release remove`).

The YAML front matter follows the Hugging Face Hub's dataset card conventions: `configs` names
each non-empty split's tars as its `data_files`, so `datasets.load_dataset(<folder>)` and the
Hub's viewer read the WebDataset shards and nothing else (not index.json or *.stats.json).
The sections are those a face dataset needs (personal and biometric data, consent, source
licences, intended and out-of-scope use, limitations and bias, removal, citation)."""
from __future__ import annotations

from collections import Counter
import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import yaml  # noqa: E402

from pipeline.labels import LABEL_NAMES  # noqa: E402
from pipeline.release.splits import SPLITS  # noqa: E402
from pipeline.engine.outdir import atomic_write_bytes  # noqa: E402

POSE = ("yaw", "pitch", "roll")
EXPRESSION = ("mouth_open", "smile", "eye_open", "brow_raise")


def _histograms(frame: pd.DataFrame, columns: tuple[str, ...], unit: str, path: Path) -> None:
    fig, axes = plt.subplots(1, len(columns), figsize=(4 * len(columns), 3.2), squeeze=False)
    for ax, col in zip(axes[0], columns):
        values = pd.to_numeric(frame[col], errors="coerce") if col in frame else pd.Series(dtype=float)
        drawn = False
        for split in SPLITS:
            v = values[frame["split"] == split].dropna() if len(frame) else values
            if len(v):
                ax.hist(v, bins=30, histtype="step", linewidth=1.5, label=f"{split} ({len(v)})")
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes)
        ax.set_title(col)
        ax.set_xlabel(unit)
        if drawn:
            ax.legend(fontsize=7)
    axes[0][0].set_ylabel("images")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=90, metadata={"Software": None})
    plt.close(fig)
    atomic_write_bytes(path, tmp.read_bytes())
    tmp.unlink()


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# Hub licence identifiers a clip's `license` may already be written as (lower-cased)
HUB_LICENSES = frozenset({"cc0-1.0", "cc-by-4.0", "cc-by-sa-4.0", "cc-by-nc-4.0", "cc-by-nc-sa-4.0", "cc-by-nd-4.0",
                          "cc-by-nc-nd-4.0", "cc-by-3.0", "cc-by-sa-3.0", "pddl", "odc-by", "odbl", "mit", "apache-2.0",
                          "openrail", "other", "unknown"})
CITATION = """@misc{piqperfect,
  title  = {PiQPerfect: Diffusion-based Same-Identity Facial Replacement},
  author = {Anonymous},
  note   = {Paper under double-blind review; dataset rebuilt by the PiQPerfect pipeline},
}"""


def size_category(n: int) -> str:
    """The Hub's size bucket for n examples (here: identity sets, one row each)."""
    for bound, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < bound:
            return name
    return "1M<n<10M"


def front_matter(metas: list[dict[str, Any]], splits: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The card's YAML metadata: licence, tasks, size, and one `data_files` entry per non-empty split."""
    licences = sorted({str(m.get("license") or "unknown").strip() for m in metas}) or ["unknown"]
    data: dict[str, Any] = {"pretty_name": "PiQPerfect same-identity face replacement pairs"}
    if len(licences) == 1 and licences[0].lower() in HUB_LICENSES:
        data["license"] = licences[0].lower()
    else:
        data |= {"license": "other", "license_name": "per-clip",
                 "license_details": "Each source clip keeps its own licence: " + "; ".join(licences)}
    data |= {
        "task_categories": ["image-to-image", "text-to-image", "image-segmentation"],
        "language": ["en"],
        "tags": ["faces", "face-replacement", "face-parsing", "relighting", "webdataset", "biometric", "synthetic-variants"],
        "annotations_creators": ["machine-generated"],
        "size_categories": [size_category(len(metas))],
        "configs": [{"config_name": "default", "default": True,
                     "data_files": [{"split": s, "path": f"{s}/{s}-*.tar"} for s in SPLITS
                                    if splits.get(s, {}).get("shards", 0) > 0]}],
    }
    return data


def _summary(frame: pd.DataFrame, columns: tuple[str, ...]) -> str:
    rows = []
    for split in SPLITS:
        part = frame[frame["split"] == split] if len(frame) else frame
        if not len(part):
            continue
        for col in columns:
            v = pd.to_numeric(part[col], errors="coerce").dropna() if col in part else pd.Series(dtype=float)
            rows.append([split, col, len(v), *(f"{x:.2f}" for x in (v.mean(), v.std(), v.min(), v.max()))] if len(v)
                        else [split, col, 0, "", "", "", ""])
    return _table(["split", "measure", "images", "mean", "std", "min", "max"], rows) if rows else "No image released."


def write_card(out: Path, metas: list[dict[str, Any]], splits: dict[str, dict[str, Any]], rejects: pd.DataFrame,
               empty: dict[str, str] | None = None, removals: int = 0) -> str:
    """Write README.md, pose.png and expression.png into the release folder `out`, from the
    meta.json of every released set (`metas`, each with its `split`), the splits' index
    summaries (`splits`: shards, sets, bytes), the shard stage's rejects and the empty splits'
    reasons."""
    frames = [pd.read_parquet(out / s / "sets.parquet") for s in SPLITS if (out / s / "sets.parquet").exists()]
    frames = [f for f in frames if len(f)]
    images = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", *POSE, *EXPRESSION])
    _histograms(images, POSE, "degrees", out / "pose.png")
    _histograms(images, EXPRESSION, "score", out / "expression.png")
    metas = sorted(metas, key=lambda m: m["set_id"])
    n = int(metas[0]["n_expressive"]) + 1 if metas else 0
    k = int(metas[0]["n_relit"]) if metas else 0
    empty = empty or {}
    rows = []
    for split in SPLITS:
        ids = [m for m in metas if m["split"] == split]
        sets = len(ids)
        rows.append([split, len({m["participant_id"] for m in ids}), sets, sets * n, sets * n, sets * n * k,
                     sets * n * (n - 1), splits.get(split, {}).get("shards", 0), f"{splits.get(split, {}).get('bytes', 0) / 1e6:.1f} MB"])
    contents = _table(["split", "identities", "sets", "images", "label maps", "relit images", "ordered pairs", "shards", "size"], rows)
    empties = "\n".join(f"- `{s}` is empty and not listed in `configs`: {why}." for s, why in empty.items()
                        if splits.get(s, {}).get("shards", 0) == 0)
    clips = _table(["clip (video_id)", "participant", "split", "category", "consent", "license"],
                   [[m["video_id"], m["participant_id"], m["split"], m.get("category") or "not recorded",
                     m.get("consent") or "not recorded", m.get("license") or "not recorded"] for m in metas]
                   ) if metas else "No clip released."
    licence = Counter((m.get("license") or "not recorded") for m in metas)
    consent = Counter((m.get("consent") or "not recorded") for m in metas)
    category = Counter((m.get("category") or "not recorded") for m in metas)
    backends = Counter((stage, b) for m in metas for stage, b in m["backends"].items())
    refused = rejects[rejects["stage"] == "shard"]["code"].value_counts() if len(rejects) else pd.Series(dtype=int)
    people = len({m["participant_id"] for m in metas})
    identities = f"{people} identit{'y' if people == 1 else 'ies'}"
    clip_count = f"{len(metas)} clip{'' if len(metas) == 1 else 's'}"
    labels = _table(["id", "name"], [[i, name] for i, name in enumerate(LABEL_NAMES)])
    yaml_text = yaml.safe_dump(front_matter(metas, splits), sort_keys=False, allow_unicode=True, width=1000)
    text = f"""---
{yaml_text}---

# PiQPerfect release

Made by `piq shard` (stages/shard.py) from the ingest, animate, caption, segment and relight
outputs. One WebDataset sample per identity set: the neutral face `i00` and {max(n - 1, 0)} expressive
images, a face-parsing label map for each, {k} relit variants of each, each image's caption as
text (`iNN.txt`) and a `meta.json` (schema: docs/DATA.md, "Released WebDataset shards"). Each
split folder holds `<split>-NNNNNN.tar` shards, their `.stats.json`, an `index.json` (names,
keys, counts, bytes, sha256 of every shard and sample) and `sets.parquet` (one row per image).
Check a copy with `piq shards verify <folder>`; look at it with `piq browse <folder>`.

## Contents

{contents}

Ordered pairs: each of the {n} images of a set as source with each other as target ({n * max(n - 1, 0)} per set).
{empties}

## Loading

```python
import datasets
ds = datasets.load_dataset("webdataset", data_dir="<this folder>")  # or load_dataset("<this folder>"): the configs above
row = ds["train"][0]  # "__key__", "i00.jpg" (PIL image), "i00.txt" (its caption), "i00.seg.png", "i00.r1.jpg", ..., "meta.json"
```

A sample's fields: `iNN.jpg` (RGB), `iNN.rK.jpg` (relit, RGB), `iNN.seg.png` (label map, one
channel), `iNN.txt` (caption), `meta.json` (per image: driver, pose and expression measures,
caption, label pixel counts, lights; per set: participant, clip, category, licence, consent).
With `webdataset`, decode label maps as one channel: `PIL.Image.open(io.BytesIO(raw))` keeps
them in mode `L`; `.decode("pil")` would convert them to RGB, so pass a handler first, e.g.
`wds.WebDataset(urls).decode(wds.handle_extension("seg.png", lambda b: np.asarray(PIL.Image.open(io.BytesIO(b)))), "pil")`.
In `datasets`, `i00.seg.png` is an `Image` feature: `np.asarray(row["i00.seg.png"])` is the
(H, W) array of label ids (do not `.convert("RGB")` it).

## Label maps

Pixel values are canonical face-parsing ids (`pipeline/labels.py`), the same in every sample;
the names in this order are `meta.json`'s `label_names`, ready for
`datasets.ClassLabel(names=meta["label_names"])`:

{labels}

## Splits

Identities never cross splits. Each participant id is hashed with the split seed (`shard.split_seed`)
to a number in [0, 1): below `test_ood_fraction` it is test_ood, then `test_id_fraction` test_id, else
train; adding identities never moves an existing one. A test_ood identity needs sets from at least
`ood_min_videos` different clips (an OOD pair joins two sets of one person); until it has them it is
held in test_id, never in train. A release of fewer than `shard.hold_out_min_identities` people holds
none out: all are in train.

## Personal and biometric data

Every image in this release shows a person's face ({identities}, {clip_count}):
the neutral face is a frame of their clip, the expressive and relit images are synthetic edits of
it that keep their identity. Face images, and the landmarks, boxes and label maps derived from them
(`meta.json`, `iNN.seg.png`), are biometric data when used to identify someone (GDPR art. 4(14),
art. 9). Participants appear under pseudonymous ids (`participant_id`, `video_id`); no name,
contact or demographic attribute is recorded. Keep copies access-controlled and honour removals
(below) in every copy you hold.

## Consent and source licences

How consent was obtained is recorded per clip in the metadata's `consent` column, and each clip's
licence in its `license` column (carried unchanged from the ingest metadata CSV), per released clip:

{clips}

{_table(["license", "sets"], sorted(licence.items()))}

{_table(["consent", "sets"], sorted(consent.items()))}

## Intended use

Training and evaluating same-identity face replacement (a person's face in one photo replaced by
the same person's face from another, as in PiQPerfect), and research on expression and pose
editing, face parsing and relighting of the same person.

## Out-of-scope use

Identifying, recognising, tracking or profiling the people shown (face recognition, surveillance,
re-identification across data sets); cross-identity face swaps (putting one person's face on
another: impersonation, non-consensual imagery); inferring sensitive attributes (emotion as a
state of mind, health, ethnicity, sexual orientation) from these faces; redistributing the images
outside the licences above or after a removal.

## Limitations and bias

Expressive and relit images are made by models (backends below), not photographed: they carry the
animator's, relighter's and captioner's errors, and captions are machine-written. The metadata
records no age, gender or skin type, so demographic balance is unknown and unmeasured; {people}
identit{"y" if people == 1 else "ies"} cannot represent people at large. Clip categories:

{_table(["category", "sets"], sorted(category.items()))}

Pose (degrees) and expression (face-mesh ratios) of the released images, per split:

{_summary(images, POSE + EXPRESSION)}

![pose](pose.png)

![expression](expression.png)

## Backends

Which backend made each part, per set.

{_table(["stage", "backend", "sets"], [[s, b, c] for (s, b), c in sorted(backends.items())])}

## Refused sets

{_table(["reason", "sets"], sorted(refused.items())) if len(refused) else "None."}

## Removal on request

Anyone shown here can have every image of theirs removed: write to the release's maintainers
naming your participant id or a clip (`video_id`), or the image you are in. The maintainers run
`piq release remove --participant ID --reason TEXT` (or `--video ID`): it takes the person's
sets out of every split, rewrites only the shards that held them, updates the indexes, checksums
and this card, and records the request in the repository's `removals.csv`, which the pipeline's
clip-selecting stages read, so no later rebuild brings them back. Requests in the ledger when
this release was written: {removals}. Delete removed people from any copy you hold when a new
release is published.

## Citation

```bibtex
{CITATION}
```
"""
    atomic_write_bytes(out / "README.md", text.encode())
    return text


def release_metas(out: Path) -> list[dict[str, Any]]:
    """meta.json of every set a release's indexes list, read from the tar headers and the
    meta.json members only (no image is read)."""
    from pipeline.release.reader import INDEX_FILE
    from pipeline.release.shards import read_range, tar_offsets

    metas = []
    for split in SPLITS:
        index_path = out / split / INDEX_FILE
        if not index_path.is_file():
            continue
        for entry in json.loads(index_path.read_text())["shards"]:
            tar = out / split / entry["name"]
            for key, fields in tar_offsets(tar).items():
                if key in entry["keys"] and "meta.json" in fields:
                    metas.append(json.loads(read_range(tar, *fields["meta.json"])))
    return metas
