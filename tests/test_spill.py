"""External sorting (pipeline/engine/spill.py) and the runner's state at scale, shrunk: with runs, merge
steps, row groups, manifest batches and item chunks of a few dozen rows, a few hundred items go
through every spilled path (several runs, a merge of merges, groups split across steps, a
manifest of several batches) and must give what the in-memory path gives."""
from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import pipeline.engine.item_feed
import pipeline.engine.manifest
import pipeline.engine.spill
import pipeline.engine.state
from pipeline.config.runner import RunnerParams
from pipeline.engine.runner import Runner
from pipeline.engine.spill import ExternalSort, dedup_last, rebatch
from pipeline.engine.stage import Item
from pipeline.engine.state import PARTS_DIR, RECORDS_TABLE, StageState
from tests.fixtures.toy_stages import CALL_LOG_ENV, SquareStage


def shrink(monkeypatch) -> None:
    """Every bound of the driver's memory set to a few dozen rows."""
    monkeypatch.setattr(pipeline.engine.spill, "RUN_ROWS", 37)
    monkeypatch.setattr(pipeline.engine.spill, "MERGE_ROWS", 20)
    monkeypatch.setattr(pipeline.engine.spill, "SPILL_CHUNK", 8)
    monkeypatch.setattr(pipeline.engine.spill, "MAX_FANIN", 3)
    monkeypatch.setattr(pipeline.engine.state, "RECORDS_ROW_GROUP", 25)
    monkeypatch.setattr(pipeline.engine.manifest, "BATCH", 30)
    monkeypatch.setattr(pipeline.engine.item_feed, "CHUNK", 16)


@pytest.fixture
def tiny(monkeypatch) -> None:
    shrink(monkeypatch)


def test_external_sort_merges_many_runs_and_dedup_picks_each_keys_winner(tiny) -> None:
    rng = random.Random(0)
    keys = [rng.randrange(60) for _ in range(500)]
    table = pa.table({"k": [f"{k:03d}" for k in keys], "order": list(range(500))})
    with ExternalSort([("k", "ascending"), ("order", "ascending")]) as sorter:
        for t in rebatch([table], 23):
            sorter.add(t)
        assert len(sorter._runs) > pipeline.engine.spill.MAX_FANIN  # a merge of merges
        out = pa.concat_tables(list(sorter.sorted()))
        again = pa.concat_tables(list(sorter.sorted()))
    expected = table.take(pc.sort_indices(table, sort_keys=[("k", "ascending"), ("order", "ascending")]))
    # sorted by the merge key; rows of one key may be split over two merge steps, so compare
    # them as sets, and let dedup_last (which sorts a split group together) pick the winner
    assert out["k"].to_pylist() == expected["k"].to_pylist() == again["k"].to_pylist()
    assert sorted(zip(out["k"].to_pylist(), out["order"].to_pylist())) == \
        list(zip(expected["k"].to_pylist(), expected["order"].to_pylist()))
    # of each key, the last row by the sort keys: the same as a whole-table group-by
    last = pa.concat_tables(list(dedup_last((pa.Table.from_batches([b]) for b in out.to_batches(7)), "k",
                                            sorter.sort)))
    assert last["k"].to_pylist() == sorted(set(last["k"].to_pylist()))
    best = {}
    for k, o in zip(expected["k"].to_pylist(), expected["order"].to_pylist()):
        best[k] = o
    assert dict(zip(last["k"].to_pylist(), last["order"].to_pylist())) == best


def test_dedup_keeps_the_winner_of_a_group_split_across_tables() -> None:
    sort_keys = [("k", "ascending"), ("w", "ascending")]
    sorter = ExternalSort(sort_keys)
    first = pa.table({"k": ["a", "b"], "w": [0, 9]})  # b's best row comes first ...
    second = pa.table({"k": ["b", "c"], "w": [1, 0]})  # ... and a worse one in the next table
    out = pa.concat_tables(list(dedup_last([first, second], "k", sorter.sort)))
    assert out.to_pydict() == {"k": ["a", "b", "c"], "w": [0, 9, 0]}


def shuffled_items(n: int, seed: int = 1) -> list[Item]:
    work = [Item(f"i{k:04d}", {"value": -k if k % 41 == 3 else k}) for k in range(n)]
    random.Random(seed).shuffle(work)
    return work


def run(out: Path, work: list[Item], **kw) -> object:
    params = RunnerParams(workers=0, retries=1, progress=False, reports_dir="", items_per_task=kw.pop("per_task", 7))
    return Runner(params, seed=7).run(SquareStage(**kw), work, out)


