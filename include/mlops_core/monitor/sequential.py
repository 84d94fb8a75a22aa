"""The live challenger's sequential test: promote, roll back or keep watching, with always-valid error control.

A canary split sends ``split_percent`` of the rows to the challenger (a stable hash of the row key,
:func:`arm_of`); once their labels arrive, every labelled row gives one *per-row outcome* per arm
(:func:`per_row_outcome`: correctness, minus the log loss, minus the Brier score, minus the
absolute or squared error, so higher is always better). The test is about the difference of the
arms' mean outcomes, ``delta = mean(challenger) - mean(champion)``.

The statistic is the mixture sequential probability ratio test of Johari et al. (2017, "Always
valid inference: continuous monitoring of A/B tests", two independent arms, normal approximation
with plug-in variances) with a normal mixing distribution; equivalently the normal-mixture
confidence sequence of Howard et al. (2021, "Time-uniform, nonparametric, nonasymptotic confidence
sequences"). At every look ``k`` the set

    C_k = delta_hat_k +- sqrt(V_k (V_k + tau2) / tau2 * (2 log(1/alpha) + log((V_k + tau2) / V_k)))

(``V_k``: the variance of ``delta_hat_k``) covers the true ``delta`` at *all* looks at once with
probability at least ``1 - alpha`` (Ville's inequality on the mixture martingale). So:

* **promote** when ``C_k`` lies wholly above ``margin``: under H0, "the challenger is no better
  than the champion by more than the margin" (``delta <= margin``), the probability that it is
  *ever* promoted, at any of the daily looks however many there are, is at most ``alpha``. The
  always-valid p-value :func:`msprt_p_value` is below ``alpha`` exactly then.
* **roll back (harm)** when ``C_k`` lies wholly below ``-margin``;
* **roll back (no decision)** when the challenger arm reached ``max_rows`` labelled rows or the
  test ran ``max_days`` days: the champion stays;
* otherwise **continue**.

``tau2`` (the mixture's variance) is set so the sequence is tightest when the challenger arm holds
``max_rows`` rows (:func:`mixture_ratio`). The guarantee is asymptotic in the rows per arm (the
variances are estimated), which is why no look happens before both arms hold ``min_rows``;
``tests/unit/test_sequential.py`` and ``benchmarks/sequential.py`` measure it by simulation.

Pure statistics and numpy: no I/O, no registry (:mod:`mlops_core.challenger` does those).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_core.spec.deployment import CHALLENGER_METRICS

if TYPE_CHECKING:
    import numpy as np

    from mlops_core.model.metrics import Scored

PROMOTE, ROLLBACK, CONTINUE = "promote", "rollback", "continue"
CHAMPION, CHALLENGER = "champion", "challenger"

# what one row contributes (higher is better); the problem types are CHALLENGER_METRICS'
PER_ROW = {
    "accuracy": "1 when the prediction equals the label, else 0",
    "log_loss": "minus the log of the probability given to the true label",
    "brier": "minus (P(positive) - 1[positive])^2",
    "mae": "minus |prediction - label|",
    "mse": "minus (prediction - label)^2",
}
_EPS = 1e-15  # log loss clips probabilities like sklearn


class NotPerRowMetric(ValueError):
    """The metric is not a mean of per-row values, so the sequential test cannot judge it."""


def check_metric(metric: str, problem_type: str) -> None:
    """Refuse a metric the test cannot use, naming the ones it can."""
    usable = [m for m, problems in CHALLENGER_METRICS.items() if problem_type in problems]
    if problem_type in CHALLENGER_METRICS.get(metric, ()):
        return
    why = (
        "it ranks rows against each other (not a mean over rows)"
        if metric in ("roc_auc", "average_precision")
        else "it is not a mean of per-row values"
    )
    raise NotPerRowMetric(
        f"deployment.challenger.metric {metric!r} cannot be judged by the sequential test: {why}. "
        f"For a {problem_type} model use one of: {', '.join(usable)}"
        + (" (mse for rmse: the same ordering, and a mean)" if metric == "rmse" else "")
    )


def per_row_outcome(
    metric: str, problem_type: str, y: np.ndarray, scored: Scored, positive: Any = None
) -> np.ndarray:
    """One value per labelled row, oriented so higher is better (losses are negated)."""
    import numpy as np

    check_metric(metric, problem_type)
    if metric == "accuracy":
        return (np.asarray(y).astype(str) == np.asarray(scored.pred).astype(str)).astype(float)
    if metric in ("mae", "mse"):
        err = np.asarray(y, float) - np.asarray(scored.pred, float)
        return -np.abs(err) if metric == "mae" else -(err**2)
    if scored.proba is None:
        raise NotPerRowMetric(f"{metric} needs the predicted probabilities; these predictions have none")
    proba = np.asarray(scored.proba, float)
    if proba.ndim == 1:  # binary: P(positive)
        hit = (np.asarray(y).astype(str) == str(positive)).astype(float)
        if metric == "brier":
            return -((proba - hit) ** 2)
        p_true = np.where(hit == 1.0, proba, 1.0 - proba)
    else:
        classes = [str(c) for c in (scored.classes or [])]
        at = np.array([classes.index(v) if v in classes else -1 for v in np.asarray(y).astype(str)])
        p_true = np.where(at >= 0, proba[np.arange(len(at)), np.maximum(at, 0)], 0.0)
    return np.log(np.clip(p_true, _EPS, 1.0))


def mixture_ratio(alpha: float) -> float:
    """``tau2 / V`` that makes the confidence sequence narrowest at the planned sample size."""
    import numpy as np

    r = np.logspace(-3, 4, 2000)
    width = (1 + r) / r * (2 * math.log(1 / alpha) + np.log1p(r))
    return float(r[int(np.argmin(width))])


def mixture_variance(
    var_champion: Any, var_challenger: Any, plan_challenger: int, split_percent: float, alpha: float
) -> Any:
    """``tau2``: the mixture's variance, tuned to the planned rows (``max_rows`` on the challenger arm)."""
    plan_champion = plan_challenger * (100.0 - split_percent) / split_percent
    return mixture_ratio(alpha) * (var_champion / plan_champion + var_challenger / plan_challenger)


