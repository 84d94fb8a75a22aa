"""The decay policy: whether the champion's performance has decayed long enough to retrain.

:func:`decide` reads the performance history (:mod:`mlops_core.monitor.feedback`; with
``feedback.decay.on: estimated`` the estimate's, :mod:`mlops_core.monitor.estimate`): the last
``decay.days`` prediction days up to ``ds - delay_days`` (``ds`` itself for the estimate, which
needs no labels) must all have decayed, one day per
monitoring window when prediction days overlap (:func:`streak_stride`). A day not evaluated breaks
the streak and says so. :func:`mlops_core.monitor.monitoring.policy` combines the verdict with the
drift policy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.monitor.estimate import DayEstimate
from mlops_core.monitor.feedback import JUDGED, DayPerformance, decay_metric

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec


def streak_stride(spec: PipelineSpec) -> int:
    """Days between the prediction days a decay streak counts: 1 when each prediction day holds its
    own rows (a ``column``-partitioned source), else the monitoring window, so no two counted days
    share rows (``files`` mode reads the window's files as one partition)."""
    if spec.source.partition.mode == "files":
        return spec.monitoring.window_days
    return 1


@dataclass
class DecayVerdict:
    """Whether decay alone would retrain (before cooldown and backfill rules), and why."""

    fire: bool
    reasons: list[str]
    evidence: dict[str, Any] = field(default_factory=dict)


def decide(spec: PipelineSpec, days: list[dict[str, Any]], ds: str) -> DecayVerdict:
    """The last ``decay.days`` prediction days up to ``ds - delay_days`` must all have decayed.

    A day not evaluated (no predictions, no labels, too few labelled rows) breaks the streak and
    says so: no labels is not "no decay", and not decay either. With ``decay.on: estimated``
    ``days`` is the estimate's history and the streak ends on ``ds`` (lag 0: no labels to wait for).
    """
    fb = spec.feedback
    assert fb is not None
    cfg = fb.decay
    if not cfg.enabled:
        return DecayVerdict(False, ["decay policy off (feedback.decay.enabled: false)"])
    estimated = cfg.on == "estimated"
    kind: type[DayPerformance] = DayEstimate if estimated else DayPerformance
    last = date.fromisoformat(ds[:10]) - timedelta(days=0 if estimated else fb.delay_days)
    stride = streak_stride(spec)
    wanted = [(last - timedelta(days=i * stride)).isoformat() for i in range(cfg.days)]
    by_day = {str(d["ds"]): d for d in days}
    reasons: list[str] = []
    if stride > 1:
        reasons.append(
            f"prediction days overlap (each holds the {stride}-day monitoring window: source.partition.mode "
            f"is {spec.source.partition.mode!r}): the streak counts one prediction day per window"
        )
    fire = True
    for d in wanted:
        row = by_day.get(d)
        if row is None:
            fire = False
            why = "no monitoring run estimated it" if estimated else "no run joined its labels"
            reasons.append(f"performance {d}: not {'estimated' if estimated else 'evaluated'} yet ({why})")
            continue
        verdict = kind(**{k: row[k] for k in kind.__dataclass_fields__ if k in row})
        fire &= bool(row.get("decayed")) and verdict.status in JUDGED
        reasons.append("performance " + verdict.describe())
    newest = by_day.get(wanted[0], {})
    evidence = {
        "metric": decay_metric(spec),
        "days": wanted,
        "value": newest.get("value"),
        "low": newest.get("low"),
        "high": newest.get("high"),
        "holdout": newest.get("holdout"),
        "baseline": newest.get("baseline"),
        "reference": cfg.reference,
        "on": cfg.on,
        "floor": newest.get("floor"),
        "rows": newest.get("rows"),
    }
    return DecayVerdict(fire, reasons, evidence)
