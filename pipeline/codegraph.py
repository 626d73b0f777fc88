"""The project's import graph: which of its modules a stage's code runs, found from the source.

Two things must follow the code a stage really runs, not a list kept by hand: the runner's code
fingerprint (finished items made by other code are stale) and dvc.yaml's deps (DVC reruns a
stage whose code changed). Both come from here. The graph is read statically (`ast`, nothing is
imported): every `import x` / `from x import y` of a module of this project, at any depth
(function-level imports included, so lazily imported backends count), transitively, with the
`__init__.py` of every package on the way (Python runs them on import).

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

REPO = Path(__file__).resolve().parents[1]
MACHINERY = frozenset({
    "pipeline.runner", "pipeline.state", "pipeline.manifest", "pipeline.outdir", "pipeline.timing",
    "pipeline.config.runner", "pipeline.cli", "pipeline.codegraph", "pipeline.params",
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


# --- dvc.yaml ------------------------------------------------------------------------------------

def code_roots(root: Path | None = None) -> frozenset[str]:
    """The project's top-level packages (folders of the repo holding an `__init__.py`): a dep
    under one of them is source, whatever package it is (a hand-kept list missed `facereplace`,
    so `--write` kept its folder deps as data and appended them again each run)."""
    root = root or REPO
    return frozenset(p.parent.name for p in root.glob("*/__init__.py"))


def command_modules(cmd: str) -> list[str]:
    """The modules a dvc.yaml `cmd` runs: `pipeline.cli` and the module of every `piq <name>`."""
    from pipeline.cli import COMMANDS

    modules = ["pipeline.cli"]
    for part in cmd.replace(";", "&&").split("&&"):
        words = part.split()
        if len(words) >= 2 and words[0] == "piq":
            if words[1] not in COMMANDS:
                raise ValueError(f"dvc.yaml cmd {cmd!r}: `piq {words[1]}` is not a command of pipeline/cli.py")
            modules.append(COMMANDS[words[1]][0])
    return modules


def _dep_path(dep: object) -> str:
    return str(next(iter(dep)) if isinstance(dep, dict) else dep).rstrip("/")


def is_code_dep(path: str, root: Path | None = None) -> bool:
    """A dep that is project source (a .py file or a folder of the code packages), not data."""
    return path.endswith(".py") or path.split("/")[0] in code_roots(root)


def missing_deps(dvc_yaml: str | Path | None = None, root: Path | None = None) -> dict[str, list[str]]:
    """Per dvc.yaml stage, the project source files its command imports that its deps do not
    cover (a dep covers itself and, for a folder, everything under it)."""
    root = root or REPO
    import yaml

    stages = yaml.safe_load(Path(dvc_yaml or root / "dvc.yaml").read_text())["stages"]
    missing: dict[str, list[str]] = {}
    for name, stage in stages.items():
        deps = [_dep_path(d) for d in stage.get("deps", [])]
        needed = dependency_files(command_modules(stage["cmd"]), root)
        gaps = [f for f in needed if not any(f == d or f.startswith(d + "/") for d in deps)]
        if gaps:
            missing[name] = gaps
    return missing


def folded(files: list[str], root: Path | None = None) -> list[str]:
    """`files` with every folder whose .py files are all listed written as the folder (shorter
    dvc.yaml; a folder dep covers the same files)."""
    root = root or REPO
    wanted = set(files)
    dirs = sorted({str(Path(f).parent) for f in files if "/" in f}, key=lambda d: d.count("/"))
    kept: list[str] = []
    for d in dirs:
        if any(d.startswith(k + "/") for k in kept):
            continue
        sources = {str(p.relative_to(root)) for p in (root / d).rglob("*.py") if "__pycache__" not in p.parts}
        if sources and sources <= wanted:
            kept.append(d)
    return sorted(kept + [f for f in files if not any(f.startswith(k + "/") for k in kept)])


def write_deps(dvc_yaml: str | Path | None = None, root: Path | None = None) -> list[str]:
    """Rewrite every stage's code deps as the files of its command's import graph (data deps and
    comments kept). Returns the names of the stages that changed."""
    root = root or REPO
    from ruamel.yaml import YAML

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.width = 120
    yaml.indent(mapping=2, sequence=4, offset=2)
    dvc_yaml = Path(dvc_yaml or root / "dvc.yaml")
    doc = yaml.load(dvc_yaml.read_text())
    changed = []
    for name, stage in doc["stages"].items():
        old = list(stage.get("deps", []))
        data = [d for d in old if not is_code_dep(_dep_path(d), root)]
        new = data + folded(dependency_files(command_modules(stage["cmd"]), root), root)
        if [_dep_path(d) for d in old] != [_dep_path(d) for d in new]:
            stage["deps"].clear()
            stage["deps"].extend(new)
            changed.append(name)
    with open(dvc_yaml, "w") as fh:
        yaml.dump(doc, fh)
    return changed


def add_arguments(parser) -> None:
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps from the import graph")
    parser.add_argument("--dvc-yaml", default="dvc.yaml")


def main(args) -> int:
    """`piq deps`: check (or, with --write, regenerate) dvc.yaml's code deps."""
    if args.write:
        changed = write_deps(args.dvc_yaml)
        print(f"dvc.yaml: code deps rewritten for {', '.join(changed) or 'no stage'}")
    missing = missing_deps(args.dvc_yaml)
    for stage, files in missing.items():
        print(f"{stage}: deps miss {', '.join(files)}")
    return 1 if missing else 0
