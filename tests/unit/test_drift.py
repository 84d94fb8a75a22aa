"""The drift engine and the retraining policy."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_core.data import drift, drift_report
from mlops_core.monitor.monitoring import decide
from mlops_core.spec import MonitoringSpec

pytestmark = pytest.mark.unit


def _frames(n=5000, shift=0.0, cat_move=0.0, seed=0):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "y": rng.exponential(size=n),
            "c": rng.choice(list("abc"), n, p=[0.5, 0.3, 0.2]),
        }
    )
    p = [0.5 - cat_move, 0.3 + cat_move, 0.2]
    cur = pd.DataFrame(
        {"x": rng.normal(size=n) + shift, "y": rng.exponential(size=n), "c": rng.choice(list("abc"), n, p=p)}
    )
    return ref, cur


@pytest.mark.parametrize(("num", "cat"), [("ks", "chi2"), ("wasserstein", "jensen_shannon"), ("psi", "chi2")])
def test_identical_data_never_drifts(num, cat):
    ref, _ = _frames()
    res = drift.compute_drift(ref, ref.copy(), ["x", "y"], ["c"], numeric_method=num, categorical_method=cat)
    assert res.n_drifted == 0 and res.drift_share == 0.0


def test_shifted_columns_are_flagged_and_others_not():
    ref, cur = _frames(shift=0.5, cat_move=0.15)
    res = drift.compute_drift(ref, cur, ["x", "y"], ["c"])
    assert res.drifted_columns == ["x", "c"]
    by = {c.column: c for c in res.columns}
    assert by["x"].p_value < 1e-6 and by["y"].p_value > 0.01 and by["c"].method == "chi2"


def test_sample_is_bounded_and_seeded():
    ref, cur = _frames(n=20_000, shift=0.1)
    a = drift.compute_drift(ref, cur, ["x"], ["c"], sample_size=1000, seed=3)
    b = drift.compute_drift(ref, cur, ["x"], ["c"], sample_size=1000, seed=3)
    assert a.columns == b.columns
    assert {c.reference_rows for c in a.columns} == {1000} and a.rows == 20_000


def test_per_column_threshold_and_method():
    ref, cur = _frames(shift=0.05)
    strict = drift.compute_drift(
        ref, cur, ["x"], [], column_thresholds={"x": 0.5}, column_methods={"x": "ks"}
    )
    assert strict.columns[0].threshold == 0.5 and strict.columns[0].drifted  # p < 0.5 is easy
    lax = drift.compute_drift(ref, cur, ["x"], [], column_methods={"x": "wasserstein"})
    assert lax.columns[0].method == "wasserstein" and not lax.columns[0].drifted


def test_missing_values_and_constant_columns_do_not_crash():
    ref = pd.DataFrame({"x": [1.0] * 50 + [np.nan] * 10, "c": ["a"] * 60})
    cur = pd.DataFrame({"x": [1.0] * 40, "c": [None] * 40})
    res = drift.compute_drift(ref, cur, ["x"], ["c"], numeric_method="psi")
    assert res.columns[0].statistic == pytest.approx(0.0)
    assert res.columns[1].drifted  # every category went missing


def test_evidently_report_runs_the_same_methods_and_thresholds():
    """Read back from the report's own JSON: per column the engine's method and threshold, overrides included."""
    ref, cur = _frames(n=500, shift=1.0)
    res = drift.compute_drift(
        ref,
        cur,
        ["x", "y"],
        ["c"],
        column_methods={"y": "psi", "c": "jensen_shannon"},
        column_thresholds={"x": 0.05},
    )
    html, snapshot = drift_report.evidently_report(ref, cur, res)
    assert "<html" in html[:500].lower()
    ran = drift_report.report_drift_tests(snapshot)
    assert ran == {
        "x": {"method": "ks", "threshold": 0.05, "value": pytest.approx(res.columns[0].p_value)},
        "y": {"method": "psi", "threshold": 0.2, "value": ran["y"]["value"]},
        "c": {"method": "jensenshannon", "threshold": 0.1, "value": ran["c"]["value"]},
    }


# --- policy ---------------------------------------------------------------------------------


def _days(*rows):
    return pd.DataFrame(rows, columns=["ds", "drift_share", "n_drifted", "rows", "run_type"]).assign(
        n_columns=10
    )


CFG = MonitoringSpec(drift_share=0.3, min_rows=100, consecutive_days=2, cooldown_days=7)
HIGH = 0.5


def test_fires_after_consecutive_drifted_days():
    days = _days(("2026-03-09", HIGH, 5, 500, "scheduled"), ("2026-03-10", HIGH, 5, 500, "scheduled"))
    d = decide(CFG, days, "2026-03-10", last_training=date(2026, 1, 1), is_backfill=False)
    assert d.fire, d.reasons


def test_one_drifted_day_is_not_enough():
    days = _days(("2026-03-09", 0.1, 1, 500, "scheduled"), ("2026-03-10", HIGH, 5, 500, "scheduled"))
    assert not decide(CFG, days, "2026-03-10", last_training=None, is_backfill=False).fire


def test_gap_in_history_breaks_the_streak():
    days = _days(("2026-03-08", HIGH, 5, 500, "scheduled"), ("2026-03-10", HIGH, 5, 500, "scheduled"))
    d = decide(CFG, days, "2026-03-10", last_training=None, is_backfill=False)
    assert not d.fire and any("2026-03-09: not monitored" in r for r in d.reasons)


def test_tiny_sample_never_fires():
    days = _days(("2026-03-09", 1.0, 9, 20, "scheduled"), ("2026-03-10", 1.0, 9, 20, "scheduled"))
    d = decide(CFG, days, "2026-03-10", last_training=None, is_backfill=False)
    assert not d.fire and any("20 rows < min_rows 100" in r for r in d.reasons)


def test_cooldown_blocks():
    days = _days(("2026-03-09", HIGH, 5, 500, "scheduled"), ("2026-03-10", HIGH, 5, 500, "scheduled"))
    d = decide(CFG, days, "2026-03-10", last_training=date(2026, 3, 5), is_backfill=False)
    assert not d.fire and any("cooldown" in r for r in d.reasons)
    assert decide(CFG, days, "2026-03-10", last_training=date(2026, 3, 3), is_backfill=False).fire


def test_backfill_never_fires_unless_asked():
    days = _days(("2026-03-09", HIGH, 5, 500, "backfill"), ("2026-03-10", HIGH, 5, 500, "backfill"))
    d = decide(CFG, days, "2026-03-10", last_training=None, is_backfill=True)
    assert not d.fire and any("backfill" in r for r in d.reasons)
    cfg = CFG.model_copy(update={"retrain_on_backfill": True})
    assert decide(cfg, days, "2026-03-10", last_training=None, is_backfill=True).fire


def test_identical_data_never_fires_end_to_end():
    ref, _ = _frames()
    res = drift.compute_drift(ref, ref.copy(), ["x", "y"], ["c"])
    days = _days(
        ("2026-03-09", res.drift_share, 0, 5000, "scheduled"),
        ("2026-03-10", res.drift_share, 0, 5000, "scheduled"),
    )
    assert not decide(
        CFG.model_copy(update={"consecutive_days": 1}),
        days,
        "2026-03-10",
        last_training=None,
        is_backfill=False,
    ).fire


def test_monitoring_spec_bounds():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        MonitoringSpec(drift_share=0)
    with pytest.raises(ValidationError):
        MonitoringSpec(numeric_method="t_test")
    with pytest.raises(ValidationError, match="reference"):
        MonitoringSpec(reference="yesterday")


def _churn_like(shift: float, seed: int) -> pd.DataFrame:
    """19 numeric columns; the first three are the ones the model relies on."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({f"f{i:02d}": rng.normal(0, 1, 2000) for i in range(19)})
    for col in ("f00", "f01", "f02"):
        frame[col] += shift
    return frame


