"""The engine never imports Airflow; the parse path never imports heavy libraries."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CORE = Path(__file__).resolve().parents[2] / "include" / "mlops_core"


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys; print(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_import_mlops_core_leaves_airflow_out():
    mods = _modules_after("import mlops_core")
    assert not any(m == "airflow" or m.startswith("airflow.") for m in mods)


def test_every_core_module_imports_without_airflow():
    names = [
        f"mlops_core.{p.relative_to(CORE).with_suffix('').as_posix().replace('/', '.')}"
        for p in CORE.rglob("*.py")
        if p.name != "__init__.py"
    ]
    mods = _modules_after("import importlib\n" + "\n".join(f"importlib.import_module({n!r})" for n in names))
    assert not any(m == "airflow" or m.startswith("airflow.") for m in mods)


def test_no_airflow_import_in_core_source():
    offenders = [
        str(p)
        for p in CORE.rglob("*.py")
        if any(
            line.lstrip().startswith(("import airflow", "from airflow"))
            for line in p.read_text().splitlines()
        )
    ]
    assert offenders == []


def test_spec_is_cheap_to_import():
    mods = _modules_after("import mlops_core.spec, mlops_core.storage, mlops_core.lifecycle")
    heavy = {"pandas", "numpy", "sklearn", "mlflow", "great_expectations", "evidently", "dvc"} & mods
    assert heavy == set()
