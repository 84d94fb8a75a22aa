"""The drift engine and the retraining policy."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from mlops_core import drift
from mlops_core.monitoring import decide
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
    html, snapshot = drift.evidently_report(ref, cur, res)
    assert "<html" in html[:500].lower()
    ran = drift.report_drift_tests(snapshot)
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
