"""The project's import graph: which of its modules a stage's code runs, found from the source.

Two things must follow the code a stage really runs, not a list kept by hand: the runner's code
fingerprint (finished items made by other code are stale) and dvc.yaml's deps (DVC reruns a
stage whose code changed; `piq deps`, pipeline/commands/code_deps.py). Both come from here. The graph is read statically (`ast`, nothing is
imported): every `import x` / `from x import y` of a module of this project, at any depth
(function-level imports included, so lazily imported backends count) and every "module:attribute"
entry of a backend `Registry` (pipeline/registry.py: built by name, imported when chosen),
transitively, with the `__init__.py` of every package on the way (Python runs them on import).

The digest hashes each module's syntax tree without docstrings, so editing a comment or a
docstring does not wipe a finished stage. The runner's own bookkeeping modules (`MACHINERY`)
decide how items are scheduled and recorded, never what a stage makes: they are DVC deps but
not part of a stage's digest, so a change to the runner does not redo a terabyte of finished
items (a change of the record format is handled by the records themselves).
"""
from __future__ import annotations

import ast
import functools
import hashlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MACHINERY = frozenset({
    "pipeline.engine.runner", "pipeline.engine.state", "pipeline.engine.manifest", "pipeline.engine.outdir", "pipeline.engine.timing",
    "pipeline.config.runner", "pipeline.commands.piq", "pipeline.engine.codegraph", "pipeline.config.params",
})


def module_path(name: str, root: Path | None = None) -> Path | None:
    """The source file of project module `name` (a package's `__init__.py`), or None when
    `name` is not a module of this project (a third-party module, or a name inside a module).
    A project module is one whose file lies in the repository (pipeline/, stages/, train/,
    eval/, and tests/ or bench/ for their own stages)."""
    root = root or REPO
    if not name or not name.replace(".", "").replace("_", "").isalnum():
        return None
    base = root.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def direct_imports(name: str, root: Path | None = None) -> frozenset[str]:
    """Project modules that module `name` imports anywhere in its body."""
    root = root or REPO
    path = module_path(name, root)
    if path is None:
        return frozenset()
    st = path.stat()  # cached per file version: an edited file is read again
    return _direct_imports(name, str(root), str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4096)
def _direct_imports(name: str, root_s: str, path_s: str, _mtime: int, _size: int) -> frozenset[str]:
    root, path = Path(root_s), Path(path_s)
    tree = ast.parse(path.read_text(), filename=path_s)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(node, name, path.name == "__init__.py")
            candidates = [base] + [f"{base}.{alias.name}" for alias in node.names]
        elif _is_registry(node):
            candidates = _registry_modules(node)
        else:
            continue
        for cand in candidates:
            # `import a.b.c` runs a, a.b and a.b.c
            parts = cand.split(".")
            for k in range(1, len(parts) + 1):
                sub = ".".join(parts[:k])
                if module_path(sub, root) is not None:
                    found.add(sub)
    found.discard(name)
    return frozenset(found)


def _is_registry(node: ast.AST) -> bool:
    """A `Registry(...)` call (pipeline/registry.py): its entries are imports by name."""
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)) == "Registry"


def _registry_modules(node: ast.Call) -> list[str]:
    """The modules a registry's "module:attribute" entries name: a backend built by name is
    code its family runs, as if imported in a function."""
    return [sub.value.partition(":")[0] for sub in ast.walk(node)
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str) and ":" in sub.value]


def closure(modules: str | tuple[str, ...] | list[str], root: Path | None = None, skip: frozenset[str] = frozenset()) -> list[str]:
    """Every project module that importing `modules` runs (themselves and their packages'
    `__init__` included), sorted; traversal stops at the names in `skip`."""
    root = root or REPO
    todo = [modules] if isinstance(modules, str) else list(modules)
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen or name in skip or module_path(name, root) is None:
            continue
        seen.add(name)
        parts = name.split(".")
        todo.extend(".".join(parts[:k]) for k in range(1, len(parts)))
        todo.extend(direct_imports(name, root))
    return sorted(seen)


def module_of(cls: type) -> str:
    return cls.__module__


def _normalised_source(path: Path) -> bytes:
    """The module's syntax tree without docstrings: comments, docstrings and formatting do not count."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return ast.dump(tree, include_attributes=False).encode()


def code_digest(modules: str | tuple[str, ...] | list[str], root: Path | None = None) -> str:
    """Hash of every project module that `modules` run (the runner's machinery left out)."""
    root = root or REPO
    digest = hashlib.sha256()
    for name in closure(modules, root, skip=MACHINERY):
        path = module_path(name, root)
        digest.update(name.encode() + b"\0" + _normalised_source(path) + b"\0")
    return digest.hexdigest()[:16]


def dependency_files(modules: str | tuple[str, ...] | list[str], root: Path | None = None) -> list[str]:
    """Repository-relative source files of `modules`' closure (machinery included): a DVC
    stage running these modules must list each of them (or a folder holding it) as a dep."""
    root = root or REPO
    return sorted(str(module_path(name, root).relative_to(root)) for name in closure(modules, root))
