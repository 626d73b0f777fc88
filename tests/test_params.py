"""params.yaml is read strictly into typed dataclasses."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config.params import ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def base() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def test_repository_params_load_with_paper_values() -> None:
    params = load_params(REPO / "params.yaml")
    ing = params.ingest
    assert (ing.max_eye_nose_deg, ing.max_mouth_nose_deg, ing.max_vertical_deg) == (10.0, 10.0, 10.0)
    assert ing.box_scale == 2.0 and ing.out_size == 1024
    assert len(ing.keep_categories) == 5 and isinstance(ing.keep_categories, tuple)


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    data = base()
    data["ingest"]["box_scael"] = 3
    with pytest.raises(ParamsError, match=r"ingest: unknown key\(s\) \['box_scael'\]"):
        load_params(write(tmp_path, data))
    data = base()
    data["no_such_section"] = {}
    with pytest.raises(ParamsError, match="no_such_section"):
        load_params(write(tmp_path, data))


def test_wrong_type_names_the_path(tmp_path: Path) -> None:
    data = base()
    data["ingest"]["out_size"] = "big"
    with pytest.raises(ParamsError, match="ingest.out_size: expected an integer"):
        load_params(write(tmp_path, data))
    data = base()
    data["runner"]["progress"] = 1
    with pytest.raises(ParamsError, match="runner.progress: expected true/false"):
        load_params(write(tmp_path, data))


def test_missing_required_and_invalid_values(tmp_path: Path) -> None:
    data = base()
    del data["seed"]
    with pytest.raises(ParamsError, match="seed: missing"):
        load_params(write(tmp_path, data))
    data = base()
    data["ingest"]["box_scale"] = 0.5
    with pytest.raises(ParamsError, match="box_scale must be >= 1"):
        load_params(write(tmp_path, data))


def test_defaults_fill_omitted_keys(tmp_path: Path) -> None:
    data = base()
    data["ingest"] = {"out_dir": "elsewhere"}
    params = load_params(write(tmp_path, data))
    assert params.ingest.out_dir == "elsewhere" and params.ingest.box_scale == 2.0
