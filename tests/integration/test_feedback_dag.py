"""The feedback loop through Airflow's dag.test(): predictions, labels that land later, the
performance step, and model decay emitting the pipeline's drift Asset with ``trigger: performance``.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlops_core.base import settings
from mlops_core.data import storage
from mlops_core.monitor import feedback
from mlops_dev import datasets
from tests.helpers import install_pipeline

pytestmark = pytest.mark.integration

FEB1, FEB3 = date(2026, 2, 1), date(2026, 2, 3)


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_late_labels_are_scored_and_decay_emits_the_drift_asset(airflow_db, landing, monkeypatch):
    from airflow.models.asset import AssetEvent
    from airflow.utils.session import create_session

    from mlops_airflow.builder import build_monitoring_dag, build_training_dag

    spec = install_pipeline(
        "it_feedback",
        feedback={
            "uri": "${MLOPS_LANDING}/it_feedback/labels.csv",
            "key_columns": ["record_id"],
            "delay_days": 2,
            "bootstrap": {"n_resamples": 200},
            "decay": {"days": 1, "min_rows": 50},
        },
        monitoring={"cooldown_days": 2, "consecutive_days": 1, "drift_share": 0.5},
    )
    batches = {}
    for day in (FEB1, FEB3):
        batch = datasets.daily_batch("breast_cancer", day)
        batch["record_id"] = [f"{day:%m%d}-{i}" for i in range(len(batch))]
        datasets.append("breast_cancer", settings.landing_root(), batch)
        batches[day] = batch
    assert build_training_dag(spec).test(logical_date=_at(date(2026, 1, 31))).state == "success"
    monitor = build_monitoring_dag(spec)

    first = monitor.test(logical_date=_at(FEB1))
    states = {ti.task_id: str(ti.state) for ti in first.get_task_instances()}
    assert states["performance"] == "success" and states["emit_drift_event"] == "skipped", states
    jan30 = [d for d in feedback.history(spec, settings.lake_root()) if d["ds"] == "2026-01-30"]
    assert jan30[0]["status"] == "no_predictions"  # nothing was monitored two days before

    # Feb 1's labels land, and every one is the opposite of the truth the model learned
    labels = batches[FEB1][["record_id", "diagnosis"]].copy()
    labels["diagnosis"] = labels["diagnosis"].map({"malignant": "benign", "benign": "malignant"})
    folder = Path(settings.landing_root().removeprefix("file://")) / "it_feedback"
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(labels).to_csv(folder / "labels.csv", index=False)

    third = monitor.test(logical_date=_at(FEB3))
    states = {ti.task_id: str(ti.state) for ti in third.get_task_instances()}
    assert states["performance"] == "success" and states["emit_drift_event"] == "success", states
    (day,) = [d for d in feedback.history(spec, settings.lake_root()) if d["ds"] == FEB1.isoformat()]
    assert (
        day["status"] == "evaluated"
        and day["decayed"]
        and day["rows"] == 200
        and day["evaluated_on"] == "2026-02-03"
    )
    with create_session() as session:
        events = [e for e in session.query(AssetEvent).all() if (e.extra or {}).get("pipeline") == spec.name]
    (event,) = events
    assert event.extra["trigger"] == "performance" and event.extra["ds"] == FEB3.isoformat()
    perf = event.extra["performance"]
    assert (
        perf["days"] == [FEB1.isoformat()]
        and perf["value"] == day["value"]
        and perf["high"] < perf["holdout"]
    )
    part = storage.partition_uri(settings.lake_root(), spec.name, "performance_history", FEB1.isoformat())
    assert storage.read_manifest(part).extra["metric"] == "roc_auc"

    # what the UI shows for this run: the drift step's extra link opens its report through the
    # package's view, and the Models view charts the realized metric with its interval and floor
    from airflow.models.xcom import XComModel

    with create_session() as session:
        link = session.scalar(
            XComModel.get_many(
                run_id=third.run_id,
                key="_link_DriftReportLink",
                dag_ids=monitor.dag_id,
                task_ids="drift_check",
            ).with_only_columns(XComModel.value)
        )
    url = json.loads(link) if isinstance(link, str) and link.startswith('"') else link
    assert url.startswith(f"/mlops/reports/{spec.name}?path=reports%2Fdrift%2Fds%3D2026-02-03%2F"), url
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    from mlops_airflow.views import models as views

    app = views.create_app()
    app.dependency_overrides[get_user] = lambda: None
    monkeypatch.setattr(views, "_allowed", lambda user, s: s.name == spec.name)
    client = TestClient(app)
    served = client.get(url.removeprefix("/mlops"))
    assert served.status_code == 200, served.text
    assert served.headers["content-security-policy"].startswith("sandbox")
    assert "drift_share" in served.text
    page = client.get("/models").text
    assert f'<section id="{spec.name}">' in page and "realized roc_auc by prediction day" in page
    assert 'class="band"' in page and 'class="thr"' in page
