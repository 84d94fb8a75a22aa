"""Separation of duties for release (README "Security catalogue"): a decision forged by writing a
tag (on the training run or on the model version) is refused, because the release steps seal
what they decide with a key no other worker holds (mlops_core.runs.release). The MLflow permission
split (a 403 for the ordinary identity) runs for real in tests/stack/test_team_stack.py.
"""

from __future__ import annotations

import pytest

from mlops_core import lifecycle, rollout
from mlops_core.base import settings
from mlops_core.model import training
from mlops_core.runs import registry, release
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

DS = "2026-01-31"


@pytest.fixture
def spec():
    return example_spec(name="sod")


@pytest.fixture
def trained(spec, landing):
    raw = lifecycle.ingest(spec, DS, settings.lake_root())["uri"]
    result = training.train(spec, raw, settings.lake_root(), DS, {}).to_dict()
    return result, lifecycle.evaluate(spec, result, settings.lake_root(), DS)


def _rejected(spec, trained):
    result, evaluated = trained
    evaluated = {**evaluated, "challenger": {**evaluated["challenger"], "roc_auc": 0.5}}  # below the floor
    decision = lifecycle.gate(spec, evaluated, result["run_id"]).to_dict()
    assert decision["outcome"] == "reject"
    return result, decision


def test_deploy_refuses_a_rejected_version_whose_decision_was_forged_by_tag(spec, trained):
    result, decision = _rejected(spec, trained)
    version = lifecycle.register(spec, result, decision, "dag/forged", {})["version"]
    # the attack of issue 23: one tag write on the version
    registry.client().set_model_version_tag("sod", version, registry.GATE_TAG, "promote")
    with pytest.raises(registry.DecisionRefused, match="not sealed by the release steps") as refused:
        rollout.deploy(spec, version)
    assert refused.value.outcome == "forged"
    assert registry.alias_version("sod", registry.CHAMPION) is None
    # copying another version's seal does not help either: the seal names version, run and digest
    sealed = lifecycle.register(
        spec, trained[0], lifecycle.gate(spec, trained[1], trained[0]["run_id"]).to_dict(), "dag/ok", {}
    )
    if sealed["outcome"] in registry.DEPLOYABLE:
        good = registry.client().get_model_version("sod", sealed["version"]).tags[release.RELEASE_SEAL_TAG]
        registry.client().set_model_version_tag("sod", version, release.RELEASE_SEAL_TAG, good)
        with pytest.raises(registry.DecisionRefused, match="not sealed"):
            rollout.deploy(spec, version)
        rollout.deploy(spec, sealed["version"])  # the honest one ships
        assert registry.alias_version("sod", registry.CHAMPION) == sealed["version"]


def test_register_refuses_a_gate_decision_forged_on_the_training_run(spec, trained):
    result, decision = _rejected(spec, trained)
    # an ordinary task rewrites the run's tag and the XCom copy of the decision to agree with it
    registry.client().set_tag(result["run_id"], registry.GATE_TAG, "promote")
    with pytest.raises(registry.DecisionRefused, match="not sealed by the release steps"):
        lifecycle.register(spec, result, {**decision, "outcome": "promote"}, "dag/forged-run", {})
    assert registry.find_version("sod", "dag/forged-run") is None


def test_a_version_with_no_digest_is_not_deployed(spec, trained):
    result, evaluated = trained
    decision = lifecycle.gate(spec, evaluated, result["run_id"]).to_dict()
    version = lifecycle.register(spec, result, decision, "dag/nodigest", {})["version"]
    registry.client().delete_model_version_tag("sod", version, registry.DIGEST_TAG)
    with pytest.raises(registry.DecisionRefused):
        rollout.deploy(spec, version)
    assert registry.alias_version("sod", registry.CHAMPION) is None


def test_the_seal_needs_the_key(local_dir, monkeypatch):
    monkeypatch.setenv(release.KEY_ENV, "k" * 40)
    signature = release.seal("gate", model="m", run_id="r", outcome="reject")
    assert release.verify(signature, "gate", model="m", run_id="r", outcome="reject")
    assert not release.verify(signature, "gate", model="m", run_id="r", outcome="promote")
    assert not release.verify(None, "gate", model="m", run_id="r", outcome="reject")
    monkeypatch.setenv(release.KEY_ENV, "x" * 40)  # another worker's key: nothing verifies
    assert not release.verify(signature, "gate", model="m", run_id="r", outcome="reject")
    monkeypatch.setenv(release.KEY_ENV, "short")
    with pytest.raises(release.ReleaseKeyError, match="at least 32"):
        release.seal("gate", model="m")


def test_without_a_key_the_embedded_default_makes_one_private_file(local_dir, monkeypatch):
    monkeypatch.delenv(release.KEY_ENV, raising=False)
    first = release.key()
    path = settings.local_dir() / "release.key"
    assert path.stat().st_mode & 0o777 == 0o600 and release.key() == first and len(first) == 64


@pytest.mark.parametrize(("value", "queue"), [(None, "release"), ("", None), ("deployers", "deployers")])
def test_release_steps_run_on_their_own_queue(monkeypatch, value, queue):
    from mlops_airflow.builder import build_training_dag

    if value is None:
        monkeypatch.delenv(release.QUEUE_ENV, raising=False)
    else:
        monkeypatch.setenv(release.QUEUE_ENV, value)
    spec = example_spec(
        name="sodq", deployment={"approval": {"assigned_users": ["alice"], "timeout_minutes": 30}}
    )
    dag = build_training_dag(spec)
    queues = {task.task_id: task.queue for task in dag.tasks}
    released = {"gate", "register", "approval", "deploy", "smoke_test"}
    default = dag.get_task("ingest").queue
    assert {t for t, q in queues.items() if q == (queue or default)} >= released
    if queue is not None:
        assert {t for t, q in queues.items() if q == queue} == released
