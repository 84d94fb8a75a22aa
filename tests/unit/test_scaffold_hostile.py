"""`mlops-airflow new` writes a hostile CSV file name or label as text, never as YAML keys
(issue 23, item 7)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import yaml

from mlops_core.scaffold import scaffold
from mlops_core.spec import parse_spec

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

INJECTED = "\nenv: [MLOPS_FOO]\nowner: mallory\n# "


def _csv(folder: Path, name: str, label: str = "yes") -> Path:
    path = folder / name
    rows = [f"{i},{i % 7}.5,{label if i % 2 else 'no'}" for i in range(40)]
    path.write_text("id,amount,churned\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("breaker", ["\n", "\r", "\r\n", "\x85", "\u2028", "\u2029"])
def test_a_line_break_in_the_file_name_adds_no_key(tmp_path, breaker):
    path = _csv(tmp_path, "data.csv" + INJECTED.replace("\n", breaker))
    text = scaffold("churn", path, "churned")
    data = yaml.safe_load(text)
    clean = yaml.safe_load(scaffold("churn", _csv(tmp_path, "clean.csv"), "churned"))
    assert set(data) == set(clean)  # the keys a scaffold writes, and no other
    assert "env" not in data and "owner" not in data
    assert data["source"]["uri"].endswith(path.name)  # the name itself is kept, as a quoted string
    parse_spec(data)
    assert all(line.startswith("#") for line in text.split("\nname:", 1)[0].splitlines())


def test_a_line_break_in_the_positive_label_adds_no_key(tmp_path):
    path = _csv(tmp_path, "data.csv", label='"yes' + INJECTED.replace("\n", "\u2028") + '"')
    data = yaml.safe_load(scaffold("churn", path, "churned"))
    assert "env" not in data and "owner" not in data
