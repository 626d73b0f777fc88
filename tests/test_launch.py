"""Scale-out on CPU: `piq train --processes 2` through accelerate launch (gloo), and a NaN on one
rank stopping every rank."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest
import torch.multiprocessing as mp
import yaml

from stages.train import ACCELERATE_CONFIG, launch_command

REPO = Path(__file__).resolve().parents[1]


def test_launch_command_uses_the_project_config() -> None:
    cmd = launch_command(8, "params.yaml", 29501)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert cmd[cmd.index("--config_file") + 1] == str(ACCELERATE_CONFIG) and ACCELERATE_CONFIG.is_file()
    assert cmd[cmd.index("--num_processes") + 1] == "8" and cmd[-4:] == ["pipeline.commands.piq", "--params", "params.yaml", "train"]


def test_one_host_runs_talk_over_the_loopback(monkeypatch) -> None:
    from stages.train import SAFE_NCCL_ENV, loopback_interface, single_host_env

    monkeypatch.delenv("GLOO_SOCKET_IFNAME", raising=False)
    env = single_host_env()
    assert loopback_interface() in ("lo", "lo0") and env["GLOO_SOCKET_IFNAME"] == loopback_interface()
    assert all(env[k] == v for k, v in SAFE_NCCL_ENV.items())
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "eth7")  # the user's choice stands
    assert "GLOO_SOCKET_IFNAME" not in single_host_env()


@pytest.mark.slow
@pytest.mark.timeout(1500)  # 16 s on an idle 2-core machine (190-660 s in the suite while each rank ran 2 threads)
def test_two_process_training_keeps_the_effective_batch(tmp_path: Path, tiny_shards: Path) -> None:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["data"].update(shards=str(tiny_shards), resolution=32, pairs_per_set=2)
    params["train"].update(batch_size=2, effective_batch=8, max_steps=2, checkpoint_every=1, log_every=1,
                           validate_every=100, out_dir=str(tmp_path / "model"), reports_dir=str(tmp_path / "reports"),
                           checkpoint_dir=str(tmp_path / "ckpt"), latents_dir=None)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    env = {k: v for k, v in os.environ.items() if k not in ("NCCL_NVLS_ENABLE", "LOCAL_RANK")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    done = run_with_deadline([sys.executable, "-m", "pipeline.commands.piq", "--params", str(path), "train",
                              "--processes", "2"], cwd=REPO, env=env, timeout=1200)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "accelerate.commands.launch --config_file" in done.stdout
    metrics = json.loads((tmp_path / "reports" / "timing.json").read_text())  # how it ran: not a DVC metric
    assert metrics["processes"] == 2 and metrics["accumulation"] == 2  # 2 per device x 2 processes x 2 = 8
    assert metrics["multicast_off_all_ranks"] is True
    assert metrics["cpu_threads_per_process"] == 1  # params' cpu_threads 2 shared by 2 processes: never more threads than cores
    assert done.stdout.count("train: 2 steps") == 1, "only rank 0 reports and saves"
    assert (tmp_path / "model" / "model_index.json").exists()
    state_dirs = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert state_dirs == ["step-00000001", "step-00000002"]


def run_with_deadline(cmd: list[str], cwd: Path, env: dict, timeout: float) -> subprocess.CompletedProcess:
    """`cmd` killed with every process under it at `timeout`. The launcher's workers hold the
    output pipes and torch's elastic agent starts each in a session of its own, so neither
    subprocess.run's timeout (the launcher alone) nor a kill of the launcher's process group
    reaches them: the test would then wait on the pipes for ever."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_tree(proc.pid)
        out, err = proc.communicate(timeout=60)
        pytest.fail(f"`{' '.join(cmd[2:])}` still running after {timeout} s:\n{out[-3000:]}\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def kill_tree(pid: int) -> None:
    """SIGKILL `pid` and all its descendants, whatever session they moved to."""
    try:
        root = psutil.Process(pid)
        procs = root.children(recursive=True) + [root]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=30)


def _nan_on_rank_one(rank: int, world: int, port: int, shards: str, tmp: str) -> None:
    """One process of a 2-process gloo run whose rank 1 sees a NaN loss at micro-step 5."""
    from stages.train import single_host_env

    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), **single_host_env())
    from pipeline.config.data import DataParams
    from pipeline.device import fix_cpu_threads
    from pipeline.config.train import TrainParams
    from train.backbones import tiny_components
    from train.data import make_train_loader
    from train.loop import TrainingDiverged, make_accelerator, train
    from train.model import PiQModel

    data = DataParams(resolution=32, pairs_per_set=2)
    tp = TrainParams(batch_size=1, effective_batch=4, max_steps=4, lr=1e-3, mixed_precision="fp32",
                     gradient_checkpointing=False, checkpoint_every=1, log_every=1, validate_every=100,
                     checkpoint_dir=f"{tmp}/ckpt", reports_dir=f"{tmp}/reports")
    fix_cpu_threads(2)  # as `piq train` under a launcher: one thread per process here
    accelerator = make_accelerator(tp)
    model = PiQModel(tiny_components("sdxl"), "spatial", 32)
    loader, stream = make_train_loader(data, Path(shards), 1, seed=0, rank=rank, world_size=world)
    real_loss, calls = model.loss, {"n": 0}

    def poisoned(batch, generator=None):
        calls["n"] += 1
        loss = real_loss(batch, generator)
        return loss * float("nan") if rank == 1 and calls["n"] == 5 else loss  # accumulation 2: step 3

    model.loss = poisoned
    try:
        train(model, loader, stream, tp, 0, accelerator)
        outcome = "finished"
    except TrainingDiverged as err:
        outcome = str(err)
    Path(tmp, f"rank{rank}.txt").write_text(outcome)


@pytest.mark.slow
def test_nan_on_one_rank_stops_every_rank(tmp_path: Path, tiny_shards: Path) -> None:
    from stages.train import free_port

    mp.spawn(_nan_on_rank_one, args=(2, free_port(), str(tiny_shards), str(tmp_path)), nprocs=2, join=True)
    for rank in (0, 1):
        assert "not finite on 1 of 2 processes at step 3" in (tmp_path / f"rank{rank}.txt").read_text()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["step-00000001", "step-00000002"]
