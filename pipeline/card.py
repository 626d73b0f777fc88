"""The dataset card of a release: `README.md` in the release folder, with pose and expression
histograms as PNG pictures beside it. Everything on it is computed from the shard plan and the
per-split `sets.parquet`, so the card always describes the shards next to it."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from pipeline.splits import SPLITS  # noqa: E402
from pipeline.state import atomic_write_bytes  # noqa: E402

if TYPE_CHECKING:
    from stages.shard import ReleasePlan

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


def write_card(out: Path, plan: "ReleasePlan", splits: dict[str, dict[str, Any]], rejects: pd.DataFrame) -> str:
    """Write README.md, pose.png and expression.png into the release folder `out`."""
    frames = [pd.read_parquet(out / s / "sets.parquet") for s in SPLITS if (out / s / "sets.parquet").exists()]
    images = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["split", *POSE, *EXPRESSION])
    _histograms(images, POSE, "degrees", out / "pose.png")
    _histograms(images, EXPRESSION, "score", out / "expression.png")
    n, k = plan.n_images, plan.n_relit
    released = {key for split in SPLITS for key in (images[images["split"] == split]["set_id"].unique() if len(images) else [])}
    metas = [plan.sets[s]["meta"] for s in sorted(released)]
    rows = []
    for split in SPLITS:
        ids = [m for m in metas if m["split"] == split]
        sets = len(ids)
        rows.append([split, len({m["participant_id"] for m in ids}), sets, sets * n, sets * n, sets * n * k,
                     sets * n * (n - 1), splits.get(split, {}).get("shards", 0), f"{splits.get(split, {}).get('bytes', 0) / 1e6:.1f} MB"])
    contents = _table(["split", "identities", "sets", "images", "label maps", "relit images", "ordered pairs", "shards", "size"], rows)
    licence = Counter((m.get("license") or "not recorded") for m in metas)
    consent = Counter((m.get("consent") or "not recorded") for m in metas)
    backends = Counter((stage, b) for m in metas for stage, b in m["backends"].items())
    refused = rejects[rejects["stage"] == "shard"]["code"].value_counts() if len(rejects) else pd.Series(dtype=int)
    text = f"""# PiQPerfect release

Made by `piq shard` (stages/shard.py) from the ingest, animate, caption, segment and relight
outputs. One WebDataset sample per identity set: the neutral face `i00` and {n - 1} expressive
images, a face-parsing label map for each, {k} relit variants of each, captions and a
`meta.json` (schema: docs/DATA.md, "Released WebDataset shards"). Each split folder holds
`<split>-NNNNNN.tar` shards, their `.stats.json`, an `index.json` (names, keys, counts, bytes,
sha256 of every shard and sample) and `sets.parquet` (one row per image). Check a copy with
`piq shards verify <folder>`; look at it with `piq browse <folder>`.

## Contents

{contents}

Ordered pairs: each of the {n} images of a set as source with each other as target ({n * (n - 1)} per set).

## Splits

Identities never cross splits. Each participant id is hashed with the split seed (`shard.split_seed`)
to a number in [0, 1): below `test_ood_fraction` it is test_ood, then `test_id_fraction` test_id, else
train; adding identities never moves an existing one. A test_ood identity needs sets from at least
`ood_min_videos` different clips (an OOD pair joins two sets of one person); until it has them it is
held in test_id, never in train.

## Pose and expression

Over every released image, per split (values from the animate manifest; blank where a backend did not record them).

![pose](pose.png)

![expression](expression.png)

## Licence and consent

Carried from the ingest metadata (`license`, `consent` columns of the metadata CSV), per set.

{_table(["license", "sets"], sorted(licence.items()))}

{_table(["consent", "sets"], sorted(consent.items()))}

## Backends

Which backend made each part, per set.

{_table(["stage", "backend", "sets"], [[s, b, c] for (s, b), c in sorted(backends.items())])}

## Refused sets

{_table(["reason", "sets"], sorted(refused.items())) if len(refused) else "None."}
"""
    atomic_write_bytes(out / "README.md", text.encode())
    return text
