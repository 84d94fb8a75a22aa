"""Decay judged against the champion's own realized baseline, on a seeded dated table.

The table (``benchmarks/decay.py``): a regression with about 36 rows a day; the champion's
residual has a standard deviation of 12 for 28 days, then grows slowly to 33 (about 2.7x). The
monitoring window is 7 days, so each monitored day's predictions hold 7 days of rows; labels
arrive 3 days later. Replayed through the engine with the default decay policy, day by day.
"""

from __future__ import annotations

from datetime import date

import pytest
from benchmarks import decay as bench

from mlops_core.base import settings
from mlops_core.monitor import decay_policy, feedback
from mlops_core.spec import SpecError, parse_spec
from tests.helpers import example_data

pytestmark = pytest.mark.unit

DAYS = 50
STABLE_END = "2026-01-28"  # the last day of the stable stretch (day 28)


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory):
    local = tmp_path_factory.mktemp("decay")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(local))
        mp.setattr(feedback, "champion_holdout", lambda *_: bench.HOLDOUT_RMSE)
        frame = bench.table(seed=0)  # 60 days, the benchmark's; replayed up to day DAYS
        spec = bench.spec_for()
        lake = settings.lake_root()
        bench.write_world(spec, lake, settings.landing_root(), frame)
        yield spec, frame, bench.replay(spec, lake, DAYS)


def test_each_prediction_day_is_judged_on_its_own_rows_once(replayed):
    spec, frame, rows = replayed
    per_day = frame.groupby("event_date").size()
    assert len(rows) == DAYS - 3
    for r in rows:
        assert r["independent"] and r["predictions"] == per_day[r["ds"]]  # not the 7-day window
        assert r["rows"] == per_day[r["ds"]] and r["unlabelled"] == 0
        # labels of the other days in the labels' window are unmatched for T, but no label is an orphan
        assert r["unmatched_labels"] == r["labels"] - r["rows"] and r["orphan_labels"] == 0


def test_the_baseline_is_the_champions_first_seven_days(replayed):
    _, _, rows = replayed
    first = [r for r in rows if r["status"] == "evaluated"][:7]
    expected = round(sum(r["value"] for r in first) / 7, 6)
    later = [r for r in rows if r["ds"] > first[-1]["ds"]]
    assert all(r["baseline"] == pytest.approx(expected) for r in later)
    assert 11.0 < expected < 13.0  # the stable residual's 12
    forming = [r for r in rows if r["ds"] <= first[-1]["ds"]]
    assert all(r["baseline"] is None and not r["decayed"] for r in forming)
    assert any("realized baseline forming: 3/7" in reason for r in forming for reason in r["reasons"])


def test_default_policy_is_quiet_on_the_stable_stretch_and_fires_on_the_slow_worsening(replayed):
    _, _, rows = replayed
    stable = [r for r in rows if r["ds"] <= STABLE_END]
    assert len(stable) == 28 and not any(r["fire"] or r["decayed"] for r in stable)
    fired = next(r for r in rows if r["fire"])
    # the day it fires (benchmarks/decay.py prints the whole table; README "The feedback loop")
    assert fired["evaluated_on"] == "2026-02-08" and fired["ds"] == "2026-02-05"
    assert fired["low"] > fired["baseline"] + 0.05  # the whole interval is above the baseline
    assert fired["value"] > 1.3 * fired["baseline"]
    assert "wholly above the champion's realized baseline" in " ".join(fired["reasons"])


def test_a_holdout_harder_than_production_never_fires_on_the_same_days(replayed):
    _, _, rows = replayed
    holdout_spec = bench.spec_for(reference="holdout")
    for r in rows:
        kept = {k: r[k] for k in feedback.DayPerformance.__dataclass_fields__ if k in r}
        day = feedback.DayPerformance(**{**kept, "decayed": False, "reasons": [], "status": "evaluated"})
        if day.value is None:
            continue
        # the case: the holdout RMSE 34.9 + 0.05 is above every realized interval here
        assert not feedback.judge(holdout_spec, day).decayed


