"""The live challenger's sequential test (mlops_core.monitor.sequential): its error control measured
by simulation, the peeking it protects against, the verdicts, the routing and the spec's refusals.

The simulation: each run is a challenger on a 10 % canary with 1,000 labelled rows a day (100 on
the challenger arm), judged on accuracy at one look a day for 30 days (max_rows 3,000 challenger
rows), alpha 0.05. Seeded, vectorized: a few seconds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlops_core.model.metrics import Scored
from mlops_core.monitor import sequential as sq
from mlops_core.spec import SpecError
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

RUNS = 2000
PLAN = sq.TestPlan(alpha=0.05, margin=0.0, split_percent=10, min_rows=200, max_rows=3000, max_days=30)
DAY = {"runs": RUNS, "days": 30, "rows_per_day": 1000}
EFFECT = 0.03  # accuracy 0.80 -> 0.83: the stated power (>= 0.8 within 3,000 challenger rows)


def _se(rate: float, n: int) -> float:
    return math.sqrt(max(rate * (1 - rate), 1e-12) / n)


@pytest.mark.parametrize("accuracy", [0.6, 0.8, 0.95])
def test_false_promotion_rate_stays_under_alpha_at_every_daily_look(accuracy: float) -> None:
    got = sq.simulate(PLAN, p_champion=accuracy, p_challenger=accuracy, seed=11, **DAY)
    print(f"A/A at accuracy {accuracy}: false promotion {got['promote']:.4f} over {RUNS} runs (alpha 0.05)")
    assert got["promote"] <= PLAN.alpha + 3 * _se(PLAN.alpha, RUNS)
    assert got["continue"] == 0.0  # every run ends by max_rows / max_days


def test_false_promotion_stays_under_alpha_at_the_margin() -> None:
    """H0 is composite (delta <= margin): its hardest point, a challenger better by exactly the margin."""
    plan = sq.TestPlan(**{**PLAN.__dict__, "margin": 0.01})
    got = sq.simulate(plan, p_champion=0.80, p_challenger=0.81, seed=12, **DAY)
    print(f"delta = margin 0.01: false promotion {got['promote']:.4f}")
    assert got["promote"] <= plan.alpha + 3 * _se(plan.alpha, RUNS)


def test_a_true_improvement_is_found_within_the_stated_rows() -> None:
    got = sq.simulate(PLAN, p_champion=0.80, p_challenger=0.80 + EFFECT, seed=13, **DAY)
    print(
        f"+{EFFECT} accuracy: promoted in {got['promote']:.3f} of runs within {got['challenger_rows']} rows"
    )
    assert got["challenger_rows"] == PLAN.max_rows
    assert got["promote"] >= 0.8


def test_a_harmful_challenger_is_rolled_back_and_never_promoted() -> None:
    got = sq.simulate(PLAN, p_champion=0.80, p_challenger=0.75, seed=14, **DAY)
    assert got["promote"] == 0.0 and got["rollback"] == 1.0


def test_naive_peeking_exceeds_alpha_so_the_simulation_can_fail() -> None:
    """The same runs judged by a fixed-sample z-test at every daily look promote far more often than alpha:
    it is the always-valid construction, not the simulation, that keeps the rate down."""
    got = sq.simulate(PLAN, p_champion=0.8, p_challenger=0.8, seed=15, **DAY)
    print(f"naive z-test at every look: {got['naive_promote']:.3f}; mSPRT: {got['promote']:.4f}")
    assert got["naive_promote"] > PLAN.alpha + 3 * _se(PLAN.alpha, RUNS)
    assert got["promote"] < got["naive_promote"] / 4


def test_the_interval_covers_the_truth_at_all_looks_at_once() -> None:
    """The confidence sequence itself: its running intersection misses the true delta in <= alpha of runs."""
    rng = np.random.default_rng(16)
    days, per_a, per_b = 60, 300, 100
    n_a = per_a * np.arange(1, days + 1.0) * np.ones((RUNS, 1))
    n_b = per_b * np.arange(1, days + 1.0) * np.ones((RUNS, 1))
    s_a = rng.binomial(per_a, 0.7, (RUNS, days)).cumsum(1)
    s_b = rng.binomial(per_b, 0.72, (RUNS, days)).cumsum(1)
    looks = sq.evaluate_looks((n_a, *sq.moments(n_a, s_a, s_a)), (n_b, *sq.moments(n_b, s_b, s_b)), PLAN)
    missed = ((looks["low"] > 0.02) | (looks["high"] < 0.02)).any(axis=1).mean()
    print(f"confidence sequence missed the truth in {missed:.4f} of runs over {days} looks")
    assert missed <= PLAN.alpha + 3 * _se(PLAN.alpha, RUNS)
    assert (looks["high"] - looks["low"])[:, -1].mean() < (looks["high"] - looks["low"])[:, 5].mean()


def _arms(rng: np.random.Generator, p_a: float, p_b: float, days: int, per_a: int, per_b: int):
    a = rng.binomial(1, p_a, days * per_a).astype(float)
    b = rng.binomial(1, p_b, days * per_b).astype(float)
    return a, b, np.repeat(np.arange(days), per_a), np.repeat(np.arange(days), per_b)


def test_decide_promotes_rolls_back_and_continues() -> None:
    rng = np.random.default_rng(0)
    a, b, la, lb = _arms(rng, 0.80, 0.90, 10, 900, 100)
    win = sq.decide(a, b, PLAN, champion_look=la, challenger_look=lb)
    assert win.action == sq.PROMOTE and win.p_value < PLAN.alpha and win.interval[0] > 0
    assert win.n_per_arm == {"champion": 9000, "challenger": 1000} and win.looks == 9  # day 0: 100 < min_rows
    a, b, la, lb = _arms(rng, 0.80, 0.60, 5, 900, 100)
    harm = sq.decide(a, b, PLAN, champion_look=la, challenger_look=lb)
    assert harm.action == sq.ROLLBACK and harm.interval[1] < 0 and "harm" in harm.reasons[0]
    a, b, la, lb = _arms(rng, 0.80, 0.80, 5, 900, 100)
    open_ = sq.decide(a, b, PLAN, champion_look=la, challenger_look=lb)
    assert open_.action == sq.CONTINUE and open_.interval[0] < 0 < open_.interval[1]
    ended = sq.decide(a, b, PLAN, champion_look=la, challenger_look=lb, days=30)
    assert (
        ended.action == sq.ROLLBACK
        and "max_days 30" in ended.reasons[0]
        and "champion stays" in ended.reasons[0]
    )
    few = sq.decide(a[:150], b[:150], PLAN)
    assert (
        few.action == sq.CONTINUE
        and few.to_dict()["interval"] == [None, None]
        and "min_rows" in few.reasons[0]
    )


def test_decide_stops_at_max_rows_and_respects_the_margin() -> None:
    rng = np.random.default_rng(1)
    a, b, la, lb = _arms(rng, 0.80, 0.80, 30, 900, 100)
    assert sq.decide(a, b, PLAN, champion_look=la, challenger_look=lb).action == sq.ROLLBACK  # 3000 rows
    a, b, la, lb = _arms(rng, 0.80, 0.84, 20, 900, 100)
    small = sq.decide(a, b, PLAN, champion_look=la, challenger_look=lb)
    wide = sq.decide(
        a, b, sq.TestPlan(**{**PLAN.__dict__, "margin": 0.05}), champion_look=la, challenger_look=lb
    )
    assert small.action == sq.PROMOTE and wide.action == sq.CONTINUE  # better, but not by 0.05


def test_the_p_value_and_the_interval_agree() -> None:
    """Running p < alpha exactly when the running interval lies above the margin (one rule, two views)."""
    got = sq.simulate(PLAN, p_champion=0.8, p_challenger=0.82, seed=17, runs=300, days=30, rows_per_day=1000)
    rng = np.random.default_rng(17)
    for _ in range(50):
        a, b, la, lb = _arms(rng, 0.8, 0.82, int(rng.integers(3, 30)), 900, 100)
        v = sq.decide(a, b, PLAN, champion_look=la, challenger_look=lb)
        assert (v.p_value < PLAN.alpha) == (v.interval[0] > PLAN.margin)
    assert 0 < got["promote"] < 1


def test_per_row_outcomes_average_to_the_metrics() -> None:
    from mlops_core.model.metrics import metric

    rng = np.random.default_rng(2)
    y = rng.choice(["0", "1"], 500)
    proba = np.clip(rng.random(500), 0.01, 0.99)
    s = Scored(pred=np.where(proba > 0.5, "1", "0"), proba=proba, classes=["0", "1"])
    for name in ("accuracy", "log_loss", "brier"):
        rows = sq.per_row_outcome(name, "binary", y, s, "1")
        want = metric(name, "binary", y, s, "1")
        assert math.isclose(abs(rows.mean()), want, rel_tol=1e-9), name
    yr, pr = rng.normal(size=300), rng.normal(size=300)
    assert math.isclose(
        -sq.per_row_outcome("mae", "regression", yr, Scored(pred=pr)).mean(), np.abs(yr - pr).mean()
    )
    multi = Scored(
        pred=np.array(["a", "b"]), proba=np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3]]), classes=["a", "b", "c"]
    )
    assert np.allclose(
        sq.per_row_outcome("log_loss", "multiclass", np.array(["a", "c"]), multi), np.log([0.7, 0.3])
    )
    with pytest.raises(sq.NotPerRowMetric, match="ranks rows against each other.*accuracy, log_loss, brier"):
        sq.per_row_outcome("roc_auc", "binary", y, s, "1")


def test_routing_is_stable_and_near_the_split() -> None:
    keys = np.array([f"{i:016x}" for i in range(20_000)])
    arm = sq.arm_of(keys, 10)
    assert abs(arm.mean() - 0.10) < 3 * math.sqrt(0.09 / len(keys))
    again = sq.arm_of(keys[::-1], 10)[::-1]  # another order, another run: the same arm per key
    assert (arm == again).all()
    assert (sq.arm_of(keys[:50], 10) == arm[:50]).all()
    assert (sq.arm_of(keys, 10, salt="v7") != arm).any()  # a new test reshuffles
    assert abs(sq.arm_of(keys, 25).mean() - 0.25) < 0.015
    assert (arm <= sq.arm_of(keys, 25)).all()  # a wider split only adds rows to the challenger


def _challenger_spec(challenger: dict, **changes):
    feedback = {"uri": "${MLOPS_LANDING}/labels.csv", "key_columns": ["record_id"]}
    return example_spec(
        deployment={"target": "local", "challenger": challenger},
        **{"feedback": feedback, **changes},
    )


def test_spec_accepts_a_challenger_and_picks_a_per_row_metric() -> None:
    spec = _challenger_spec({"split_percent": 20, "alpha": 0.01, "margin": 0.005})
    ch = spec.deployment.challenger
    assert (ch.split_percent, ch.alpha, ch.min_rows, ch.max_rows, ch.max_days) == (20, 0.01, 200, 20_000, 30)
    assert (
        spec.evaluation.primary_metric == "roc_auc" and spec.challenger_metric == "log_loss"
    )  # the surrogate
    assert _challenger_spec({"metric": "accuracy"}).challenger_metric == "accuracy"


@pytest.mark.parametrize(
    ("challenger", "changes", "message"),
    [
        ({"metric": "roc_auc"}, {}, "'roc_auc' cannot be judged by the sequential test: it ranks rows"),
        ({"metric": "rmse"}, {}, "use mse"),
        (
            {"metric": "mae"},
            {},
            "'mae' does not apply to a binary model; choose one of: accuracy, log_loss, brier",
        ),
        ({}, {"feedback": None}, "judged on realized labels: add a feedback section"),
        ({"min_rows": 500, "max_rows": 400}, {}, "min_rows .500. must be below max_rows"),
        ({"split_percent": 80}, {}, "less than or equal to 50"),
    ],
)
def test_spec_refuses_a_challenger_that_cannot_work(challenger: dict, changes: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        _challenger_spec(challenger, **changes)


def test_spec_refuses_a_challenger_on_an_endpoint_target() -> None:
    with pytest.raises(SpecError, match="local target only for now"):
        example_spec(
            deployment={"target": "sagemaker", "challenger": {}},
            feedback={"uri": "${MLOPS_LANDING}/labels.csv", "key_columns": ["record_id"]},
        )
