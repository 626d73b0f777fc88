"""`piq exp show`: on a tiny DVC repo with two experiments, the columns shown are the rows' names,
the params that differ, every metric of the metrics file, and no dep hash; `--all-columns` is
plain `dvc exp show`; `--json` keeps DVC's JSON shape, narrowed the same way."""
from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pipeline.commands import exp_show
from pipeline.commands.piq import main as piq


def sh(*args: str, cwd: Path) -> None:
    subprocess.run(list(args), cwd=cwd, check=True, capture_output=True, text=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A git + DVC repo with one stage (params -> metrics.json), its baseline committed, and two
    experiments: `lr3` (train.lr changed) and `norelight` (data.relight changed)."""
    root = tmp_path_factory.mktemp("exp")
    (root / "params.yaml").write_text("train:\n  lr: 0.1\n  steps: 3\ndata:\n  relight: true\n")
    (root / "fit.py").write_text(textwrap.dedent("""
        import json, yaml
        p = yaml.safe_load(open("params.yaml"))
        json.dump({"piq_id": {"PSNR": p["train"]["lr"] * 10, "CSIM": 0.5},
                   "loss": {"final": p["train"]["steps"] / 10}}, open("metrics.json", "w"))
        """))
    (root / "dvc.yaml").write_text(textwrap.dedent(f"""
        stages:
          fit:
            cmd: {sys.executable} fit.py
            deps: [fit.py]
            params: [train.lr, train.steps, data.relight]
            metrics:
              - metrics.json:
                  cache: false
        """))
    dvc = (sys.executable, "-m", "dvc")
    sh("git", "init", "-q", cwd=root)
    sh(*dvc, "init", "-q", cwd=root)
    sh(*dvc, "repro", "-q", cwd=root)
    sh("git", "add", "-A", cwd=root)
    sh("git", "commit", "-qm", "baseline", cwd=root)
    sh(*dvc, "exp", "run", "-q", "-S", "train.lr=0.3", "-n", "lr3", cwd=root)
    sh(*dvc, "exp", "run", "-q", "-S", "train.lr=0.1", "-S", "data.relight=false", "-n", "norelight", cwd=root)
    return root


@pytest.fixture(autouse=True)
def _git_identity(monkeypatch) -> None:
    for var in ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.setenv(var, "piq test")
    for var in ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL"):
        monkeypatch.setenv(var, "piq@example.invalid")
    monkeypatch.setenv("DVC_NO_ANALYTICS", "1")


def shown(repo: Path, monkeypatch, capfd, *args: str) -> str:
    monkeypatch.chdir(repo)
    capfd.readouterr()
    assert piq(["exp", "show", *args]) == 0
    return capfd.readouterr().out


@pytest.mark.slow  # a DVC repo and two `dvc exp run`: ~10-20 s
def test_headline_columns_only(repo: Path, monkeypatch, capfd) -> None:
    table = list(csv.reader(io.StringIO(shown(repo, monkeypatch, capfd, "--csv"))))
    assert table[0] == ["Experiment", "rev", "typ", "Created", "parent",
                        "piq_id.PSNR", "piq_id.CSIM", "loss.final", "train.lr", "data.relight"]
    by_name = {row[0] or row[1]: dict(zip(table[0], row)) for row in table[1:]}
    assert {"lr3", "norelight"} <= set(by_name)
    assert by_name["lr3"]["train.lr"] == "0.3" and by_name["lr3"]["piq_id.PSNR"] == "3.0"
    assert by_name["norelight"]["data.relight"] == "False"


@pytest.mark.slow  # a DVC repo and two `dvc exp run`: ~10-20 s
def test_table_fits_and_everything_on_request(repo: Path, monkeypatch, capfd) -> None:
    table = shown(repo, monkeypatch, capfd)
    assert "lr3" in table and "train.lr" in table and "train.steps" not in table and "fit.py" not in table
    everything = next(csv.reader(io.StringIO(shown(repo, monkeypatch, capfd, "--all-columns", "--csv"))))
    assert {"train.steps", "fit.py"} <= set(everything)


@pytest.mark.slow  # a DVC repo and two `dvc exp run`: ~10-20 s
def test_json_keeps_dvcs_shape_without_deps(repo: Path, monkeypatch, capfd) -> None:
    entries = json.loads(shown(repo, monkeypatch, capfd, "--json"))
    data = list(exp_show.rows(entries))
    assert len(data) == 4  # workspace, the baseline, two experiments
    for row in data:
        assert "deps" not in row and "outs" not in row
        params = row["params"]["params.yaml"]["data"]
        assert set(params) == {"train", "data"} and set(params["train"]) == {"lr"}
        assert set(row["metrics"]["metrics.json"]["data"]) == {"piq_id", "loss"}


def test_selection_args_drop_only_formatting() -> None:
    args = ["-A", "--csv", "--precision", "3", "--sort-by=loss.final", "--rev", "main", "-n", "2", "--md"]
    assert exp_show.selection_args(args) == ["-A", "--rev", "main", "-n", "2"]
