"""``mlops-airflow validate --data FILE`` (#25 trap 6 and 7): the YAML against a sample of its data,
every mistake at once. The data is a real table: statsmodels' ``spector`` (Spector and Mazzeo's
economics-course grades, shipped inside statsmodels), its GRADE relabelled ``Yes``/``No`` as a
churn-style export writes it."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
import yaml

from mlops_airflow.cli.commands import main

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit


@pytest.fixture
def grades(tmp_path: Path) -> Path:
    from statsmodels.datasets import spector

    frame = spector.load_pandas().data
    frame["passed"] = frame.pop("GRADE").map({1.0: "Yes", 0.0: "No"})
    path = tmp_path / "grades.csv"
    frame.to_csv(path, index=False)
    return path


def _yaml(tmp_path: Path, **changes: object) -> Path:
    data = {
        "name": "grades",
        "problem_type": "binary",
        "target": "passed",
        "start_date": "2026-01-01",
        "source": {"uri": "${MLOPS_LANDING}/grades/grades.csv", "partition": {"mode": "snapshot"}},
        "model": {"family": "linear"},
        "evaluation": {"primary_metric": "roc_auc"},
        **changes,
    }
    path = tmp_path / "grades.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_matching_yaml_passes(tmp_path: Path, grades: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["validate", "--spec-only", str(_yaml(tmp_path, positive_class="Yes")), "--data", str(grades)])
        == 0
    )


def test_every_mistake_is_reported_at_once(
    tmp_path: Path, grades: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _yaml(
        tmp_path, positive_class="yes", features={"id_columns": ["student_id"], "categorical": ["psi"]}
    )
    assert main(["validate", "--spec-only", str(path), "--data", str(grades)]) == 1
    err = capsys.readouterr().err
    assert (
        "positive_class 'yes' is not one of target 'passed''s labels ['No', 'Yes']; did you mean 'Yes'?"
        in err
    )
    assert "features.id_columns names ['student_id'], which the file does not have" in err
    assert "features.categorical names ['psi']" in err  # the column is PSI: names are case-sensitive
    assert err.count(str(grades)) == 3  # each line names the data file


def test_problem_type_mismatches(tmp_path: Path, grades: Path, capsys: pytest.CaptureFixture[str]) -> None:
    multi = _yaml(
        tmp_path, problem_type="multiclass", positive_class="Yes", evaluation={"primary_metric": "accuracy"}
    )
    assert main(["validate", "--spec-only", str(multi), "--data", str(grades)]) == 1
    # refused by the spec itself, with or without data (#25 trap 6: it used to pass silently)
    assert (
        "positive_class applies to binary problems only, and problem_type is multiclass"
        in capsys.readouterr().err
    )
    reg = _yaml(tmp_path, problem_type="regression", evaluation={"primary_metric": "rmse"})
    assert main(["validate", "--spec-only", str(reg), "--data", str(grades)]) == 1
    assert "problem_type is regression, but target 'passed' is not numeric" in capsys.readouterr().err


def test_single_class_data_is_refused_naming_the_file(
    tmp_path: Path, grades: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pandas as pd

    one = tmp_path / "only_passed.csv"
    frame = pd.read_csv(grades)
    frame[frame["passed"] == "Yes"].to_csv(one, index=False)
    assert main(["validate", "--spec-only", str(_yaml(tmp_path)), "--data", str(one)]) == 1
    err = capsys.readouterr().err
    assert f"{one}: target 'passed' has one class in the sample (['Yes'])" in err


def test_a_missing_data_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--spec-only", str(_yaml(tmp_path)), "--data", str(tmp_path / "nope.csv")]) == 1
    assert f"--data {tmp_path / 'nope.csv'}: no such file" in capsys.readouterr().err
