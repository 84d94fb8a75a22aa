"""A day with no rows yet is not ready: ingest waits (deferred) instead of failing for good."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from airflow.providers.standard.triggers.temporal import DateTimeTrigger
from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

from mlops_airflow.operators.data import IngestOperator
from mlops_core.base import settings
from mlops_dev import datasets
from tests.helpers import example_spec

pytestmark = pytest.mark.unit


def _context() -> dict:
    return {"dag_run": SimpleNamespace(run_type="scheduled"), "triggering_asset_events": {}}


def test_todays_missing_rows_defer_then_ingest_when_they_land(landing):
    # The operator judges the day against the real clock in UTC (a day not over yet may still fill
    # up), so the day is today in UTC; across midnight it is yesterday, still inside its wait.
    today = datetime.now(UTC).date()
    spec = example_spec(source={"wait_minutes": 120})
    op = IngestOperator(
        task_id="ingest", pipeline=spec, partition_date=today.isoformat(), lookback_days=1, poll_seconds=5
    )
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, DateTimeTrigger) and deferred.value.method_name == "resume_ingest"
    assert trigger.moment <= datetime.now(UTC) + timedelta(seconds=6)  # polls, does not sleep a worker
    # still nothing: defers again
    with pytest.raises(TaskDeferred):
        op.resume_ingest(_context())
    # the rows land; the next look ingests them
    datasets.append("breast_cancer", settings.landing_root(), datasets.daily_batch("breast_cancer", today))
    result = op.resume_ingest(_context())
    assert result["rows"] == 200 and result["uri"].endswith(f"ds={today.isoformat()}")


def test_a_day_whose_wait_is_over_fails_at_once_saying_why(landing):
    spec = example_spec(source={"wait_minutes": 120})
    op = IngestOperator(task_id="ingest", pipeline=spec, partition_date="2026-03-01", lookback_days=1)
    with pytest.raises(
        AirflowFailException, match=r"no rows for ds=2026-03-01.*wait_minutes \(120\) has passed"
    ):
        op.execute(_context())


def test_a_config_error_is_not_waited_for(landing):
    spec = example_spec(source={"partition": {"mode": "column", "column": "no_such_column"}})
    op = IngestOperator(task_id="ingest", pipeline=spec, partition_date=datetime.now(UTC).date().isoformat())
    # a day still inside its wait: a missing-rows error would defer, a config error fails at once
    with pytest.raises(AirflowFailException, match="no column 'no_such_column'"):
        op.execute(_context())


@pytest.mark.parametrize("run_type", ["manual", "backfill", "asset_triggered"])
def test_a_run_that_is_not_scheduled_fails_at_once_naming_the_path(landing, run_type):
    """#25 trap 1: a wrong source.uri on a manual run waited silently for hours; now it fails at once."""
    today = datetime.now(UTC).date()
    spec = example_spec(source={"wait_minutes": 600, "uri": "${MLOPS_LANDING}/nowhere/data.csv"})
    op = IngestOperator(task_id="ingest", pipeline=spec, partition_date=today.isoformat(), lookback_days=1)
    context = {"dag_run": SimpleNamespace(run_type=run_type), "triggering_asset_events": {}}
    with pytest.raises(AirflowFailException) as failed:
        op.execute(context)
    message = str(failed.value)
    assert f"{settings.landing_root()}/nowhere/data.csv" in message
    assert f"A {run_type} run does not wait" in message and "fix source.uri" in message


def test_a_scheduled_snapshot_does_not_wait_for_a_missing_file(landing):
    spec = example_spec(
        source={
            "wait_minutes": 600,
            "uri": "${MLOPS_LANDING}/nowhere/data.csv",
            "partition": {"mode": "snapshot"},
        }
    )
    op = IngestOperator(task_id="ingest", pipeline=spec, partition_date=datetime.now(UTC).date().isoformat())
    with pytest.raises(AirflowFailException, match="never for a snapshot source"):
        op.execute(_context())