def test_importance_weighting_fires_on_a_shift_of_the_few_columns_that_matter():
    """3 of 19 columns shift strongly: 0.16 of the columns, but most of what the model uses."""
    ref, cur = _churn_like(0.0, 1), _churn_like(1.0, 2)
    cols = list(ref.columns)
    equal = drift.compute_drift(ref, cur, cols, [])
    assert equal.drifted_columns == ["f00", "f01", "f02"]
    assert equal.drift_share == pytest.approx(3 / 19) and equal.drift_share < 0.3
    importance = {"f00": 0.3, "f01": 0.2, "f02": 0.15, **{c: 0.35 / 16 for c in cols[3:]}}
    weighted = drift.compute_drift(ref, cur, cols, [])
    weighted.weights = importance
    assert weighted.drift_share == pytest.approx(0.65) and weighted.drift_share >= 0.3
    assert weighted.summary()["weighting"] == "importance"
    assert weighted.summary()["equal_share"] == pytest.approx(3 / 19, abs=1e-6)


def test_a_critical_column_fires_alone():
    cfg = MonitoringSpec(
        drift_share=0.3, min_rows=100, consecutive_days=1, cooldown_days=0, critical_columns=["f00"]
    )
    days = pd.DataFrame([{"ds": "2026-03-10", "drift_share": 0.05, "rows": 500, "critical_drifted": ["f00"]}])
    d = decide(cfg, days, "2026-03-10", last_training=None, is_backfill=False)
    assert d.fire and "critical column(s) drifted: f00" in d.reasons[0]
    days.loc[0, "critical_drifted"] = None
    assert not decide(cfg, days, "2026-03-10", last_training=None, is_backfill=False).fire


