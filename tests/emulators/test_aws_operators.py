"""The operators' cloud paths on moto, through the ``aws_default`` connection (no test switches).

1. ``TrainOperator`` with ``cloud: aws`` starts a SageMaker training job named after pipeline + Airflow run +
   date + try, defers on the amazon provider's ``SageMakerTrigger``, and a second try-1 execute
   attaches instead of starting a duplicate. moto never runs a container, so the test runs the
   job's command line itself (``python -m mlops_core.remote <folder>``, as the image would), then
   the trigger (moto reports the job Completed) and ``remote_complete`` return the MLflow run.
2. ``DeployOperator`` creates the SageMaker endpoint and defers on ``EndpointTrigger``, whose run
   (the triggerer's code) reports it ready. moto's endpoint answers with a canned body, not the
   model's predictions, so ``SmokeTestOperator`` must fail, roll back (the endpoint of a first
   deploy is deleted) and leave no champion: the rollback path, end to end.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.helpers import example_spec

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]
DS = "2026-01-31"


@pytest.fixture
def aws_env(
    moto_endpoint: str, mlflow_server: str, monkeypatch: pytest.MonkeyPatch, local_dir
) -> dict[str, Any]:
    import boto3

    iam = boto3.client(
        "iam",
        endpoint_url=moto_endpoint,
        region_name="eu-west-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    role = f"mlops-sagemaker-{uuid.uuid4().hex[:6]}"
    arn = iam.create_role(RoleName=role, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    root = f"s3://mlops-lake/{uuid.uuid4().hex[:8]}"
    for key, value in {
        "MLOPS_AWS_LAKE": f"{root}/lake",
        "MLOPS_AWS_LANDING": f"{root}/landing",
        "MLOPS_AWS_MONITORING_EXPORT": "none",
        "MLOPS_SAGEMAKER_ROLE_ARN": arn,
        "MLOPS_TRAINING_IMAGE": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow-mlops:test",
        "MLOPS_SAGEMAKER_SERVING_IMAGE": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlflow-pyfunc:3",
        "MLFLOW_TRACKING_URI": mlflow_server,
    }.items():
        monkeypatch.setenv(key, value)

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=moto_endpoint,
            region_name="eu-west-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return {"endpoint": moto_endpoint, "client": client, "root": root}


def _context(try_number: int = 1) -> dict[str, Any]:
    run_after = datetime(2026, 1, 31, tzinfo=UTC)
    return {
        "ti": SimpleNamespace(dag_id="sm_training", run_id="manual__1", try_number=try_number),
        "dag_run": SimpleNamespace(run_type="manual", triggering_user_name="tester", run_after=run_after),
        "logical_date": run_after,
        "triggering_asset_events": {},
    }


async def _first_event(trigger: Any) -> Any:
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger ended without an event")


def test_sagemaker_training_job_deploy_and_rollback_through_the_operators(aws_env):
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    from mlops_airflow.cloud import cloud_context
    from mlops_airflow.operators import DeployOperator, SmokeTestOperator, TrainOperator
    from mlops_airflow.triggers import EndpointTrigger
    from mlops_core import datasets, lifecycle, registry, remote, tracking

    spec = example_spec(name="sm_job", cloud="aws")
    job = remote.job_name("sm_job", DS, 1, "sm_training/manual__1")  # unique per Airflow run
    with cloud_context(spec) as profile:
        assert profile.training_backend == "sagemaker" and profile.deploy_target == "sagemaker"
        datasets.materialize("breast_cancer", profile.landing, filename="breast_cancer.csv")
        raw = lifecycle.ingest(spec, DS, profile.lake)

    train = TrainOperator(task_id="train", pipeline=spec, data=raw, partition_date=DS, poll_seconds=1)
    with pytest.raises(TaskDeferred) as deferred:
        train.execute(_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, SageMakerTrigger) and trigger.job_name == job
    folder = deferred.value.kwargs["folder"]
    with pytest.raises(TaskDeferred):  # the same try again: attaches to its job
        train.execute(_context())
    sm = aws_env["client"]("sagemaker")
    jobs = [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]]
    assert jobs.count(job) == 1
    described = sm.describe_training_job(TrainingJobName=job)
    assert described["AlgorithmSpecification"]["TrainingImage"].endswith("airflow-mlops:test")
    assert described["RoleArn"] == os.environ["MLOPS_SAGEMAKER_ROLE_ARN"]

    # what the training image runs, with the credentials a job's role would give it
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": aws_env["endpoint"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PYTHONPATH": str(REPO / "include"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "mlops_core.remote", folder],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]

    event = asyncio.run(_first_event(trigger))
    assert event.payload["status"] == "success", event.payload
    trained = train.remote_complete(_context(), event=event.payload, folder=folder)
    tracking.configure()
    tags = registry.client().get_run(trained["run_id"]).data.tags
    assert tags["mlops.training_backend"] == "sagemaker" and tags["airflow.dag_id"] == "sm_training"
    assert tags["mlops.training_backend_job"] == job

    with cloud_context(spec) as profile:
        evaluated = lifecycle.evaluate(spec, trained, profile.lake, DS)
        decision = lifecycle.gate(spec, evaluated, trained["run_id"]).to_dict()
        registered = lifecycle.register(spec, trained, decision, "sm_training/manual__1", {})
    assert decision["promote"]

    deploy = DeployOperator(
        task_id="deploy", pipeline=spec, registered=registered, decision=decision, poll_seconds=1
    )
    with pytest.raises(TaskDeferred) as deferred:
        deploy.execute(_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, EndpointTrigger)
    event = asyncio.run(_first_event(trigger))  # the triggerer's code, polling DescribeEndpoint
    assert event.payload["status"] == "success", event.payload
    deployment = deploy.deploy_complete(_context(), event=event.payload)
    assert sm.describe_endpoint(EndpointName="mlops-sm-job")["EndpointStatus"] == "InService"

    smoke = SmokeTestOperator(
        task_id="smoke_test", pipeline=spec, deployment=deployment, trained=trained, evaluation=evaluated
    )
    with pytest.raises(AirflowFailException, match="rolled back"):
        smoke.execute(_context())
    names = [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]
    assert "mlops-sm-job" not in names  # a failed first deploy leaves no endpoint
    assert registry.alias_version(spec.name, registry.CHAMPION) is None
    assert (
        registry.client().get_model_version(spec.name, registered["version"]).tags["mlops.rolled_back"]
        == "true"
    )