def test_spilled_consolidation_matches_the_in_memory_one(tmp_path: Path, monkeypatch) -> None:
    work = shuffled_items(400) + [Item("broken9", {"value": 1})]
    run(tmp_path / "whole", work)  # every bound far above 400 items: nothing spilled
    with monkeypatch.context() as m:
        shrink(m)
        run(tmp_path / "spilled", work)
        assert pq.ParquetFile(tmp_path / "spilled" / RECORDS_TABLE).num_row_groups == 17
    for name in ("manifest.parquet", "rejects.parquet"):
        a, b = pd.read_parquet(tmp_path / "whole" / name), pd.read_parquet(tmp_path / "spilled" / name)
        pd.testing.assert_frame_equal(a, b)
    manifest = pd.read_parquet(tmp_path / "spilled" / "manifest.parquet")
    assert manifest["item_id"].tolist() == [i.id for i in work if i.data["value"] >= 0 and i.id != "broken9"]
    assert (tmp_path / "whole" / "stats.json").read_bytes() == (tmp_path / "spilled" / "stats.json").read_bytes()
    assert StageState(tmp_path / "whole").table().equals(StageState(tmp_path / "spilled").table())


def test_resume_after_a_crash_redoes_exactly_the_unrecorded_items(tiny, tmp_path: Path, monkeypatch) -> None:
    """What kill -9 leaves (a compacted table from an earlier run, parts of the killed one, some
    with a record twice, no consolidated tables), resumed with items in another order: the
    parts are compacted at open, only unrecorded items run, duplicates count once."""
    work = shuffled_items(300)
    run(tmp_path, work[:120])  # an earlier, finished run over part of the items
    records = StageState(tmp_path).load()
    more = shuffled_items(300, seed=2)
    run(tmp_path / "scratch", [i for i in more if i.id not in records][:90])
    extra = StageState(tmp_path / "scratch").load()
    (tmp_path / PARTS_DIR).mkdir(parents=True)
    lines = [json.dumps(r) for r in extra.values()]
    for k in range(0, len(lines), 13):  # the killed run's parts; one record written twice
        (tmp_path / PARTS_DIR / f"w{k:04d}-000000.jsonl").write_text("\n".join(lines[k : k + 13] + lines[k : k + 1]) + "\n")
    for name in ("stats.json", "manifest.parquet", "_state/consolidated.json"):
        (tmp_path / name).unlink()
    log = tmp_path / "calls.log"
    monkeypatch.setenv(CALL_LOG_ENV, str(log))
    summary = run(tmp_path, more)
    done_before = set(records) | set(extra)
    redone = log.read_text().split()
    retryable = {i for i, r in {**records, **extra}.items() if r["code"] == "stage_error"}
    assert sorted(redone) == sorted({i.id for i in more} - done_before | retryable)
    assert summary.skipped == len(done_before - retryable)
    manifest = pd.read_parquet(tmp_path / "manifest.parquet")
    assert manifest["item_id"].tolist() == [i.id for i in more if i.data["value"] >= 0]
    assert json.loads((tmp_path / "stats.json").read_text())["complete"]
    assert not (tmp_path / PARTS_DIR).exists()
    log.unlink()
    assert run(tmp_path, list(reversed(more))).processed == 0  # a finished stage, in any order
    assert not log.exists()


def test_duplicates_across_chunks_are_refused(tiny, tmp_path: Path) -> None:
    work = shuffled_items(100)
    with pytest.raises(ValueError, match="duplicate item ids \\['i0007'\\]"):
        run(tmp_path, work + [Item("i0007", {"value": 7})])


def test_merged_records_follow_the_rules_across_table_and_parts(tiny, tmp_path: Path) -> None:
    """A done record wins wherever it is (compacted table or part); else the latest record (parts
    after the table, parts in name order); many records of one item, split over merge steps,
    still give one."""
    from pipeline.engine.state import done_record, reject_record

    state = StageState(tmp_path)
    table = [reject_record("a", "stage_error", "x", 1), done_record("b", [{"v": 1}], ["b.txt"], 1),
             reject_record("c", "stage_error", "first", 1)]
    state.compact_table(pa.Table.from_pylist(table, schema=pipeline.engine.state.record_schema()))
    (tmp_path / PARTS_DIR).mkdir(parents=True)
    parts = {
        "w1-000000": [done_record("a", [{"v": 2}], ["a.txt"], 2), reject_record("b", "worker_died", "late", 2)]
        + [reject_record("d", "stage_error", f"try {k}", k) for k in range(60)],
        "w2-000000": [reject_record("c", "negative_value", "last", 2)]
        + [done_record(f"e{k:03d}", [], [], 1) for k in range(40)],
    }
    for name, records in parts.items():
        (tmp_path / PARTS_DIR / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    merged = state.load()
    assert merged["a"]["status"] == "done" and merged["a"]["attempts"] == 2
    assert merged["b"]["status"] == "done" and merged["b"]["rows"] == '[{"v":1}]'
    assert merged["c"]["code"] == "negative_value"
    assert merged["d"]["detail"] == "try 59"
    assert len(merged) == 4 + 40
    state.compact()
    assert not (tmp_path / PARTS_DIR).exists()
    assert state.load() == merged
    finished = state.finished()
    ids = pa.array(["a", "b", "c", "d", "e000", "e039", "zz"])
    assert finished.contains(ids).tolist() == [True, True, True, False, True, True, False]
    finished.close()
