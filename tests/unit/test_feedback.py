"""The feedback loop on the real libraries: realized performance, late labels, decay, the policy.

A champion is trained in-process on the breast cancer example. Its monitoring predictions for
day T are written by ``scoring.batch_score`` (what the monitoring DAG's ``score`` step runs);
labels land later in the landing zone as their own CSV. The performance step for D = T + delay
joins them; decay is judged on the bootstrap interval, never the point estimate.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest

from mlops_core import lifecycle, rollout, scoring
from mlops_core.base import settings
from mlops_core.data import storage
from mlops_core.model.training import train
from mlops_core.monitor import decay_policy, drift_policy, feedback
from mlops_core.runs import registry
from mlops_dev import datasets
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

TRAIN_DS = "2026-01-31"
DELAY = 3
DAYS = [date(2026, 2, d) for d in (1, 2, 3)]  # prediction days T
LABELS = "${MLOPS_LANDING}/fb/labels.csv"


def _spec(**decay):
    return example_spec(
        name="fb_loop",
        feedback={
            "uri": LABELS,
            "key_columns": ["record_id"],
            "delay_days": DELAY,
            "bootstrap": {"n_resamples": 200, "seed": 1},
            "decay": {"days": 2, "min_rows": 50, "max_drop": 0.05, "reference": "holdout", **decay},
        },
        monitoring={"cooldown_days": 3, "consecutive_days": 1},
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    """A champion and its monitoring predictions for three days (200 rows each, record_id keys)."""
    local = tmp_path_factory.mktemp("feedback")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(local))
        spec = _spec()
        landing = settings.landing_root()
        datasets.materialize("breast_cancer", landing)
        lake = settings.lake_root()
        raw = lifecycle.ingest(spec, TRAIN_DS, lake)["uri"]
        trained = train(spec, raw, lake, TRAIN_DS, {}).to_dict()
        decision = lifecycle.gate(spec, lifecycle.evaluate(spec, trained, lake, TRAIN_DS), trained["run_id"])
        rollout.deploy(spec, str(lifecycle.register(spec, trained, decision.to_dict(), "t/r", {})["version"]))
        truth = {}
        for day in DAYS:
            batch = datasets.daily_batch("breast_cancer", day)
            batch["record_id"] = [f"{day:%m%d}-{i}" for i in range(len(batch))]  # unique keys per day
            data = storage.write_partition({"data": batch}, lake, spec.name, "monitor", day.isoformat())
            scoring.batch_score(spec, data.uri, lake, day.isoformat(), stage="monitor_predictions")
            truth[day] = batch[["record_id", "diagnosis"]]
        yield spec, local, truth


@pytest.fixture
def fresh(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The module's champion and predictions, copied for one test: labels and the feedback history
    one test writes are never another's, so every test stands alone and in any order."""
    spec, local, truth = world
    copy = tmp_path / "local"
    shutil.copytree(local, copy)
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(copy))
    yield spec, settings.lake_root(), Path(settings.landing_root().removeprefix("file://")), truth


def _decayed_days(
    spec, lake, landing: Path, truth
) -> tuple[feedback.DayPerformance, feedback.DayPerformance]:
    """The world turned: every label of DAYS[1:] is the opposite; both days are evaluated."""
    _land_labels(landing, [_flip(truth[d]) for d in DAYS[1:]])
    return _run(spec, lake, DAYS[1]), _run(spec, lake, DAYS[2])


def _land_labels(folder: Path, frames: list[pd.DataFrame]) -> None:
    (folder / "fb").mkdir(parents=True, exist_ok=True)
    pd.concat(frames, ignore_index=True).to_csv(folder / "fb" / "labels.csv", index=False)


def _run(spec, lake, prediction_day: date) -> feedback.DayPerformance:
    d = (prediction_day + timedelta(days=DELAY)).isoformat()
    day = feedback.evaluate_day(spec, lake, d)
    feedback.record(spec, lake, day)
    return day


def _flip(labels: pd.DataFrame) -> pd.DataFrame:
    flipped = labels.copy()
    flipped["diagnosis"] = flipped["diagnosis"].map({"malignant": "benign", "benign": "malignant"})
    return flipped


def test_no_labels_yet_is_recorded_not_judged_and_the_policy_says_why(fresh):
    spec, lake, landing, _ = fresh
    (landing / "fb" / "labels.csv").unlink(missing_ok=True)
    day = _run(spec, lake, DAYS[0])
    assert day.status == "no_labels" and day.rows == 0 and not day.decayed
    assert "no labels have arrived" in day.reasons[0]
    verdict = decay_policy.decide(
        spec, feedback.history(spec, lake), (DAYS[0] + timedelta(days=DELAY)).isoformat()
    )
    assert not verdict.fire and any("no labels" in r for r in verdict.reasons)


