"""A locked install (issue 27 item 4): requirements.lock, written by uv from pyproject.toml, pins
every dependency and extra the project names within its bounds, the README's two commands and
.ci/run install through it, and DVC outs carry no library version stamps where the format lets
them go (pandas' parquet metadata, diffusers / transformers configs)."""
from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from pipeline.engine.manifest import write_frame
from train.export import strip_version_stamps

REPO = Path(__file__).resolve().parents[1]
REGENERATE = "uv pip compile pyproject.toml --extra dev --python-version 3.11 --python-platform x86_64-manylinux_2_28 -o requirements.lock"


def _locked() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if m:
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_the_lock_pins_every_declared_dependency_within_its_bounds() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    locked = _locked()
    declared = [Requirement(r) for r in project["dependencies"] + project["optional-dependencies"]["dev"]]
    for req in declared:
        name = canonicalize_name(req.name)
        assert name in locked, f"{req.name} is not in requirements.lock: rerun `{REGENERATE}`"
        assert req.specifier.contains(locked[name], prereleases=True), f"lock has {name}=={locked[name]}, pyproject says {req}"
    assert len(locked) > 150, "transitive dependencies are pinned too"
    assert REGENERATE in (REPO / "requirements.lock").read_text(), "the header names the one command that regenerates it"


def test_the_readme_and_ci_install_through_the_lock() -> None:
    readme = (REPO / "README.md").read_text()
    assert "pip install -c requirements.lock -e . && dvc repro" in readme
    assert "pip install -q -c requirements.lock -e '.[dev]' && pytest -q" in readme
    ci = (REPO / ".ci" / "run").read_text()  # the same install and tests, the layer and lint checks first (#28)
    assert "pip install -q -c requirements.lock -e '.[dev]' \\\n  && lint-imports && ruff check . && pytest -q" in ci
    assert REGENERATE in readme


def test_parquet_tables_carry_no_library_versions(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": pd.array([1, None], dtype="Int64"), "b": ["x", "y"]})
    write_frame(frame, tmp_path / "t.parquet")
    pandas_meta = json.loads(pq.read_schema(tmp_path / "t.parquet").metadata[b"pandas"])
    assert "pandas_version" not in pandas_meta and "creator" not in pandas_meta
    back = pd.read_parquet(tmp_path / "t.parquet")
    assert str(back["a"].dtype) == "Int64" and back["a"].isna().tolist() == [False, True]


def test_saved_configs_lose_their_version_stamps_and_still_load(tmp_path: Path) -> None:
    from diffusers import EulerDiscreteScheduler
    from transformers import CLIPTextConfig

    EulerDiscreteScheduler().save_pretrained(tmp_path / "scheduler")
    CLIPTextConfig(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path / "te")
    files = [tmp_path / "scheduler" / "scheduler_config.json", tmp_path / "te" / "config.json"]
    strip_version_stamps(files)
    for f in files:
        assert not {"_diffusers_version", "transformers_version"} & set(json.loads(f.read_text()))
    assert EulerDiscreteScheduler.from_pretrained(tmp_path / "scheduler").config.num_train_timesteps == 1000
    assert CLIPTextConfig.from_pretrained(tmp_path / "te").hidden_size == 8
