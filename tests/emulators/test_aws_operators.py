"""The operators' cloud paths on moto, through the ``aws_default`` connection (no test switches).

1. ``TrainOperator`` with ``cloud: aws`` starts a SageMaker training job named after pipeline + Airflow run +
   date + try, defers on the amazon provider's ``SageMakerTrigger``, and a second try-1 execute
   attaches instead of starting a duplicate. moto never runs a container, so the test runs the
   job's command line itself (``python -m mlops_core.model.remote <folder>``, as the image would), then
   the trigger (moto reports the job Completed) and ``remote_complete`` return the MLflow run.
2. ``DeployOperator`` creates the SageMaker endpoint and defers on ``EndpointTrigger``, whose run
   (the triggerer's code) reports it ready; ``SmokeTestOperator`` scores held-out rows through
   InvokeEndpoint. moto answers InvokeEndpoint with a canned body, so the ``sagemaker-runtime``
   service goes to :class:`~tests.emulators.sagemaker_runtime.SageMakerRuntime` instead, through
   the connection's ``service_config`` (how a deployment points one AWS service elsewhere): it
   serves the model the endpoint's config really names (moto's ``ModelDataUrl`` -> moto S3 ->
   MLflow's scoring code). Both outcomes run against a champion that existed before (as after a
   move from the local target: a registry alias, no endpoint yet):

   - the smoke test passes, SageMaker already serves the new config, ``champion`` moves to the new
     version and ``previous_champion`` to the old one;
   - the artifact behind the endpoint is not the evaluated model (replaced in S3 after packaging):
     the smoke test fails, the new endpoint is deleted and ``champion`` stays where it was.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from tests.emulators.sagemaker_runtime import SageMakerRuntime
from tests.emulators.steps import first_event, task_context
from tests.helpers import example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]
DS = "2026-01-31"
NAME = "sm_job"
ENDPOINT = "mlops-sm-job"
REGION = "eu-west-1"


def _boto(endpoint: str) -> Any:
    import boto3

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return client


@pytest.fixture(scope="module")
def aws_env(
    moto_endpoint: str, mlflow_server: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """The aws profile's variables, and ``aws_default`` with the runtime stand-in as its
    ``sagemaker-runtime`` endpoint (every other service stays on moto)."""
    client = _boto(moto_endpoint)
    role = f"mlops-sagemaker-{uuid.uuid4().hex[:6]}"
    arn = client("iam").create_role(RoleName=role, AssumeRolePolicyDocument="{}")["Role"]["Arn"]
    root = f"s3://mlops-lake/{uuid.uuid4().hex[:8]}"
    with SageMakerRuntime(client) as runtime, pytest.MonkeyPatch.context() as mp:
        conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {
                "endpoint_url": moto_endpoint,
                "region_name": REGION,
                "service_config": {"sagemaker-runtime": {"endpoint_url": runtime.url}},
            },
        }
        for key, value in {
            "AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn),
            "MLOPS_LOCAL_DIR": str(tmp_path_factory.mktemp("aws-operators")),
            "MLOPS_AWS_LAKE": f"{root}/lake",
            "MLOPS_AWS_LANDING": f"{root}/landing",
            "MLOPS_AWS_MONITORING_EXPORT": "none",
            "MLOPS_SAGEMAKER_ROLE_ARN": arn,
            "MLOPS_TRAINING_IMAGE": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/airflow-mlops:test",
            "MLOPS_SAGEMAKER_SERVING_IMAGE": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/mlflow-pyfunc:3",
            "MLFLOW_TRACKING_URI": mlflow_server,
        }.items():
            mp.setenv(key, value)
        yield {"endpoint": moto_endpoint, "client": client, "root": root, "runtime": runtime}


def _context(try_number: int = 1, run_id: str = "manual__1") -> dict[str, Any]:
    return task_context("sm_training", run_id, try_number)


@pytest.fixture(scope="module")
def remote_training(aws_env: dict[str, Any]) -> SimpleNamespace:
    """The SageMaker training path, as the worker and the triggerer run it; what it saw on the way."""
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_airflow.operators.model import TrainOperator
    from mlops_core import lifecycle
    from mlops_dev import datasets

    spec = example_spec(name=NAME, cloud="aws")
    with cloud_context(spec) as profile:
        datasets.materialize("breast_cancer", profile.landing, filename="breast_cancer.csv")
        raw = lifecycle.ingest(spec, DS, profile.lake)

    train = TrainOperator(task_id="train", pipeline=spec, data=raw, partition_date=DS, poll_seconds=1)
    with pytest.raises(TaskDeferred) as deferred:
        train.execute(_context())
    with pytest.raises(TaskDeferred) as again:  # the same try again: attaches to its job
        train.execute(_context())
    folder = deferred.value.kwargs["folder"]
    sm = aws_env["client"]("sagemaker")
    listed = [j["TrainingJobName"] for j in sm.list_training_jobs()["TrainingJobSummaries"]]

    # what the training image runs, with the credentials a job's role would give it
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": aws_env["endpoint"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PYTHONPATH": str(REPO / "include"),
    }
    out = subprocess.run(
        [sys.executable, "-m", "mlops_core.model.remote", folder],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    event = asyncio.run(first_event(deferred.value.trigger))
    assert event.payload["status"] == "success", event.payload
    trained = train.remote_complete(_context(), event=event.payload, folder=folder)
    return SimpleNamespace(
        spec=spec,
        raw=raw,
        trigger=deferred.value.trigger,
        retry_trigger=again.value.trigger,
        retry_folder=again.value.kwargs["folder"],
        folder=folder,
        listed_jobs=listed,
        trained=trained,
    )


@pytest.fixture(scope="module")
def candidate(remote_training: SimpleNamespace, aws_env: dict[str, Any]) -> SimpleNamespace:
    """A champion from before (v1: a one-feature model, registered and promoted through the
    package) and the SageMaker-trained challenger evaluated and gated against it."""
    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_core import lifecycle
    from mlops_core.model import training
    from mlops_core.runs import registry

    spec = remote_training.spec
    old_spec = example_spec(name=NAME, cloud="aws", features={"include": ["mean_smoothness"]})
    with cloud_context(old_spec) as profile:
        old_lake = f"{aws_env['root']}/earlier-lake"  # its holdout and predictions stay apart
        old = training.train(old_spec, remote_training.raw["uri"], old_lake, DS, {}).to_dict()
        old_eval = lifecycle.evaluate(old_spec, old, old_lake, DS)
        forced = lifecycle.gate(
            old_spec,
            old_eval,
            old["run_id"],
            force=True,
            forced_by="tester",
            force_reason="champion before aws",
        ).to_dict()
        before = lifecycle.register(old_spec, old, forced, "sm_training/earlier", {})["version"]
        registry.promote(spec.registered_model_name, before)
        evaluated = lifecycle.evaluate(spec, remote_training.trained, profile.lake, DS)
        decision = lifecycle.gate(spec, evaluated, remote_training.trained["run_id"]).to_dict()
    assert decision["outcome"] == "promote", decision["reasons"]
    assert evaluated["champion_version"] == before
    return SimpleNamespace(spec=spec, before=before, evaluated=evaluated, decision=decision)


@pytest.fixture
def champion_before(candidate: SimpleNamespace, aws_env: dict[str, Any]) -> str:
    """Each test starts from the champion of before and no endpoint (another test may have moved both)."""
    from mlops_core.runs import registry

    sm = aws_env["client"]("sagemaker")
    if ENDPOINT in [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]]:
        sm.delete_endpoint(EndpointName=ENDPOINT)
    name = candidate.spec.registered_model_name
    registry.client().set_registered_model_alias(name, registry.CHAMPION, candidate.before)
    if registry.alias_version(name, registry.PREVIOUS) is not None:
        registry.client().delete_registered_model_alias(name, registry.PREVIOUS)
    return candidate.before


def _deploy(
    remote_training: SimpleNamespace, candidate: SimpleNamespace, run_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Register the challenger for Airflow run ``run_id`` and deploy it through the operator + trigger."""
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_airflow.operators.deploy import DeployOperator
    from mlops_airflow.triggers.cloud import EndpointTrigger
    from mlops_core import lifecycle

    spec = candidate.spec
    with cloud_context(spec):
        registered = lifecycle.register(
            spec, remote_training.trained, candidate.decision, f"sm_training/{run_id}", {}
        )
    deploy = DeployOperator(
        task_id="deploy", pipeline=spec, registered=registered, decision=candidate.decision, poll_seconds=1
    )
    with pytest.raises(TaskDeferred) as deferred:
        deploy.execute(_context(run_id=run_id))
    trigger = deferred.value.trigger
    assert isinstance(trigger, EndpointTrigger)
    event = asyncio.run(first_event(trigger))  # the triggerer's code, polling DescribeEndpoint
    assert event.payload["status"] == "success", event.payload
    return registered, deploy.deploy_complete(_context(run_id=run_id), event=event.payload)


