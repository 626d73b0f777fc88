"""The runner on a Ray cluster of two nodes on this machine (loopback only): items run on both
nodes, both nodes' outputs land in the shared out_dir, and neither a worker killed with -9 on the
second node, a worker dying in the middle of writing its file, nor the loss of the whole second
node loses or duplicates an item."""
from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from pipeline.config.runner import RunnerParams
from pipeline.engine.runner import Runner
from pipeline.engine.stage import Item
from pipeline.engine.state import PARTS_DIR, StageState
from tests.fixtures.toy_stages import DyingStage, SquareStage, items

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    # Loopback only: on Linux Ray would announce the machine's outward address for a cluster.
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    ray._private.ray_constants.ENABLE_RAY_CLUSTER = False
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 2, "include_dashboard": False,
                                                        "node_ip_address": "127.0.0.1"})
    ray.init(address=c.address, runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})
    yield c
    ray.shutdown()
    c.shutdown()


def writers(out: Path) -> set[tuple[str, str]]:
    """(node, pid) of every worker that has recorded a task so far (from the parts' names)."""
    names = os.listdir(out / PARTS_DIR) if (out / PARTS_DIR).is_dir() else []
    return {tuple(n.split("-")[:2]) for n in names if not n.startswith(("driver", "."))}


def wait_for(predicate, what: str, timeout: float = 40.0) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# long enough (~10 s of work on 4 workers) that the node goes mid-run even when a loaded machine
# takes seconds to replace the killed worker
N_ITEMS = 1500


def test_two_nodes_a_killed_worker_and_a_lost_node_lose_nothing(cluster, tmp_path: Path) -> None:
    second = cluster.add_node(num_cpus=2, node_ip_address="127.0.0.1")
    cluster.wait_for_nodes()
    node2 = second.node_id[:8]
    out = tmp_path / "out"
    params = RunnerParams(workers=2, retries=3, items_per_task=4, progress=False, reports_dir=str(tmp_path / "reports"))
    result: dict = {}
    run = threading.Thread(target=lambda: result.update(summary=Runner(params, seed=7).run(
        SquareStage(sleep_s=0.03), items(N_ITEMS), out)))
    run.start()
    wait_for(lambda: len({node for node, _ in writers(out)}) == 2, "both nodes to record items")
    pid = next(int(p) for node, p in writers(out) if node == node2)
    seen = {int(p) for _, p in writers(out)}
    os.kill(pid, signal.SIGKILL)  # kill -9 the worker on the second node
    # Ray places the replacement wherever a CPU is free: on either node
    wait_for(lambda: any(int(p) not in seen for _, p in writers(out)) or not run.is_alive(),
             "the replacement worker")
    assert run.is_alive(), "the node must go in the middle of the run"
    cluster.remove_node(second, allow_graceful=False)  # the whole second node goes
    run.join(timeout=120)
    assert not run.is_alive()
    summary = result["summary"]
    assert summary.stats["complete"] and summary.stats["done"] == N_ITEMS
    assert len(summary.nodes) == 2 and node2 in summary.nodes, summary.nodes
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(manifest["item_id"]) == sorted(f"i{k:03d}" for k in range(N_ITEMS)), "each item exactly once"
    for k in range(N_ITEMS):
        assert (out / "out" / f"i{k:03d}.txt").read_text() == f"{k * k}\n"
    timing = json.loads((tmp_path / "reports" / "square" / "timing.json").read_text())
    assert timing["items_per_node"] == dict(sorted(summary.nodes.items()))


def test_worker_dying_mid_write_is_redone_and_never_counts(cluster, tmp_path: Path) -> None:
    out = tmp_path / "out"
    work = [Item(f"{'die' if k % 5 == 0 else 'ok'}{k:02d}", {"value": k, "out": str(out)}) for k in range(20)]
    params = RunnerParams(workers=2, retries=2, items_per_task=2, progress=False, reports_dir="")
    summary = Runner(params, seed=7).run(DyingStage(), work, out)
    assert summary.stats["complete"] and summary.stats["done"] == 20, summary.stats
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert sorted(manifest["item_id"]) == sorted(i.id for i in work)
    for item in work:
        assert (out / "out" / f"{item.id}.txt").read_text() == f"{item.data['value'] * 3}\n" * 100
    records = StageState(out).load()
    attempts = {i.id: records[i.id]["attempts"] for i in work if i.id.startswith("die")}
    assert all(n == 2 for n in attempts.values()), f"each died once, then done: {attempts}"
