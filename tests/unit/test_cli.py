"""``mlops-airflow`` (validate, dagbag, schema, new) and the pre-commit hook, run as users run them.

The CLI runs as a subprocess (real exit codes, real stderr); ``validate`` must print the very
messages the DAG folder's loader records as import errors; the published JSON Schema must equal
the one generated from the spec and accept every example while refusing what the spec refuses;
the pre-commit hook is installed and run by pre-commit itself in a throwaway repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path  # noqa: TC003 - used at run time by the helpers below
from typing import Any

import jsonschema
import pytest
import yaml

from tests.helpers import REPO

pytestmark = pytest.mark.unit

CLI = [sys.executable, "-m", "mlops_airflow"]
EXAMPLES = sorted((REPO / "dags" / "pipelines").glob("*.yaml")) + sorted(
    (REPO / "include" / "examples").glob("*.yaml")
)
PUBLISHED = REPO / "include" / "schema" / "pipeline.schema.json"


def run(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args], cwd=cwd, capture_output=True, text=True, env=env or os.environ.copy(), timeout=300
    )


def as_json(path: Path) -> Any:
    """The YAML as a schema-aware editor sees it (dates as their text)."""
    return json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return json.loads(PUBLISHED.read_text())


def broken_copy(tmp_path: Path, edit: Any) -> Path:
    data = yaml.safe_load((REPO / "dags" / "pipelines" / "breast_cancer.yaml").read_text())
    edit(data)
    path = tmp_path / "breast_cancer.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# --- schema -------------------------------------------------------------------------------------


def test_the_published_schema_is_the_one_the_spec_generates(tmp_path: Path) -> None:
    from mlops_core.spec.schema import dumps

    assert PUBLISHED.read_text() == dumps(), (
        "regenerate: mlops-airflow schema -o include/schema/pipeline.schema.json"
    )
    ok = run("schema", "--check", str(PUBLISHED))
    assert ok.returncode == 0, ok.stderr
    stale = tmp_path / "stale.json"
    stale.write_text(PUBLISHED.read_text().replace('"title": "airflow-mlops pipeline"', '"title": "old"'))
    refused = run("schema", "--check", str(stale))
    assert refused.returncode == 1 and "regenerate it" in refused.stderr


def test_the_schema_is_valid_and_accepts_every_example(schema: dict[str, Any]) -> None:
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    assert EXAMPLES
    for path in EXAMPLES:
        errors = [e.message for e in validator.iter_errors(as_json(path))]
        assert not errors, f"{path.name}: {errors}"


@pytest.mark.parametrize(
    ("edit", "why"),
    [
        (lambda d: d.update(scheduel="@daily"), "unknown top-level field"),
        (lambda d: d["model"].update(family="os.system"), "estimator outside the allow-list"),
        (
            lambda d: d["expectations"].append({"expect_row_condition_to_run": {"column": "x"}}),
            "unknown expectation",
        ),
        (lambda d: d["monitoring"].update(drift_share=1.5), "out of bounds"),
        (lambda d: d.pop("target"), "missing required field"),
        (lambda d: d["source"].update(format="pickle"), "format outside the allowed set"),
    ],
)
def test_the_schema_and_the_spec_refuse_the_same_mistakes(
    tmp_path: Path, schema: dict[str, Any], edit: Any, why: str
) -> None:
    from mlops_core.spec import SpecError, load_spec

    path = broken_copy(tmp_path, edit)
    assert list(jsonschema.Draft202012Validator(schema).iter_errors(as_json(path))), (
        f"schema let through: {why}"
    )
    with pytest.raises(SpecError):
        load_spec(path)


def test_short_forms_are_accepted_by_the_schema(schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schema)
    data = as_json(REPO / "dags" / "pipelines" / "breast_cancer.yaml")
    data["expectations"] = [
        {"expect_column_values_to_not_be_null": {"column": "mean_radius"}},
        {"type": "expect_column_values_to_be_unique", "kwargs": {"column": "record_id"}},
    ]
    data["evaluation"]["slices"] = {
        "columns": ["mean_radius", {"column": "mean_area", "bins": [0, 500, 3000]}]
    }
    assert not [e.message for e in validator.iter_errors(data)]
    data["expectations"].append({"expect_column_values_to_be_unique": {}, "expect_column_to_exist": {}})
    assert [e.message for e in validator.iter_errors(data)], "two expectations in one short-form item"


# --- validate -----------------------------------------------------------------------------------


def test_validate_passes_the_shipped_pipelines_and_builds_their_dags() -> None:
    out = run("validate", "dags/pipelines", "include/examples")
    assert out.returncode == 0, out.stderr
    assert f"{len(EXAMPLES)} of {len(EXAMPLES)} pipeline file(s) valid" in out.stdout
    assert "DAG(s) built" in out.stdout


def test_validate_prints_the_import_errors_messages_and_fails(tmp_path: Path) -> None:
    from mlops_airflow.loader import load_dags

    folder = tmp_path / "pipelines"
    folder.mkdir()
    shutil.copy(REPO / "dags" / "pipelines" / "diabetes.yaml", folder)
    broken_copy(folder, lambda d: d.update(scheduel="@daily", retries=99))
    (folder / "diabetes_again.yaml").write_text(
        (REPO / "dags" / "pipelines" / "diabetes.yaml")
        .read_text()
        .replace("name: diabetes", "name: diabetes_again")
    )
    placeholder = load_dags(folder)["mlops__invalid_pipelines"]
    for flags in ([], ["--spec-only"]):
        out = run("validate", *flags, str(folder))
        assert out.returncode == 1
        assert "breast_cancer.yaml is not a valid pipeline spec" in out.stderr
        assert "scheduel: unknown field; allowed here:" in out.stderr
        assert "retries: Input should be less than or equal to 10" in out.stderr
        assert "2 of 3 pipeline file(s) valid" in out.stdout
    # the same text Airflow shows under "DAG Import Errors" for that file
    full = run("validate", str(folder))
    spec_error = full.stderr.strip()
    assert spec_error in placeholder.description


def test_validate_warns_about_a_decay_policy_judged_only_on_the_holdout(tmp_path: Path) -> None:
    import yaml

    folder = tmp_path / "pipelines"
    folder.mkdir()
    data = yaml.safe_load((REPO / "dags" / "pipelines" / "diabetes.yaml").read_text())
    data["monitoring"] = {"enabled": True}
    data["feedback"] = {
        "uri": "${MLOPS_LANDING}/diabetes/labels.csv",
        "key_columns": ["record_id"],
        "decay": {"reference": "holdout"},
    }
    (folder / "diabetes.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    out = run("validate", "--spec-only", str(folder))
    assert out.returncode == 0, out.stderr  # a warning, not an error
    assert "1 of 1 pipeline file(s) valid" in out.stdout
    assert (
        f"WARNING {folder / 'diabetes.yaml'}: feedback.decay: judged only against the champion's holdout"
        in (out.stderr)
    )


def test_validate_spec_only_never_imports_airflow() -> None:
    code = (
        "import sys; from mlops_airflow.cli.commands import main; rc = main(['validate', '--spec-only', 'dags/pipelines']);"
        "print('AIRFLOW' if any(m == 'airflow' or m.startswith('airflow.') for m in sys.modules) else 'CLEAN', rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.split()[-2:] == ["CLEAN", "0"], out.stdout + out.stderr


def test_validate_usage_errors(tmp_path: Path) -> None:
    missing = run("validate", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    empty = run("validate", str(tmp_path))
    assert empty.returncode == 1 and "no *.yaml files" in empty.stderr


# --- dagbag -------------------------------------------------------------------------------------


def test_dagbag_fails_on_an_import_error_and_passes_the_repo(tmp_path: Path) -> None:
    ok = run("dagbag", "dags")
    assert ok.returncode == 0, ok.stderr
    folder = tmp_path / "dags"
    folder.mkdir()
    (folder / "broken_dag.py").write_text("from airflow.sdk import dag\nimport not_a_module_anywhere\n")
    bad = run("dagbag", str(folder))
    assert bad.returncode == 1
    assert "not_a_module_anywhere" in bad.stderr and "1 import error(s)" in bad.stdout


# --- new ----------------------------------------------------------------------------------------


def write_csv(path: Path, rows: int = 300) -> Path:
    lines = ["customer_id,signup_date,plan,tenure_months,monthly_spend,churned"]
    for i in range(rows):
        plan = ["basic", "plus", "pro"][i % 3]
        spend = "" if i % 50 == 7 else f"{20 + (i * 7) % 80}.5"
        lines.append(
            f"C{i:05d},2026-01-{1 + i % 28:02d},{plan},{i % 60},{spend},{'yes' if i % 4 == 0 else 'no'}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_new_scaffolds_a_valid_pipeline_that_builds(tmp_path: Path, local_dir: Path) -> None:
    from mlops_core.spec import load_spec

    csv = write_csv(tmp_path / "churn.csv")
    out = run("new", "churn", "--csv", str(csv), "--target", "churned", "-o", str(tmp_path / "pipelines"))
    assert out.returncode == 0, out.stderr
    path = tmp_path / "pipelines" / "churn.yaml"
    spec = load_spec(path)
    assert spec.problem_type == "binary" and spec.positive_class == "yes"
    assert spec.evaluation.threshold is None  # 25 % positive: not treated as imbalanced
    assert "hint:" not in out.stdout
    assert spec.features.id_columns == ["customer_id"]
    assert spec.features.time_columns == ["signup_date"]
    assert spec.features.categorical == ["plan"]
    assert spec.source.partition.mode == "column" and spec.source.partition.column == "signup_date"
    # no per-column not-null: the learned data contract refuses a column gone empty already (#25 trap 3)
    assert not [e for e in spec.expectations if e.type == "expect_column_values_to_not_be_null"]
    # the CSV is copied where source.uri points, and the next commands are printed (#25 trap 1)
    from mlops_core.base import settings

    landed = Path(settings.landing_root().removeprefix("file://")) / "churn" / "churn.csv"
    assert (
        f"copied {csv} to {landed}, where source.uri (${{MLOPS_LANDING}}/churn/churn.csv) points"
        in out.stdout
    )
    assert landed.read_bytes() == csv.read_bytes()
    assert spec.source.uri == "${MLOPS_LANDING}/churn/churn.csv"
    assert f"next: mlops-airflow validate {path} --data {csv}" in out.stdout
    assert "then: mlops-airflow run churn --date" in out.stdout
    in_set = next(e for e in spec.expectations if e.type == "expect_column_values_to_be_in_set")
    assert in_set.kwargs == {"column": "churned", "value_set": ["no", "yes"]}
    assert "yaml-language-server: $schema=" in path.read_text()
    built = run("validate", str(path))
    assert built.returncode == 0, built.stderr
    again = run("new", "churn", "--csv", str(csv), "--target", "churned", "-o", str(tmp_path / "pipelines"))
    assert again.returncode == 1 and "--force" in again.stderr
    forced = run(
        "new", "churn", "--csv", str(csv), "--target", "churned", "-o", str(tmp_path / "pipelines"), "--force"
    )
    assert "already holds the same data" in forced.stdout  # never copied twice, never over other data


def test_new_on_a_rare_positive_class_picks_it_tunes_the_threshold_and_floors_recall(tmp_path: Path) -> None:
    """Issue 29 / issue 25 trap 8: on a 10 % target the scaffold guessed the majority class as
    positive and promoted models with recall 0 behind a ROC AUC floor alone."""
    from mlops_core.spec import load_spec

    csv = tmp_path / "loans.csv"
    rows = [f"{i},{i % 7},{'bad' if i % 10 == 0 else 'good'}" for i in range(300)]
    csv.write_text("amount,term,status\n" + "\n".join(rows) + "\n")
    out = run("new", "loans", "--csv", str(csv), "--target", "status", "-o", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "hint: status='bad' is 10.0% of the sample: it is the positive class" in out.stdout
    assert "class_weight" in out.stdout and "docs/imbalanced.md" in out.stdout
    spec = load_spec(tmp_path / "loans.yaml")
    assert spec.positive_class == "bad"  # the minority, not labels[-1] ('good')
    assert spec.evaluation.floors == {"roc_auc": 0.7, "recall": 0.5}
    assert spec.evaluation.threshold.optimize == "precision_at_recall"
    assert spec.evaluation.threshold.min_recall == 0.6
    assert "an imbalanced target (10.0% 'bad'" in (tmp_path / "loans.yaml").read_text()


def test_new_guesses_regression_and_explains_bad_input(tmp_path: Path) -> None:
    from mlops_core.spec import load_spec

    csv = tmp_path / "prices.csv"
    csv.write_text(
        "sqft,rooms,price\n" + "".join(f"{500 + i},{1 + i % 5},{1000 + i * 13.5}\n" for i in range(200))
    )
    assert run("new", "prices", "--csv", str(csv), "--target", "price", "-o", str(tmp_path)).returncode == 0
    assert load_spec(tmp_path / "prices.yaml").problem_type == "regression"
    wrong = run("new", "prices2", "--csv", str(csv), "--target", "cost", "-o", str(tmp_path))
    assert (
        wrong.returncode == 1
        and "'cost' is not a column" in wrong.stderr
        and "sqft, rooms, price" in wrong.stderr
    )
    bad_name = run("new", "Prices", "--csv", str(csv), "--target", "price", "-o", str(tmp_path))
    assert bad_name.returncode == 1 and "lowercase" in bad_name.stderr
    header_only = tmp_path / "empty.csv"
    header_only.write_text("a,b\n")
    none = run("new", "empty", "--csv", str(header_only), "--target", "b", "-o", str(tmp_path))
    assert none.returncode == 1 and "no rows" in none.stderr


def test_new_covers_the_data_scales_row_counts_and_leaves_out_indexes_and_date_copies(tmp_path: Path) -> None:
    """Issue 28 item 6: start_date today, min_value 100 on a day of 26 rows, an index and a date copy as features."""
    from datetime import date, timedelta

    from mlops_core.scaffold import scaffold
    from mlops_core.spec import parse_spec

    rows, n = [], 0
    days = [date(2017, 3, 1) + timedelta(days=d) for d in range(40)]
    for d in (
        days[1:] + days[:1]
    ):  # the first day is written last: start_date is the minimum, not the first row
        for k in range(26 if d.weekday() == 6 else 36):
            n += 1
            stamp = f"{d.isoformat()} {k % 24:02d}:00"
            epoch_days = (d - date(1970, 1, 1)).days
            rows.append(
                f"{n},{stamp},{d.strftime('%Y%m%d')},{epoch_days},{k * 3 % 17},{n * n},c{k % 4},{k * 1.5 + d.day}"
            )
    csv = tmp_path / "bookings.csv"
    csv.write_text(",arrival,date_num,epoch_days,lead_time,cumulative,hotel,adr\n" + "\n".join(rows) + "\n")
    spec = parse_spec(yaml.safe_load(scaffold("bookings", csv, "adr")))
    assert spec.start_date == date(2017, 3, 1)
    assert spec.source.partition.column == "arrival" and spec.features.time_columns == ["arrival"]
    assert spec.features.exclude == ["Unnamed: 0", "date_num", "epoch_days"]
    assert spec.features.categorical == ["hotel"]
    (count,) = [e for e in spec.expectations if e.type == "expect_table_row_count_to_be_between"]
    assert count.kwargs == {"min_value": 13}  # half a thin day (26 rows): every day of the data passes
