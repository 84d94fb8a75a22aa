"""Size: no module over about 600 lines, no function over about 60 without a written reason.

A function that must stay longer says why in a ``# long: <reason>`` comment directly above its
``def`` (or its first decorator). The limits are the issue's (#24); they keep a module readable
in one sitting and a function on one screen.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [ROOT / "include" / "mlops_core", ROOT / "plugins" / "mlops_airflow"]
MAX_MODULE_LINES = 620
MAX_FUNCTION_LINES = 60


def _modules() -> list[Path]:
    return sorted(p for root in SOURCES for p in root.rglob("*.py"))


def long_functions(path: Path) -> list[str]:
    """``module:line name (n lines)`` for each function longer than the limit without a reason."""
    text = path.read_text()
    lines = text.splitlines()
    found = []
    for node in ast.walk(ast.parse(text)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        length = (node.end_lineno or node.lineno) - node.lineno + 1
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        above = lines[first - 2].strip() if first >= 2 else ""
        if length > MAX_FUNCTION_LINES and not above.startswith("# long:"):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)")
    return found


def test_long_functions_are_found(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "m.py").write_text(f"def f():\n{body}\n\n# long: a table\ndef g():\n{body}\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert long_functions(tmp_path / "m.py") == [f"m.py:1 f ({MAX_FUNCTION_LINES + 1} lines)"]
    finally:
        ROOT = saved


def test_no_module_over_the_limit() -> None:
    big = {
        str(p.relative_to(ROOT)): n
        for p in _modules()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert not big, f"split by concern (at most about 600 lines each): {big}"


def test_no_long_function_without_a_reason() -> None:
    found = [f for p in _modules() for f in long_functions(p)]
    assert not found, "shorten, or say why above the def (# long: <reason>):\n" + "\n".join(found)
