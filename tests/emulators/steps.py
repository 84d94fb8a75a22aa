"""What the operator-level cloud tests share: a task's context, the triggerer's first event, the
ingest and the training step as the worker runs them (``TrainOperator.execute`` deferring)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

DS = "2026-01-31"


def task_context(dag_id: str, run_id: str = "manual__1", try_number: int = 1) -> dict[str, Any]:
    """The context a manual run's task gets (what the operators read of it)."""
    run_after = datetime(2026, 1, 31, tzinfo=UTC)
    return {
        "ti": SimpleNamespace(dag_id=dag_id, run_id=run_id, try_number=try_number),
        "dag_run": SimpleNamespace(run_type="manual", triggering_user_name="tester", run_after=run_after),
        "logical_date": run_after,
        "triggering_asset_events": {},
    }


async def first_event(trigger: Any) -> Any:
    """The triggerer's code: the first event the trigger's ``run()`` yields."""
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger ended without an event")


def ingest_on_the_cloud(spec: Any, backend: str) -> dict[str, Any]:
    """The example landed and ingested inside the spec's cloud profile (whose backends are ``backend``)."""
    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_core import lifecycle
    from mlops_dev import datasets

    with cloud_context(spec) as profile:
        assert profile.training_backend == backend and profile.deploy_target == backend
        datasets.materialize("breast_cancer", profile.landing, filename="breast_cancer.csv")
        return lifecycle.ingest(spec, DS, profile.lake)


def start_training(
    spec: Any, raw: dict[str, Any], context: dict[str, Any], trigger_type: type
) -> tuple[Any, Any, str]:
    """``TrainOperator.execute``: it defers on ``trigger_type``; (operator, trigger, job folder)."""
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.operators.model import TrainOperator

    train = TrainOperator(task_id="train", pipeline=spec, data=raw, partition_date=DS, poll_seconds=0.2)
    with pytest.raises(TaskDeferred) as deferred:
        train.execute(context)
    assert isinstance(deferred.value.trigger, trigger_type)
    assert deferred.value.method_name == "remote_complete"
    return train, deferred.value.trigger, deferred.value.kwargs["folder"]
