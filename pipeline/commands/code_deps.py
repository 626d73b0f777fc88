"""`piq deps`: dvc.yaml's code deps, checked or regenerated from the import graph.

DVC reruns a stage whose deps changed, so each stage's deps must list every source file its
command runs: the files of the import graph (`pipeline.engine.codegraph`) of `pipeline.commands.piq`
and of the command's module, never a hand-kept list.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from pipeline.engine.codegraph import REPO, dependency_files, direct_imports


def code_roots(root: Path | None = None) -> frozenset[str]:
    """The project's top-level packages (folders of the repo holding an `__init__.py`): a dep
    under one of them is source, whatever package it is (a hand-kept list missed `facereplace`,
    so `--write` kept its folder deps as data and appended them again each run)."""
    root = root or REPO
    return frozenset(p.parent.name for p in root.glob("*/__init__.py"))


def command_modules(cmd: str) -> list[str]:
    """The modules a dvc.yaml `cmd` runs: `pipeline.commands.piq` and the module of every `piq <name>`."""
    from pipeline.commands.piq import COMMANDS

    modules = ["pipeline.commands.piq"]
    for part in cmd.replace(";", "&&").split("&&"):
        words = part.split()
        if len(words) >= 2 and words[0] == "piq":
            if words[1] not in COMMANDS:
                raise ValueError(f"dvc.yaml cmd {cmd!r}: `piq {words[1]}` is not a command of pipeline/commands/piq.py")
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


PACKAGES = ("pipeline", "stages", "train", "eval", "facereplace")


def layer_of(module: str) -> str:
    """The layer a module belongs to: `pipeline.<subpackage or module>`, or its top-level package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "pipeline" and len(parts) > 1 else parts[0]


def layer_edges(root: Path | None = None) -> Counter:
    """(importing layer, imported layer) -> number of module-level import edges between them, for
    every module of the code packages under `root` (any checkout: `--root` shows an older tree)."""
    root = Path(root or REPO)
    edges: Counter = Counter()
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).with_suffix("")
            name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
            for imported in direct_imports(name, root) - set(PACKAGES):  # a bare root: only its __init__ ran
                a, b = layer_of(name), layer_of(imported)
                if a != b and b.split(".")[0] in PACKAGES:
                    edges[a, b] += 1
    return edges


def add_arguments(parser) -> None:
    parser.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps from the import graph")
    parser.add_argument("--dvc-yaml", default="dvc.yaml")
    parser.add_argument("--layers", action="store_true",
                        help="print the import graph between layers (pipeline's subpackages and the top-level packages)")
    parser.add_argument("--root", default=None, help="with --layers: the checkout to read (default: this one)")


def main(args) -> int:
    """`piq deps`: check (or, with --write, regenerate) dvc.yaml's code deps; `--layers`: the
    layer-to-layer import graph (the layering contracts themselves: `lint-imports`)."""
    if args.layers:
        for (a, b), n in sorted(layer_edges(args.root).items()):
            print(f"{a} -> {b}  ({n})")
        return 0
    if args.write:
        changed = write_deps(args.dvc_yaml)
        print(f"dvc.yaml: code deps rewritten for {', '.join(changed) or 'no stage'}")
    missing = missing_deps(args.dvc_yaml)
    for stage, files in missing.items():
        print(f"{stage}: deps miss {', '.join(files)}")
    return 1 if missing else 0
