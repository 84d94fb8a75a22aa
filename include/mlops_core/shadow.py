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

On an endpoint target (``target`` given, :class:`mlops_core.deploy.EndpointTarget`) the same steps
run, with the target's own hands: ``deploy`` leaves the endpoint on the champion
(:meth:`~mlops_core.deploy.EndpointTarget.deploy_shadow`; SageMaker starts a shadow-mode inference
experiment, Azure ML with ``mirror_percent`` a collecting deployment the endpoint mirrors to), a mirroring target writes the day's captured traffic before the comparison
(:meth:`~mlops_core.deploy.EndpointTarget.shadow_traffic`, judged instead of batch scoring's rows),
a promotion puts the shadow's version on the endpoint (:meth:`~mlops_core.deploy.EndpointTarget.promote_shadow`:
Vertex AI, Azure ML and KServe deploy it with the spec's strategy, SageMaker promotes the shadow variant),
and once the platform reports it ready :func:`complete_promotion` smoke-tests the endpoint on the
version's held-out rows and moves ``champion`` (once, by compare-and-swap); a rejection removes what
the shadow held (:meth:`~mlops_core.deploy.EndpointTarget.reject_shadow`).
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_core import challenger
from mlops_core.deploy import SHADOW_TAG, SHADOW_VERDICT_TAG
from mlops_core.monitor import shadow as compare_shadow
from mlops_core.runs import registry

if TYPE_CHECKING:
    from mlops_core.deploy import Deployment, DeploymentTarget, EndpointTarget
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


def _endpoint(target: DeploymentTarget | None) -> EndpointTarget | None:
    from mlops_core.deploy import EndpointTarget

    return target if isinstance(target, EndpointTarget) else None


def judge(
    spec: PipelineSpec, lake_root: str, ds: str, *, act: bool = True, target: DeploymentTarget | None = None
) -> dict[str, Any]:
    """The verdict for monitored day ``ds`` on every shadow-scored day so far, and its action taken
    (``act=False``: reported only, as on a backfill run, which must not move aliases). ``target``:
    the pipeline's deployment target (None or local: the alias is the deployment)."""
    cfg = spec.deployment.shadow
    assert cfg is not None
    name = spec.registered_model_name
    shadow = registry.alias_version(name, registry.SHADOW)
    champion = registry.alias_version(name, registry.CHAMPION)
    if shadow is None or champion is None:
        return {"status": "no_shadow", "reasons": [f"{name} has no version in shadow"]}
    endpoint = _endpoint(target)
    traffic = endpoint is not None and endpoint.mirrors(spec)
    if traffic and endpoint is not None:  # the day's mirrored requests, as both models answered them
        write_traffic(spec, lake_root, ds[:10], endpoint.shadow_traffic(spec, ds[:10]), (champion, shadow))
    paired = compare_shadow.collect(spec, lake_root, shadow, champion, ds[:10], traffic=traffic)
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
    if traffic:
        result["judged_on"] = "mirrored traffic"
    if act:
        _act(spec, verdict, (shadow, champion), result, lake_root, endpoint)
    result["acted"] = act
    return result


def write_traffic(
    spec: PipelineSpec, lake_root: str, ds: str, pairs: list[Any], versions: tuple[str, str]
) -> None:
    """A mirroring target's requests of day ``ds``, (rows, the champion's predictions, the shadow's)
    each, as the sibling partitions :func:`mlops_core.monitor.shadow.collect` pairs (``traffic``).
    Row keys are :func:`mlops_core.scoring.row_keys` of the request's rows (they carry no id column),
    so labels join on them as on batch scoring's ``row_key``."""
    import pandas as pd

    from mlops_core import scoring
    from mlops_core.data import storage

    if not pairs:
        return
    champion, shadow = versions
    rows = pd.DataFrame([r for p in pairs for r in p[0]])
    keys = pd.DataFrame({"row_key": scoring.row_keys(rows)})
    served = keys.assign(prediction=[v for p in pairs for v in p[1]], model_version=champion)
    written = storage.write_partition(
        {"data": served}, lake_root, spec.name, compare_shadow.TRAFFIC, ds, extra={"model_version": champion}
    )
    side = keys.assign(prediction=[v for p in pairs for v in p[2]], model_version=shadow)
    storage.write_partition(
        {"data": side},
        lake_root,
        spec.name,
        compare_shadow.TRAFFIC_STAGE,
        ds,
        extra={
            "shadow_version": shadow,
            "champion_version": champion,
            "served_uri": written.uri,
            "served_version": written.version,
        },
    )
    log.info("%d mirrored row(s) answered by v%s and v%s on %s", len(rows), champion, shadow, ds)


def _act(
    spec: PipelineSpec,
    verdict: Verdict,
    pair: tuple[str, str],
    result: dict[str, Any],
    lake_root: str,
    endpoint: EndpointTarget | None,
) -> None:
    """Promote or reject as the verdict says; tag the verdict on the shadow's version; refresh its card.

    On an endpoint target a promotion starts the endpoint's move to the shadow's version (the
    deploy's checks first) and returns it in ``result["deployment"]``; ``champion`` moves in
    :func:`complete_promotion`, at once when the platform is ready already, else once it is.
    """
    name = spec.registered_model_name
    shadow, champion = pair
    tags = {SHADOW_VERDICT_TAG: verdict.line(shadow, champion)[:5000]}
    if verdict.action == PROMOTE and endpoint is None:
        challenger.promote(spec, shadow, champion, alias=registry.SHADOW)
        tags |= {SHADOW_TAG: "promoted", "mlops.promoted": "true"}
    elif verdict.action == PROMOTE and endpoint is not None:
        from mlops_core.deploy import READY

        challenger.check_promotable(spec, shadow)  # before the endpoint is touched
        with registry.champion_guard(name, champion):
            moving = endpoint.promote_shadow(spec, shadow, champion)
        tags |= {SHADOW_TAG: "promoting"}
        result["deployment"] = moving.to_dict()
        log.info("shadow v%s of %s goes on %s (%s)", shadow, name, moving.endpoint, moving.state)
    elif verdict.action == REJECT:
        if endpoint is not None:
            endpoint.reject_shadow(spec, shadow, champion)
        registry.set_alias_checked(name, registry.SHADOW, None, shadow)
        tags |= {SHADOW_TAG: "rejected"}
        log.warning("shadow v%s of %s rejected: %s", shadow, name, "; ".join(verdict.reasons))
    summary = {k: v for k, v in result.items() if k not in ("reasons", "deployment")}
    registry.set_tags(name, shadow, tags | {SUMMARY_TAG: json.dumps(summary, default=str)[:5000]})
    if "deployment" in result and result["deployment"]["state"] == READY and endpoint is not None:
        result["deployment"] = complete_promotion(spec, result["deployment"], endpoint, lake_root)
    elif verdict.action != WAIT and "deployment" not in result:
        _refresh_card(spec, shadow, lake_root)


class PromotionFailed(RuntimeError):
    """The endpoint could not take the promoted shadow (its smoke test failed): rolled back, shadow out."""


def complete_promotion(
    spec: PipelineSpec, deployment: dict[str, Any], target: DeploymentTarget, lake_root: str | None = None
) -> dict[str, Any]:
    """The endpoint serves the promoted shadow's version: smoke-test it on the version's held-out
    rows (the endpoint's answers against the verified model's, in process), then move ``champion``
    to it by compare-and-swap against the champion it was judged beside (the target's ``promote``:
    all traffic to it) and remove the alias ``shadow``. A failed smoke test rolls the endpoint back
    (``champion`` never moved), takes the shadow out and raises :class:`PromotionFailed`."""
    from mlops_core.deploy import Deployment

    dep = Deployment(**deployment)
    name, version, champion = dep.model_name, dep.version, dep.previous_version
    smoke = _smoke(spec, dep, target)
    if not smoke.passed:
        target.rollback(spec, dep)
        registry.set_alias_checked(name, registry.SHADOW, None, version)
        registry.set_tags(name, version, {SHADOW_TAG: "rolled_back", "mlops.rolled_back": "true"})
        raise PromotionFailed(
            f"the promoted shadow v{version} failed its smoke test on {dep.endpoint} ({smoke.detail}); "
            f"the endpoint was rolled back to champion v{champion} and the shadow taken out"
        )
    with registry.champion_guard(name, champion):
        done = target.promote(spec, dep)
    registry.set_alias_checked(name, registry.SHADOW, None, version)
    registry.set_tags(
        name, version, {SHADOW_TAG: "promoted", "mlops.promoted": "true", "mlops.deployed_to": dep.endpoint}
    )
    log.info("shadow v%s of %s promoted: %s serves it, champion moved", version, name, dep.endpoint)
    if lake_root is not None:
        _refresh_card(spec, version, lake_root)
    return done.to_dict()


def _smoke(spec: PipelineSpec, dep: Deployment, target: DeploymentTarget) -> Any:
    """The endpoint's predictions of the version's first ``smoke_rows`` held-out rows against the
    verified model's own (the held-out partition named by the version's ``mlops.holdout_uri`` tag)."""
    import numpy as np

    from mlops_core.data import storage
    from mlops_core.deploy import EndpointTarget, compare
    from mlops_core.runs import run_artifacts

    assert isinstance(target, EndpointTarget)
    holdout = registry.client().get_model_version(dep.model_name, dep.version).tags.get("mlops.holdout_uri")
    if not holdout:
        raise PromotionFailed(
            f"v{dep.version} of {dep.model_name} has no mlops.holdout_uri tag to smoke-test on"
        )
    rows = storage.read_frame(holdout).head(spec.deployment.smoke_rows)
    features = rows.drop(columns=[c for c in [spec.target] if c in rows.columns])
    model = run_artifacts.load_verified(dep.model_name, dep.version, allow_pickle=spec.model.allow_pickle)
    want = np.asarray(model.predict(features))
    return compare(spec, target.predict(dep, features), want, len(features))


def _refresh_card(spec: PipelineSpec, version: str, lake_root: str) -> None:
    """Publish the version's card again so it shows the verdict (a failure is logged: the verdict stands)."""
    from mlops_core.model import modelcard

    try:
        modelcard.publish(spec, version, lake_root)
    except Exception as err:
        log.warning("the model card of v%s was not refreshed with the shadow verdict: %s", version, err)
