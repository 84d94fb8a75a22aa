"""The security catalogue: hostile YAML, paths, params and event extras, each refused with an error
that names the field, before anything is read, written, registered or deployed.

Each case is one row of README "Security catalogue". Report escaping, the compose stack and the
registry/deploy checks have their own tests (listed there too).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import yaml

from mlops_core.spec import SpecError, load_spec, parse_spec
from tests.helpers import example_data

pytestmark = pytest.mark.unit

# (id, change to the example YAML, text the error must contain)
HOSTILE_YAML = [
    (
        "pandas-row-condition-runs-code",
        {
            "expectations": [
                {
                    "expect_column_values_to_not_be_null": {
                        "column": "mean_radius",
                        "row_condition": "@pd.io.common.os.system('id')",
                        "condition_parser": "pandas",
                    }
                }
            ]
        },
        "expectations.0: expect_column_values_to_not_be_null: 'row_condition' is not allowed",
    ),
    (
        "gx-suite-parameter-dict",
        {
            "expectations": [
                {
                    "expect_column_values_to_be_between": {
                        "column": "mean_radius",
                        "min_value": {"$PARAMETER": "x"},
                    }
                }
            ]
        },
        "min_value must be a finite number or an ISO date string",
    ),
    (
        "gx-result-format-override",
        {
            "expectations": [
                {"expect_column_values_to_be_unique": {"column": "record_id", "result_format": "COMPLETE"}}
            ]
        },
        "'result_format' is not allowed",
    ),
    (
        "regex-too-long",
        {
            "expectations": [
                {"expect_column_values_to_match_regex": {"column": "record_id", "regex": "(a+)+" * 200}}
            ]
        },
        "regex must be a regular expression (at most 500 characters)",
    ),
    (
        "airflow-connection-through-env",
        {"source": {"uri": "s3://${AIRFLOW_CONN_AWS_DEFAULT}/x.csv"}},
        "source.uri: ${AIRFLOW_CONN_AWS_DEFAULT} looks like a credential or an Airflow setting",
    ),
    (
        "fernet-key-through-env",
        {"source": {"uri": "${MLOPS_LANDING}/${AIRFLOW__CORE__FERNET_KEY}.csv"}},
        "${AIRFLOW__CORE__FERNET_KEY} looks like a credential",
    ),
    (
        "declared-secret-still-refused",
        {"env": ["DB_PASSWORD"], "source": {"uri": "${MLOPS_LANDING}/${DB_PASSWORD}.csv"}},
        "${DB_PASSWORD} looks like a credential",
    ),
    (
        "undeclared-env-var",
        {"source": {"uri": "${MLOPS_LANDING}/${HOME}/x.csv"}},
        "${HOME} is not a variable this pipeline may read; use an MLOPS_* variable or declare it under env: [HOME]",
    ),
    (
        "env-in-description",
        {"description": "owner ${AWS_SECRET_ACCESS_KEY}"},
        "description: ${AWS_SECRET_ACCESS_KEY} looks like a credential",
    ),
    (
        "cloud-metadata-url",
        {"source": {"uri": "http://169.254.169.254/latest/meta-data/iam/security-credentials/"}},
        "source.uri: scheme 'http' is not allowed for a source",
    ),
    ("ftp-source", {"source": {"uri": "ftp://example.org/data.csv"}}, "scheme 'ftp' is not allowed"),
    ("memory-fs-source", {"source": {"uri": "memory://x/data.csv"}}, "scheme 'memory' is not allowed"),
    ("bare-path-source", {"source": {"uri": "/etc/passwd"}}, "relative and bare local paths are not allowed"),
    (
        "dot-dot-out-of-landing",
        {"source": {"uri": "${MLOPS_LANDING}/../../../etc/passwd"}},
        "a source URI may not contain '..'",
    ),
    (
        "reference-in-another-bucket",
        {"monitoring": {"reference": "s3://other-team/lake/model/raw/ds=2026-01-31"}},
        "monitoring.reference: reference is 'champion_training'",
    ),
    (
        "reference-dot-dot",
        {"monitoring": {"reference": "${MLOPS_LAKE}/breast_cancer/../other/raw/ds=2026-01-31"}},
        "reference may not contain '..'",
    ),
    (
        "all-cores",
        {"model": {"family": "random_forest", "params": {"n_jobs": -1}}},
        "model.params.n_jobs: -1 is outside 1..8",
    ),
    (
        "a-billion-trees",
        {"model": {"family": "random_forest", "params": {"n_estimators": 10**9}}},
        "model.params.n_estimators: 1000000000 is outside 1..5000",
    ),
    (
        "nan-param",
        {"model": {"family": "random_forest", "params": {"n_estimators": float("nan")}}},
        "must be a finite number",
    ),
    (
        "nan-floor",
        {"evaluation": {"primary_metric": "roc_auc", "floors": {"roc_auc": float("nan")}}},
        "evaluation.floors.roc_auc: Input should be a finite number",
    ),
    (
        "inf-floor",
        {"evaluation": {"primary_metric": "roc_auc", "floors": {"recall": float("-inf")}}},
        "evaluation.floors.recall: Input should be a finite number",
    ),
    ("class-as-family", {"model": {"family": "os:system"}}, "is not in the estimator allow-list"),
    ("boolean-label", {"positive_class": True}, "positive_class: YAML read the label as the boolean True"),
]


@pytest.mark.parametrize(
    ("change", "message"), [c[1:] for c in HOSTILE_YAML], ids=[c[0] for c in HOSTILE_YAML]
)
def test_hostile_yaml_is_refused_naming_the_field(change, message):
    with pytest.raises(SpecError) as err:
        parse_spec(example_data(**change), "hostile.yaml")
    assert message in str(err.value)


def test_yaml_alias_bomb_is_refused(tmp_path):
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
    path = tmp_path / "breast_cancer.yaml"
    path.write_text(yaml.safe_dump(example_data(), sort_keys=False) + bomb)
    with pytest.raises(SpecError, match=r"YAML aliases \(\*name\) are not allowed"):
        load_spec(path)


def test_oversized_yaml_is_refused(tmp_path):
    path = tmp_path / "breast_cancer.yaml"
    path.write_text(yaml.safe_dump(example_data(description="x" * 300_000), sort_keys=False))
    with pytest.raises(SpecError, match="a pipeline YAML may hold at most 262144"):
        load_spec(path)


@pytest.mark.parametrize(
    "uri",
    [
        "file:///etc/passwd",  # a worker file copied into the lake
        "${MLOPS_LAKE}/other_pipeline/raw/ds=2026-01-31/data.parquet",  # another team's lake prefix
        "s3://someone-elses-bucket/data.csv",
    ],
    ids=["worker-file", "other-lake-prefix", "other-bucket"],
)
def test_sources_outside_the_profiles_roots_are_refused_at_run_time(local_dir, uri):
    from mlops_core.spec import profiles as clouds

    profile = clouds.resolve("local")
    with (
        clouds.using(profile),
        pytest.raises(clouds.CloudProfileError, match="outside the roots cloud profile 'local' allows"),
    ):
        profile.check_source(uri)
    assert profile.check_source("${MLOPS_LANDING}/breast_cancer/breast_cancer.csv").startswith("file://")


def test_ingest_of_a_forbidden_source_fails_before_reading_or_writing(landing, tmp_path):
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.operators.data import IngestOperator
    from mlops_core.base import settings
    from tests.helpers import example_spec

    secret = tmp_path / "secret.csv"
    secret.write_text("a,b\n1,2\n")
    spec = example_spec(source={"uri": secret.as_uri(), "partition": {"mode": "snapshot"}})
    op = IngestOperator(task_id="ingest", pipeline=spec, partition_date="2026-01-31")
    with pytest.raises(AirflowFailException, match="outside the roots"):
        op.execute({"dag_run": SimpleNamespace(run_type="manual"), "triggering_asset_events": {}})
    from pathlib import Path
    from urllib.parse import urlparse

    assert not (Path(urlparse(settings.lake_root()).path) / "breast_cancer").exists()  # nothing written


def test_monitoring_reference_outside_the_pipelines_prefix_is_refused(local_dir, monkeypatch):
    from mlops_core.monitor import monitoring
    from tests.helpers import example_spec

    spec = example_spec(monitoring={"reference": "${MLOPS_LAKE}/breast_cancer/raw/ds=2026-01-31"})
    assert monitoring.reference_uri(spec).endswith("/breast_cancer/raw/ds=2026-01-31")
    monkeypatch.setenv("MLOPS_TEAM", "other")  # an MLOPS_* variable cannot escape the prefix either
    spec = example_spec(monitoring={"reference": "${MLOPS_LAKE}/${MLOPS_TEAM}/raw/ds=2026-01-31"})
    with pytest.raises(LookupError, match="outside the pipeline's own lake prefix"):
        monitoring.reference_uri(spec)


def test_the_source_connection_never_writes_the_lake(monkeypatch):
    """source.conn_id (a partner's read-only connection) applies to the source's folder only."""
    from mlops_airflow.hooks.cloud import cloud_context, connection_for
    from tests.helpers import example_spec

    spec = example_spec(
        cloud="aws", source={"uri": "s3://partner-bucket/exports/churn.csv", "conn_id": "partner_ro"}
    )
    with cloud_context(spec) as profile:
        assert connection_for("s3://partner-bucket/exports/churn.csv") == "partner_ro"
        assert connection_for(f"{profile.lake}/breast_cancer/raw/ds=2026-01-31/data.parquet") == "aws_default"
        assert connection_for(f"{profile.landing}/breast_cancer/x.csv") == "aws_default"
        assert connection_for("s3://partner-bucket/elsewhere/x.csv") == "aws_default"
    # the operator argument overrides the spec's, for the source only
    with cloud_context(spec, "partner_ops") as profile:
        assert connection_for("s3://partner-bucket/exports/churn.csv") == "partner_ops"
        assert connection_for(f"{profile.lake}/x") == "aws_default"


@pytest.mark.parametrize("forged", ["../../etc", "2026-01-31/../../x", "not-a-date"])
def test_a_forged_drift_event_day_is_refused(forged):
    from mlops_airflow.operators.base import data_day

    event = SimpleNamespace(extra={"mlops_trigger": "drift", "ds": forged}, timestamp=1)
    ctx = {"dag_run": SimpleNamespace(run_type="asset_triggered"), "triggering_asset_events": {"a": [event]}}
    with pytest.raises(ValueError, match="drift event's ds"):
        data_day(ctx)


def test_credentials_in_a_source_uri_never_reach_the_lake_or_the_error(landing, monkeypatch):
    """A declared variable may carry a signed URL; its secret parts are redacted where they are written."""
    from mlops_core import lifecycle
    from mlops_core.base import settings
    from mlops_core.data.errors import SourceDataError
    from tests.helpers import example_spec

    assert (
        settings.redact("s3://key:SECRET@bucket/x.csv?sig=SECRET&v=1")
        == "s3://key:***@bucket/x.csv?sig=***&v=1"
    )
    monkeypatch.setenv("MLOPS_EXPORT_QUERY", "sig=TOPSECRET")
    spec = example_spec(
        source={"uri": "${MLOPS_LANDING}/breast_cancer/breast_cancer.csv?${MLOPS_EXPORT_QUERY}"}
    )
    with pytest.raises(SourceDataError) as err:
        lifecycle.ingest(spec, "2026-01-31", settings.lake_root())
    assert "TOPSECRET" not in str(err.value) and "sig=***" in str(err.value)


@pytest.mark.parametrize("forged", ["../../etc/passwd", "2026-01-31/../../x", "2026-13-45"])
def test_a_forged_partition_date_param_is_refused_before_anything_is_read(landing, forged):
    """The trigger form's partition_date is validated by its Param schema; a conf sent around it
    (CLI, API) still cannot become a path: the data day must parse as a date."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.operators.data import IngestOperator
    from mlops_core.base import settings
    from tests.helpers import example_spec

    op = IngestOperator(task_id="ingest", pipeline=example_spec(), partition_date=forged)
    with pytest.raises((ValueError, AirflowFailException), match="not YYYY-MM-DD|is not a"):
        op.execute({"dag_run": SimpleNamespace(run_type="manual"), "triggering_asset_events": {}})
    from pathlib import Path
    from urllib.parse import urlparse

    assert not (Path(urlparse(settings.lake_root()).path) / "breast_cancer").exists()
