"""The shadow deployment (``deployment.shadow``): judge a version on its predictions, then act.

How it runs, end to end on the local target:

1. the training DAG's ``deploy`` of a version the gate promoted (and a person approved, with
   ``deployment.approval``) points the alias ``shadow`` at it instead of moving ``champion``
   (:class:`mlops_core.deploy.local.LocalTarget`); the champion keeps serving;
2. batch and monitoring scoring score every row with both and write the shadow's predictions in a
   sibling partition, the served ones unchanged (:func:`mlops_core.scoring.batch_score`);
3. :func:`judge` (the monitoring DAG's ``shadow_verdict`` step) waits for ``days`` monitored days
   and ``min_rows`` rows, compares the two on the same rows (:mod:`mlops_core.monitor.shadow`), and
   promotes (``champion`` moves by compare-and-swap after the gate record, the approval and the
   digest are checked again: :func:`mlops_core.challenger.promote`) or rejects (``shadow``
   removed; the champion stays). The verdict is tagged on the version (``mlops.shadow``,
   ``mlops.shadow_verdict``, ``mlops.shadow_summary``) for the Models view and the model card.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_core import challenger
from mlops_core.deploy.local import SHADOW_TAG, SHADOW_VERDICT_TAG
from mlops_core.monitor import shadow as compare_shadow
from mlops_core.runs import registry

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec, ShadowSpec

log = logging.getLogger(__name__)

SUMMARY_TAG = "mlops.shadow_summary"  # the verdict's numbers (JSON)
WAIT, PROMOTE, REJECT = "wait", "promote", "reject"


@dataclass
class Verdict:
    action: str  # wait | promote | reject
    reasons: list[str] = field(default_factory=list)

    def line(self, shadow: str, champion: str) -> str:
        """The verdict in one line, as the Models view and the model card show it."""
        what = {WAIT: "waiting", PROMOTE: "promoted", REJECT: "rejected"}[self.action]
        return f"{what} (v{shadow} vs champion v{champion}): " + "; ".join(self.reasons)


def decide(cfg: ShadowSpec, got: compare_shadow.Comparison, days: int) -> Verdict:
    """Wait, promote or reject on the comparison of ``days`` monitored days (pure: no registry)."""
    if days < cfg.days or got.rows < cfg.min_rows:
        return Verdict(
            WAIT, [f"{days}/{cfg.days} monitored day(s), {got.rows}/{cfg.min_rows} row(s) scored in shadow"]
        )
    verdict = Verdict(PROMOTE, [f"{days} day(s), {got.rows} row(s) scored by both"])
    failed = False  # any check; the labels' own below
    if got.disagreement is not None:
        bad = got.disagreement > cfg.max_disagreement
        failed |= bad
        verdict.reasons.append(
            f"predicted labels differ on {got.disagreement:.2%} of rows "
            f"({'above' if bad else 'within'} max_disagreement {cfg.max_disagreement:.2%})"
        )
    if got.score_shift is not None and not math.isnan(got.score_shift):
        bad = got.score_shift > cfg.max_score_shift
        failed |= bad
        verdict.reasons.append(
            f"score shift KS {got.score_shift:.4f} on {got.score} "
            f"({'above' if bad else 'within'} max_score_shift {cfg.max_score_shift:g})"
        )
    else:
        verdict.reasons.append("no scores to compare (a classifier without probabilities): KS not judged")
    wait_for_labels = cfg.require_labels or cfg.require_better
    if got.labelled < cfg.min_labelled_rows or got.low is None or math.isnan(got.low):
        verdict.reasons.append(
            f"{got.labelled} labelled row(s) < min_labelled_rows {cfg.min_labelled_rows}: no paired "
            + ("metric yet" if wait_for_labels else "metric, judged on agreement and score shift")
        )
        if wait_for_labels and not failed:
            return Verdict(WAIT, verdict.reasons)
    else:
        better, not_worse = got.low > 0, got.low >= -cfg.margin
        bad = not (better if cfg.require_better else not_worse)
        failed |= bad
        bound = -cfg.margin if cfg.margin else 0.0  # (no "-0")
        need = "above 0 (require_better)" if cfg.require_better else f"at or above {bound:g} (-margin)"
        verdict.reasons.append(
            f"{got.metric} shadow {got.shadow_value:.4f} vs champion {got.champion_value:.4f} on {got.labelled} "
            f"labelled row(s): improvement {got.delta:+.4f}, {got.confidence:.0%} paired interval "
            f"[{got.low:+.4f}, {got.high:+.4f}]; its lower end must be {need}: {'NO' if bad else 'yes'}"
        )
        if failed and not bad:  # a real improvement changes predictions: the bounds, not the labels, refused
            verdict.reasons.append(
                "rejected on agreement or score shift although the labels passed it: a better model differs "
                "from the champion; with feedback, set max_disagreement and max_score_shift to the change "
                "you expect and let the paired interval decide (docs/shadow.md, Choosing the bounds)"
            )
    return Verdict(REJECT if failed else PROMOTE, verdict.reasons)


def judge(spec: PipelineSpec, lake_root: str, ds: str, *, act: bool = True) -> dict[str, Any]:
    """The verdict for monitored day ``ds`` on every shadow-scored day so far, and its action taken
    (``act=False``: reported only, as on a backfill run, which must not move aliases)."""
    cfg = spec.deployment.shadow
    assert cfg is not None
    name = spec.registered_model_name
    shadow = registry.alias_version(name, registry.SHADOW)
    champion = registry.alias_version(name, registry.CHAMPION)
    if shadow is None or champion is None:
        return {"status": "no_shadow", "reasons": [f"{name} has no version in shadow"]}
    paired = compare_shadow.collect(spec, lake_root, shadow, champion, ds[:10])
    if paired.frame is None:
        got = compare_shadow.Comparison(rows=0)
    else:
        labels = None
        if spec.feedback is not None:
            labels = compare_shadow.read_labels(spec, paired.days, ds)
        got = compare_shadow.compare(spec, paired, labels)
    verdict = decide(cfg, got, len(paired.days))
    verdict.reasons += paired.skipped
    result = {
        "status": verdict.action,
        "shadow_version": shadow,
        "champion_version": champion,
        "days": len(paired.days),
        "first_day": paired.days[0] if paired.days else None,
        "reasons": verdict.reasons,
        **got.to_dict(),
    }
    log.info("shadow verdict: %s", verdict.line(shadow, champion))
    if act:
        _act(spec, verdict, shadow, champion, result, lake_root)
    result["acted"] = act
    return result


def _act(
    spec: PipelineSpec, verdict: Verdict, shadow: str, champion: str, result: dict[str, Any], lake_root: str
) -> None:
    """Promote or reject as the verdict says; tag the verdict on the shadow's version; refresh its card."""
    name = spec.registered_model_name
    tags = {SHADOW_VERDICT_TAG: verdict.line(shadow, champion)[:5000]}
    if verdict.action == PROMOTE:
        challenger.promote(spec, shadow, champion, alias=registry.SHADOW)
        tags |= {SHADOW_TAG: "promoted", "mlops.promoted": "true"}
    elif verdict.action == REJECT:
        registry.set_alias_checked(name, registry.SHADOW, None, shadow)
        tags |= {SHADOW_TAG: "rejected"}
        log.warning("shadow v%s of %s rejected: %s", shadow, name, "; ".join(verdict.reasons))
    summary = {k: v for k, v in result.items() if k != "reasons"}
    registry.set_tags(name, shadow, tags | {SUMMARY_TAG: json.dumps(summary, default=str)[:5000]})
    if verdict.action != WAIT:
        _refresh_card(spec, shadow, lake_root)


def _refresh_card(spec: PipelineSpec, version: str, lake_root: str) -> None:
    """Publish the version's card again so it shows the verdict (a failure is logged: the verdict stands)."""
    from mlops_core.model import modelcard

    try:
        modelcard.publish(spec, version, lake_root)
    except Exception as err:
        log.warning("the model card of v%s was not refreshed with the shadow verdict: %s", version, err)
