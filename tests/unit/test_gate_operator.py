"""The gate step's human override: ``force_promote`` without a reason fails the task, and nothing
after the gate runs. (Proven here on the operator and the built DAG; the override *with* a reason
runs end to end in tests/integration/test_training_dag.py.)"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowFailException

from mlops_airflow.operators.model import GateOperator
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

EVALUATION = {"challenger": {"roc_auc": 0.99, "recall": 0.99}, "champion": None, "bootstrap": None}


def _context() -> dict[str, object]:
    return {"dag_run": SimpleNamespace(triggering_user_name="tester", run_type="manual")}


# what the builder's templates render: "{{ params.reason }}" of an empty or a missing (None) reason
@pytest.mark.parametrize("reason", ["", "   ", "None", None])
def test_force_promote_without_a_reason_fails_the_gate_task(reason: str | None) -> None:
    step = GateOperator(
        task_id="gate",
        pipeline=example_spec(),
        trained={"run_id": "0" * 32},
        evaluation=EVALUATION,
        force_promote="True",  # rendered from "{{ params.force_promote }}"
        reason=reason,
    )
    with pytest.raises(AirflowFailException, match="needs a reason"):
        step.execute(_context())  # type: ignore[arg-type]


def test_nothing_after_the_gate_runs_when_it_fails() -> None:
    """register, deploy and smoke_test need the gate's success: a failed gate leaves the champion."""
    from mlops_airflow.builder import build_training_dag

    dag = build_training_dag(example_spec())
    gate = dag.get_task("gate")
    after = {t.task_id for t in gate.get_flat_relatives(upstream=False)}
    assert {"register", "deploy", "smoke_test"} <= after
    for task_id in after:
        assert dag.get_task(task_id).trigger_rule == "all_success", task_id
