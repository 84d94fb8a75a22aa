"""The feedback loop through Airflow's dag.test(): predictions, labels that land later, the
performance step, and model decay emitting the pipeline's drift Asset with ``trigger: performance``;
in the same runs, the live challenger (``deployment.challenger``) judged on those labels and
promoted by the monitoring DAG's ``challenger_verdict`` step on its own.

Four DAG runs: a training run (champion v1), a second training whose version passes the gate (a
recorded override, so the test does not hang on which fit is better) and goes live on a 30 % canary
split instead of replacing the champion, and two monitoring days. The labels of Feb 1 agree with
the challenger's predictions on its rows and contradict the truth on the champion's, so the
champion's own rows decay and the challenger wins; the statistics are tested in test_sequential.py
and the engine's flow without Airflow in test_challenger_flow.py.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pytest

from mlops_core import challenger
from mlops_core.base import settings
from mlops_core.data import storage
from mlops_core.deploy.local import CHALLENGER_REASON_TAG, CHALLENGER_TAG
from mlops_core.monitor import feedback
from mlops_core.runs import registry
from mlops_dev import datasets
from tests.helpers import install_pipeline

pytestmark = pytest.mark.integration

FEB1, FEB3 = date(2026, 2, 1), date(2026, 2, 3)
FLIP = {"malignant": "benign", "benign": "malignant"}


def _at(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def test_late_labels_are_scored_decay_emits_the_drift_asset_and_the_live_challenger_is_promoted(
    airflow_db, landing, monkeypatch
):
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
        deployment={
            "target": "local",
            "challenger": {"split_percent": 30, "metric": "accuracy", "min_rows": 30, "max_rows": 5000},
        },
    )
    batches = {}
    for day in (FEB1, FEB3):
        batch = datasets.daily_batch("breast_cancer", day)
        batch["record_id"] = [f"{day:%m%d}-{i}" for i in range(len(batch))]
        datasets.append("breast_cancer", settings.landing_root(), batch)
        batches[day] = batch
    training = build_training_dag(spec)
    assert training.test(logical_date=_at(date(2026, 1, 31))).state == "success"
    # a second version the gate promotes (a recorded override) while v1 is champion: it goes live
    # beside it on the canary split; the champion stays (an earlier data day: the cooldown still
    # counts from the Jan 31 training)
    second = training.test(
        logical_date=_at(date(2026, 1, 30)),
        run_conf={"force_promote": True, "reason": "live challenger test"},
    )
    states = {ti.task_id: str(ti.state) for ti in second.get_task_instances()}
    assert second.state == "success" and states["smoke_test"] == "success", states
    name = spec.registered_model_name
    assert registry.alias_version(name, registry.CHAMPION) == "1"
    assert registry.alias_version(name, registry.LIVE_CHALLENGER) == "2"
    assert registry.client().get_model_version(name, "2").tags[CHALLENGER_TAG] == "live"
    monitor = build_monitoring_dag(spec)

    first = monitor.test(logical_date=_at(FEB1))
    states = {ti.task_id: str(ti.state) for ti in first.get_task_instances()}
    assert states["performance"] == "success" and states["emit_drift_event"] == "skipped", states
    assert states["challenger_verdict"] == "success", states  # no labelled day yet: keeps watching
    assert registry.alias_version(name, registry.LIVE_CHALLENGER) == "2"
    jan30 = [d for d in feedback.history(spec, settings.lake_root()) if d["ds"] == "2026-01-30"]
    assert jan30[0]["status"] == "no_predictions"  # nothing was monitored two days before

    # Feb 1's labels land: on the champion's rows the opposite of the truth the model learned, on
    # the challenger's (the split is by row key) what the challenger predicted
    scored = storage.read_frame(
        storage.partition_uri(settings.lake_root(), spec.name, feedback.PREDICTIONS, FEB1.isoformat())
    )
    arms = scored.set_index("record_id")["variant"]
    assert set(arms) == {"champion", "challenger"}
    assert set(scored.loc[scored["variant"] == "challenger", "model_version"].astype(str)) == {"2"}
    labels = batches[FEB1][["record_id", "diagnosis"]].copy()
    on_challenger = labels["record_id"].map(arms) == "challenger"
    labels["diagnosis"] = (
        labels["diagnosis"]
        .map(FLIP)
        .where(~on_challenger, labels["record_id"].map(scored.set_index("record_id")["prediction"]))
    )
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
        and day["rows"] == int((~on_challenger).sum())  # decay judges the champion's own rows
        and day["evaluated_on"] == "2026-02-03"
        and day["arms"]["challenger"]["version"] == "2"
    )
    # the challenger_verdict step promoted the challenger on its own: champion alias, tags
    assert states["challenger_verdict"] == "success", states
    assert registry.alias_version(name, registry.CHAMPION) == "2"
    assert registry.alias_version(name, registry.LIVE_CHALLENGER) is None
    tags = registry.client().get_model_version(name, "2").tags
    assert tags[CHALLENGER_TAG] == "promoted" and tags["mlops.promoted"] == "true", tags
    assert json.loads(tags[challenger.VERDICT_TAG])["status"] == "promote"
    assert "always-valid p" in tags[CHALLENGER_REASON_TAG]
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
    row = page.split('<tr class="champ"><td>v2 ★</td>', 1)[1].split("</tr>", 1)[0]
    assert "challenger promoted" in row, row  # the verdict, on the row of the version it promoted