def _smoke(remote_training: SimpleNamespace, candidate: SimpleNamespace, deployment: dict[str, Any]) -> Any:
    from mlops_airflow.operators.deploy import SmokeTestOperator

    return SmokeTestOperator(
        task_id="smoke_test",
        pipeline=candidate.spec,
        deployment=deployment,
        trained=remote_training.trained,
        evaluation=candidate.evaluated,
    )


def _offline(candidate: SimpleNamespace, rows: int) -> list[str]:
    """The evaluation's predictions for the first smoke rows, read from the lake."""
    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_core.data import storage

    with cloud_context(candidate.spec):
        frame = storage.read_frame(candidate.evaluated["predictions_uri"], name="predictions")
    return [str(p) for p in frame["prediction"].head(rows)]


def test_training_job_is_named_per_run_date_and_try_and_a_second_execute_attaches(
    remote_training: SimpleNamespace, aws_env: dict[str, Any]
) -> None:
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger

    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_core.model import remote
    from mlops_core.runs import registry, tracking

    with cloud_context(remote_training.spec) as profile:
        assert (profile.training_backend, profile.deploy_target) == ("sagemaker", "sagemaker")
    job = remote.job_name(NAME, DS, 1, "sm_training/manual__1")  # unique per Airflow run
    assert isinstance(remote_training.trigger, SageMakerTrigger) and remote_training.trigger.job_name == job
    assert (
        remote_training.retry_trigger.job_name == job
        and remote_training.retry_folder == remote_training.folder
    )
    assert remote_training.listed_jobs.count(job) == 1
    described = aws_env["client"]("sagemaker").describe_training_job(TrainingJobName=job)
    assert described["TrainingJobStatus"] == "Completed"
    assert described["AlgorithmSpecification"]["TrainingImage"].endswith("airflow-mlops:test")
    assert described["RoleArn"] == os.environ["MLOPS_SAGEMAKER_ROLE_ARN"]
    tracking.configure()
    tags = registry.client().get_run(remote_training.trained["run_id"]).data.tags
    assert (tags["mlops.training_backend"], tags["mlops.training_backend_job"]) == ("sagemaker", job)
    assert (tags["airflow.dag_id"], tags["airflow.run_id"], tags["mlops.ds"]) == (
        "sm_training",
        "manual__1",
        DS,
    )


