"""The house keeps its shape: the import-linter contracts hold and no module imports itself back.

The contracts (``[tool.importlinter]`` in pyproject.toml) say which layer may import which; a cycle
*inside* a layer is not a layer violation, so it is found here, over the same import graph
(grimp, import-linter's own), with the modules of the cycle named in the failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("mlops_core", "mlops_airflow")


def _graph() -> dict[str, set[str]]:
    import grimp

    graph = grimp.build_graph(*PACKAGES, cache_dir=None)
    return {m: set(graph.find_modules_directly_imported_by(m)) & graph.modules for m in graph.modules}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_cycles_finds_a_cycle_and_only_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles() -> None:
    found = cycles(_graph())
    assert not found, "import cycles (break each by moving the shared piece down a layer):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


def test_import_linter_contracts_hold() -> None:
    run = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "BROKEN" not in run.stdout


def _resume_methods() -> set[str]:
    """``execute`` and every method a step of this package defers to (``method_name="..."``)."""
    import re

    names = {"execute"}
    for path in (ROOT / "plugins" / "mlops_airflow").rglob("*.py"):
        names |= set(re.findall(r'method_name="(\w+)"', path.read_text()))
    return names


def test_every_step_runs_its_task_methods_in_the_cloud_profile() -> None:
    """One explicit mechanism (``@in_cloud_profile`` on the method): every execute and resume
    method a step of this package defines carries it, approval and managed ingestion included."""
    import importlib
    import inspect
    import pkgutil

    import mlops_airflow.operators as package
    from mlops_airflow.operators.base import MlopsStep

    for info in pkgutil.walk_packages(package.__path__, "mlops_airflow.operators."):
        importlib.import_module(info.name)
    steps = {c for c in _subclasses(MlopsStep) if c.__module__.startswith("mlops_airflow.")}
    assert len(steps) >= 15, sorted(c.__name__ for c in steps)
    checked, missing = 0, []
    for cls in steps:
        for name in _resume_methods():
            method = inspect.getattr_static(cls, name, None)
            if method is None or not getattr(method, "__module__", "").startswith("mlops_airflow."):
                continue  # not there, or the provider operator's own (it never touches the lake)
            checked += 1
            if not getattr(method, "in_cloud_profile", False):
                missing.append(f"{cls.__module__}.{cls.__qualname__}.{name}")
    assert not missing, f"add @in_cloud_profile to: {sorted(missing)}"
    assert checked >= 20


def _subclasses(cls: type) -> set[type]:
    out = set()
    for sub in cls.__subclasses__():
        out |= {sub} | _subclasses(sub)
    return out
