"""The monitoring DAG of a pipeline with ``deployment.shadow``: the verdict task, where it runs."""

from __future__ import annotations

import pytest

from tests.helpers import example_spec

pytestmark = pytest.mark.dags

FEEDBACK = {"uri": "${MLOPS_LANDING}/labels.csv", "key_columns": ["record_id"]}


def test_the_verdict_follows_scoring_and_performance_on_the_release_queue_and_serializes() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    from mlops_airflow.builder import build_monitoring_dag, release_args

    spec = example_spec(deployment={"target": "local", "shadow": {}}, feedback=FEEDBACK)
    dag = DagSerialization.from_dict(DagSerialization.to_dict(build_monitoring_dag(spec)))
    verdict = dag.get_task("shadow_verdict")
    assert verdict.upstream_task_ids == {"score", "performance"} and not verdict.downstream_task_ids
    assert verdict.queue == release_args().get("queue", verdict.queue)
    assert verdict.task_type == "ShadowVerdictOperator"
    assert "challenger_verdict" not in dag.task_ids and "`shadow_verdict` promotes or rejects" in dag.doc_md


def test_without_labels_the_verdict_follows_scoring_and_without_shadow_there_is_none() -> None:
    from mlops_airflow.builder import build_monitoring_dag

    alone = build_monitoring_dag(example_spec(deployment={"target": "local", "shadow": {}}))
    assert alone.get_task("shadow_verdict").upstream_task_ids == {"score"}
    assert "shadow_verdict" not in build_monitoring_dag(example_spec(feedback=FEEDBACK)).task_ids