def test_late_labels_are_joined_when_they_arrive_and_nothing_is_duplicated(fresh):
    spec, lake, landing, truth = fresh
    (landing / "fb" / "labels.csv").unlink(missing_ok=True)
    assert _run(spec, lake, DAYS[0]).status == "no_labels"
    _land_labels(landing, [truth[DAYS[0]]])  # the labels land after the first run
    day = _run(spec, lake, DAYS[0])  # a backfill of that day
    assert day.status == "evaluated" and day.rows == 200 and day.unlabelled == 0 and day.unmatched_labels == 0
    assert day.value is not None and day.low <= day.value <= day.high and not day.decayed
    part = storage.partition_uri(lake, spec.name, feedback.HISTORY, DAYS[0].isoformat())
    assert len(storage.versions(part)) >= 2  # each run a new version of the same day
    rows = [d for d in feedback.history(spec, lake) if d["ds"] == DAYS[0].isoformat()]
    assert len(rows) == 1 and rows[0]["status"] == "evaluated" and rows[0]["rows"] == 200
    holdout = (
        registry.client()
        .get_run(registry.client().get_model_version(spec.name, "1").run_id)
        .data.metrics[f"holdout_{spec.evaluation.primary_metric}"]
    )
    assert day.holdout == pytest.approx(holdout) and day.model_version == "1"


def test_labels_for_unknown_keys_are_counted_and_a_partial_join_scores_what_matched(fresh):
    spec, lake, landing, truth = fresh
    labels = truth[DAYS[1]].head(120)
    strangers = pd.DataFrame({"record_id": [f"nobody-{i}" for i in range(30)], "diagnosis": "benign"})
    _land_labels(landing, [labels, strangers])
    day = _run(spec, lake, DAYS[1])
    assert (day.rows, day.unmatched_labels, day.unlabelled, day.labels) == (120, 30, 80, 150)
    assert (day.orphan_labels, day.orphan_share) == (30, 0.2)  # keys no monitored day ever predicted
    recorded = [d for d in feedback.history(spec, lake) if d["ds"] == DAYS[1].isoformat()][0]
    assert (recorded["unmatched_labels"], recorded["orphan_labels"], recorded["labels"]) == (30, 30, 150)
    assert "30 did not (labels of other days count here), 30 match no prediction" in day.describe_labels()
    _land_labels(landing, [strangers])
    only_strangers = _run(spec, lake, DAYS[1])
    assert (
        only_strangers.status == "no_labels" and "30 label(s) for unknown keys" in only_strangers.reasons[0]
    )


def test_labels_of_other_monitored_days_are_unmatched_for_t_but_not_orphans(fresh):
    spec, lake, landing, truth = fresh
    _land_labels(landing, [truth[DAYS[0]], truth[DAYS[1]]])
    day = _run(spec, lake, DAYS[1])
    assert day.independent  # column-partitioned source: each prediction carries its own day
    assert (day.rows, day.unmatched_labels, day.orphan_labels, day.orphan_share) == (200, 200, 0, 0.0)


def test_too_few_labelled_rows_are_reported_not_judged(fresh):
    spec, lake, landing, truth = fresh
    _land_labels(landing, [_flip(truth[DAYS[2]]).head(20)])
    day = _run(spec, lake, DAYS[2])
    assert day.status == "too_few_rows" and not day.decayed
    assert "20 labelled rows < feedback.decay.min_rows 50" in day.reasons[0]


def test_decay_is_judged_on_the_interval_and_fires_after_n_days(fresh):
    spec, lake, landing, truth = fresh
    # the world turned: every label is the opposite of what the model predicts well
    _land_labels(landing, [_flip(truth[d]) for d in DAYS[1:]])
    first = _run(spec, lake, DAYS[1])
    assert first.decayed and first.high < first.holdout - 0.05
    assert len(first.reasons) == 2 and "wholly below the floor 0.95" in first.reasons[0]
    assert "wholly below the champion's holdout" in first.reasons[1]
    last_d = (DAYS[1] + timedelta(days=DELAY)).isoformat()
    one = decay_policy.decide(spec, feedback.history(spec, lake), last_d)
    assert not one.fire  # days: 2 and the day before was not evaluated as decayed
    second = _run(spec, lake, DAYS[2])
    assert second.decayed
    d = (DAYS[2] + timedelta(days=DELAY)).isoformat()
    verdict = decay_policy.decide(spec, feedback.history(spec, lake), d)
    assert verdict.fire and verdict.evidence["days"] == [DAYS[2].isoformat(), DAYS[1].isoformat()]
    assert verdict.evidence["value"] == second.value and verdict.evidence["metric"] == "roc_auc"


