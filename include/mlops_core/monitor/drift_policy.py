"""The drift policy: whether a monitored day drifted, and whether drift should retrain the model.

:func:`day_drifted` judges one day (drift share over its threshold, a critical column drifted, or
with ``prediction_drift: policy`` the model's output drifted); :func:`decide` reads the drift
history as ``monitoring`` says (consecutive drifted days, cooldown after a training or a
promotion, no firing on a backfill) and returns a :class:`PolicyDecision` with its reasons.
:func:`mlops_core.monitor.monitoring.policy` feeds it from the lake and the registry.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import MonitoringSpec


@dataclass
class PolicyDecision:
    fire: bool
    reasons: list[str]
    ds: str
    evidence: dict[str, Any] = field(default_factory=dict)
    # what would retrain: "drift", "performance" (model decay, realized or estimated: evidence.performance.on) or both
    trigger: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def day_drifted(
    cfg: MonitoringSpec,
    share: float,
    share_threshold: float,
    critical: list[str],
    prediction: dict[str, Any] | None,
) -> tuple[bool, list[str]]:
    """Whether one monitored day drifted, and why (pure): the (weighted) share reached the share
    threshold, a critical column drifted, or, with ``prediction_drift: policy``, the model's
    output drifted against its holdout predictions. What :func:`check` records and
    :func:`decide` reads back, and what the drift benchmark measures."""
    why = []
    if share >= share_threshold:
        why.append(f"drift share {share:.2f} >= {share_threshold:g}")
    if critical:
        why.append(f"critical column(s) drifted: {', '.join(critical)}")
    if cfg.prediction_drift == "policy" and isinstance(prediction, dict) and prediction.get("drifted"):
        why.append("predictions drifted")
    return bool(why), why


def _prediction_note(out: Any, policy: bool) -> str:
    stat = f"p={out['p_value']:.3g}" if out.get("p_value") is not None else f"{out['statistic']:.3g}"
    acts = "counts in the policy" if policy else "reported; prediction_drift: report"
    return (
        f"prediction drift ({out['method']} {stat} against the champion's holdout predictions): "
        f"{'drifted' if out.get('drifted') else 'stable'} ({acts})"
    )


def _day_reason(cfg: MonitoringSpec, d: str, row: dict[str, Any]) -> tuple[bool, str]:
    rows, share = int(row["rows"] or 0), float(row["drift_share"] or 0.0)
    found = row.get("critical_drifted")
    critical = [str(c) for c in found] if isinstance(found, list | tuple) else []
    recorded = row.get("share_threshold")
    threshold = cfg.drift_share if recorded is None or math.isnan(float(recorded)) else float(recorded)
    out = row.get("prediction_drift")
    out = out if isinstance(out, dict) and out.get("method") else None
    drifted, _ = day_drifted(cfg, share, threshold, critical, out)
    enough = rows >= cfg.min_rows
    why = f"critical column(s) drifted: {', '.join(critical)}; " if critical else ""
    calibrated = (
        f" (the window's own variability; drift_share {cfg.drift_share:g})"
        if threshold > cfg.drift_share
        else ""
    )
    reason = (
        f"{d}: {why}drift share {share:.2f} {'>=' if share >= threshold else '<'} {threshold:g}{calibrated}, "
        f"{rows} rows {'>=' if enough else '<'} min_rows {cfg.min_rows}"
    )
    if out is not None:
        reason += "; " + _prediction_note(out, cfg.prediction_drift == "policy")
    return enough and drifted, reason


def decide(
    cfg: MonitoringSpec,
    days: pd.DataFrame,
    ds: str,
    *,
    last_training: date | None,
    is_backfill: bool,
    decay: Any = None,
    last_promotion: date | None = None,
) -> PolicyDecision:
    """Apply the policy for day ``ds`` (pure: no I/O): the drift streak OR the decay verdict
    (:class:`mlops_core.monitor.decay_policy.DecayVerdict`, when the pipeline has ``feedback``), then the
    cooldown and the backfill rule, which hold both.

    The cooldown counts from ``last_promotion`` (the current champion's training day) with
    ``cooldown_from: promotion``, from ``last_training`` (the last attempt) with ``attempt``; with
    no champion yet, from the last attempt either way.
    """
    day = date.fromisoformat(ds[:10])
    wanted = [(day - timedelta(days=i)).isoformat() for i in range(cfg.consecutive_days)]
    by_day = {str(r["ds"]): r for r in days.to_dict("records")} if len(days) else {}
    reasons, ok = [], True
    for d in wanted:
        row = by_day.get(d)
        if row is None:
            ok = False
            reasons.append(
                f"{d}: not monitored: no data (its rows have not arrived or its run has not finished); "
                f"no data is not 'no drift', and the policy needs {cfg.consecutive_days} consecutive monitored day(s)"
            )
            continue
        drifted, reason = _day_reason(cfg, d, row)
        ok &= drifted
        reasons.append(reason)
    drift_fires = ok
    decay_fires = bool(decay is not None and decay.fire)
    if decay is not None:
        reasons += decay.reasons
    ok = drift_fires or decay_fires
    trigger = "+".join(t for t, on in (("drift", drift_fires), ("performance", decay_fires)) if on) or None
    cooling = _cooldown(cfg, day, last_training, last_promotion)
    if cooling:
        ok = False
        reasons.append(cooling)
    if is_backfill and not cfg.retrain_on_backfill:
        ok = False
        reasons.append(
            "backfill run: history filled, retraining not triggered (monitoring.retrain_on_backfill is false)"
        )
    today = by_day.get(day.isoformat(), {})
    evidence: dict[str, Any] = {
        "ds": day.isoformat(),
        "drift_share": today.get("drift_share"),
        "share_threshold": today.get("share_threshold"),
        "rows": today.get("rows"),
    }
    if decay is not None:
        evidence["performance"] = decay.evidence
    return PolicyDecision(ok, reasons, day.isoformat(), evidence, trigger if ok else None)


def _cooldown(cfg: MonitoringSpec, day: date, last_training: date | None, last_promotion: date | None) -> str:
    """Why the cooldown holds the day ("" when it does not)."""
    since: date | None = last_training
    what = "the last training attempt"
    if cfg.cooldown_from == "promotion" and last_promotion is not None:
        since, what = last_promotion, "the champion's training (last promotion)"
    if since is None or (day - since).days >= cfg.cooldown_days:
        return ""
    return (
        f"cooldown: {what} on {since}, {(day - since).days} day(s) ago < {cfg.cooldown_days} "
        f"(monitoring.cooldown_from: {cfg.cooldown_from})"
    )
