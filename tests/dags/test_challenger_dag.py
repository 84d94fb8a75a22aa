"""The monitoring DAG of a pipeline with ``deployment.challenger``: the verdict task, where it runs."""

from __future__ import annotations

import pytest

from tests.helpers import example_spec

pytestmark = pytest.mark.dags

FEEDBACK = {"uri": "${MLOPS_LANDING}/labels.csv", "key_columns": ["record_id"]}


def test_the_verdict_follows_performance_on_the_release_queue_and_serializes() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    from mlops_airflow.builder import build_monitoring_dag, release_args

    spec = example_spec(deployment={"target": "local", "challenger": {}}, feedback=FEEDBACK)
    dag = DagSerialization.from_dict(DagSerialization.to_dict(build_monitoring_dag(spec)))
    verdict = dag.get_task("challenger_verdict")
    assert verdict.upstream_task_ids == {"performance"} and not verdict.downstream_task_ids
    assert verdict.queue == release_args().get("queue", verdict.queue)
    assert verdict.task_type == "ChallengerVerdictOperator"
    without = build_monitoring_dag(example_spec(feedback=FEEDBACK))
    assert "challenger_verdict" not in without.task_ids and "performance" in without.task_ids
