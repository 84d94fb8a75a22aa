"""Performance estimated before labels (CBPE): the formulas, calibration at training, the per-day
history beside the realized one, and ``feedback.decay.on: estimated`` on a seeded covariate shift
(the world of ``benchmarks/estimate.py``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from benchmarks import estimate as bench

from mlops_core.base import settings
from mlops_core.model import calibration
from mlops_core.model.metrics import Scored, metric
from mlops_core.monitor import decay_policy, estimate, feedback
from mlops_core.spec import SpecError, parse_spec
from mlops_core.spec.catalog import ESTIMABLE_METRICS
from tests.helpers import example_data

pytestmark = pytest.mark.unit


def _realized(name: str, y: np.ndarray, p: np.ndarray, pos: np.ndarray) -> float:
    pred = np.where(pos, "1", "0")
    return metric(name, "binary", y.astype(int).astype(str), Scored(pred=pred, proba=p), positive="1")


def test_the_estimate_equals_the_realized_metric_in_expectation_on_calibrated_scores():
    """Labels drawn from the scores themselves (perfect calibration): over 300 seeded days of 400 rows
    the mean error of every estimable metric is near 0, while one day's error is not."""
    errors: dict[str, list[float]] = {m: [] for m in ESTIMABLE_METRICS}
    for seed in range(300):
        rng = np.random.default_rng(seed)
        p = rng.beta(0.8, 1.2, 400)
        y = (rng.uniform(size=400) < p).astype(int)
        pos = p >= 0.35  # a tuned threshold, not 0.5: the predicted labels are what counts
        est = estimate.estimate_metrics(p, p, pos)
        for name in ESTIMABLE_METRICS:
            errors[name].append(est[name] - _realized(name, y, p, pos))
    for name, values in errors.items():
        assert abs(np.mean(values)) < 0.004, (name, np.mean(values))  # unbiased
        assert np.mean(np.abs(values)) > 0.004, name  # a day's realized metric is noisy around it


def test_a_hand_computed_example_matches_nannymls_formulas():
    """Four rows, calibrated p = 0.9, 0.6, 0.3, 0.2, predicted positive at 0.5 (the first two).

    Expected TP = 0.9 + 0.6 = 1.5, FP = 0.1 + 0.4 = 0.5, FN = 0.3 + 0.2 = 0.5, TN = 0.7 + 0.8 = 1.5:
    accuracy, precision, recall and f1 are all 0.75. The expected ROC curve (ranked by score) passes
    (FPR, TPR) = (0, 0), (0.05, 0.45), (0.25, 0.75), (0.6, 0.9), (1, 1): area 0.8. Average precision:
    recall steps 0.45, 0.3, 0.15, 0.1 at precisions 0.9, 0.75, 0.6, 0.5 -> 0.77.
    """
    p = np.array([0.9, 0.6, 0.3, 0.2])
    raw = np.array([0.99, 0.7, 0.4, 0.01])  # uncalibrated: only the ranking is used
    est = estimate.estimate_metrics(p, raw, raw >= 0.5)
    for name in ("accuracy", "precision", "recall", "f1", "balanced_accuracy"):
        assert est[name] == pytest.approx(0.75)
    assert est["roc_auc"] == pytest.approx(0.8)
    assert est["average_precision"] == pytest.approx(0.77)
    # expectations under p of the raw scores' Brier score and log loss
    assert est["brier"] == pytest.approx(np.mean(p * (1 - raw) ** 2 + (1 - p) * raw**2))
    assert est["log_loss"] == pytest.approx(-np.mean(p * np.log(raw) + (1 - p) * np.log(1 - raw)))


def test_a_badly_calibrated_model_is_flagged_at_training_and_a_calibrated_one_is_not():
    rng = np.random.default_rng(0)
    hold = bench.rows_of(rng, 2000)  # overconfident scores
    y = (hold["diagnosis"] == bench.POSITIVE).to_numpy(int)
    bad = calibration.check(y, hold["score"].to_numpy(), max_ece=0.05, bins=10)
    assert bad["ece"] > 0.05 and bad["calibrator"] is not None and "not calibrated" in bad["reason"]
    assert bad["ece_calibrated"] < 0.01 and bad["brier_calibrated"] < bad["brier"]
    # the stored breakpoints predict what the fitted regressor predicts
    from sklearn.isotonic import IsotonicRegression

    reg = IsotonicRegression(out_of_bounds="clip").fit(hold["score"], y)
    fresh = rng.uniform(size=500)
    assert np.allclose(calibration.apply(bad, fresh), reg.predict(fresh))
    p = rng.uniform(size=20_000)
    good = calibration.check((rng.uniform(size=20_000) < p).astype(int), p, max_ece=0.05, bins=10)
    assert good["calibrator"] is None and good["ece"] < 0.02
    assert np.array_equal(calibration.apply(good, fresh), fresh)
    assert calibration.mlflow_metrics(bad)["calibration_fitted"] == 1.0


DAYS = 45
STABLE_END = "2026-01-20"


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory):
    """The benchmark's world, 45 days of about 300 rows, x1's spread shrinking from day 20 to 0.15 of
    itself on day 45, replayed with decay on the estimate."""
    local = tmp_path_factory.mktemp("estimate")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(local))
        mp.setattr(feedback, "champion_holdout", lambda *_: None)
        frame = bench.table(seed=0, days=DAYS, stable_days=20, end_scale=0.15)
        cal = bench.holdout_calibration(0)
        spec = bench.spec_for("estimated", n_resamples=100)
        lake = settings.lake_root()
        bench.write_world(spec, lake, settings.landing_root(), frame)
        yield spec, lake, cal, bench.replay(spec, lake, DAYS, cal)