def test_a_floor_judges_the_upper_end_of_the_interval_not_the_point(fresh):
    spec, lake, _, _ = fresh
    strict = _spec(floor=0.99, max_drop=None)
    day = feedback.DayPerformance(
        ds="2026-02-09", evaluated_on="2026-02-12", status="evaluated", metric="roc_auc", rows=500
    )
    day.value, day.low, day.high, day.floor = 0.985, 0.975, 0.995, 0.99
    assert not feedback.judge(strict, day).decayed  # the point is below, the interval is not
    day2 = feedback.DayPerformance(
        ds="2026-02-09", evaluated_on="2026-02-12", status="evaluated", metric="roc_auc", rows=500
    )
    day2.value, day2.low, day2.high, day2.floor = 0.97, 0.96, 0.985, 0.99
    judged = feedback.judge(strict, day2)
    assert judged.decayed and "wholly below the floor 0.99 (upper end 0.9850)" in judged.reasons[0]


def test_the_policy_fires_on_performance_with_the_cooldown_holding_both(fresh):
    spec, lake, landing, truth = fresh
    assert all(day.decayed for day in _decayed_days(spec, lake, landing, truth))
    d = (DAYS[2] + timedelta(days=DELAY)).isoformat()
    verdict = decay_policy.decide(spec, feedback.history(spec, lake), d)
    assert verdict.fire
    stable = pd.DataFrame(
        [{"ds": d, "drift_share": 0.0, "n_drifted": 0, "n_columns": 30, "rows": 200, "run_type": "scheduled"}]
    )
    fired = drift_policy.decide(
        spec.monitoring, stable, d, last_training=date(2026, 1, 31), is_backfill=False, decay=verdict
    )
    assert (
        fired.fire and fired.trigger == "performance" and fired.evidence["performance"]["metric"] == "roc_auc"
    )
    held = drift_policy.decide(
        spec.monitoring, stable, d, last_training=date(2026, 2, 5), is_backfill=False, decay=verdict
    )
    assert not held.fire and held.trigger is None and any(r.startswith("cooldown") for r in held.reasons)
    backfill = drift_policy.decide(
        spec.monitoring, stable, d, last_training=date(2026, 1, 31), is_backfill=True, decay=verdict
    )
    assert not backfill.fire


def test_realized_metrics_reach_mlflow_once_per_prediction_day(fresh):
    spec, lake, landing, truth = fresh
    _land_labels(landing, [truth[DAYS[0]]])
    for _ in range(2):  # a re-run re-logs the same day's run
        day = _run(spec, lake, DAYS[0])
        run_id = feedback.log_to_mlflow(spec, day, {"airflow.run_id": "t"})
    runs = registry.client().search_runs(
        [registry.client().get_experiment_by_name(f"mlops/{spec.name}/monitoring").experiment_id],
        f"tags.`mlops.performance_ds` = '{DAYS[0].isoformat()}'",
    )
    assert [r.info.run_id for r in runs] == [run_id]
    metrics = runs[0].data.metrics
    assert metrics["realized_roc_auc"] == pytest.approx(day.value) and metrics["labelled_rows"] == 200
    assert (metrics["unmatched_labels"], metrics["orphan_labels"], metrics["labels"]) == (0, 0, 200)
    assert metrics["realized_roc_auc_low"] == pytest.approx(day.low)


def test_the_estimate_before_labels_is_recorded_by_the_drift_check_and_shown_beside_the_realized(fresh):
    """Training recorded the champion's holdout calibration; the day's drift check estimates its
    predictions (no labels) into the estimate's history and MLflow; once the labels arrive, the
    realized day shows the estimate of the same prediction day next to its own value."""
    from mlops_core.monitor import estimate, monitoring

    spec, lake, landing, truth = fresh
    cal = estimate.champion_calibration(spec)
    assert cal is not None and cal["positive_class"] == "malignant" and cal["ece"] is not None
    ds = DAYS[0].isoformat()
    checked = monitoring.check(spec, storage.partition_uri(lake, spec.name, "monitor", ds), lake, ds)
    est = checked["estimate"]
    assert est["status"] == "estimated" and est["rows"] == 200 and est["low"] <= est["value"] <= est["high"]
    metrics = registry.client().get_run(checked["mlflow_run_id"]).data.metrics
    assert metrics["estimated_roc_auc"] == pytest.approx(est["value"])
    assert {"estimated_accuracy", "estimated_f1", "estimated_roc_auc_low"} <= set(metrics)
    assert [d["ds"] for d in estimate.history(spec, lake)] == [ds]
    _land_labels(landing, [truth[DAYS[0]]])
    day = _run(spec, lake, DAYS[0])
    assert day.estimated == pytest.approx(est["value"]) and abs(day.value - day.estimated) < 0.05
    assert feedback.history(spec, lake)[0]["estimated"] == pytest.approx(est["value"])
    run = registry.client().get_run(feedback.log_to_mlflow(spec, day, {}) or "")
    assert run.data.metrics["estimated_roc_auc"] == pytest.approx(est["value"])
