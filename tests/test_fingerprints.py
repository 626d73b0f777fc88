"""What a stage's finished items depend on: the code its module imports (from the import graph,
not a hand-kept list) and the params that decide outputs (not run-time settings); and dvc.yaml's
deps cover the same graph."""
from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from pipeline.commands import code_deps
from pipeline.engine import codegraph
from pipeline.config.caption import CaptionParams
from pipeline.config.keys import output_params, runtime_keys
from pipeline.config.runner import RunnerParams
from pipeline.config.params import Params, load_params
from pipeline.engine.runner import Runner
from stages.caption import CaptionStage
from tests.fixtures.relight_inputs import make_fake_annotate_inputs
from tests.fixtures.toy_stages import BoxStage, items

REPO = Path(__file__).resolve().parents[1]


def local() -> Runner:
    return Runner(RunnerParams(workers=0, progress=False, reports_dir=""), seed=7)


def test_dvc_yaml_deps_cover_every_module_each_command_imports() -> None:
    missing = code_deps.missing_deps(REPO / "dvc.yaml")
    assert not missing, "dvc.yaml deps miss imported modules (run `piq deps --write`):\n" + "\n".join(
        f"{stage}: {files}" for stage, files in missing.items())


def test_committed_dvc_yaml_is_what_deps_write_makes(tmp_path: Path) -> None:
    """`piq deps --write` is a fixed point on the committed dvc.yaml: no stage changes and no dep
    appears twice (a folder dep of a package missing from a hand-kept list was re-added per run)."""
    copy = tmp_path / "dvc.yaml"
    shutil.copy(REPO / "dvc.yaml", copy)
    assert code_deps.write_deps(copy, REPO) == []
    import yaml

    for name, stage in yaml.safe_load(copy.read_text())["stages"].items():
        deps = [code_deps._dep_path(d) for d in stage.get("deps", [])]
        assert len(deps) == len(set(deps)), f"{name}: a dep listed twice"


def test_a_missing_dep_is_found(tmp_path: Path) -> None:
    text = (REPO / "dvc.yaml").read_text().replace("      - pipeline/faces/detect.py\n", "", 1)
    (tmp_path / "dvc.yaml").write_text(text)
    assert code_deps.missing_deps(tmp_path / "dvc.yaml")["ingest"] == ["pipeline/faces/detect.py"]


def test_graph_follows_lazy_relative_and_package_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "pipeline"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from .sub import b\n\ndef f():\n    import pipeline.sub.c\n")
    (pkg / "sub" / "b.py").write_text("from . import d\nimport numpy\n")
    (pkg / "sub" / "c.py").write_text("")
    (pkg / "sub" / "d.py").write_text("")
    (pkg / "unused.py").write_text("")
    assert codegraph.closure("pipeline.a", tmp_path) == [
        "pipeline", "pipeline.a", "pipeline.sub", "pipeline.sub.b", "pipeline.sub.c", "pipeline.sub.d"]


def test_digest_follows_code_not_docstrings_or_comments(tmp_path: Path) -> None:
    (tmp_path / "stages").mkdir()
    (tmp_path / "stages" / "__init__.py").write_text("")
    mod = tmp_path / "stages" / "x.py"
    mod.write_text('"""Doc."""\n\ndef f():\n    """Why."""\n    return 1\n')
    before = codegraph.code_digest("stages.x", tmp_path)
    mod.write_text('"""Other doc."""\n\n\ndef f():  # a comment\n    """Other why."""\n    return 1\n')
    assert codegraph.code_digest("stages.x", tmp_path) == before
    mod.write_text('"""Doc."""\n\ndef f():\n    return 2\n')
    assert codegraph.code_digest("stages.x", tmp_path) != before


def test_changing_an_imported_module_redoes_the_stage(tmp_path: Path, monkeypatch) -> None:
    """The issue's case: a changed `pipeline/faces/detect.py` (here in a copy of the project) must
    redo the items of a stage that imports it; a docstring edit or an unrelated module must not."""
    copy = tmp_path / "repo"
    shutil.copytree(REPO / "pipeline", copy / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tests" / "fixtures").mkdir(parents=True)
    for name in ("__init__.py", "fixtures/__init__.py", "fixtures/toy_stages.py"):
        shutil.copy(REPO / "tests" / name, copy / "tests" / name)
    monkeypatch.setattr(codegraph, "REPO", copy)
    out = tmp_path / "out"

    def run() -> int:
        return local().run(BoxStage(), items(4), out).processed

    assert run() == 4
    assert run() == 0
    detect = copy / "pipeline" / "faces" / "detect.py"
    detect.write_text(detect.read_text().replace('"""One detection in', '"""One detection (reworded) in') + "# note\n")
    assert run() == 0, "a docstring or comment edit must not redo finished items"
    unrelated = copy / "pipeline" / "backends" / "relighters" / "sh.py"
    unrelated.write_text(unrelated.read_text() + "\nUNRELATED = 1\n")
    assert run() == 0, "a module the stage does not import must not redo its items"
    detect.write_text(detect.read_text().replace("float(v) * factor", "float(v) * factor * 1.0"))
    assert run() == 4, "a changed imported module must redo every item"


def test_run_time_keys_are_declared_by_every_section_and_exist() -> None:
    params = load_params(REPO / "params.yaml")
    for section in dataclasses.fields(Params):
        value = getattr(params, section.name)
        if dataclasses.is_dataclass(value):
            keys = runtime_keys(value)
            assert keys <= {f.name for f in dataclasses.fields(value)}
    assert {"workers", "batch_size", "device", "num_gpus", "preview", "static_cache"} <= runtime_keys(CaptionParams)
    assert {"max_steps", "compile", "num_workers", "log_every"} <= runtime_keys(params.train)
    assert runtime_keys(params.runner) == {f.name for f in dataclasses.fields(params.runner)}
    assert "instruction" in output_params(params.caption) and "workers" not in output_params(params.caption)


@pytest.fixture(scope="module")
def animate_dir(tmp_path_factory) -> Path:
    animate, _ = make_fake_annotate_inputs(tmp_path_factory.mktemp("in"), size=96, images=1)
    return animate


def test_changing_caption_workers_redoes_nothing(animate_dir: Path, tmp_path: Path) -> None:
    from stages.caption import run

    p = CaptionParams(input_dir=str(animate_dir), out_dir=str(tmp_path / "caption"), preview=False)
    first = run(p, RunnerParams(workers=0, progress=False, reports_dir=""), 7)
    assert first.processed == 2
    manifest = (tmp_path / "caption" / "manifest.parquet").read_bytes()
    runtime_only = dataclasses.replace(p, workers=6, batch_size=3, device="cpu", num_gpus=0.5, static_cache=False,
                                       preview=True)
    again = run(runtime_only, RunnerParams(workers=0, retries=5, progress=False, reports_dir="", items_per_task=1), 7)
    assert again.processed == 0 and again.skipped == 2
    assert (tmp_path / "caption" / "manifest.parquet").read_bytes() == manifest
    changed = run(dataclasses.replace(p, instruction=p.instruction + " Be brief."), RunnerParams(workers=0, progress=False,
                                                                                              reports_dir=""), 7)
    assert changed.processed == 2, "a key that decides outputs redoes every item"


def test_stage_fingerprint_ignores_run_time_keys() -> None:
    p = CaptionParams()
    assert CaptionStage(p).fingerprint() == CaptionStage(dataclasses.replace(p, workers=3, batch_size=2)).fingerprint()
    assert CaptionStage(p).fingerprint() != CaptionStage(dataclasses.replace(p, max_new_tokens=9)).fingerprint()
