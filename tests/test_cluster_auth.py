"""Stages on an existing Ray cluster, as the README says to run them (#30 item 7): two `ray start`
nodes on this machine with Ray 2.60's token authentication on. `piq ingest` with RAY_ADDRESS but
without the token settings ends within seconds in one line naming what to set; with
RAY_AUTH_MODE=token and the token it runs on both nodes and keeps the faces a local run keeps."""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.engine.cluster import ClusterError, check_cluster_auth

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ports() -> list[str]:
    """Every port a node opens, free ones, so this cluster never meets another one on the machine."""
    return [f"--{name}={free_port()}" for name in (
        "node-manager-port", "object-manager-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
        "runtime-env-agent-port", "metrics-export-port")]


def stop(proc: subprocess.Popen, temp: Path) -> None:
    """End a `ray start --block` node this test started: its process group, then any process
    still running from its session folder (by pid)."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    for line in subprocess.run(["pgrep", "-f", str(temp)], capture_output=True, text=True).stdout.split():
        try:
            os.kill(int(line), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    token = secrets.token_hex(16)
    temp = Path("/tmp") / f"piq-ray-{os.getpid()}"  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    logs = tmp_path_factory.mktemp("ray-logs")
    port = free_port()
    common = ["--block", "--num-cpus=1", "--disable-usage-stats", f"--temp-dir={temp}", "--node-ip-address=127.0.0.1"]
    head = subprocess.Popen(
        [str(BIN / "ray"), "start", "--head", f"--port={port}", "--include-dashboard=false",
         f"--ray-client-server-port={free_port()}", *common, *ports()],
        env=env, start_new_session=True, stdout=open(logs / "head.log", "w"), stderr=subprocess.STDOUT)
    nodes = [head]
    address = f"127.0.0.1:{port}"
    try:
        # the token passed, not set in this process's environment: Ray, once imported, keeps
        # the authentication mode it saw (other tests start their own Ray in this process)
        wait_for(lambda: check_cluster_auth(address, timeout=1.0, token=token) is None, "the head",
                 errors=(ClusterError,))
        worker = subprocess.Popen(
            [str(BIN / "ray"), "start", f"--address={address}", *common, *ports()],
            env=env, start_new_session=True, stdout=open(logs / "worker.log", "w"), stderr=subprocess.STDOUT)
        nodes.append(worker)
        wait_for(lambda: alive_nodes(address, env) == 2, "the second node")
        yield address, token
    finally:
        for proc in reversed(nodes):
            stop(proc, temp)
        shutil.rmtree(temp, ignore_errors=True)


def wait_for(predicate, what: str, timeout: float = 90.0, errors: tuple = ()) -> None:
    deadline = time.time() + timeout
    while True:
        try:
            if predicate():
                return
        except errors:
            pass
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def alive_nodes(address: str, env: dict) -> int:
    out = subprocess.run([str(BIN / "ray"), "status", f"--address={address}"], env=env, capture_output=True,
                         text=True, timeout=60).stdout
    return sum(1 for line in out.splitlines() if line.strip().startswith("1 node_"))


@pytest.fixture(scope="module")
def sample_params(tmp_path_factory) -> callable:
    def make(out: Path, workers: int) -> Path:
        params = yaml.safe_load((REPO / "params.yaml").read_text())
        params["ingest"].update(videos_dir=str(REPO / "samples" / "videos"),
                                metadata_csv=str(REPO / "samples" / "metadata.csv"), out_dir=str(out / "ingest"))
        params["runner"].update(workers=workers, reports_dir=str(out / "reports"))
        path = out / "params.yaml"
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(params, sort_keys=False))
        return path
    return make


def piq(args: list[str], env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "piq"), *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=REPO)


def client_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    return {**env, **extra}


def test_joining_without_the_token_is_one_clear_line_within_seconds(cluster, sample_params, tmp_path) -> None:
    address, _ = cluster
    params = sample_params(tmp_path / "refused", workers=2)
    start = time.time()
    run = piq(["--params", str(params), "ingest"], client_env(RAY_ADDRESS=address), timeout=120)
    took = time.time() - start
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert run.returncode == 2, run.stderr[-2000:]
    assert lines == [lines[-1]] and "RAY_AUTH_MODE=token" in lines[-1] and address in lines[-1], run.stderr
    assert "Traceback" not in run.stderr and took < 30, took  # Ray alone retried ~20 s, then a traceback
    assert not (tmp_path / "refused" / "ingest").exists(), "nothing written"


def test_a_wrong_token_and_an_absent_head_are_clear_too(cluster, sample_params, tmp_path) -> None:
    address, _ = cluster
    params = sample_params(tmp_path / "wrong", workers=2)
    run = piq(["--params", str(params), "ingest"], client_env(RAY_ADDRESS=address, RAY_AUTH_MODE="token",
                                                              RAY_AUTH_TOKEN="0" * 32), timeout=120)
    assert run.returncode == 2 and "refuses this token" in run.stderr, run.stderr[-2000:]
    nobody = f"127.0.0.1:{free_port()}"
    run = piq(["--params", str(params), "ingest"], client_env(RAY_ADDRESS=nobody), timeout=120)
    assert run.returncode == 2 and f"no Ray cluster answers at {nobody}" in run.stderr, run.stderr[-2000:]


def test_ingest_runs_on_both_nodes_and_keeps_what_a_local_run_keeps(cluster, sample_params, tmp_path) -> None:
    address, token = cluster
    remote = piq(["--params", str(sample_params(tmp_path / "cluster", workers=2)), "ingest",
                  "--report", str(tmp_path / "cluster" / "stats.json")],
                 client_env(RAY_ADDRESS=address, RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token))
    assert remote.returncode == 0, remote.stderr[-3000:]
    local = piq(["--params", str(sample_params(tmp_path / "local", workers=0)), "ingest",
                 "--report", str(tmp_path / "local" / "stats.json")], client_env())
    assert local.returncode == 0, local.stderr[-3000:]
    on_cluster = pd.read_parquet(tmp_path / "cluster" / "ingest" / "manifest.parquet")
    at_home = pd.read_parquet(tmp_path / "local" / "ingest" / "manifest.parquet")
    assert sorted(on_cluster["face_id"]) == sorted(at_home["face_id"]) and len(at_home) >= 4
    timing = json.loads((tmp_path / "cluster" / "reports" / "ingest" / "timing.json").read_text())
    assert len(timing["items_per_node"]) == 2, timing  # one actor on each node
    # quiet by default: no Ray notice or worker output in the terminal, only our progress and summary
    assert "Token authentication" not in remote.stderr and "inference_feedback_manager" not in remote.stderr
