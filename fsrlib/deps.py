"""Every stage's code dependencies, computed from its imports: the one source of the code
``deps:`` and the ``params:`` of ``dvc.yaml``, and of the train stage's fingerprint.

A stage runs one notebook (:data:`STAGES`). The code it runs is every ``fsrlib`` module the
notebook imports and, transitively, every ``fsrlib`` module those import (an import statement
anywhere in a module counts, at the top or inside a function; a package that scans its folder,
``models/`` and ``losses/``, brings all its modules), plus the data files beside a module that
it names (``report/paper_results.csv`` of ``report/results.py``). Folders whose every file is
in are listed as the folder.

    python -m fsrlib.deps           # check dvc.yaml (exit 1 and the differences when stale)
    python -m fsrlib.deps --write   # rewrite the fsrlib deps and the params of every stage

``tests/test_stage_deps.py`` checks that dvc.yaml is current and that every module a stage's
imports load at run time is covered. Imports only: nothing here imports the rest of fsrlib.
"""
from __future__ import annotations

import argparse
import ast
import functools
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import yaml

__all__ = ["REPO", "STAGES", "Stage", "module_file", "imports_of", "closure", "notebook_imports", "stage_modules",
           "module_deps", "code_deps", "check_dvc_yaml", "write_dvc_yaml"]

REPO = Path(__file__).resolve().parents[1]
PKG = "fsrlib"


@dataclass(frozen=True)
class Stage:
    """A dvc.yaml stage: the notebook it runs and the params sections its code reads."""

    notebook: str
    params: tuple[str, ...]


#: dvc.yaml stage -> notebook and the params sections its code reads. ``train`` reads its run's
#: method and run entries (``run_config``, ``dataset_config``) and ``train``; ``evaluate`` and
#: ``downstream`` also ``prepare`` and ``degrade`` (the protocol text of every number) and
#: ``train`` (runs_root, threads, the training set named in the protocol); ``downstream`` and
#: ``report`` enumerate ``runs`` and ``chained``; the report notebook reads ``train.runs_root``.
STAGES: dict[str, Stage] = {
    "download": Stage("notebooks/01_download.ipynb", ("data",)),
    "prepare": Stage("notebooks/02_prepare.ipynb", ("prepare",)),
    "degrade": Stage("notebooks/03_degrade.ipynb", ("degrade",)),
    "train_parser": Stage("notebooks/04a_train_parser.ipynb", ("train_parser", "parse")),
    "parse": Stage("notebooks/04_parse.ipynb", ("parse",)),
    "train": Stage("notebooks/05_train.ipynb", ("train", "methods.${item.method}", "runs.${key}")),
    "train_chained": Stage("notebooks/05_train.ipynb", ("train", "methods.${item.method}", "chained.${key}")),
    "evaluate": Stage("notebooks/06_evaluate.ipynb", ("evaluate", "train", "prepare", "degrade")),
    "downstream": Stage("notebooks/07_downstream.ipynb", ("downstream", "train", "prepare", "degrade", "runs",
                                                         "chained")),
    "report": Stage("notebooks/08_report.ipynb", ("report", "runs", "chained", "train")),
}
#: stages that reuse another stage's block through a YAML alias (``do: *evaluate``)
ALIASES = {"evaluate_chained": "evaluate"}


