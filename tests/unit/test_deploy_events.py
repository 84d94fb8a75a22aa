"""What a deploy's wait ending in error does: only a platform-reported failure rolls back."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from mlops_airflow.operators import deploy as operators
from mlops_airflow.operators.deploy import DeployOperator
from mlops_core import rollout
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

DEPLOYMENT = {"target": "vertex", "endpoint": "e", "model_name": "breast_cancer", "version": "2"}


@pytest.fixture
def op(monkeypatch):
    rolled: list[dict] = []
    monkeypatch.setattr(operators, "target", lambda step: object())
    monkeypatch.setattr(rollout, "rollback", lambda spec, dep, tgt: rolled.append(dep))
    step = DeployOperator(task_id="deploy", pipeline=example_spec(), registered={"version": "2"})
    step.rolled = rolled
    return step


def test_transient_errors_retry_the_task_and_roll_nothing_back(op):
    event = {"status": "error", "reason": "transient", "message": "503 x10", "deployment": DEPLOYMENT}
    with pytest.raises(AirflowException, match="lost contact") as err:
        op.deploy_complete({}, event)
    assert not isinstance(err.value, AirflowFailException)  # retried by Airflow
    assert op.rolled == []


@pytest.mark.parametrize("reason", ["failed", "timeout", "error"])
def test_a_failed_deploy_rolls_back_and_fails_without_retry(op, reason):
    event = {"status": "error", "reason": reason, "message": "Failed: bad image", "deployment": DEPLOYMENT}
    with pytest.raises(AirflowFailException, match="rolled back"):
        op.deploy_complete({}, event)
    assert op.rolled == [DEPLOYMENT]