def confidence_sequence(delta: Any, variance: Any, tau2: Any, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """The (1 - alpha) always-valid interval for delta at each look (vectorized over any shape)."""
    import numpy as np

    v = np.maximum(np.asarray(variance, float), 1e-18)
    t = np.maximum(np.asarray(tau2, float), 1e-18)
    radius = np.sqrt(v * (v + t) / t * (2 * math.log(1 / alpha) + np.log((v + t) / v)))
    return np.asarray(delta) - radius, np.asarray(delta) + radius


def msprt_p_value(delta: Any, variance: Any, tau2: Any, margin: float) -> np.ndarray:
    """Always-valid p-value (one look) for "challenger better by more than margin": 1 / the mixture
    likelihood ratio against ``delta = margin``, and 1 when the estimate is not above the margin.
    Its running minimum is below alpha exactly when the confidence sequence lies above the margin."""
    import numpy as np

    v = np.maximum(np.asarray(variance, float), 1e-18)
    t = np.maximum(np.asarray(tau2, float), 1e-18)
    d = np.asarray(delta, float) - margin
    log_lr = 0.5 * np.log(v / (v + t)) + t * d**2 / (2 * v * (v + t))
    p = np.minimum(1.0, np.exp(-log_lr))
    return np.where(d > 0, p, 1.0)


@dataclass(frozen=True)
class TestPlan:
    """The test's settings (``deployment.challenger``)."""

    alpha: float = 0.05
    margin: float = 0.0
    split_percent: float = 10.0
    min_rows: int = 200
    max_rows: int = 20_000
    max_days: int = 30


@dataclass
class Verdict:
    """The day's decision with its evidence."""

    action: str  # promote | rollback | continue
    p_value: float  # always-valid, running minimum over the looks
    interval: tuple[float, float]  # the confidence sequence (running intersection) for delta
    n_per_arm: dict[str, int]  # labelled rows: champion, challenger
    estimate: float | None = None  # delta_hat at the last look
    looks: int = 0  # looks with both arms at min_rows
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (an unbounded end of the interval is None)."""
        out = asdict(self)
        out["interval"] = [v if math.isfinite(v) else None for v in self.interval]
        return out


def day_sums(values: Any, look: Any, n_looks: int) -> np.ndarray:
    """Per look (0..n_looks-1): rows, sum and sum of squares of ``values`` (shape (3, n_looks))."""
    import numpy as np

    v, at = np.asarray(values, float), np.asarray(look, int)
    return np.stack(
        [np.bincount(at, weights=w, minlength=n_looks)[:n_looks] for w in (np.ones_like(v), v, v**2)]
    )


def moments(n: Any, s: Any, ss: Any) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) variance from counts, sums and sums of squares; nan below two rows."""
    import numpy as np

    n = np.asarray(n, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        var = np.maximum(ss - n * mean**2, 0.0) / (n - 1)
    return np.where(n > 0, mean, np.nan), np.where(n > 1, var, np.nan)


def evaluate_looks(
    champion: tuple[Any, Any, Any], challenger: tuple[Any, Any, Any], plan: TestPlan
) -> dict[str, np.ndarray]:
    """The test along the looks (last axis; any leading axes are independent runs).

    ``champion`` / ``challenger``: cumulative (rows, mean, variance) per look. Returns the
    estimate, the running always-valid p-value and the running confidence sequence; a look
    before both arms hold ``min_rows`` counts for nothing (p 1, interval unbounded).
    """
    import numpy as np

    (n_a, m_a, v_a), (n_b, m_b, v_b) = champion, challenger
    ready = (np.asarray(n_a) >= plan.min_rows) & (np.asarray(n_b) >= plan.min_rows)
    with np.errstate(invalid="ignore", divide="ignore"):
        delta = np.asarray(m_b, float) - np.asarray(m_a, float)
        variance = np.asarray(v_a, float) / n_a + np.asarray(v_b, float) / n_b
        tau2 = mixture_variance(
            np.asarray(v_a), np.asarray(v_b), plan.max_rows, plan.split_percent, plan.alpha
        )
    delta, variance, tau2 = (np.where(ready, x, 0.0) for x in (delta, variance, tau2))
    low, high = confidence_sequence(delta, variance, tau2, plan.alpha)
    p = np.where(ready, msprt_p_value(delta, variance, tau2, plan.margin), 1.0)
    low, high = np.where(ready, low, -np.inf), np.where(ready, high, np.inf)
    return {
        "ready": ready,
        "estimate": delta,
        "p_value": np.minimum.accumulate(p, axis=-1),
        "low": np.maximum.accumulate(low, axis=-1),
        "high": np.minimum.accumulate(high, axis=-1),
    }


def first_decision(looks: dict[str, np.ndarray], n_challenger: Any, plan: TestPlan) -> np.ndarray:
    """Per run (leading axes): the action the test takes first along the looks.

    At each look in turn: promote if the interval lies above ``margin``, roll back if below
    ``-margin`` or when the challenger arm reached ``max_rows`` (or the last look is ``max_days``),
    else continue. Returns an array of PROMOTE / ROLLBACK / CONTINUE.
    """
    import numpy as np

    promote = looks["low"] > plan.margin
    harm = looks["high"] < -plan.margin
    stop = np.asarray(n_challenger) >= plan.max_rows
    stop = stop | (np.arange(promote.shape[-1]) + 1 >= plan.max_days)
    decided = promote | harm | stop
    first = np.argmax(decided, axis=-1)
    any_decided = decided.any(axis=-1)
    took = np.take_along_axis(promote, first[..., None], axis=-1)[..., 0]
    return np.where(~any_decided, CONTINUE, np.where(took, PROMOTE, ROLLBACK))


def decide(
    champion: np.ndarray,
    challenger: np.ndarray,
    plan: TestPlan,
    *,
    champion_look: np.ndarray | None = None,
    challenger_look: np.ndarray | None = None,
    days: int | None = None,
) -> Verdict:
    """The verdict on every labelled row so far: per-row outcomes of each arm (higher is better),
    with the look (0, 1, ...: the prediction day's rank) each row belongs to.

    :param days: days the challenger has been live (``max_days`` ends the test); default the looks.
    """
    import numpy as np

    la = np.zeros(len(champion), int) if champion_look is None else np.asarray(champion_look, int)
    lb = np.zeros(len(challenger), int) if challenger_look is None else np.asarray(challenger_look, int)
    n_looks = int(max(la.max(initial=0), lb.max(initial=0))) + 1
    return decide_sums(day_sums(champion, la, n_looks), day_sums(challenger, lb, n_looks), plan, days=days)


def decide_sums(champion: Any, challenger: Any, plan: TestPlan, *, days: int | None = None) -> Verdict:
    """The verdict from each look's (rows, sum, sum of squares) per arm, shape (3, looks), oldest first."""
    import numpy as np

    sums_a, sums_b = (
        np.cumsum(np.asarray(champion, float), axis=1),
        np.cumsum(np.asarray(challenger, float), axis=1),
    )
    arm_a, arm_b = (sums_a[0], *moments(*sums_a)), (sums_b[0], *moments(*sums_b))
    looks = evaluate_looks(arm_a, arm_b, plan)
    counts = {CHAMPION: int(sums_a[0][-1]), CHALLENGER: int(sums_b[0][-1])}
    low, high, p = float(looks["low"][-1]), float(looks["high"][-1]), float(looks["p_value"][-1])
    ready = int(looks["ready"].sum())
    estimate = float(looks["estimate"][-1]) if looks["ready"][-1] else None
    verdict = Verdict(CONTINUE, p, (low, high), counts, estimate, ready)
    if not ready:
        verdict.reasons.append(
            f"not enough labelled rows yet: champion {counts[CHAMPION]}, challenger {counts[CHALLENGER]} "
            f"(each arm needs min_rows {plan.min_rows})"
        )
    elif low > plan.margin:
        verdict.action = PROMOTE
        verdict.reasons.append(
            f"always-valid p {p:.4g} < alpha {plan.alpha:g}: the challenger is better by more than "
            f"margin {plan.margin:g} ({1 - plan.alpha:.0%} confidence sequence [{low:.4g}, {high:.4g}])"
        )
    elif high < -plan.margin:
        verdict.action = ROLLBACK
        verdict.reasons.append(
            f"harm: the {1 - plan.alpha:.0%} confidence sequence [{low:.4g}, {high:.4g}] lies wholly below "
            f"-margin ({0.0 - plan.margin:g}): the challenger is worse"
        )
    _stop_at_limits(verdict, plan, days if days is not None else sums_a.shape[1])
    return verdict


def _stop_at_limits(verdict: Verdict, plan: TestPlan, days: int) -> None:
    """No decision within max_rows / max_days: roll back (the champion stays)."""
    if verdict.action != CONTINUE:
        return
    limits = []
    if verdict.n_per_arm[CHALLENGER] >= plan.max_rows:
        limits.append(f"the challenger arm reached max_rows {plan.max_rows}")
    if days >= plan.max_days:
        limits.append(f"the test ran {days} day(s) (max_days {plan.max_days})")
    if limits:
        verdict.action = ROLLBACK
        verdict.reasons.append(
            f"no decision: {' and '.join(limits)} without the interval leaving [-margin, margin]; "
            "the champion stays"
        )


def arm_of(keys: Any, split_percent: float, salt: str = "") -> np.ndarray:
    """Stable arm per row key: True (challenger) for about ``split_percent`` % of the keys.

    A key's arm never changes (a 64-bit hash of the key's text, independent of the run, the
    process and the other rows); ``salt`` (e.g. the challenger's version) reshuffles it per test.
    """
    import numpy as np
    import pandas as pd

    text = pd.Series(np.asarray(keys).astype(str), dtype="string")
    if salt:
        text = salt + ":" + text
    hashed = pd.util.hash_pandas_object(text, index=False).to_numpy(dtype=np.uint64)
    return (hashed % np.uint64(10_000)) < np.uint64(round(split_percent * 100))


def simulate(
    plan: TestPlan,
    *,
    runs: int,
    days: int,
    rows_per_day: int,
    p_champion: float,
    p_challenger: float,
    seed: int = 0,
) -> dict[str, Any]:
    """Seeded runs of the test on a 0/1 outcome (accuracy), one look per day: for planning a test.

    Each day ``rows_per_day`` labelled rows arrive, ``split_percent`` % of them on the challenger
    arm. Returns the share of runs that promote / roll back / continue, the first-decision
    actions and the naive fixed-sample one-sided z-test (alpha) applied at every look, for
    comparison (the peeking it does not protect against).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    per_b = max(1, round(rows_per_day * plan.split_percent / 100))
    per_a = rows_per_day - per_b
    ones = np.arange(1, days + 1, dtype=float) * np.ones((runs, 1))
    n_a, n_b = per_a * ones, per_b * ones
    s_a = rng.binomial(per_a, p_champion, (runs, days)).cumsum(axis=1)
    s_b = rng.binomial(per_b, p_challenger, (runs, days)).cumsum(axis=1)
    arm_a, arm_b = (n_a, *moments(n_a, s_a, s_a)), (n_b, *moments(n_b, s_b, s_b))
    actions = first_decision(evaluate_looks(arm_a, arm_b, plan), n_b, plan)
    with np.errstate(invalid="ignore", divide="ignore"):
        z = (arm_b[1] - arm_a[1] - plan.margin) / np.sqrt(arm_a[2] / n_a + arm_b[2] / n_b)
    ready = (n_a >= plan.min_rows) & (n_b >= plan.min_rows)
    naive = (ready & (z > _z_one_sided(plan.alpha))).any(axis=1)
    return {
        "promote": float(np.mean(actions == PROMOTE)),
        "rollback": float(np.mean(actions == ROLLBACK)),
        "continue": float(np.mean(actions == CONTINUE)),
        "naive_promote": float(np.mean(naive)),
        "challenger_rows": int(per_b * days),
        "actions": actions,
    }


def _z_one_sided(alpha: float) -> float:
    """The normal quantile 1 - alpha (bisection on erfc: no scipy needed)."""
    lo, hi = 0.0, 10.0
    for _ in range(80):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(mid / math.sqrt(2)) > alpha:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2
