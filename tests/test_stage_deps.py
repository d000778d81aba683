"""Stage dependencies by construction (fsrlib/deps.py) and the one-way module layout.

- dvc.yaml's code deps and params are what ``fsrlib.deps`` computes from the imports;
- every fsrlib module a stage's notebook loads at run time (its import statements executed in a
  fresh interpreter) is covered by that stage's deps: the static closure misses nothing;
- imports flow one way: no cycle, the building blocks never import config / train / pipeline /
  report, and evaluation, downstream and report load no training code.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fsrlib import deps

REPO = Path(__file__).resolve().parents[1]

# one interpreter imports the heavy third-party libraries, then forks once per stage: each child
# runs only the import statements of the stage notebook's code cells and reports which fsrlib
# modules are loaded (cheap: no torch import per stage)
PROBE = textwrap.dedent(r'''
    import ast, json, os, sys
    import numpy, pandas, torch, torchvision, matplotlib, PIL, yaml, scipy, tqdm, cv2, dlib  # noqa: F401
    sys.path.insert(0, sys.argv[1])
    out = {}
    for stage, nb in json.loads(sys.argv[2]).items():
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            cells = [c for c in json.load(open(os.path.join(sys.argv[1], nb)))["cells"] if c["cell_type"] == "code"]
            for c in cells:
                for node in ast.walk(ast.parse("".join(c["source"]))):
                    if isinstance(node, (ast.Import, ast.ImportFrom)):
                        exec(compile(ast.Module([node], []), nb, "exec"), {})
            files = sorted({os.path.relpath(m.__file__, sys.argv[1]) for n, m in list(sys.modules.items())
                            if (n == "fsrlib" or n.startswith("fsrlib.")) and getattr(m, "__file__", None)})
            os.write(w, json.dumps(files).encode())
            os._exit(0)
        os.close(w)
        data = b""
        while chunk := os.read(r, 1 << 16):
            data += chunk
        os.waitpid(pid, 0)
        out[stage] = json.loads(data)
    print(json.dumps(out))
''')


def test_dvc_yaml_code_deps_and_params_are_current():
    problems = deps.check_dvc_yaml(REPO / "dvc.yaml")
    assert not problems, "dvc.yaml is stale; run `python -m fsrlib.deps --write`:\n" + "\n".join(problems)


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    nbs = {s: st.notebook for s, st in deps.STAGES.items()}
    res = subprocess.run([sys.executable, "-c", PROBE, str(REPO), json.dumps(nbs)], capture_output=True, text=True,
                         timeout=600, cwd=REPO)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("stage", list(deps.STAGES))
def test_every_module_a_stage_loads_is_in_its_deps(stage, loaded):
    covered = deps.code_deps(stage)
    files = loaded[stage]
    assert files and "fsrlib/__init__.py" in files
    missing = [f for f in files if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in covered)]
    assert not missing, f"stage {stage} loads {missing}, not in its dvc.yaml deps {covered}"


def test_deps_follow_lazy_imports_and_scanned_packages(tmp_path):
    """A tiny package: a lazy import inside a function and a scanned sub-package are followed."""
    pkg = tmp_path / "fsrlib"
    (pkg / "zoo").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from .b import g\n    return g\n")
    (pkg / "b.py").write_text("from . import zoo\n")
    (pkg / "zoo" / "__init__.py").write_text(
        "import importlib, pkgutil\nfor m in pkgutil.iter_modules(__path__):\n"
        "    importlib.import_module(f'{__name__}.{m.name}')\n")
    (pkg / "zoo" / "one.py").write_text("X = 'table.csv'\n")
    (pkg / "zoo" / "table.csv").write_text("a\n1\n")
    (pkg / "zoo" / "other.csv").write_text("a\n")
    got = deps.closure(["fsrlib.a"], tmp_path)
    assert got == {"fsrlib", "fsrlib.a", "fsrlib.b", "fsrlib.zoo", "fsrlib.zoo.one"}
    files = deps.module_deps("fsrlib.a", tmp_path)
    assert "fsrlib/zoo/table.csv" in files and "fsrlib/zoo/other.csv" not in files


# ---------------------------------------------------------------------- one-way imports
ALL = [".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
       for p in (REPO / "fsrlib").rglob("*.py")]
MODULES = sorted(deps.closure(ALL))
GRAPH = {m: {d for d in deps.imports_of(m) if d in MODULES} for m in MODULES}
BLOCKS = ("fsrlib.data", "fsrlib.parsing", "fsrlib.models", "fsrlib.losses", "fsrlib.metrics")
LEAVES = ("fsrlib.registry", "fsrlib.settings", "fsrlib.io", "fsrlib.imresize", "fsrlib.labels", "fsrlib.dlib_models")
UPPER = ("fsrlib.config", "fsrlib.train", "fsrlib.pipeline", "fsrlib.report", "fsrlib.inference", "fsrlib.cli",
         "fsrlib.deps")


def _under(m: str, prefixes) -> bool:
    return any(m == p or m.startswith(p + ".") for p in prefixes)


def test_no_import_cycle():
    index, low, on, stack, cycles = {}, {}, set(), [], []

    def visit(v):  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in MODULES:
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_building_blocks_never_import_upward():
    bad = {m: sorted(d for d in GRAPH[m] if _under(d, UPPER)) for m in MODULES if _under(m, BLOCKS)}
    assert not {m: d for m, d in bad.items() if d}, bad
    leaves = {m: sorted(d for d in GRAPH[m] if not _under(d, LEAVES)) for m in MODULES if _under(m, LEAVES)}
    assert not {m: d for m, d in leaves.items() if d}, leaves
    # config reads params only: never the model zoo, training or the stages
    assert not [d for d in GRAPH["fsrlib.config"] if _under(d, (*BLOCKS, *UPPER))]


@pytest.mark.parametrize("stage", ["fsrlib.inference", "fsrlib.pipeline.evaluate", "fsrlib.pipeline.downstream",
                                   "fsrlib.pipeline.report_stage", "fsrlib.pipeline.inspection"])
def test_evaluation_and_report_load_no_training_code(stage):
    assert not sorted(m for m in deps.closure([stage]) if _under(m, ("fsrlib.train",)))
