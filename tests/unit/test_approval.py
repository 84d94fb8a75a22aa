"""Human approval between register and deploy: the page body, the recorded decision, and a deploy
that refuses a version no person approved (whatever the task states say).

The waiting itself (Airflow 3.3's ``awaiting_input`` state, the REST answer, the scheduler's
timeout sweep) runs in the scheduler tier (tests/stack/test_scheduler.py); here the operator's
own code runs on a real MLflow store with the answer events Airflow hands it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from mlops_core import lifecycle, rollout
from mlops_core.base import settings
from mlops_core.model import training
from mlops_core.runs import registry
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

DS = "2026-01-31"


@pytest.fixture
def spec():
    return example_spec(
        name="appr", deployment={"approval": {"assigned_users": ["alice"], "timeout_minutes": 30}}
    )


@pytest.fixture
def registered(spec, landing):
    raw = lifecycle.ingest(spec, DS, settings.lake_root())["uri"]
    trained = training.train(spec, raw, settings.lake_root(), DS, {}).to_dict()
    evaluated = lifecycle.evaluate(spec, trained, settings.lake_root(), DS)
    decision = lifecycle.gate(spec, evaluated, trained["run_id"]).to_dict()
    reg = lifecycle.register(spec, trained, decision, "dag/appr", {})
    return trained, evaluated, decision, reg


def _operator(spec, trained, evaluated, decision, reg):
    from mlops_airflow.operators.approval import ModelApprovalOperator, approval_kwargs

    return ModelApprovalOperator(
        task_id="approval",
        pipeline=spec,
        registered=reg,
        decision=decision,
        evaluation=evaluated,
        trained=trained,
        **approval_kwargs(spec),
    )


def _context():
    run = SimpleNamespace(
        run_type="manual", run_after=datetime(2026, 2, 1, tzinfo=UTC), triggering_user_name="bob"
    )
    return {"dag_run": run, "logical_date": datetime(2026, 1, 31, tzinfo=UTC), "triggering_asset_events": {}}


def test_the_form_is_approve_or_reject_with_reject_on_timeout_and_the_assigned_users(spec, registered):
    op = _operator(spec, *registered)
    assert op.options == ["Approve", "Reject"] and op.defaults == ["Reject"]
    assert (
        op.assigned_users == [{"id": "alice", "name": "alice"}]
        and op.response_timeout.total_seconds() == 1800
    )
    assert "comment" in op.params


def test_the_body_shows_the_evidence_and_escapes_every_value(spec, registered):
    trained, evaluated, decision, reg = registered
    decision = {
        **decision,
        "reasons": ["floor ok | <script>alert(1)</script> [x](javascript:alert(1))\nline"],
    }
    op = _operator(spec, trained, evaluated, decision, reg)
    body = op.evidence(_context())
    assert f"### appr v{reg['version']}" in body and "**Holdout metrics**" in body
    assert "| roc_auc |" in body and f"{evaluated['challenger']['roc_auc']:.4f}" in body
    assert "\\<script\\>alert(1)\\</script\\>" in body and "<script>" not in body
    assert "\\[x\\](javascript:alert(1))" in body and "[x](" not in body  # no link can open
    assert "&#xa;line" in body.split("**Gate reasons**")[1].strip().splitlines()[0]  # one bullet, folded
    assert "validation report: `file://" in body and f"registered model `appr` v{reg['version']}" in body


@pytest.mark.parametrize(
    ("chosen", "timedout", "user", "outcome"),
    [
        ("Approve", False, {"id": "alice", "name": "alice"}, "approved"),
        ("Reject", False, {"id": "alice", "name": "alice"}, "rejected"),
        ("Reject", True, None, "timed_out"),
    ],
)
def test_the_answer_is_recorded_on_the_version(
    spec, registered, monkeypatch, chosen, timedout, user, outcome
):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG

    with DAG("appr_training", schedule=None):
        op = _operator(spec, *registered)
        op >> EmptyOperator(task_id="deploy")
    pushed = []
    ti = SimpleNamespace(map_index=-1, xcom_push=lambda key, value: pushed.append(value))
    when = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)
    event = {
        "chosen_options": [chosen],
        "params_input": {"comment": "looks right" if user else ""},
        "responded_at": when,
        "responded_by_user": user,
        "timedout": timedout,
    }
    context = {**_context(), "ti": ti, "task": op}
    if outcome == "approved":
        result = op.execute_complete(context, event)
        assert result["outcome"] == "approved" and pushed == []
    else:  # Airflow 3's skip ends the task by raising; the answer is on the version already
        from airflow.sdk.exceptions import DownstreamTasksSkipped

        with pytest.raises(DownstreamTasksSkipped) as skipped:
            op.execute_complete(context, event)
        assert list(skipped.value.tasks) == ["deploy"] and pushed == [{"skipped": ["deploy"]}]
    version = registered[3]["version"]
    tags = registry.client().get_model_version("appr", version).tags
    assert tags["mlops.approval"] == outcome
    assert tags["mlops.approved_by"] == (user or {}).get("name", "")
    assert tags["mlops.approved_at"] == when.isoformat()
    assert tags["mlops.approval_comment"] == ("looks right" if user else "")
    assert tags["mlops.approval_seal"]  # sealed by the approval task (mlops_core.runs.release)


@pytest.mark.parametrize("user", [None, {"id": "", "name": ""}])
def test_an_approve_no_person_gave_is_recorded_as_a_rejection(spec, registered, user):
    from airflow.providers.standard.operators.empty import EmptyOperator
    from airflow.sdk import DAG
    from airflow.sdk.exceptions import DownstreamTasksSkipped

    with DAG("appr_training", schedule=None):
        op = _operator(spec, *registered)
        op >> EmptyOperator(task_id="deploy")
    ti = SimpleNamespace(map_index=-1, xcom_push=lambda key, value: None)
    event = {
        "chosen_options": ["Approve"],
        "params_input": {},
        "responded_at": datetime(2026, 2, 1, 9, 30, tzinfo=UTC),
        "responded_by_user": user,
    }
    with pytest.raises(DownstreamTasksSkipped):
        op.execute_complete({**_context(), "ti": ti, "task": op}, event)
    version = registered[3]["version"]
    assert registry.client().get_model_version("appr", version).tags["mlops.approval"] == "rejected"
    with pytest.raises(registry.DecisionRefused, match="tag is rejected"):
        rollout.deploy(spec, version)


def test_deploy_refuses_a_version_no_person_approved(spec, registered):
    version = registered[3]["version"]
    with pytest.raises(registry.DecisionRefused, match="needs a person's approval .* tag is absent"):
        rollout.deploy(spec, version)
    registry.set_tags("appr", version, {"mlops.approval": "rejected"})
    with pytest.raises(registry.DecisionRefused, match="tag is rejected"):
        rollout.deploy(spec, version)
    # the attack of issue 23: the tag alone, with no person's answer behind it
    registry.set_tags("appr", version, {"mlops.approval": "approved", "mlops.approved_by": "alice"})
    with pytest.raises(registry.DecisionRefused, match="not sealed by the approval task"):
        rollout.deploy(spec, version)
    assert registry.alias_version("appr", registry.CHAMPION) is None
    # what the approval task records after reading a person's Approve from Airflow's HITL record
    _operator(spec, *registered)._record(version, "approved", "alice", datetime(2026, 2, 1, tzinfo=UTC), "")
    rollout.deploy(spec, version)
    assert registry.alias_version("appr", registry.CHAMPION) == version


def test_a_gate_rejection_asks_nobody(spec, registered):
    from airflow.sdk.exceptions import AirflowSkipException

    trained, evaluated, decision, reg = registered
    op = _operator(spec, trained, evaluated, {**decision, "outcome": "reject"}, {**reg, "outcome": "reject"})
    with pytest.raises(AirflowSkipException, match="gate reject"):
        op.execute(_context())
