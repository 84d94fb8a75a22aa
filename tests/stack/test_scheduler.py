"""Monitoring on a running scheduler: the scheduler's own daily run reads the day that has just
ended, a CLI backfill reads exactly its dates without retraining, then drift -> Asset event -> the
scheduler starts the training DAG by itself -> a new model version.

Real Airflow services (scheduler, dag-processor, triggerer, api-server, LocalExecutor) on the
machine's PostgreSQL, started once for this module. Assertions use the REST API and MLflow.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from mlops_airflow.localstack import AirflowStack
from mlops_core import datasets, monitoring, registry, settings
from mlops_core.spec import load_spec
from tests.helpers import pipeline_folder

pytestmark = pytest.mark.scheduler

NAME = "stk"
STABLE = [date(2026, 2, d) for d in range(1, 6)]
DRIFT_DAY = date(2026, 2, 6)
# The monitoring DAG has no end date: once unpaused the scheduler creates the run for the last
# whole day (catchup off), whose data interval is [yesterday, today).
YESTERDAY = date.today() - timedelta(days=1)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("scheduler")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(root / "local"))
        # the pipeline: the example, manual training + drift asset, daily monitoring
        dags = pipeline_folder(
            root / "dags",
            NAME,
            schedule=None,
            monitoring={"schedule": "@daily", "consecutive_days": 1, "cooldown_days": 3, "min_rows": 100},
        )
        # January for training; five stable days; one day with the documented shift
        landing = settings.landing_root()
        datasets.materialize("breast_cancer", landing)
        for day in STABLE:
            datasets.append("breast_cancer", landing, datasets.daily_batch("breast_cancer", day))
        datasets.append(
            "breast_cancer", landing, datasets.daily_batch("breast_cancer", DRIFT_DAY, drift=True)
        )
        datasets.append("breast_cancer", landing, datasets.daily_batch("breast_cancer", YESTERDAY))
        stack = AirflowStack(
            home=root / "airflow", dags_folder=dags, extra_env={"MLOPS_LOCAL_DIR": str(root / "local")}
        )
        stack.start()
        try:
            for dag_id in (f"{NAME}_training", f"{NAME}_monitoring"):
                stack.wait_for_dag(dag_id)
            stack.unpause(f"{NAME}_training")  # monitoring is unpaused once there is a champion
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="module")
def spec(stack):
    return load_spec(stack.dags_folder / "pipelines" / f"{NAME}.yaml")


def test_initial_training_through_the_rest_api(stack, spec):
    stack.api("POST", f"/dags/{NAME}_training/dagRuns", {"logical_date": "2026-01-31T00:00:00Z", "conf": {}})
    (run,) = stack.wait_runs(f"{NAME}_training", 1, run_type="manual")
    assert run["state"] == "success", stack.tasks(f"{NAME}_training", run["dag_run_id"])
    assert registry.alias_version(NAME, registry.CHAMPION) == "1"


def test_the_schedulers_own_run_reads_the_day_that_has_just_ended(stack, spec):
    """Unpaused, the scheduler creates the @daily run for yesterday (logical date = yesterday,
    started after yesterday ended) and it reads yesterday's rows: not today's, which have not come."""
    stack.unpause(f"{NAME}_monitoring")
    (run,) = stack.wait_runs(f"{NAME}_monitoring", 1, run_type="scheduled")
    assert run["state"] == "success", stack.tasks(f"{NAME}_monitoring", run["dag_run_id"])
    assert run["logical_date"][:10] == YESTERDAY.isoformat()
    assert run["data_interval_end"][:10] == (YESTERDAY + timedelta(days=1)).isoformat()
    history = monitoring.history(spec, settings.lake_root())
    assert list(history["ds"]) == [YESTERDAY.isoformat()]
    assert int(history["rows"].iloc[0]) == 200  # the day's batch, and only it


def test_backfill_fills_history_and_never_retrains(stack, spec):
    stack.cli(
        "backfill",
        "create",
        "--dag-id",
        f"{NAME}_monitoring",
        "--from-date",
        STABLE[0].isoformat(),
        "--to-date",
        STABLE[-1].isoformat(),
    )
    runs = stack.wait_runs(f"{NAME}_monitoring", 5, run_type="backfill")
    assert [r["state"] for r in runs] == ["success"] * 5
    assert sorted(r["logical_date"][:10] for r in runs) == [d.isoformat() for d in STABLE]
    for run in runs:
        tasks = stack.tasks(f"{NAME}_monitoring", run["dag_run_id"])
        assert tasks["drift_check"]["state"] == "success"
        assert tasks["emit_drift_event"]["state"] == "skipped"
    # each backfill run read exactly the day it names
    history = monitoring.history(spec, settings.lake_root())
    backfilled = history[history["run_type"] == "backfill"]
    assert list(backfilled["ds"]) == [d.isoformat() for d in STABLE]
    assert list(backfilled["rows"]) == [200] * len(STABLE)
    assert (history["drift_share"] < spec.monitoring.drift_share).all()
    # no training run other than the first, manual one
    assert [r["run_type"] for r in stack.runs(f"{NAME}_training")] == ["manual"]


def test_drifted_day_fires_asset_and_scheduler_retrains(stack, spec):
    stack.api(
        "POST", f"/dags/{NAME}_monitoring/dagRuns", {"logical_date": f"{DRIFT_DAY}T00:00:00Z", "conf": {}}
    )
    (mon,) = stack.wait_runs(f"{NAME}_monitoring", 1, run_type="manual")
    tasks = stack.tasks(f"{NAME}_monitoring", mon["dag_run_id"])
    assert mon["state"] == "success" and tasks["emit_drift_event"]["state"] == "success", tasks
    # the asset event carries the evidence
    events = stack.api("GET", "/assets/events?limit=50")["asset_events"]
    drift_events = [e for e in events if e["uri"] == spec.drift_asset_uri]
    assert len(drift_events) == 1
    extra = drift_events[0]["extra"]
    assert extra["ds"] == DRIFT_DAY.isoformat() and extra["drift_share"] >= spec.monitoring.drift_share
    assert set(extra["drifted_columns"]) <= set(datasets.DRIFT_COLUMNS["breast_cancer"])
    # ... and the scheduler started the training DAG by itself
    (retrain,) = stack.wait_runs(f"{NAME}_training", 1, run_type="asset_triggered")
    assert retrain["state"] == "success", stack.tasks(f"{NAME}_training", retrain["dag_run_id"])
    versions = sorted(int(v.version) for v in registry.client().search_model_versions(f"name = '{NAME}'"))
    assert versions == [1, 2]
    mv = registry.client().get_model_version(NAME, "2")
    tags = registry.client().get_run(mv.run_id).data.tags
    assert tags["mlops.trigger"] == "drift" and tags["mlops.drift_ds"] == DRIFT_DAY.isoformat()
    assert tags["airflow.run_type"] == "asset_triggered"
    assert tags["mlops.ds"] == DRIFT_DAY.isoformat()  # trained on data up to the drifted day
    assert DRIFT_DAY - timedelta(days=1) <= date.fromisoformat(tags["mlops.ds"])