def test_smoke_test_through_invoke_endpoint_passes_and_promotes(
    remote_training: SimpleNamespace,
    candidate: SimpleNamespace,
    champion_before: str,
    aws_env: dict[str, Any],
) -> None:
    from mlops_core.runs import registry

    runtime: SageMakerRuntime = aws_env["runtime"]
    served_before = len(runtime.served)
    registered, deployment = _deploy(remote_training, candidate, "manual__pass")
    version, name = registered["version"], candidate.spec.registered_model_name
    assert deployment["previous_version"] == champion_before
    assert deployment["extra"]["previous_endpoint_config"] is None  # no endpoint before this deploy

    result = _smoke(remote_training, candidate, deployment).execute(_context(run_id="manual__pass"))

    rows = candidate.spec.deployment.smoke_rows
    assert (result["passed"], result["rows"], result["mismatches"]) == (True, rows, 0), result["detail"]
    assert result["deployment"]["state"] == "ready" and result["deployment"]["version"] == version
    # the answers came from the model the endpoint's config names, and are its predictions
    (served,) = runtime.served[served_before:]
    assert (served["endpoint"], served["model_data"], served["rows"]) == (
        ENDPOINT,
        deployment["extra"]["model_data"],
        rows,
    )
    assert [str(p) for p in served["answer"]["predictions"]] == _offline(candidate, rows)
    assert runtime.violations == []
    # SageMaker moved the traffic itself; promote checked the endpoint kept the new config
    endpoint = aws_env["client"]("sagemaker").describe_endpoint(EndpointName=ENDPOINT)
    assert endpoint["EndpointStatus"] == "InService"
    assert endpoint["EndpointConfigName"] == deployment["extra"]["endpoint_config"]
    assert registry.alias_version(name, registry.CHAMPION) == version != champion_before
    assert registry.alias_version(name, registry.PREVIOUS) == champion_before
    tags = registry.client().get_model_version(name, version).tags
    assert (tags["mlops.smoke_test"], tags["mlops.promoted"], tags["mlops.deployed_to"]) == (
        "passed",
        "true",
        ENDPOINT,
    )
    assert "mlops.rolled_back" not in tags


