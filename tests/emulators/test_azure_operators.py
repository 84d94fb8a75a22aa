"""The operators' Azure ML path over HTTPS, through the ``azure_ml_default`` connection.

The lake is on Azurite, MLflow is the tier's server, and Azure ML (ARM, the Microsoft Entra
token endpoint, scoring, Azure Monitor custom metrics) is
:class:`~tests.emulators.azureml_api.AzureMLAPI` on 127.0.0.1: stateful, refusing every request
the published REST models (or, where none exists, the documented schema) would refuse. The
shipped ``azure`` profile reaches it through the connection ``AIRFLOW_CONN_AZURE_ML_DEFAULT``
alone: ``api_endpoint`` (the ARM root), ``authority`` and ``disable_instance_discovery`` (the
token endpoint), the options a sovereign or private cloud needs; the service principal gets a
real client-credentials token from azure-identity. Nothing in the product knows it is tested.

1. ``TrainOperator`` (backend ``azureml``) submits one command job (a second execute of the same
   try attaches) and defers on ``AzureMLJobTrigger``. The job's command, taken from the job the
   package PUT, runs as the image would while the trigger polls Queued, Running, Completed;
   ``remote_complete`` returns the MLflow run the job logged.
2. v1 (first deploy, canary): ``DeployOperator`` registers the model, creates the endpoint (the
   deployment PUT meets a busy endpoint and is retried by the trigger) and defers on
   ``EndpointTrigger``; the smoke test is scored by the MLflow model the deployment loaded from
   the lake, passes, bakes (``TimeDeltaTrigger``) and ``promote_after_bake`` makes v1 champion.
3. v2 (canary 10 %): the smoke test reaches green-v2 by the ``azureml-model-deployment``
   header, passes; promotion moves all traffic, deletes green-v1 and moves ``champion``.
4. v3: its container answers wrong predictions, so the smoke test fails and rolls back: traffic
   back to green-v2, green-v3 deleted, ``champion`` still v2.
5. v4: its container never starts; the trigger reports the failure ARM gives on the operation,
   ``deploy_complete`` rolls back.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from mlops_core.clouds.azure.client import API_VERSION
from tests.emulators.azureml_api import MONITOR_SCOPE, AzureMLAPI, blob_reader
from tests.emulators.conftest import AZURITE_ACCOUNT
from tests.emulators.steps import first_event, ingest_on_the_cloud, start_training, task_context
from tests.helpers import async_wait_until, example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]
DS = "2026-01-31"


@pytest.fixture(scope="module")
def api(azurite_connection_string: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AzureMLAPI]:
    """One Azure ML workspace for the module; its "containers" read the lake on Azurite."""
    server = AzureMLAPI(
        tls_dir=tmp_path_factory.mktemp("azureml-tls"),
        read_blob_folder=blob_reader(azurite_connection_string),
        # what the training image provides: this package, and (instead of the job's managed
        # identity on Azure) the storage account's connection string
        container_env={
            "PYTHONPATH": str(REPO / "include"),
            "AZURE_STORAGE_CONNECTION_STRING": azurite_connection_string,
        },
    )
    with server:
        yield server


@pytest.fixture
def azure_env(
    api: AzureMLAPI, mlflow_server: str, monkeypatch: pytest.MonkeyPatch, local_dir: Path
) -> Iterator[str]:
    """The shipped ``azure`` profile in a fresh folder of the Azurite container; Azure ML through the connection."""
    from mlops_core.clouds.azure.deploy import AzureMLTarget

    root = f"abfs://mlops-lake/{uuid.uuid4().hex[:8]}"
    connection = {
        "conn_type": "azure_ml",
        "login": api.client_id,
        "password": api.client_secret,
        # no subscription/resource group/workspace here: the profile names the workspace, and
        # every step (the trigger too) must use the profile's
        "extra": {
            "tenant_id": api.tenant_id,
            "api_endpoint": api.url,
            "authority": api.url,
            "disable_instance_discovery": True,
        },
    }
    for key, value in {
        "AIRFLOW_CONN_AZURE_ML_DEFAULT": json.dumps(connection),
        "REQUESTS_CA_BUNDLE": str(api.ca_file),  # the emulator's CA, as a company's own CA is trusted
        "MLOPS_AZURE_LAKE": f"{root}/lake",
        "MLOPS_AZURE_LANDING": f"{root}/landing",
        "MLOPS_AZURE_MONITORING_EXPORT": "none",  # exported explicitly below (no endpoint setting in the file)
        "MLOPS_AZURE_SUBSCRIPTION_ID": api.subscription_id,
        "MLOPS_AZURE_RESOURCE_GROUP": api.resource_group,
        "MLOPS_AZUREML_WORKSPACE": api.workspace,
        "MLOPS_AZURE_LOCATION": api.location,
        "MLOPS_AZUREML_COMPUTE": "cpu-cluster",
        "MLOPS_AZUREML_ENVIRONMENT": "mlops-train:3",
        "MLOPS_AZUREML_INSTANCE": "Standard_DS3_v2",
        "MLOPS_AZURE_STORAGE_ACCOUNT": AZURITE_ACCOUNT,
        "MLOPS_AZURE_METRICS_RESOURCE_ID": api.workspace_id,
        "MLFLOW_TRACKING_URI": mlflow_server,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("MLOPS_AZURE_API_ENDPOINT", raising=False)
    monkeypatch.setattr(AzureMLTarget, "poll_seconds", 0.05)  # promote/rollback wait for the traffic update
    api.violations.clear()
    yield root
    assert api.violations == []


def _context(run_id: str = "manual__1", try_number: int = 1) -> dict[str, Any]:
    return task_context("az_training", run_id, try_number)


def _ingest(spec: Any) -> dict[str, Any]:
    return ingest_on_the_cloud(spec, "azureml")


def _start_training(spec: Any, raw: dict[str, Any], run_id: str) -> tuple[Any, Any, str]:
    from mlops_airflow.triggers.azureml import AzureMLJobTrigger

    return start_training(spec, raw, _context(run_id), AzureMLJobTrigger)


def _train_while_the_trigger_waits(api: AzureMLAPI, trigger: Any, fail: bool = False) -> Any:
    """The triggerer's loop runs while the job's command runs (or the job fails on demand)."""

    async def both() -> Any:
        waiting = asyncio.create_task(first_event(trigger))
        # The trigger sees the job queued first: its first read is answered before the job runs.
        await async_wait_until(
            lambda: (trigger.job_name, "Queued") in api.job_states_served,
            60,
            "the trigger read the job queued",
        )
        container = api.start_container(trigger.job_name, fail=fail)
        event = await asyncio.wait_for(waiting, 300)
        await asyncio.to_thread(container.join, 60)
        return event

    return asyncio.run(both())


def _deploy(spec: Any, registered: dict[str, Any], decision: dict[str, Any]) -> Any:
    """``DeployOperator``: defers on ``EndpointTrigger``; its ``run()`` (the triggerer's code) gives the event."""
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.operators.deploy import DeployOperator
    from mlops_airflow.triggers.cloud import EndpointTrigger

    deploy = DeployOperator(
        task_id="deploy", pipeline=spec, registered=registered, decision=decision, poll_seconds=0.2
    )
    with pytest.raises(TaskDeferred) as deferred:
        deploy.execute(_context())
    trigger = deferred.value.trigger
    assert isinstance(trigger, EndpointTrigger) and deferred.value.method_name == "deploy_complete"
    return deploy, asyncio.run(first_event(trigger))


def _deployed(spec: Any, registered: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    deploy, event = _deploy(spec, registered, decision)
    assert event.payload["status"] == "success", event.payload
    return dict(deploy.deploy_complete(_context(), event=event.payload))


def _smoke_passes_and_promotes(spec: Any, deployment: dict[str, Any], trained: Any, evaluated: Any) -> Any:
    """The smoke test passes, the canary bakes (deferred), ``promote_after_bake`` promotes."""
    from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger
    from airflow.sdk.exceptions import TaskDeferred

    from mlops_airflow.operators.deploy import SmokeTestOperator

    smoke = SmokeTestOperator(
        task_id="smoke_test", pipeline=spec, deployment=deployment, trained=trained, evaluation=evaluated
    )
    with pytest.raises(TaskDeferred) as baked:
        smoke.execute(_context())
    bake = baked.value.trigger
    assert isinstance(bake, TimeDeltaTrigger) and baked.value.method_name == "promote_after_bake"
    wait = bake.moment - datetime.now(UTC)
    assert timedelta(minutes=9) < wait <= timedelta(minutes=10)  # canary_wait_minutes
    assert baked.value.kwargs["smoke"]["passed"] is True
    return smoke.promote_after_bake(_context(), event=None, **baked.value.kwargs)


def _retrain(spec: Any, raw: dict[str, Any], run: str) -> tuple[Any, Any, Any, Any]:
    """Another challenger (trained in the worker: the Azure ML path under test here is the deploy),
    evaluated against the champion; the gate is overridden (recorded, with a reason), since a
    retrain on the same rows cannot beat the champion by a margin."""
    from mlops_airflow.hooks.cloud import cloud_context
    from mlops_core import lifecycle
    from mlops_core.model import training

    with cloud_context(spec) as profile:
        trained = training.train(spec, raw["uri"], profile.lake, DS, {"airflow.run_id": run}).to_dict()
        evaluated = lifecycle.evaluate(spec, trained, profile.lake, DS)
        decision = lifecycle.gate(
            spec, evaluated, trained["run_id"], force=True, forced_by="tester", force_reason="exercise canary"
        ).to_dict()
        registered = lifecycle.register(spec, trained, decision, f"az_training/{run}", {})
    assert decision["promote"] and evaluated["champion_version"] is not None
    return trained, evaluated, decision, registered


def test_azureml_training_deploy_promote_and_rollback_through_the_operators(
    api: AzureMLAPI, azure_env: str, mlflow_server: str
) -> None:
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    from mlops_airflow.hooks.cloud import cloud_context, export_metrics
    from mlops_airflow.operators.deploy import SmokeTestOperator
    from mlops_core import lifecycle
    from mlops_core.model import remote
    from mlops_core.runs import registry, tracking

    spec = example_spec(
        name="az_job",
        cloud="azure",
        deployment={"strategy": "canary", "canary_percent": 10, "canary_wait_minutes": 10, "smoke_rows": 30},
    )
    raw = _ingest(spec)
    job = remote.job_name("az_job", DS, 1, "az_training/manual__1")
    ws = api.workspace_id

    # 1. training: one command job, attached to on a second execute, run while the trigger polls
    train, trigger, folder = _start_training(spec, raw, "manual__1")
    with pytest.raises(TaskDeferred) as again:
        train.execute(_context())
    assert again.value.trigger.job_name == trigger.job_name == job
    assert len(api.requests("PUT", f"/jobs/{job}")) == 1  # the second execute attached
    props = api.job(job)["properties"]
    assert props["jobType"] == "Command" and props["experimentName"] == "az_job"
    assert props["command"] == f"python -m mlops_core.model.remote {folder}"
    assert props["environmentId"] == f"{ws}/environments/mlops-train/versions/3"
    assert props["computeId"] == f"{ws}/computes/cpu-cluster"
    assert props["environmentVariables"] == {
        "MLFLOW_TRACKING_URI": mlflow_server,
        "MLOPS_LAKE": f"{azure_env}/lake",
    }
    assert props["limits"] == {
        "jobLimitsType": "Command",
        "timeout": "PT2H",
    }  # training.timeout_minutes (120)
    assert "outputs" not in props  # the job writes its result into the job folder

    event = _train_while_the_trigger_waits(api, trigger)
    run = api.container_runs[job]
    assert run.returncode == 0, run.stderr[-3000:]
    assert event.payload == {"status": "success", "job_name": job, "message": f"Azure ML job {job} completed"}
    states = [s for name, s in api.job_states_served if name == job]
    assert states[0] == "Queued" and "Running" in states and states[-1] == "Completed", states
    trained = train.remote_complete(_context(), event=event.payload, folder=folder)
    tracking.configure()
    tags = registry.client().get_run(trained["run_id"]).data.tags
    assert tags["mlops.training_backend"] == "azureml" and tags["mlops.training_backend_job"] == job
    assert tags["airflow.dag_id"] == "az_training"

    with cloud_context(spec) as profile:
        evaluated = lifecycle.evaluate(spec, trained, profile.lake, DS)
        decision = lifecycle.gate(spec, evaluated, trained["run_id"]).to_dict()
        registered = lifecycle.register(spec, trained, decision, "az_training/manual__1", {})
        # Azure Monitor custom metrics through the same connection (its token is for Azure Monitor)
        monitored = replace(
            profile,
            monitoring_export="azure_monitor",
            settings={**profile.settings, "metrics_endpoint": api.url},
        )
        export_metrics(
            monitored,
            spec.name,
            {"holdout_roc_auc": evaluated["challenger"]["roc_auc"]},
            {"Stage": "evaluation"},
        )
    assert decision["promote"], decision
    (metric,) = api.metrics
    assert metric["data"]["baseData"] == {
        "metric": "holdout_roc_auc",
        "namespace": "MLOps",
        "dimNames": ["pipeline", "Stage"],
        "series": [
            {
                "dimValues": ["az_job", "evaluation"],
                **dict.fromkeys(("min", "max", "sum"), evaluated["challenger"]["roc_auc"]),
                "count": 1,
            }
        ],
    }
    assert MONITOR_SCOPE in api.tokens.values() and api.arm_scope in api.tokens.values()

    # 2. v1, a first deploy: model version, endpoint, green-v1 with all traffic; scored by the loaded model
    v1 = registered["version"]
    deployment = _deployed(spec, registered, decision)
    assert deployment["state"] == "ready" and deployment["previous_version"] is None
    endpoint = deployment["endpoint"]
    assert endpoint == "mlops-az-job"
    model = api.models[("az_job", v1)]["properties"]
    blob = f"https://{AZURITE_ACCOUNT}.blob.core.windows.net/{azure_env.removeprefix('abfs://')}"
    assert (
        model["modelType"] == "mlflow_model" and model["modelUri"] == f"{blob}/lake/az_job/models/v{v1}/model"
    )
    ep = api.endpoints[endpoint]
    assert ep["properties"]["authMode"] == "Key" and ep["identity"]["type"] == "SystemAssigned"
    assert (
        len(api.requests("PUT", f"/onlineEndpoints/{endpoint}/deployments/green-v{v1}")) == 2
    )  # 409, then created
    green = api.deployments[(endpoint, f"green-v{v1}")]
    assert green["kind"] == "Managed" and green["sku"] == {"name": "Default", "capacity": 1}
    assert green["properties"]["endpointComputeType"] == "Managed"
    assert green["properties"]["instanceType"] == "Standard_DS3_v2"
    assert green["properties"]["model"] == f"{ws}/models/az_job/versions/{v1}"
    assert api.traffic(endpoint) == {f"green-v{v1}": 100}
    promoted = _smoke_passes_and_promotes(spec, deployment, trained, evaluated)
    assert promoted["passed"] and promoted["mismatches"] == 0
    assert registry.alias_version(spec.name, registry.CHAMPION) == v1
    assert set(api.predictions_served) == {(endpoint, f"green-v{v1}")}

    # 3. v2 as a 10 % canary: the smoke test reaches it; promotion moves all traffic and the alias
    trained2, evaluated2, decision2, registered2 = _retrain(spec, raw, "manual__2")
    v2 = registered2["version"]
    deployment2 = _deployed(spec, registered2, decision2)
    assert deployment2["previous_version"] == v1
    assert deployment2["extra"]["previous_deployment"] == f"green-v{v1}"
    assert api.traffic(endpoint) == {f"green-v{v1}": 90, f"green-v{v2}": 10}
    served_before = len(api.predictions_served)
    promoted2 = _smoke_passes_and_promotes(spec, deployment2, trained2, evaluated2)
    assert promoted2["passed"] and promoted2["deployment"]["state"] == "ready"
    assert api.predictions_served[served_before:] == [
        (endpoint, f"green-v{v2}")
    ]  # the answer compared was v2's
    assert api.traffic(endpoint) == {f"green-v{v2}": 100}
    api.settle()  # the deletion of green-v1 runs on
    assert api.deployment_names(endpoint) == [f"green-v{v2}"]
    assert registry.alias_version(spec.name, registry.CHAMPION) == v2
    assert registry.alias_version(spec.name, registry.PREVIOUS) == v1

    # 4. v3 answers wrong predictions: the smoke test fails and rolls back to v2
    trained3, evaluated3, decision3, registered3 = _retrain(spec, raw, "manual__3")
    v3 = registered3["version"]
    api.wrong_predictions.add(f"green-v{v3}")
    deployment3 = _deployed(spec, registered3, decision3)
    assert api.traffic(endpoint) == {f"green-v{v2}": 90, f"green-v{v3}": 10}  # so "back to v2" below can fail
    assert registry.alias_version(spec.name, registry.CHAMPION) == v2  # so "unchanged" below can fail
    smoke = SmokeTestOperator(
        task_id="smoke_test", pipeline=spec, deployment=deployment3, trained=trained3, evaluation=evaluated3
    )
    with pytest.raises(AirflowFailException, match=f"rolled back to v{v2}"):
        smoke.execute(_context())
    assert api.predictions_served[-1] == (endpoint, f"green-v{v3}")
    assert api.traffic(endpoint) == {f"green-v{v2}": 100}
    api.settle()
    assert api.deployment_names(endpoint) == [f"green-v{v2}"]
    assert registry.alias_version(spec.name, registry.CHAMPION) == v2
    assert registry.client().get_model_version(spec.name, v3).tags["mlops.rolled_back"] == "true"

    # 5. v4's container never starts: ARM's reason reaches the task, which rolls back
    _, _, decision4, registered4 = _retrain(spec, raw, "manual__4")
    v4 = registered4["version"]
    api.failing_deployments.add(f"green-v{v4}")
    deploy, event4 = _deploy(spec, registered4, decision4)
    assert event4.payload["status"] == "error" and event4.payload["reason"] == "failed", event4.payload
    assert "User container has crashed or terminated" in event4.payload["message"]
    with pytest.raises(
        AirflowFailException, match="deploy failed and was rolled back: .*User container has crashed"
    ):
        deploy.deploy_complete(_context(), event=event4.payload)
    api.settle()
    assert api.traffic(endpoint) == {f"green-v{v2}": 100}
    assert api.deployment_names(endpoint) == [f"green-v{v2}"]
    assert registry.alias_version(spec.name, registry.CHAMPION) == v2
    assert api.violations == []


def test_a_failed_azureml_job_fails_the_task_without_retry(api: AzureMLAPI, azure_env: str) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    spec = example_spec(name="az_fail", cloud="azure")
    raw = _ingest(spec)
    train, trigger, folder = _start_training(spec, raw, "manual__9")
    event = _train_while_the_trigger_waits(api, trigger, fail=True)
    assert event.payload["status"] == "error" and event.payload["reason"] == "failed", event.payload
    studio = f"https://ml.azure.com/runs/{trigger.job_name}?wsid={api.workspace_id}"
    assert f"is Failed: the job resource reports no error text; logs: {studio}" in event.payload["message"]
    with pytest.raises(AirflowFailException, match="training job failed: .*is Failed"):
        train.remote_complete(_context("manual__9"), event=event.payload, folder=folder)
    assert api.job(trigger.job_name)["properties"]["status"] == "Failed"
    assert api.violations == []


def test_the_emulator_refuses_what_azure_refuses(
    api: AzureMLAPI, azure_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tests above pass because the package's requests are right, not because anything goes."""
    from mlops_airflow.hooks.azureml import AzureMLHook
    from mlops_core.clouds.azure.client import AzureMLError

    hook = AzureMLHook(
        subscription_id=api.subscription_id, resource_group=api.resource_group, workspace=api.workspace
    )
    client = hook.get_client()
    endpoint = {"location": api.location, "properties": {"authMode": "Key"}}
    refused = {
        "a name Azure ML does not allow": ("ab", endpoint),
        "a split naming no deployment": (
            "mlops-ghost",
            {**endpoint, "properties": {"authMode": "Key", "traffic": {"blue": 100}}},
        ),
        "a key the REST model lacks": (
            "mlops-typo",
            {**endpoint, "properties": {"authMode": "Key", "trafic": {}}},
        ),
        "a value outside the enum": ("mlops-enum", {**endpoint, "properties": {"authMode": "key"}}),
    }
    for what, (name, body) in refused.items():
        with pytest.raises(AzureMLError, match="HTTP 400"):
            client.put_endpoint(name, body)
        assert len(api.violations) == 1, (what, api.violations)
        assert name in api.violations.pop(), what
        assert name not in api.endpoints, what
    # an ARM call with a token for another audience (Azure Monitor's) is refused
    monitor = hook.clients("monitor")
    answer = monitor.request(
        "GET", f"{client.api_root}{client.workspace_id}", params={"api-version": API_VERSION}, timeout=30
    )
    assert answer.status_code == 401 and answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert api.violations.pop().endswith(f"where {api.arm_scope} is needed")
    # a secret that is not the service principal's gets no token
    wrong = {**json.loads(os.environ["AIRFLOW_CONN_AZURE_ML_DEFAULT"]), "password": "not-the-secret"}
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_ML_WRONG", json.dumps(wrong))
    stranger = AzureMLHook(
        "azure_ml_wrong",
        subscription_id=api.subscription_id,
        resource_group=api.resource_group,
        workspace=api.workspace,
    )
    with pytest.raises(Exception, match="AADSTS7000215: Invalid client secret"):
        stranger.get_client().get_endpoint("mlops-az-job")
    assert api.violations == []
