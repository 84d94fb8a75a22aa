"""Issue 28 item 1 through Airflow's dag.test(): categories change, drift fires, and the retrain the
drift asks for runs through validate to the gate, which decides (the contract only reports).

The retrain is run for the day the drift event names, as the asset-triggered run reads it
(``partition_date``: README "Data day"); the scheduler tier runs the asset hand-off itself.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import mlflow
import pytest

from mlops_core.base import settings
from mlops_core.data import contract, storage
from mlops_core.runs import registry
from mlops_dev import datasets
from tests.helpers import install_pipeline

pytestmark = pytest.mark.integration

JAN31, FEB1 = date(2026, 1, 31), date(2026, 2, 1)


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _states(dr) -> dict[str, str]:
    return {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}


def test_changed_categories_drift_and_the_retrain_reaches_the_gate(airflow_db, landing):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    from mlops_airflow.builder import build_monitoring_dag, build_training_dag

    spec = install_pipeline(
        "it_categories",
        features={"categorical": ["site"]},
        monitoring={"cooldown_days": 0, "consecutive_days": 1, "drift_share": 0.2},
    )
    history = datasets.load_example("breast_cancer")
    history["site"] = [["north", "south"][i % 2] for i in range(len(history))]
    datasets.materialize("breast_cancer", settings.landing_root(), frame=history)
    trained = build_training_dag(spec).test(logical_date=_at(JAN31))
    assert trained.state == "success", _states(trained)
    assert registry.alias_version(spec.registered_model_name, registry.CHAMPION) == "1"

    # a day on which two new sites appear (two thirds of the rows) and the measurements shift
    batch = datasets.daily_batch("breast_cancer", FEB1, drift=True, shift_sd=1.5)
    batch["record_id"] = [f"{FEB1:%m%d}-{i}" for i in range(len(batch))]
    batch["site"] = [["north", "east", "west"][i % 3] for i in range(len(batch))]
    datasets.append("breast_cancer", settings.landing_root(), batch)

    monitored = build_monitoring_dag(spec).test(logical_date=_at(FEB1))
    states = _states(monitored)
    assert monitored.state == "success" and states["validate"] == "success", states
    assert states["emit_drift_event"] == "success", states  # drift fired
    scored = storage.read_frame(
        storage.partition_uri(settings.lake_root(), spec.name, "monitor_predictions", FEB1.isoformat())
    )
    flags = scored[contract.UNSEEN_COLUMN]
    assert len(scored) == len(batch) and scored["prediction"].notna().all()
    assert int(flags.sum()) == sum(s != "north" for s in batch["site"])
    with create_session() as session:
        (event,) = [
            e for e in session.query(AssetEvent).all() if (e.extra or {}).get("pipeline") == spec.name
        ]
    assert event.extra["ds"] == FEB1.isoformat()

    # the retrain for the drifted day: validate warns (the contract's distribution rules), the
    # model trains on the new window, and the gate decides with the contract's difference as evidence
    retrain = build_training_dag(spec).test(
        logical_date=_at(FEB1), run_conf={"partition_date": event.extra["ds"]}
    )
    states = _states(retrain)
    assert retrain.state == "success", states
    assert {t: states[t] for t in ("ingest", "validate", "train", "evaluate", "gate")} == dict.fromkeys(
        ("ingest", "validate", "train", "evaluate", "gate"), "success"
    )
    client = registry.client()
    exp = client.get_experiment_by_name(f"mlops/{spec.name}")
    (run,) = client.search_runs([exp.experiment_id], f"tags.`mlops.ds` = '{FEB1.isoformat()}'")
    decision = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/gate_decision.json")
    assert decision["outcome"] in ("promote", "reject") and decision["champion_version"] == "1"
    changes = decision["contract_changes"]
    assert changes["against"] == "1"
    (site,) = [c for c in changes["changes"] if c["column"] == "site" and c["change"] == "new_categories"]
    assert site["new"] == ["east", "west"]
    saved = storage.read_manifest(
        storage.partition_uri(settings.lake_root(), spec.name, "validation", FEB1.isoformat())
    )
    assert saved.extra["success"] is True
