"""The suite's layout: what tests share lives in tests/fixtures/; no test module imports another
test module or tests.conftest (pytest loads those itself, and a test module imported from
another runs its module-level code and fixtures twice)."""
from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (function-level imports included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.ImportFrom):  # relative: from . import x / from .test_x import y
            names.update(f".{node.module or ''}.{alias.name}" for alias in node.names)
    return names


def forbidden(name: str) -> bool:
    parts = name.lstrip(".").split(".")
    if name.startswith("."):
        return any(p.startswith("test_") or p == "conftest" for p in parts)
    return parts[0] == "tests" and len(parts) > 1 and (parts[1].startswith("test_") or parts[1] == "conftest")


def test_no_test_module_imports_another_test_module_or_the_conftest() -> None:
    modules = sorted(TESTS.glob("test_*.py")) + sorted((TESTS / "fixtures").glob("*.py"))
    assert len(modules) > 50
    bad = {f"{p.relative_to(TESTS.parent)}: {name}" for p in modules for name in imported_modules(p) if forbidden(name)}
    assert not bad, "imports of test modules or tests.conftest (move what they share to tests/fixtures/):\n" + "\n".join(sorted(bad))


def test_the_rule_sees_each_way_of_importing(tmp_path: Path) -> None:
    cases = {"from tests.test_sampler import make_pipe": True, "import tests.test_sampler": True,
             "from tests import test_sampler": True, "from tests.conftest import PORTRAITS": True,
             "from tests import conftest": True, "from .test_sampler import images": True,
             "def f():\n    from tests.test_train_loop import DATA": True,
             "from tests.fixtures.portraits import PORTRAITS": False, "from tests.fixtures import real_clips": False,
             "import pytest": False}
    for k, (source, expected) in enumerate(cases.items()):
        path = tmp_path / f"m{k}.py"
        path.write_text(source + "\n")
        assert any(map(forbidden, imported_modules(path))) is expected, source
