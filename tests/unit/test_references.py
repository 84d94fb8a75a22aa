"""Every dotted name of the package written anywhere (docs, docstrings, subprocess code in strings,
shell scripts, compose) resolves: a module moved without its references fails here, not in a
subprocess at run time (the bench's and the race test's child code once imported a removed path)."""

from __future__ import annotations

import functools
import importlib
import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
TREES = ["include", "plugins", "tools", "tests", "benchmarks", "dags", "docs", "recipes", ".ci"]
FILES = ["Makefile", "Dockerfile", "docker-compose.yaml", "pyproject.toml", "README.md"]
SUFFIXES = {".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".txt", ""}
# names that are not modules: entry-point groups
NOT_MODULES = {"mlops_airflow.frameworks"}
FROM_IMPORT = re.compile(r"from (mlops_core|mlops_airflow|mlops_dev)((?:\.\w+)*) import ([\w, ]+)")
DOTTED = re.compile(r"\b((?:mlops_core|mlops_airflow|mlops_dev)(?:\.\w+)+)")


def _texts() -> list[tuple[Path, str]]:
    paths = [ROOT / f for f in FILES]
    for tree in TREES:
        paths += [p for p in (ROOT / tree).rglob("*") if p.is_file() and p.suffix in SUFFIXES]
    out = []
    for path in paths:
        try:
            out.append((path, path.read_text()))
        except (UnicodeDecodeError, FileNotFoundError):
            continue
    return out


@functools.cache
def _module(name: str) -> object | None:
    """The module, or None when ``name`` is not one (a failed import is not cached by Python: a
    miss asked again searches the path again, thousands of times over the repo's text)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


@functools.cache
def resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        obj = _module(".".join(parts[:i]))
        if obj is None:
            continue
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            return False
        return True
    return False


def test_resolves_tells_a_moved_name_from_a_real_one() -> None:
    assert resolves("mlops_core.data.storage.write_partition")
    assert not resolves("mlops_core.storage.write_partition")  # the path before the move
    assert not resolves("mlops_core.data.storage.no_such_function")


def test_every_reference_to_the_package_resolves() -> None:
    broken = set()
    for path, text in _texts():
        where = path.relative_to(ROOT)
        if path == Path(__file__).resolve():
            continue  # its own examples of broken names
        for m in FROM_IMPORT.finditer(text):
            for name in (n.strip().split(" as ")[0] for n in m.group(3).split(",") if n.strip()):
                if not resolves(f"{m.group(1)}{m.group(2)}.{name}"):
                    broken.add(f"{where}: from {m.group(1)}{m.group(2)} import {name}")
        for m in DOTTED.finditer(text):
            dotted = m.group(1)
            if dotted not in NOT_MODULES and not resolves(dotted):
                broken.add(f"{where}: {dotted}")
    assert not broken, "references to names that do not exist:\n" + "\n".join(sorted(broken))
