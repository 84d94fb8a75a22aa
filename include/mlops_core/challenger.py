"""The live challenger (``deployment.challenger``): each monitored day, judge it and act.

How it runs, end to end on the local target:

1. the training DAG's ``deploy`` of a version the gate promoted (and a person approved, with
   ``deployment.approval``) points the alias ``live_challenger`` at it instead of moving
   ``champion`` (:class:`mlops_core.deploy.local.LocalTarget`);
2. batch and monitoring scoring send ``split_percent`` % of the row keys to it
   (:func:`mlops_core.monitor.sequential.arm_of`) and write a ``variant`` column
   (:func:`mlops_core.scoring.batch_score`);
3. the ``performance`` step joins the labels and records, per prediction day, each arm's version
   and the sums of the per-row outcome (:func:`mlops_core.monitor.feedback.evaluate_day`);
4. :func:`judge` (the monitoring DAG's ``challenger_verdict`` step) adds up the days of this
   champion/challenger pair, asks :func:`mlops_core.monitor.sequential.decide_sums`, and promotes
   (``champion`` moves by compare-and-swap, after the gate record and the approval are checked
   again) or rolls back (``live_challenger`` removed; the champion stays). The verdict is tagged on
   the version (``mlops.challenger``, ``mlops.challenger_reasons``, ``mlops.challenger_verdict``).
"""

from __future__ import annotations

import json
import logging
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.deploy.local import CHALLENGER_REASON_TAG, CHALLENGER_TAG
from mlops_core.monitor import feedback, sequential
from mlops_core.runs import registry

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

VERDICT_TAG = "mlops.challenger_verdict"


def plan(spec: PipelineSpec) -> sequential.TestPlan:
    """The test's settings from ``deployment.challenger``."""
    ch = spec.deployment.challenger
    assert ch is not None
    return sequential.TestPlan(
        alpha=ch.alpha,
        margin=ch.margin,
        split_percent=ch.split_percent,
        min_rows=ch.min_rows,
        max_rows=ch.max_rows,
        max_days=ch.max_days,
    )


def daily_sums(
    days: list[dict[str, Any]], champion: str, challenger: str, metric: str, until: str
) -> tuple[list[str], Any, Any]:
    """The prediction days (up to ``until``) on which this champion and this challenger shared the
    split, oldest first, with each arm's (rows, sum, sum of squares) per day, shape (3, days)."""
    import numpy as np

    kept: list[tuple[str, list[float], list[float]]] = []
    for day in sorted(days, key=lambda d: str(d.get("ds"))):
        arms = day.get("arms") or {}
        a, b = arms.get("champion") or {}, arms.get("challenger") or {}
        if str(day.get("ds")) > until or arms.get("metric") != metric:
            continue
        if str(a.get("version")) != str(champion) or str(b.get("version")) != str(challenger):
            continue
        kept.append(
            (
                str(day["ds"]),
                [a.get("rows", 0), a.get("sum", 0.0), a.get("sumsq", 0.0)],
                [b.get("rows", 0), b.get("sum", 0.0), b.get("sumsq", 0.0)],
            )
        )
    if not kept:
        return [], np.zeros((3, 0)), np.zeros((3, 0))
    return (
        [k[0] for k in kept],
        np.asarray([k[1] for k in kept], float).T,
        np.asarray([k[2] for k in kept], float).T,
    )


def judge(spec: PipelineSpec, lake_root: str, ds: str, *, act: bool = True) -> dict[str, Any]:
    """The verdict for monitored day ``ds`` on every labelled row so far, and its action taken
    (``act=False``: reported only, as on a backfill run, which must not move aliases)."""
    assert spec.feedback is not None and spec.deployment.challenger is not None
    name = spec.registered_model_name
    live = registry.alias_version(name, registry.LIVE_CHALLENGER)
    champion = registry.alias_version(name, registry.CHAMPION)
    if live is None or champion is None:
        return {"status": "no_challenger", "reasons": [f"{name} has no live challenger"]}
    until = (date.fromisoformat(ds[:10]) - timedelta(days=spec.feedback.delay_days)).isoformat()
    metric = spec.challenger_metric
    looks, sums_a, sums_b = daily_sums(feedback.history(spec, lake_root), champion, live, metric, until)
    days = (date.fromisoformat(until) - date.fromisoformat(looks[0])).days + 1 if looks else 0
    test = plan(spec)
    if looks:
        verdict = sequential.decide_sums(sums_a, sums_b, test, days=days)
    else:
        verdict = sequential.Verdict(sequential.CONTINUE, 1.0, (float("-inf"), float("inf")), {})
        verdict.reasons.append(f"no labelled prediction day of v{live} beside champion v{champion} yet")
    result = {
        "status": verdict.action,
        "challenger_version": live,
        "champion_version": champion,
        "metric": metric,
        "days": days,
        "first_day": looks[0] if looks else None,
        **verdict.to_dict(),
    }
    log.info("challenger v%s vs champion v%s on %s: %s", live, champion, metric, "; ".join(verdict.reasons))
    if act:
        _act(spec, verdict, live, champion, result)
    result["acted"] = act
    return result


def _act(
    spec: PipelineSpec, verdict: sequential.Verdict, live: str, champion: str, result: dict[str, Any]
) -> None:
    """Promote or roll back as the verdict says; tag the verdict on the challenger's version."""
    name = spec.registered_model_name
    summary = json.dumps(
        {k: result[k] for k in ("status", "p_value", "interval", "n_per_arm", "days", "metric")}
    )
    tags = {VERDICT_TAG: summary[:5000], CHALLENGER_REASON_TAG: "; ".join(verdict.reasons)[:5000]}
    if verdict.action == sequential.PROMOTE:
        promote(spec, live, champion)
        tags |= {CHALLENGER_TAG: "promoted", "mlops.promoted": "true"}
    elif verdict.action == sequential.ROLLBACK:
        registry.set_live_challenger(name, None, live)
        tags |= {CHALLENGER_TAG: "rolled_back"}
        log.warning("live challenger v%s of %s rolled back: %s", live, name, "; ".join(verdict.reasons))
    registry.set_tags(name, live, tags)


def promote(spec: PipelineSpec, live: str, champion: str, *, alias: str = registry.LIVE_CHALLENGER) -> None:
    """``champion`` -> the challenger, through the same checks as a deploy: the gate's decision on
    its tags, the approval (with ``deployment.approval``), the artifact's digest, and a
    compare-and-swap against the champion it was tested beside; then off the split (``alias``
    removed: ``live_challenger``, or ``shadow`` for :func:`mlops_core.shadow.judge`)."""
    name = spec.registered_model_name
    check_promotable(spec, live)
    registry.promote(name, live, expected=champion)
    registry.set_alias_checked(name, alias, None, live)
    log.info("%s v%s of %s promoted to champion (was v%s)", alias, live, name, champion)


def check_promotable(spec: PipelineSpec, version: str) -> None:
    """A deploy's checks, again: the gate's decision on the version's tags, the approval (with
    ``deployment.approval``) and the artifact's digest; :class:`~mlops_core.runs.registry.DecisionRefused`
    (or a digest error) when one fails."""
    from mlops_core import rollout
    from mlops_core.runs import run_artifacts

    name = spec.registered_model_name
    found = registry.check_deployable(name, version)
    approval = spec.deployment.approval
    if approval is not None and approval.required:
        rollout.check_approved(name, version, found.tags)
    run_artifacts.verify_artifact(name, version, found.tags)
