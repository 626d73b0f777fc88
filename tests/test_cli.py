"""`piq` lists every command, and every command module can run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.commands.piq import COMMANDS, command_module, main

REPO = Path(__file__).resolve().parents[1]


def test_help_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "pipeline.commands.piq", "--help"], capture_output=True, text=True, check=True).stdout
    for name in COMMANDS:
        assert name in out


def test_every_command_module_has_main() -> None:
    for name in COMMANDS:
        assert callable(getattr(command_module(name), "main", None)), name


def test_every_command_parses_its_help(capsys) -> None:
    """Each command's parser builds beside piq's own options (`--params`, `--verbose`): an option
    defined twice crashed `piq app` at start-up once."""
    for name in COMMANDS:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0, name
        assert f"usage: piq {name}" in capsys.readouterr().out, name


def test_every_dvc_stage_calls_piq() -> None:
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        cmd = stage["cmd"]
        assert cmd.startswith("piq "), f"{name}: {cmd}"
        assert cmd.split()[1] in COMMANDS, f"{name}: unknown piq command in {cmd!r}"


def test_params_command_prints_resolved_params(capsys) -> None:
    assert main(["--params", str(REPO / "params.yaml"), "params"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["ingest"]["box_scale"] == 2.0


def test_no_command_prints_help(capsys) -> None:
    assert main([]) == 2
    assert "usage: piq" in capsys.readouterr().out
