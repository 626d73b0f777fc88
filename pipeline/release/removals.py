"""The removal ledger: people and clips taken out of the release on request, kept out of every build.

`removals.csv` (params `removals`) lives in the repository, one row per request:

    kind,id,reason,requested
    participant,p0001,asked by e-mail on 2026-12-01,2026-12-07
    video,v0004,uploaded without consent,2026-12-07

`piq release remove` appends a row and rewrites the built release; the ingest stage (which picks
the clips) and the shard stage (which picks the sets) depend on the file in dvc.yaml and drop
every clip whose participant or video is listed, so a later `dvc repro` keeps them out. A row
naming someone already absent changes nothing.
"""
from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from pathlib import Path
from typing import Any, Sequence

LEDGER_COLUMNS = ("kind", "id", "reason", "requested")
KINDS = ("participant", "video")


class LedgerError(ValueError):
    """A ledger that cannot be read as the columns above."""


@dataclasses.dataclass(frozen=True)
class Removal:
    kind: str  # participant | video
    id: str
    reason: str
    requested: str  # ISO date


@dataclasses.dataclass(frozen=True)
class Ledger:
    entries: tuple[Removal, ...] = ()

    @property
    def participants(self) -> frozenset[str]:
        return frozenset(e.id for e in self.entries if e.kind == "participant")

    @property
    def videos(self) -> frozenset[str]:
        return frozenset(e.id for e in self.entries if e.kind == "video")

    def excludes(self, participant_id: Any, video_id: Any) -> bool:
        return str(participant_id or "") in self.participants or str(video_id or "") in self.videos

    def has(self, kind: str, ident: str) -> bool:
        return ident in (self.participants if kind == "participant" else self.videos)


def read_ledger(path: str | Path | None) -> Ledger:
    """The ledger at `path` (no file, or None: nothing removed)."""
    if path is None or not Path(path).is_file():
        return Ledger()
    rows = list(csv.DictReader(io.StringIO(Path(path).read_text(encoding="utf-8"))))
    entries = []
    for line, row in enumerate(rows, start=2):
        if set(LEDGER_COLUMNS) - set(row or {}):
            raise LedgerError(f"{path}: needs the columns {list(LEDGER_COLUMNS)}")
        kind, ident = (row["kind"] or "").strip(), (row["id"] or "").strip()
        if kind not in KINDS or not ident:
            raise LedgerError(f"{path} line {line}: kind must be one of {list(KINDS)} and id non-empty, got {kind!r}, {ident!r}")
        entries.append(Removal(kind, ident, (row["reason"] or "").strip(), (row["requested"] or "").strip()))
    return Ledger(tuple(entries))


def append_entry(path: str | Path, kind: str, ident: str, reason: str, when: dt.date | None = None) -> Removal:
    """Add a request to the ledger (header written if the file is new). Written in one append."""
    entry = Removal(kind, ident, " ".join(reason.split()), (when or dt.datetime.now(dt.timezone.utc).date()).isoformat())
    path = Path(path)
    new = not path.is_file() or path.stat().st_size == 0
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if new:
        writer.writerow(LEDGER_COLUMNS)
    writer.writerow(dataclasses.astuple(entry))
    with path.open("a", encoding="utf-8") as fh:
        fh.write(buf.getvalue())
    return entry


def withhold(items: Sequence[Any], path: str | Path | None) -> list[Any]:
    """Ingest's items less the clips the ledger removes (an item's `data["row"]` is its metadata
    row, with `participant_id` and `video_id`). Items without a row are kept (refused later)."""
    ledger = read_ledger(path)
    if not ledger.entries:
        return list(items)
    def kept(item: Any) -> bool:
        row = item.data.get("row") or {}
        return not ledger.excludes(str(row.get("participant_id", "")).strip(), str(row.get("video_id", "")).strip())
    return [item for item in items if kept(item)]