# ====================================================================== modules and imports
def module_file(module: str, root: Path = REPO) -> Path | None:
    """The file of an ``fsrlib`` module or package, or ``None`` when there is none."""
    base = root.joinpath(*module.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _in_pkg(name: str | None) -> bool:
    return bool(name) and (name == PKG or name.startswith(PKG + "."))


def _import_names(tree: ast.AST, module: str | None, is_pkg: bool, root: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if _in_pkg(a.name)}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if module is None:
                    continue
                parts = module.split(".") if is_pkg else module.split(".")[:-1]
                parts = parts[:len(parts) - (node.level - 1)]
                full = ".".join(parts + ([node.module] if node.module else []))
            else:
                full = node.module
            if not _in_pkg(full):
                continue
            out.add(full)
            out |= {f"{full}.{a.name}" for a in node.names if module_file(f"{full}.{a.name}", root) is not None}
    return out


def imports_of(module: str, root: Path = REPO) -> set[str]:
    """The ``fsrlib`` modules one module imports (every import statement in it); a package
    whose ``__init__`` scans its folder (``pkgutil.iter_modules(__path__)``) imports all of it."""
    f = module_file(module, root)
    if f is None:
        return set()
    return set(_imports_cached(module, root, f, f.stat().st_mtime_ns))


@functools.lru_cache(maxsize=None)
def _imports_cached(module: str, root: Path, f: Path, _mtime: int) -> frozenset[str]:
    src = f.read_text()
    is_pkg = f.name == "__init__.py"
    out = _import_names(ast.parse(src), module, is_pkg, root)
    if is_pkg and re.search(r"iter_modules\(\s*__path__", src):
        out |= {f"{module}.{p.stem}" for p in f.parent.glob("*.py") if not p.name.startswith("_")}
        out |= {f"{module}.{p.parent.name}" for p in f.parent.glob("*/__init__.py")}
    return frozenset(out)


def closure(modules: Iterable[str], root: Path = REPO) -> set[str]:
    """``modules``, their parent packages and everything they import, transitively."""
    seen: set[str] = set()
    stack = list(modules)
    while stack:
        m = stack.pop()
        if m in seen or module_file(m, root) is None:
            continue
        seen.add(m)
        parts = m.split(".")
        stack += [".".join(parts[:i]) for i in range(1, len(parts))]
        stack += sorted(imports_of(m, root))
    return seen


def notebook_imports(notebook: str | Path, root: Path = REPO) -> set[str]:
    """The ``fsrlib`` modules a notebook's code cells import."""
    nb = json.loads((root / notebook).read_text())
    out: set[str] = set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        src = "\n".join(ln for ln in src.splitlines() if not ln.lstrip().startswith(("%", "!")))
        out |= _import_names(ast.parse(src), None, False, root)
    return out


def stage_modules(stage: str, root: Path = REPO) -> set[str]:
    """Every ``fsrlib`` module the stage's notebook runs."""
    return closure(notebook_imports(STAGES[stage].notebook, root), root)


# ====================================================================== files
@functools.lru_cache(maxsize=None)
def _data_files(py: Path) -> frozenset[Path]:
    """The data files beside a module that it names in a string (``"paper_results.csv"``)."""
    names = {n.value for n in ast.walk(ast.parse(py.read_text())) if isinstance(n, ast.Constant) and
             isinstance(n.value, str)}
    return frozenset(p for p in py.parent.iterdir()
                     if p.is_file() and p.suffix not in (".py", ".pyc") and p.name in names)


def _files(modules: Iterable[str], root: Path) -> set[Path]:
    files = {module_file(m, root) for m in modules}
    files.discard(None)
    return files | {d for f in files for d in _data_files(f)}


def _rel(p: Path, root: Path) -> str:
    return p.relative_to(root).as_posix()


def _all_files(d: Path) -> set[Path]:
    return {p for p in d.rglob("*") if p.is_file() and "__pycache__" not in p.parts and not p.name.startswith(".")
            and p.suffix != ".pyc"}


def module_deps(module: str, root: Path = REPO) -> list[str]:
    """The files (relative to the repository) of a module's closure, e.g. what a trained run's
    weights depend on (:func:`fsrlib.pipeline.train_stage.fingerprint`)."""
    return sorted(_rel(f, root) for f in _files(closure([module], root), root))


def code_deps(stage: str, root: Path = REPO) -> list[str]:
    """The stage's code deps for dvc.yaml: the files of :func:`stage_modules`, a package folder
    in place of its files when every file under it is in."""
    files = _files(stage_modules(stage, root), root)
    pkgs = sorted({f.parent for f in files if (f.parent / "__init__.py").is_file() and f.parent != root / PKG},
                  key=lambda d: len(d.parts))
    out: set[str] = set()
    covered: set[Path] = set()
    for d in pkgs:
        if any(d.is_relative_to(c) for c in covered):
            continue
        under = _all_files(d)
        if under and under <= files:
            out.add(_rel(d, root))
            covered.add(d)
    out |= {_rel(f, root) for f in files if not any(f.is_relative_to(c) for c in covered)}
    return sorted(out)


# ====================================================================== dvc.yaml
def _stage_block(stages: dict, name: str) -> dict:
    st = stages[name]
    return st["do"] if "foreach" in st else st


def check_dvc_yaml(path: str | Path = REPO / "dvc.yaml", root: Path = REPO) -> list[str]:
    """Differences between dvc.yaml and :data:`STAGES` (code deps and params); empty when current."""
    stages = yaml.safe_load(Path(path).read_text())["stages"]
    problems = []
    for name in stages:
        if name not in STAGES and name not in ALIASES:
            problems.append(f"stage {name}: not in fsrlib.deps.STAGES (declare its notebook and params)")
    for name, st in STAGES.items():
        if name not in stages:
            problems.append(f"stage {name}: missing from dvc.yaml")
            continue
        block = _stage_block(stages, name)
        deps = [str(d) for d in block.get("deps") or []]
        have, want = [d for d in deps if _in_pkg(d.split("/")[0])], code_deps(name, root)
        if have != want:
            problems.append(f"stage {name}: code deps {have} != {want} "
                            f"(missing {sorted(set(want) - set(have))}, extra {sorted(set(have) - set(want))})")
        if st.notebook not in deps:
            problems.append(f"stage {name}: {st.notebook} is not among its deps")
        params = [str(p) for p in block.get("params") or []]
        if params != list(st.params):
            problems.append(f"stage {name}: params {params} != {list(st.params)}")
    return problems


def write_dvc_yaml(path: str | Path = REPO / "dvc.yaml", root: Path = REPO) -> bool:
    """Rewrite, in dvc.yaml's own text, the ``fsrlib/...`` lines of every stage's ``deps:`` (after its
    other deps) and its ``params:`` list; everything else is left as written. Returns whether it changed."""
    path = Path(path)
    lines = path.read_text().splitlines(keepends=True)
    out: list[str] = []
    stage = None
    i = 0
    while i < len(lines):
        ln = lines[i]
        m = re.match(r"^  ([A-Za-z_][\w-]*):\s*(#.*)?$", ln)
        if m:
            stage = m.group(1)
        k = re.match(r"^(\s+)(deps|params):", ln)
        if k and stage in STAGES:
            indent = k.group(1) + "  "
            out.append(ln)
            j = i + 1
            items = []
            while j < len(lines) and lines[j].startswith(indent + "- "):
                items.append(lines[j])
                j += 1
            if k.group(2) == "deps":
                keep = [x for x in items if not _in_pkg(x.strip()[2:].split("/")[0])]
                out += keep + [f"{indent}- {d}\n" for d in code_deps(stage, root)]
            else:
                out += [f"{indent}- {p}\n" for p in STAGES[stage].params]
            i = j
            continue
        out.append(ln)
        i += 1
    new = "".join(out)
    changed = new != path.read_text()
    if changed:
        path.write_text(new)
    return changed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps and params")
    ap.add_argument("--dvc-yaml", default=str(REPO / "dvc.yaml"))
    a = ap.parse_args(argv)
    if a.write:
        print(f"{a.dvc_yaml}: {'updated' if write_dvc_yaml(a.dvc_yaml) else 'already current'}")
    problems = check_dvc_yaml(a.dvc_yaml)
    for p in problems:
        print(p, file=sys.stderr)
    if not problems:
        print(f"{a.dvc_yaml}: code deps and params of {len(STAGES)} stages are current")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
