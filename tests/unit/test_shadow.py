"""``deployment.shadow`` without a registry: the spec's refusals, the verdict's rule, the
comparison's statistics, and the verdict's line in the Models view. The flow on the real
libraries (MLflow, sklearn, the lake) is test_shadow_flow.py."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_core import shadow
from mlops_core.monitor import shadow as compare
from mlops_core.spec import SpecError
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

FEEDBACK = {"uri": "${MLOPS_LANDING}/labels.csv", "key_columns": ["record_id"]}


def _spec(**shadow_cfg):
    return example_spec(deployment={"target": "local", "shadow": shadow_cfg}, feedback=FEEDBACK)


# --- the spec -------------------------------------------------------------------------------------


def test_every_endpoint_target_takes_a_shadow_azureml_included() -> None:
    for target in ("sagemaker", "vertex", "azureml", "kserve"):
        assert example_spec(deployment={"target": target, "shadow": {}}).deployment.shadow_on


def test_shadow_and_a_live_challenger_are_one_or_the_other() -> None:
    with pytest.raises(SpecError, match="keep one of them"):
        example_spec(deployment={"target": "local", "shadow": {}, "challenger": {}}, feedback=FEEDBACK)
    both = example_spec(
        deployment={"target": "local", "shadow": {}, "challenger": {"enabled": False}}, feedback=FEEDBACK
    )
    assert both.deployment.shadow_on


@pytest.mark.parametrize("flag", ["require_labels", "require_better"])
def test_waiting_for_labels_needs_a_feedback_section(flag: str) -> None:
    with pytest.raises(SpecError, match=f"shadow.{flag} needs labels"):
        example_spec(deployment={"target": "local", "shadow": {flag: True}})
    assert _spec(**{flag: True}).deployment.shadow_on


def test_the_metric_is_the_problem_types_and_defaults_to_the_primary() -> None:
    with pytest.raises(SpecError, match="'mse' is not a binary metric"):
        _spec(metric="mse")
    assert _spec().shadow_metric == "roc_auc" and _spec(metric="accuracy").shadow_metric == "accuracy"


def test_monitoring_must_run_for_the_verdict() -> None:
    with pytest.raises(SpecError, match="shadow_verdict step"):
        example_spec(deployment={"target": "local", "shadow": {}}, monitoring={"enabled": False})


def test_the_defaults_are_the_documented_ones() -> None:
    cfg = _spec().deployment.shadow
    assert (cfg.days, cfg.min_rows, cfg.max_disagreement, cfg.require_labels) == (7, 500, 0.05, False)


# --- the verdict's rule ---------------------------------------------------------------------------


def _got(**values) -> compare.Comparison:
    base = dict(rows=1000, disagreement=0.01, score_shift=0.03, score="proba_malignant")
    return compare.Comparison(**{**base, **values})


LABELLED = dict(labelled=400, metric="accuracy", shadow_value=0.95, champion_value=0.93, confidence=0.95)


def test_it_waits_for_the_days_and_for_the_rows() -> None:
    cfg = _spec(days=3, min_rows=500).deployment.shadow
    assert shadow.decide(cfg, _got(), days=2).action == shadow.WAIT
    few = shadow.decide(cfg, _got(rows=499), days=5)
    assert few.action == shadow.WAIT and "499/500 row(s)" in few.reasons[0]
    assert shadow.decide(cfg, _got(), days=3).action == shadow.PROMOTE


def test_a_better_shadow_is_promoted_and_a_worse_one_rejected() -> None:
    cfg = _spec(days=1, min_rows=100).deployment.shadow
    better = shadow.decide(cfg, _got(**LABELLED, delta=0.02, low=0.005, high=0.035), days=1)
    assert (
        better.action == shadow.PROMOTE
        and "lower end must be at or above 0 (-margin): yes" in better.reasons[-1]
    )
    worse = shadow.decide(cfg, _got(**LABELLED, delta=-0.02, low=-0.035, high=-0.005), days=1)
    assert worse.action == shadow.REJECT and worse.reasons[-1].endswith("NO")


def test_not_worse_within_the_margin_passes_unless_better_is_required() -> None:
    tied = _got(**LABELLED, delta=0.0, low=-0.004, high=0.004)
    assert shadow.decide(_spec(days=1, margin=0.01).deployment.shadow, tied, 1).action == shadow.PROMOTE
    assert shadow.decide(_spec(days=1, margin=0.0).deployment.shadow, tied, 1).action == shadow.REJECT
    strict = _spec(days=1, margin=0.01, require_better=True).deployment.shadow
    assert shadow.decide(strict, tied, 1).action == shadow.REJECT


def test_a_shadow_that_disagrees_too_much_or_shifts_its_scores_is_rejected() -> None:
    cfg = _spec(days=1, max_disagreement=0.05, max_score_shift=0.1).deployment.shadow
    apart = shadow.decide(cfg, _got(disagreement=0.08), days=1)
    assert apart.action == shadow.REJECT and "above max_disagreement 5.00%" in " ".join(apart.reasons)
    shifted = shadow.decide(cfg, _got(score_shift=0.3), days=1)
    assert shifted.action == shadow.REJECT and "above max_score_shift" in " ".join(shifted.reasons)


def test_without_labels_it_judges_on_agreement_unless_told_to_wait_for_them() -> None:
    plain = shadow.decide(_spec(days=1).deployment.shadow, _got(labelled=10), days=1)
    assert plain.action == shadow.PROMOTE and "judged on agreement and score shift" in " ".join(plain.reasons)
    strict = _spec(days=1, require_labels=True).deployment.shadow
    assert shadow.decide(strict, _got(labelled=10), days=1).action == shadow.WAIT
    # a shadow already too far apart is rejected without waiting for labels
    assert shadow.decide(strict, _got(labelled=10, disagreement=0.5), days=1).action == shadow.REJECT


# --- the comparison -------------------------------------------------------------------------------


def test_the_ks_statistic_is_scipys() -> None:
    from scipy import stats

    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 700), rng.normal(0.3, 1.2, 400)
    assert compare.ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b).statistic, abs=1e-12)
    assert compare.ks_statistic(a, a) == 0.0


def test_compare_measures_agreement_shift_and_the_paired_interval_on_the_same_rows() -> None:
    spec = _spec(metric="accuracy")
    rng = np.random.default_rng(0)
    n = 600
    truth = rng.choice(["malignant", "benign"], n)
    champ = np.where(rng.random(n) < 0.8, truth, np.where(truth == "benign", "malignant", "benign"))
    shad = np.where(rng.random(n) < 0.95, truth, np.where(truth == "benign", "malignant", "benign"))
    p_champ = np.where(champ == "malignant", 0.8, 0.2)
    p_shad = np.where(shad == "malignant", 0.9, 0.1)
    frame = pd.DataFrame(
        {
            "record_id": [f"r{i}" for i in range(n)],
            "prediction": champ,
            "proba_benign": 1 - p_champ,
            "proba_malignant": p_champ,
            compare.PREFIX + "record_id": [f"r{i}" for i in range(n)],
            compare.PREFIX + "prediction": shad,
            compare.PREFIX + "proba_benign": 1 - p_shad,
            compare.PREFIX + "proba_malignant": p_shad,
        }
    )
    labels = pd.DataFrame({"record_id": [f"r{i}" for i in range(0, n, 2)], "label": truth[::2]})
    got = compare.compare(spec, compare.Paired(days=["2026-03-01"], frame=frame), labels)
    assert got.rows == n and got.disagreement == pytest.approx(float(np.mean(champ != shad)))
    assert got.score == "proba_malignant" and got.score_shift == pytest.approx(
        compare.ks_statistic(p_champ, p_shad)
    )
    assert got.labelled == n // 2 and got.metric == "accuracy"
    assert got.shadow_value == pytest.approx(float(np.mean(shad[::2] == truth[::2])))
    assert got.champion_value == pytest.approx(float(np.mean(champ[::2] == truth[::2])))
    assert got.delta == pytest.approx(got.shadow_value - got.champion_value) and 0 < got.low < got.delta


# --- the Models view ------------------------------------------------------------------------------


def test_the_models_view_shows_the_verdict_line_escaped() -> None:
    from mlops_airflow.views import models as views

    row = {
        "version": "4", "created": "", "gate": "promote", "reasons": "", "forced_by": "", "force_reason": "",
        "approval": "", "approved_by": "", "promoted": True, "rolled_back": False, "superseded": False,
        "champion": True, "metric": 0.97,
        "shadow": "promoted (v4 vs champion v3): labels differ on 1.00% <b>",
    }  # fmt: skip
    page = views.render_pipeline(
        example_spec(),
        {"champion": "4", "metric": "roc_auc", "versions": [row]},
        {"drift": [], "realized": []},
    )
    assert "shadow promoted (v4 vs champion v3): labels differ on 1.00% &lt;b&gt;" in page
    assert "shadow" not in views._decision({**row, "shadow": ""})


# --- the task and the deploy's refusal ------------------------------------------------------------


def _verdict_step():
    from mlops_airflow.operators.deploy import ShadowVerdictOperator

    return ShadowVerdictOperator(
        task_id="shadow_verdict", pipeline=_spec(), partition_date="2026-03-04", lake_root="file:///nowhere"
    )


@pytest.mark.parametrize("run_type", ["scheduled", "manual", "backfill"])
def test_the_task_judges_its_day_and_a_backfill_only_reports(monkeypatch, run_type: str) -> None:
    from types import SimpleNamespace

    seen = {}

    def judge(spec, lake, ds, *, act, target=None):
        seen.update(lake=lake, ds=ds, act=act)
        return {"status": "wait", "reasons": ["1/7 monitored day(s)"]}

    monkeypatch.setattr(shadow, "judge", judge)
    context = {"dag_run": SimpleNamespace(run_type=run_type, dag_id="breast_cancer_monitoring")}
    assert _verdict_step().execute(context)["status"] == "wait"  # type: ignore[arg-type]
    assert seen == {"lake": "file:///nowhere", "ds": "2026-03-04", "act": run_type != "backfill"}


def test_the_task_skips_without_a_shadow_and_fails_closed_on_a_refused_promotion(monkeypatch) -> None:
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

    from mlops_core.runs import registry

    context = {"dag_run": SimpleNamespace(run_type="scheduled", dag_id="breast_cancer_monitoring")}
    monkeypatch.setattr(
        shadow, "judge", lambda *a, **k: {"status": "no_shadow", "reasons": ["none in shadow"]}
    )
    with pytest.raises(AirflowSkipException, match="none in shadow"):
        _verdict_step().execute(context)  # type: ignore[arg-type]

    def refused(*a, **k):
        raise registry.DecisionRefused("v2 needs a person's approval", "pending")

    monkeypatch.setattr(shadow, "judge", refused)
    with pytest.raises(AirflowFailException, match="promotion was refused: v2 needs a person's approval"):
        _verdict_step().execute(context)  # type: ignore[arg-type]


def _deployable(monkeypatch) -> None:
    """``rollout.deploy``'s checks passed, champion v1; the registry's writes recorded, not made."""
    from types import SimpleNamespace

    from mlops_core.runs import registry, run_artifacts, tracking

    monkeypatch.setattr(tracking, "configure", lambda: None)
    monkeypatch.setattr(
        registry, "check_deployable", lambda n, v: SimpleNamespace(tags={}, evaluated_against="1")
    )
    monkeypatch.setattr(run_artifacts, "verify_artifact", lambda *a: None)
    monkeypatch.setattr(registry, "alias_version", lambda n, a: "1" if a == registry.CHAMPION else None)


def test_auto_on_a_profile_that_deploys_to_azureml_puts_the_version_in_shadow_without_a_request(
    monkeypatch,
) -> None:
    from mlops_core import rollout, targets
    from mlops_core.runs import registry
    from mlops_core.spec.profiles import CloudProfile

    _deployable(monkeypatch)
    writes, services = [], []
    monkeypatch.setattr(registry, "set_alias_checked", lambda *a: writes.append(("alias", *a)))
    monkeypatch.setattr(
        registry, "set_tags", lambda n, v, tags: writes.append(("tags", v, tags["mlops.shadow"]))
    )
    profile = CloudProfile("azure", "abfs://lake/l", "abfs://lake/in", None, "azureml", "azureml", "none")
    spec = example_spec(cloud="azure", deployment={"target": "auto", "shadow": {}})
    chosen = targets.get_target(targets.resolve_target_name(spec, profile), profile, services.append)
    assert chosen.name == "azureml"
    got = rollout.deploy(spec, "2", chosen)
    assert services == []  # no Azure ML client was even asked for: no request
    assert (got["target"], got["state"], got["extra"]) == ("azureml", "ready", {"shadow": True})
    assert writes == [("alias", "breast_cancer", "shadow", "2", None), ("tags", "2", "live")]


def test_mirror_percent_with_auto_on_a_profile_that_is_not_azure_ml_is_refused_before_anything_moves(
    monkeypatch,
) -> None:
    from mlops_core import rollout, targets
    from mlops_core.runs import registry
    from mlops_core.spec.profiles import CloudProfile

    _deployable(monkeypatch)
    writes, services = [], []
    monkeypatch.setattr(registry, "set_alias_checked", lambda *a: writes.append(a))
    monkeypatch.setattr(registry, "set_tags", lambda *a: writes.append(a))
    profile = CloudProfile("gcp", "gs://lake/l", "gs://lake/in", None, "vertex", "vertex", "none")
    spec = example_spec(cloud="gcp", deployment={"target": "auto", "shadow": {"mirror_percent": 10}})
    chosen = targets.get_target(targets.resolve_target_name(spec, profile), profile, services.append)
    assert chosen.name == "vertex"
    with pytest.raises(rollout.TargetMismatch, match="remove mirror_percent, or deploy to azureml"):
        rollout.deploy(spec, "2", chosen)
    assert services == [] and writes == []


def test_a_promotion_on_an_endpoint_defers_until_it_is_ready_then_completes(monkeypatch) -> None:
    from types import SimpleNamespace

    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    from mlops_airflow.triggers.cloud import EndpointTrigger

    moving = {"target": "vertex", "endpoint": "ep", "state": "updating", "version": "2"}
    monkeypatch.setattr(
        shadow, "judge", lambda *a, **k: {"status": "promote", "reasons": ["better"], "deployment": moving}
    )
    context = {"dag_run": SimpleNamespace(run_type="scheduled", dag_id="breast_cancer_monitoring")}
    step = _verdict_step()
    with pytest.raises(TaskDeferred) as deferred:
        step.execute(context)  # type: ignore[arg-type]
    assert isinstance(deferred.value.trigger, EndpointTrigger)
    assert deferred.value.method_name == "promotion_complete"

    completed = []
    monkeypatch.setattr(
        shadow,
        "complete_promotion",
        lambda spec, dep, target, lake: completed.append(dep) or {**dep, "state": "ready"},
    )
    ready = {**moving, "state": "ready"}
    out = step.promotion_complete(
        context, {"status": "success", "deployment": ready}, **deferred.value.kwargs
    )
    assert completed == [ready] and out["deployment"]["state"] == "ready" and out["status"] == "promote"

    def failed(spec, dep, target, lake):
        raise shadow.PromotionFailed("smoke test failed; rolled back")

    monkeypatch.setattr(shadow, "complete_promotion", failed)
    with pytest.raises(AirflowFailException, match="smoke test failed"):
        step.promotion_complete(context, {"status": "success", "deployment": ready}, **deferred.value.kwargs)


def test_the_deploy_task_fails_without_a_retry_when_the_target_cannot_mirror(monkeypatch) -> None:
    """``target: auto`` resolving to a cloud that cannot take ``mirror_percent``: the task fails (a
    retry would resolve the same target) instead of retrying into the same refusal."""
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.operators import deploy as deploy_operators
    from mlops_core import rollout

    def refuse(*_a, **_k):
        raise rollout.TargetMismatch("deployment.shadow.mirror_percent ...: remove mirror_percent")

    monkeypatch.setattr(rollout, "deploy", refuse)
    monkeypatch.setattr(deploy_operators, "target", lambda _step: None)
    step = deploy_operators.DeployOperator(
        task_id="deploy", pipeline=_spec(), registered={"version": "2"}, decision={"promote": True}
    )
    with pytest.raises(AirflowFailException, match="remove mirror_percent"):
        step.execute({})  # type: ignore[arg-type]