# --- chi-square: categories only one side has -------------------------------------------------


def _cat_frames(only_current: int = 0, only_reference: int = 0, n: int = 2000, seed: int = 0):
    rng = np.random.default_rng(seed)
    ref = pd.DataFrame({"plan": rng.choice(list("abc"), n, p=[0.5, 0.3, 0.2])})
    cur = pd.DataFrame({"plan": rng.choice(list("abc"), n, p=[0.5, 0.3, 0.2])})
    ref.loc[: only_reference - 1, "plan"] = "legacy"
    cur.loc[: only_current - 1, "plan"] = "promo"
    return ref, cur


@pytest.mark.parametrize(("only_current", "only_reference"), [(3, 0), (0, 3), (3, 3)])
def test_a_handful_of_rows_of_a_category_one_side_lacks_is_not_drift(only_current, only_reference, caplog):
    """No infinity, no warning, no drift by construction: the few rows are pooled, and the log names the column."""
    import warnings

    ref, cur = _cat_frames(only_current, only_reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning (divide by zero) would fail the test
        with caplog.at_level("INFO", logger="mlops_core.data.drift"):
            res = drift.compute_drift(ref, cur, [], ["plan"])
    (col,) = res.columns
    assert np.isfinite(col.statistic) and not col.drifted and col.p_value > 0.01
    note = next(r.getMessage() for r in caplog.records if "only in" in r.getMessage())
    assert "'plan'" in note
    assert ("['promo']" in note) == bool(only_current) and ("['legacy']" in note) == bool(only_reference)


@pytest.mark.parametrize("side", ["current", "reference"])
def test_a_category_with_real_weight_on_one_side_only_is_drift(side):
    ref, cur = _cat_frames(**{f"only_{side}": 300})
    (col,) = drift.compute_drift(ref, cur, [], ["plan"]).columns
    assert np.isfinite(col.statistic) and col.drifted and col.p_value < 1e-6


def test_pool_rare_keeps_every_cell_defined():
    counts = pd.DataFrame(
        {"ref": [500.0, 300.0, 0.0, 2.0], "cur": [480.0, 320.0, 1.0, 0.0]}, index=list("abxy")
    )
    pooled = drift.pool_rare(counts)
    assert list(pooled.index) == ["a", "b"]  # the rare bucket (3 rows) is folded into the smallest cell
    assert pooled.to_numpy().sum() == counts.to_numpy().sum()
    big = pd.DataFrame({"ref": [500.0, 300.0, 0.0], "cur": [480.0, 320.0, 40.0]}, index=list("abx"))
    assert list(drift.pool_rare(big).index) == ["a", "b", "x"]  # a real new category keeps its cell


def test_numerical_warnings_name_their_column(caplog):
    ref = pd.DataFrame({"flat": [1.0] * 50})
    cur = pd.DataFrame({"flat": [np.inf] * 50})
    with caplog.at_level("WARNING", logger="mlops_core.data.drift"):
        drift.compute_drift(ref, cur, ["flat"], [], numeric_method="wasserstein")
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert warned and all(w.startswith("drift column 'flat' (wasserstein): ") for w in warned)


# --- calibration against the training window's own variability --------------------------------


def _seasonal(days: int, first: int = 0, rows: int = 200, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """A weekly cycle in ``visits`` (weekends +2 sd) and ``channel``; ``price`` stable unless shifted."""
    rng = np.random.default_rng(seed + first)
    day = np.repeat(np.arange(first, first + days), rows)
    weekend = day % 7 >= 5
    return pd.DataFrame(
        {
            "date": (pd.Timestamp("2026-01-05") + pd.to_timedelta(day, unit="D")).astype(str),
            "visits": rng.normal(5 + 2 * weekend, 1),
            "channel": np.where(rng.random(len(day)) < np.where(weekend, 0.8, 0.3), "web", "store"),
            "price": rng.normal(50 + shift, 10, len(day)),
        }
    )


def test_calibration_floors_the_columns_that_cycle_and_only_those():
    window = _seasonal(84)
    baseline = drift.calibrate(
        window, drift.period_labels(window["date"], 1), ["visits", "price"], ["channel"], date_column="date"
    )
    assert baseline is not None and baseline.periods == 60 and baseline.date_column == "date"
    assert set(baseline.floors) == {"visits", "channel"}
    assert baseline.rates["visits"] > 0.5 and baseline.rates["price"] < 0.1
    cols = (["visits", "price"], ["channel"])
    saturday = _seasonal(1, first=89)  # day 89 is a Saturday: a weekend against a mostly-weekday window
    raw = drift.compute_drift(window, saturday, *cols)
    calibrated = drift.compute_drift(window, saturday, *cols, floors=baseline.floors)
    assert raw.drifted_columns == ["visits", "channel"] and calibrated.drifted_columns == []
    assert calibrated.columns[0].floor == baseline.floors["visits"]
    shifted = drift.compute_drift(window, _seasonal(1, first=89, shift=8.0), *cols, floors=baseline.floors)
    assert shifted.drifted_columns == ["price"]
    # a change bigger than the cycle still counts in a calibrated column
    doubled = _seasonal(1, first=86).assign(visits=lambda f: f["visits"] + 6)
    assert "visits" in drift.compute_drift(window, doubled, *cols, floors=baseline.floors).drifted_columns


def test_baseline_round_trips_and_sets_the_share_threshold_above_the_windows_own():
    baseline = drift.Baseline(
        date_column="date",
        period_days=1,
        periods=20,
        quantile=0.95,
        share_margin=0.1,
        statistic_margin=0.25,
        floors={"visits": 0.3},
        rates={"visits": 0.9, "price": 0.0},
        shares=[0.0] * 10 + [0.4] * 10,
    )
    assert baseline.share_threshold(0.3) == pytest.approx(0.5)  # q95 0.4 + 0.1 margin > 0.3
    assert baseline.share_threshold(0.6) == 0.6  # never below the configured one
    again = drift.Baseline.from_dict(json_round_trip(baseline.to_dict()))
    assert again == baseline
    assert drift.Baseline.from_dict({"calibrated": False, "reason": "no date"}) is None


def json_round_trip(value):
    import json

    return json.loads(json.dumps(value))


def test_no_calibration_with_too_few_periods():
    window = _seasonal(3)
    assert drift.calibrate(window, drift.period_labels(window["date"], 1), ["price"], []) is None


def test_period_labels_accept_mixed_date_spellings_and_mark_the_rest():
    dates = pd.Series(["2026-01-01", "2026-01-02 00:00", "01/03/2026", "", None, "2026-01-09"])
    assert drift.period_labels(dates, 7).tolist() == [0, 0, 0, -1, -1, 1]


# --- the policy: calibrated share threshold, prediction drift, cooldown -------------------------


def test_the_recorded_share_threshold_is_what_a_day_must_reach():
    days = _days(("2026-03-09", 0.45, 9, 500, "scheduled"), ("2026-03-10", 0.45, 9, 500, "scheduled"))
    assert decide(CFG, days, "2026-03-10", last_training=None, is_backfill=False).fire
    days["share_threshold"] = 0.55  # the window drifts against itself up to 0.45
    d = decide(CFG, days, "2026-03-10", last_training=None, is_backfill=False)
    assert not d.fire and "drift share 0.45 < 0.55 (the window's own variability" in d.reasons[-1]


def test_prediction_drift_is_part_of_the_default_policy():
    out = {"method": "ks", "statistic": 0.4, "p_value": 1e-20, "drifted": True}
    days = _days(("2026-03-09", 0.05, 1, 500, "scheduled"), ("2026-03-10", 0.05, 1, 500, "scheduled"))
    days["prediction_drift"] = [out, out]
    assert MonitoringSpec().prediction_drift == "policy"
    d = decide(CFG, days, "2026-03-10", last_training=None, is_backfill=False)
    assert d.fire and "predictions against" not in d.reasons[0] and "counts in the policy" in d.reasons[0]
    reported = CFG.model_copy(update={"prediction_drift": "report"})
    d = decide(reported, days, "2026-03-10", last_training=None, is_backfill=False)
    assert not d.fire and "reported; prediction_drift: report" in d.reasons[0]
    stable = {**out, "p_value": 0.4, "drifted": False}
    days["prediction_drift"] = [stable, stable]
    assert not decide(CFG, days, "2026-03-10", last_training=None, is_backfill=False).fire


DRIFTED = _days(("2026-03-09", HIGH, 5, 500, "scheduled"), ("2026-03-10", HIGH, 5, 500, "scheduled"))


def test_cooldown_counts_from_the_last_promotion_by_default():
    """A retrain on 03-06 that the gate rejected does not restart the cooldown: the champion is from 02-20."""
    assert MonitoringSpec().cooldown_from == "promotion"
    d = decide(
        CFG,
        DRIFTED,
        "2026-03-10",
        last_training=date(2026, 3, 6),
        last_promotion=date(2026, 2, 20),
        is_backfill=False,
    )
    assert d.fire, d.reasons
    d = decide(
        CFG,
        DRIFTED,
        "2026-03-10",
        last_training=date(2026, 3, 6),
        last_promotion=date(2026, 3, 6),
        is_backfill=False,
    )
    assert not d.fire
    assert (
        "cooldown: the champion's training (last promotion) on 2026-03-06, 4 day(s) ago < 7" in d.reasons[-1]
    )


def test_cooldown_from_attempt_counts_every_training():
    cfg = CFG.model_copy(update={"cooldown_from": "attempt"})
    d = decide(
        cfg,
        DRIFTED,
        "2026-03-10",
        last_training=date(2026, 3, 6),
        last_promotion=date(2026, 2, 20),
        is_backfill=False,
    )
    assert not d.fire and "cooldown: the last training attempt on 2026-03-06" in d.reasons[-1]
    d = decide(
        cfg,
        DRIFTED,
        "2026-03-10",
        last_training=date(2026, 3, 1),
        last_promotion=date(2026, 2, 20),
        is_backfill=False,
    )
    assert d.fire


def test_no_champion_yet_counts_from_the_last_attempt():
    d = decide(
        CFG, DRIFTED, "2026-03-10", last_training=date(2026, 3, 8), last_promotion=None, is_backfill=False
    )
    assert not d.fire and "last training attempt" in d.reasons[-1]


def test_new_defaults():
    m = MonitoringSpec()
    assert (m.weighting, m.prediction_drift, m.cooldown_from) == ("importance", "policy", "promotion")
    assert m.calibration.enabled and m.calibration.quantile == 0.95 and m.calibration.period_days is None
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        MonitoringSpec(cooldown_from="rejection")
    with pytest.raises(ValidationError):
        MonitoringSpec(calibration={"quantile": 0.2})


def test_the_report_runs_the_engines_chi_square_on_a_new_category_without_warnings():
    """Evidently's own chisquare is infinite (p = 0, divide-by-zero warning) there; the report runs the engine's."""
    import warnings

    ref, cur = _cat_frames(only_current=3, n=500)
    res = drift.compute_drift(ref, cur, [], ["plan"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        _, snapshot = drift_report.evidently_report(ref, cur, res)
    ran = drift_report.report_drift_tests(snapshot)
    assert ran["plan"]["method"] == "mlops_chi2"
    assert ran["plan"]["value"] == pytest.approx(res.columns[0].p_value) and ran["plan"]["value"] > 0.01