def test_decay_on_the_estimate_fires_on_the_shift_where_the_realized_metric_also_decays(shifted):
    spec, lake, _, rows = shifted
    fired = bench.first_fire(rows)
    assert fired is not None and fired > STABLE_END  # quiet on the stable stretch, fires on the shift
    realized = {str(d["ds"]): d for d in feedback.history(spec, lake)}
    decayed = [d for d, r in realized.items() if r.get("decayed")]
    assert len(decayed) >= 2 and min(decayed) > STABLE_END  # the labels confirm it: realized decays too
    # the realized policy has not fired before it: its labels come 3 days late, its intervals are wider
    assert not any(r["fire_realized"] for r in rows if r["ds"] <= fired)
    verdict = decay_policy.decide(spec, estimate.history(spec, lake), fired)
    assert verdict.fire and verdict.evidence["on"] == "estimated"
    assert verdict.evidence["days"][0] == fired  # lag 0: the streak ends on the monitored day itself
    assert "estimated roc_auc" in verdict.reasons[0] and "estimated baseline" in verdict.reasons[0]


def test_the_realized_history_shows_the_estimate_of_the_same_prediction_day(shifted):
    spec, lake, _, _ = shifted
    estimated = {str(d["ds"]): d for d in estimate.history(spec, lake)}
    pairs = [
        (r["value"], r["estimated"], estimated[str(r["ds"])]["metrics"]["roc_auc"])
        for r in feedback.history(spec, lake)
        if r.get("status") == "evaluated"
    ]
    assert len(pairs) == DAYS - bench.DELAY
    assert all(shown == recorded for _, shown, recorded in pairs)
    assert np.mean([abs(v - e) for v, e, _ in pairs]) < 0.03
    day = feedback.DayPerformance(**{k: v for k, v in feedback.history(spec, lake)[0].items() if k != "kind"})
    assert "estimated before labels" in day.describe()


def test_a_rerun_replaces_the_estimated_day(shifted):
    spec, lake, cal, _ = shifted
    before = len(estimate.history(spec, lake))
    again = estimate.estimate_day(spec, lake, "2026-01-10", None)  # a re-run, now without calibration
    estimate.record(spec, lake, again)
    days = estimate.history(spec, lake)
    assert len(days) == before and [d for d in days if d["ds"] == "2026-01-10"][0]["calibrated"] is False
    estimate.record(spec, lake, estimate.estimate_day(spec, lake, "2026-01-10", cal))


def test_decay_on_the_estimate_stays_quiet_on_a_stable_stream(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path))
    frame = bench.table(seed=3, days=30, rows=300, stable_days=30)
    cal = bench.holdout_calibration(3)
    spec = bench.spec_for("estimated", n_resamples=200)
    lake = settings.lake_root()
    bench.write_world(spec, lake, settings.landing_root(), frame)
    fires = []
    for i in range(30):
        d = (bench.START + bench.timedelta(days=i)).isoformat()
        estimate.record(spec, lake, estimate.estimate_day(spec, lake, d, cal))
        fires.append(decay_policy.decide(spec, estimate.history(spec, lake), d).fire)
    assert not any(fires)
    assert any(d.get("baseline") is not None for d in estimate.history(spec, lake))  # it was judged


def test_a_day_without_probabilities_or_predictions_is_not_estimated(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path))
    spec = bench.spec_for("estimated")
    lake = settings.lake_root()
    assert estimate.estimate_day(spec, lake, "2026-01-01", None).status == "no_predictions"
    frame = bench.table(seed=0, days=1, rows=50)
    bench.write_world(spec, lake, settings.landing_root(), frame)
    from mlops_core.data import storage

    uri = storage.partition_uri(lake, spec.name, "monitor_predictions", "2026-01-01")
    rows = storage.read_frame(uri).drop(columns=["proba_malignant", "proba_benign"])
    storage.write_partition({"data": rows}, lake, spec.name, "monitor_predictions", "2026-01-01")
    day = estimate.estimate_day(spec, lake, "2026-01-01", None)
    assert day.status == "no_probabilities" and "no P(positive)" in day.describe()
    assert not math.isnan(estimate.estimate_roc_auc(np.array([0.2, 0.8]), np.array([0.1, 0.9])))


def _on_estimated(example: str, **monitoring):
    fb = {"uri": "${MLOPS_LANDING}/x/labels.csv", "key_columns": ["record_id"], "decay": {"on": "estimated"}}
    return parse_spec(example_data(example, monitoring={"enabled": True, **monitoring}, feedback=fb))


def test_decay_on_the_estimate_is_refused_where_there_are_no_probabilities_to_estimate_from():
    with pytest.raises(SpecError, match=r"regression pipeline.*use feedback.decay.on: realized"):
        _on_estimated("diabetes")
    assert _on_estimated("breast_cancer").feedback.decay.on == "estimated"
    with pytest.raises(SpecError, match="needs monitoring.estimate.enabled"):
        _on_estimated("breast_cancer", estimate={"enabled": False})
    default = parse_spec(example_data("breast_cancer"))
    assert default.monitoring.estimate.max_ece == 0.05