def test_lower_is_better_bounds_read_the_same_way_as_higher_is_better():
    spec = bench.spec_for(max_drop=2.0)
    day = feedback.DayPerformance(
        ds="2026-03-01", evaluated_on="2026-03-04", status="evaluated", metric="rmse"
    )
    day.rows, day.value, day.low, day.high, day.baseline = 40, 15.0, 14.5, 16.0, 12.0
    judged = feedback.judge(spec, day)
    assert (
        judged.decayed
        and "[14.5000, 16.0000] is wholly above the champion's realized baseline" in (judged.reasons[0])
    )
    assert "12.0000 + max_drop 2 = 14.0000" in judged.reasons[0]
    day2 = feedback.DayPerformance(
        ds="2026-03-01", evaluated_on="2026-03-04", status="evaluated", metric="rmse"
    )
    day2.rows, day2.value, day2.low, day2.high, day2.baseline = 40, 15.0, 13.5, 16.0, 12.0
    assert not feedback.judge(spec, day2).decayed  # the lower end is within baseline + max_drop


def _decay_spec(decay: dict, **changes):
    data = example_data(
        "breast_cancer",
        feedback={"uri": "${MLOPS_LANDING}/x/labels.csv", "key_columns": ["record_id"], "decay": decay},
        **changes,
    )
    return parse_spec(data)


@pytest.mark.parametrize(
    ("decay", "message"),
    [
        ({"floor": 1.2}, "every labelled day would decay"),
        ({"floor": 0.0, "max_drop": None}, "the decay policy could never fire"),
        ({"max_drop": 1.0}, "is the whole range of roc_auc"),
    ],
)
def test_a_decay_policy_that_cannot_work_is_refused(decay, message):
    with pytest.raises(SpecError, match=message):
        _decay_spec(decay, evaluation={"floors": {}})


def test_a_rmse_floor_of_zero_is_refused_and_holdout_only_is_warned_about():
    base = example_data("diabetes", monitoring={"enabled": True})
    fb = {"uri": "${MLOPS_LANDING}/x/labels.csv", "key_columns": ["record_id"]}
    with pytest.raises(SpecError, match="every labelled day would decay"):
        parse_spec({**base, "feedback": {**fb, "decay": {"floor": 0}}})
    holdout = parse_spec({**base, "feedback": {**fb, "decay": {"reference": "holdout"}}})
    assert any("judged only against the champion's holdout" in w for w in holdout.warnings())
    assert not any("holdout" in w for w in parse_spec({**base, "feedback": fb}).warnings())
    short = parse_spec(
        {
            **base,
            "feedback": {
                **fb,
                "delay_days": 7,
                "partition": {"mode": "column", "column": "d", "lookback_days": 7},
            },
        }
    )
    assert any("at least delay_days + 1 (8)" in w for w in short.warnings())


def test_the_streak_counts_one_day_per_window_when_prediction_days_overlap():
    files = bench.spec_for()
    files_data = files.model_dump(mode="json", exclude_none=True)
    files_data["source"]["partition"] = {"mode": "files", "lookback_days": 1}
    files_data["source"]["uri"] = "${MLOPS_LANDING}/x/{ds}.csv"
    overlapping = parse_spec(files_data)
    assert decay_policy.streak_stride(overlapping) == 7 and decay_policy.streak_stride(files) == 1
    d = date(2026, 3, 20).isoformat()
    verdict = decay_policy.decide(overlapping, [], d)
    assert verdict.evidence["days"] == ["2026-03-17", "2026-03-10"]  # 7 days apart: no shared rows
    assert "prediction days overlap" in verdict.reasons[0]


def test_decay_on_the_estimate_ends_its_streak_on_the_monitored_day_not_delay_days_before():
    data = example_data(
        "breast_cancer",
        feedback={
            "uri": "${MLOPS_LANDING}/x/labels.csv",
            "key_columns": ["record_id"],
            "delay_days": 7,
            "decay": {"on": "estimated", "days": 2},
        },
    )
    on_estimate = parse_spec(data)
    realized = parse_spec({**data, "feedback": {**data["feedback"], "decay": {"days": 2}}})
    ds = "2026-03-20"
    estimated = decay_policy.decide(on_estimate, [], ds)
    assert (
        estimated.evidence["days"] == ["2026-03-20", "2026-03-19"] and estimated.evidence["on"] == "estimated"
    )
    assert "not estimated yet (no monitoring run estimated it)" in estimated.reasons[0]
    assert decay_policy.decide(realized, [], ds).evidence["days"] == ["2026-03-13", "2026-03-12"]
    multiclass = {**data, "problem_type": "multiclass", "evaluation": {"primary_metric": "accuracy"}}
    multiclass.pop("positive_class")
    with pytest.raises(SpecError, match=r"multiclass is not estimated yet.*use feedback.decay.on: realized"):
        parse_spec(multiclass)