def test_smoke_test_of_an_endpoint_serving_another_artifact_rolls_back_to_the_champion(
    remote_training: SimpleNamespace,
    candidate: SimpleNamespace,
    champion_before: str,
    aws_env: dict[str, Any],
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_core.deploy import package_model
    from mlops_core.runs import registry

    runtime: SageMakerRuntime = aws_env["runtime"]
    served_before = len(runtime.served)
    registered, deployment = _deploy(remote_training, candidate, "manual__fail")
    version, name = registered["version"], candidate.spec.registered_model_name
    # the object behind the endpoint's ModelDataUrl is replaced (here: by the old champion's copy)
    s3 = aws_env["client"]("s3")
    with cloud_context(candidate.spec) as profile:
        other = package_model(candidate.spec, champion_before, profile.lake)
    bucket, _, key = deployment["extra"]["model_data"].removeprefix("s3://").partition("/")
    s3.copy_object(Bucket=bucket, Key=key, CopySource={"Bucket": bucket, "Key": other.split("/", 3)[3]})

    with pytest.raises(AirflowFailException, match=rf"rows differ .* rolled back to v{champion_before}$"):
        _smoke(remote_training, candidate, deployment).execute(_context(run_id="manual__fail"))

    (served,) = runtime.served[served_before:]
    assert served["model_data"] == deployment["extra"]["model_data"]
    assert [str(p) for p in served["answer"]["predictions"]] != _offline(candidate, served["rows"])
    assert runtime.violations == []
    names = [e["EndpointName"] for e in aws_env["client"]("sagemaker").list_endpoints()["Endpoints"]]
    assert ENDPOINT not in names  # the endpoint this deploy created is gone
    assert registry.alias_version(name, registry.CHAMPION) == champion_before
    assert registry.alias_version(name, registry.PREVIOUS) is None
    tags = registry.client().get_model_version(name, version).tags
    assert tags["mlops.rolled_back"] == "true"
    assert "mlops.promoted" not in tags and "mlops.smoke_test" not in tags


def test_a_platform_search_runs_as_a_sagemaker_tuning_job_and_its_best_trial_trains(
    aws_env: dict[str, Any], tmp_path: Path
) -> None:
    """``model.search.tuner: platform``: the ``search`` task creates the tuning job on moto through
    the provider's hook, the trials run as SageMaker would start them (the image's entry point with
    ``train``, the values in ``hyperparameters.json``), reading and writing the lake on moto S3; the
    provider's trigger polls moto, and the best trial's params train the challenger."""
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_airflow.operators.search import SearchOperator
    from mlops_core import lifecycle
    from mlops_core.model import training, tuning
    from mlops_dev import datasets

    space = {"n_estimators": {"low": 5, "high": 60}, "max_depth": {"choices": [2, 8]}}
    search = {"params": space, "tuner": "platform", "trials": 2, "cv_folds": 2}
    spec = example_spec(
        name="sm_search",
        cloud="aws",
        model={"family": "random_forest", "params": {"n_jobs": 1}, "search": search},
    )
    with cloud_context(spec) as profile:
        datasets.materialize("breast_cancer", profile.landing, filename="breast_cancer.csv")
        raw = lifecycle.ingest(spec, DS, profile.lake)
    op = SearchOperator(task_id="search", pipeline=spec, data=raw, partition_date=DS, poll_seconds=1)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(task_context("sm_search_training"))
    trigger, kwargs = deferred.value.trigger, deferred.value.kwargs
    assert isinstance(trigger, SageMakerTrigger) and trigger.job_type == "tuning"
    described = aws_env["client"]("sagemaker").describe_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=kwargs["job"]
    )
    config = described["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize", "MetricName": "cv_score"}
    assert config["ParameterRanges"]["IntegerParameterRanges"][0]["Name"] == "n_estimators"
    env = {
        **os.environ,
        "AWS_ENDPOINT_URL": aws_env["endpoint"],
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "MLOPS_JOB_FOLDER": kwargs["folder"],
        "SM_INPUT_CONFIG_DIR": str(tmp_path),
    }
    for trial, values in (
        ("t-001", {"n_estimators": "5", "max_depth": "2"}),
        ("t-002", {"n_estimators": "60", "max_depth": "8"}),
    ):
        (tmp_path / "hyperparameters.json").write_text(
            json.dumps({**values, "_tuning_objective_metric": "cv_score"})
        )
        out = subprocess.run(
            ["bash", str(REPO / "include" / "compose" / "entrypoint.sh"), "train"],
            env={**env, "TRAINING_JOB_NAME": trial},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert out.returncode == 0, out.stderr[-3000:]
        assert tuning.METRIC_LINE in out.stdout
    event = asyncio.run(first_event(trigger))  # moto reports the tuning job Completed
    assert event.payload["status"] == "success", event.payload
    found = op.search_complete(task_context("sm_search_training"), event=event.payload, **kwargs)
    assert sorted(t["trial"] for t in found["trials"]) == ["t-001", "t-002"]
    assert found["best_trial"] == max(found["trials"], key=lambda t: t["value"])["trial"]
    with cloud_context(spec) as profile:
        trained = training.train(spec, raw["uri"], profile.lake, DS, {}, searched=found)
    assert trained.n_train > 0
