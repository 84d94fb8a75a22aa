"""The operators' Vertex AI path over HTTP, through the ``google_cloud_default`` connection.

The lake is on gcp-storage-emulator, MLflow is the tier's server, and Vertex AI (plus Cloud
Monitoring's ``timeSeries.create``) is :class:`~tests.emulators.vertex_api.VertexAPI` on
127.0.0.1: stateful, and refusing every request Google's API description would refuse. The
shipped ``gcp`` profile reaches it through its ``api_endpoint`` setting and the connection the
``gcs_endpoint`` fixture exports (anonymous credentials: no token is fetched, nothing reaches
Google). Nothing in the product knows it is tested.

1. ``TrainOperator`` (backend ``vertex``) creates one custom job (a second execute of the same
   try attaches) and defers on ``RemoteJobTrigger``. The job's container command, taken from the
   CustomJob body the package sent, runs as the image would while the trigger polls QUEUED,
   RUNNING, SUCCEEDED; ``remote_complete`` returns the MLflow run the job logged.
2. v1 (first deploy, canary): ``DeployOperator`` uploads the model, creates the endpoint and
   defers on ``EndpointTrigger``; the smoke test is scored by the MLflow model the endpoint
   loaded from the lake, passes, bakes (``TimeDeltaTrigger``) and ``promote_after_bake`` makes v1
   champion.
3. v2 (canary 10 %): the smoke test reaches the new model among the old one's answers, passes;
   promotion moves all traffic, undeploys v1 and moves ``champion``.
4. v3: its container answers wrong predictions, so the smoke test fails and rolls back: traffic
   back to v2, v3 undeployed, ``champion`` still v2.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.emulators.steps import first_event, ingest_on_the_cloud, start_training, task_context
from tests.emulators.vertex_api import VertexAPI
from tests.helpers import async_wait_until, example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.emulator

REPO = Path(__file__).resolve().parents[2]
DS = "2026-01-31"
PROJECT = "mlops-test"
TRAINING_IMAGE = "europe-docker.pkg.dev/mlops-test/mlops/airflow-mlops:test"
SERVING_IMAGE = "europe-docker.pkg.dev/mlops-test/mlops/mlflow-serving:3"
ACCOUNT = "trainer@mlops-test.iam.gserviceaccount.com"


@pytest.fixture(scope="module")
def api(gcs_endpoint: str) -> Iterator[VertexAPI]:
    """One Vertex AI API for the module; its "images" read the lake on the GCS emulator."""
    server = VertexAPI(
        project=PROJECT,
        storage_options={"endpoint_url": gcs_endpoint, "token": "anon"},
        # what the training image provides: this package, and (instead of the job's service
        # account on Google) the GCS emulator, anonymously
        container_env={
            "PYTHONPATH": str(REPO / "include"),
            "STORAGE_EMULATOR_HOST": gcs_endpoint,
            "FSSPEC_GS_TOKEN": "anon",
            # gcsfs's bucket-type probe speaks gRPC, which the GCS emulator does not (tests/conftest.py)
            "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        },
    )
    with server:
        yield server


@pytest.fixture
def gcp_env(
    api: VertexAPI, mlflow_server: str, monkeypatch: pytest.MonkeyPatch, local_dir: Path
) -> Iterator[str]:
    """The shipped ``gcp`` profile pointed at the loopback API and a fresh folder of the bucket."""
    from mlops_core.clouds.gcp.deploy import VertexTarget

    root = f"gs://mlops-lake/{uuid.uuid4().hex[:8]}"
    for key, value in {
        "MLOPS_GCP_LAKE": f"{root}/lake",
        "MLOPS_GCP_LANDING": f"{root}/landing",
        "MLOPS_GCP_MONITORING_EXPORT": "none",  # the profile file has no monitoring endpoint setting
        "MLOPS_GCP_PROJECT": PROJECT,
        "MLOPS_VERTEX_SERVICE_ACCOUNT": ACCOUNT,
        "MLOPS_TRAINING_IMAGE": TRAINING_IMAGE,
        "MLOPS_VERTEX_SERVING_IMAGE": SERVING_IMAGE,
        "MLOPS_VERTEX_API_ENDPOINT": api.url,
        "MLFLOW_TRACKING_URI": mlflow_server,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(VertexTarget, "poll_seconds", 0.05)  # upload / endpoint creation waits
    api.violations.clear()
    yield root
    assert api.violations == []


def _context(run_id: str = "manual__1", try_number: int = 1) -> dict[str, Any]:
    return task_context("vx_training", run_id, try_number)


def _ingest(spec: Any) -> dict[str, Any]:
    return ingest_on_the_cloud(spec, "vertex")


def _start_training(spec: Any, raw: dict[str, Any], run_id: str) -> tuple[Any, Any, str]:
    from mlops_airflow.triggers.cloud import RemoteJobTrigger

    return start_training(spec, raw, _context(run_id), RemoteJobTrigger)


def _train_while_the_trigger_waits(api: VertexAPI, trigger: Any, fail_with: str | None = None) -> Any:
    """The triggerer's loop runs while the job's container runs (or fails on demand)."""

    async def both() -> Any:
        job = trigger.handle["job"].rsplit("/", 1)[-1]
        waiting = asyncio.create_task(first_event(trigger))
        # The trigger sees the job queued first: its first read is answered before the job runs.
        await async_wait_until(
            lambda: any(
                n.endswith(f"/customJobs/{job}") and s == "JOB_STATE_QUEUED" for n, s in api.job_states_served
            ),
            60,
            "the trigger read the job queued",
        )
        container = api.start_container(trigger.handle["job"], fail_with=fail_with)
        event = await asyncio.wait_for(waiting, 300)
        await asyncio.to_thread(container.join, 60)
        return event

    return asyncio.run(both())


def _deploy(spec: Any, registered: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """``DeployOperator``: defers on ``EndpointTrigger``; its ``run()`` (the triggerer's code), then ``deploy_complete``."""
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
    event = asyncio.run(first_event(trigger))
    assert event.payload["status"] == "success", event.payload
    return deploy.deploy_complete(_context(), event=event.payload)


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
    """Another challenger (trained in the worker: the Vertex path under test here is the deploy),
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
        registered = lifecycle.register(spec, trained, decision, f"vx_training/{run}", {})
    assert decision["promote"] and evaluated["champion_version"] is not None
    return trained, evaluated, decision, registered


def _endpoint(api: VertexAPI, display_name: str) -> dict[str, Any]:
    found = [e for e in api.endpoints.values() if e["displayName"] == display_name]
    assert len(found) == 1, f"{len(found)} endpoints named {display_name}"
    return found[0]


def _serving(api: VertexAPI, endpoint: dict[str, Any]) -> dict[str, int]:
    """Traffic split by model display name (deployed model ids are the platform's)."""
    names = {d["id"]: d["displayName"] for d in endpoint["deployedModels"]}
    return {names[k]: v for k, v in endpoint["trafficSplit"].items()}


def test_vertex_training_deploy_promote_and_rollback_through_the_operators(
    api: VertexAPI, gcp_env: str, mlflow_server: str
) -> None:
    from airflow.sdk.exceptions import AirflowFailException, TaskDeferred

    from mlops_airflow.hooks.cloud import cloud_context, export_metrics
    from mlops_airflow.operators.deploy import SmokeTestOperator
    from mlops_core import lifecycle
    from mlops_core.model import remote
    from mlops_core.runs import registry, tracking

    spec = example_spec(
        name="vx_job",
        cloud="gcp",
        deployment={"strategy": "canary", "canary_percent": 10, "canary_wait_minutes": 10, "smoke_rows": 30},
        # smaller than the example's forest and bootstrap: three trainings and evaluations run here
        model={"family": "random_forest", "params": {"n_estimators": 30, "max_depth": 6}, "seed": 42},
        evaluation={"bootstrap": {"n_resamples": 200, "confidence": 0.95}, "floors": {"roc_auc": 0.9}},
    )
    raw = _ingest(spec)
    job = remote.job_name("vx_job", DS, 1, "vx_training/manual__1")

    # 1. training: one custom job, attached to on a second execute, run while the trigger polls
    train, trigger, folder = _start_training(spec, raw, "manual__1")
    with pytest.raises(TaskDeferred) as again:
        train.execute(_context())
    assert again.value.trigger.handle == trigger.handle
    created = api.job(job)  # exactly one, or this raises
    assert trigger.handle == {"job": created["name"]}
    assert created["name"].startswith("projects/424242424242/locations/europe-west4/customJobs/")
    container = created["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
    assert container["imageUri"] == TRAINING_IMAGE
    assert container["command"] == ["python", "-m", "mlops_core.model.remote", folder]
    assert {"name": "MLFLOW_TRACKING_URI", "value": mlflow_server} in container["env"]
    assert created["jobSpec"]["serviceAccount"] == ACCOUNT

    event = _train_while_the_trigger_waits(api, trigger)
    run = api.container_runs[created["name"]]
    assert run.returncode == 0, run.stderr[-3000:]
    assert event.payload == {"status": "success", "handle": trigger.handle}
    states = [s for name, s in api.job_states_served if name == created["name"]]
    assert states[0] == "JOB_STATE_QUEUED" and "JOB_STATE_RUNNING" in states
    assert states[-1] == "JOB_STATE_SUCCEEDED" and states.index("JOB_STATE_RUNNING") > 0
    trained = train.remote_complete(_context(), event=event.payload, folder=folder)
    tracking.configure()
    tags = registry.client().get_run(trained["run_id"]).data.tags
    assert tags["mlops.training_backend"] == "vertex" and tags["mlops.training_backend_job"] == job
    assert tags["airflow.dag_id"] == "vx_training"

    with cloud_context(spec) as profile:
        evaluated = lifecycle.evaluate(spec, trained, profile.lake, DS)
        decision = lifecycle.gate(spec, evaluated, trained["run_id"]).to_dict()
        registered = lifecycle.register(spec, trained, decision, "vx_training/manual__1", {})
        # Cloud Monitoring through the same connection (the profile file has no endpoint setting for it)
        monitored = replace(
            profile,
            monitoring_export="cloud_monitoring",
            settings={**profile.settings, "monitoring_endpoint": api.url},
        )
        export_metrics(
            monitored,
            spec.name,
            {"holdout_roc_auc": evaluated["challenger"]["roc_auc"]},
            {"Stage": "evaluation"},
        )
    assert decision["promote"], decision
    (series,) = api.series
    assert series["metric"] == {
        "type": "custom.googleapis.com/mlops/holdout_roc_auc",
        "labels": {"pipeline": "vx_job", "stage": "evaluation"},
    }
    assert series["points"][0]["value"] == {"doubleValue": evaluated["challenger"]["roc_auc"]}

    # 2. v1, a first deploy: upload, endpoint, all traffic; smoke test scored by the loaded model
    v1 = registered["version"]
    deployment = _deploy(spec, registered, decision)
    assert deployment["state"] == "ready" and deployment["previous_version"] is None
    endpoint = _endpoint(api, "mlops-vx-job")
    assert deployment["endpoint"] == endpoint["name"]
    (model_v1,) = [m for m in api.models.values() if m["displayName"] == f"vx_job-v{v1}"]
    assert model_v1["artifactUri"] == f"{gcp_env}/lake/vx_job/models/v{v1}/model"
    assert model_v1["containerSpec"]["imageUri"] == SERVING_IMAGE
    assert _serving(api, endpoint) == {f"vx_job-v{v1}": 100}
    promoted = _smoke_passes_and_promotes(spec, deployment, trained, evaluated)
    assert promoted["passed"] and promoted["mismatches"] == 0
    assert registry.alias_version(spec.name, registry.CHAMPION) == v1
    assert {name for _, name in api.predictions_served} == {f"vx_job-v{v1}"}

    # 3. v2 as a 10 % canary: the smoke test reaches it; promotion moves all traffic and the alias
    trained2, evaluated2, decision2, registered2 = _retrain(spec, raw, "manual__2")
    v2 = registered2["version"]
    deployment2 = _deploy(spec, registered2, decision2)
    assert deployment2["previous_version"] == v1
    assert _serving(api, endpoint) == {f"vx_job-v{v1}": 90, f"vx_job-v{v2}": 10}
    served_before = len(api.predictions_served)
    promoted2 = _smoke_passes_and_promotes(spec, deployment2, trained2, evaluated2)
    assert promoted2["passed"] and promoted2["deployment"]["state"] == "ready"
    assert api.predictions_served[-1][1] == f"vx_job-v{v2}"  # the answer compared was v2's
    assert len(api.predictions_served) > served_before
    api.settle()  # the undeploy of v1 runs on
    assert _serving(api, endpoint) == {f"vx_job-v{v2}": 100}
    assert [d["displayName"] for d in endpoint["deployedModels"]] == [f"vx_job-v{v2}"]
    assert registry.alias_version(spec.name, registry.CHAMPION) == v2
    assert registry.alias_version(spec.name, registry.PREVIOUS) == v1

    # 4. v3 answers wrong predictions: the smoke test fails and rolls back to v2
    trained3, evaluated3, decision3, registered3 = _retrain(spec, raw, "manual__3")
    v3 = registered3["version"]
    api.wrong_predictions.add(f"vx_job-v{v3}")
    deployment3 = _deploy(spec, registered3, decision3)
    assert _serving(api, endpoint) == {f"vx_job-v{v2}": 90, f"vx_job-v{v3}": 10}
    assert registry.alias_version(spec.name, registry.CHAMPION) == v2  # so "unchanged" below can fail
    smoke = SmokeTestOperator(
        task_id="smoke_test", pipeline=spec, deployment=deployment3, trained=trained3, evaluation=evaluated3
    )
    with pytest.raises(AirflowFailException, match=f"rolled back to v{v2}"):
        smoke.execute(_context())
    api.settle()
    assert _serving(api, endpoint) == {f"vx_job-v{v2}": 100}
    assert [d["displayName"] for d in endpoint["deployedModels"]] == [f"vx_job-v{v2}"]
    assert registry.alias_version(spec.name, registry.CHAMPION) == v2
    tags3 = registry.client().get_model_version(spec.name, v3).tags
    assert tags3["mlops.rolled_back"] == "true"
    assert len([m for m in api.models.values() if m["displayName"].startswith("vx_job-v")]) == 3
    # the connection's anonymous credentials: no token was fetched (from Google or anywhere) or sent
    assert not [c for c in api.calls if "authorization" in {h.lower() for h in c.headers}]
    assert api.violations == []


def test_a_failed_vertex_job_fails_the_task_without_retry(api: VertexAPI, gcp_env: str) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_core.model import remote

    spec = example_spec(name="vx_fail", cloud="gcp")
    raw = _ingest(spec)
    train, trigger, folder = _start_training(spec, raw, "manual__9")
    message = "The replica workerpool0-0 ran out of memory (exit 137)"
    event = _train_while_the_trigger_waits(api, trigger, fail_with=message)
    assert event.payload["status"] == "error" and event.payload["reason"] == "failed", event.payload
    assert message in event.payload["message"]
    with pytest.raises(AirflowFailException, match="ran out of memory"):
        train.remote_complete(_context("manual__9"), event=event.payload, folder=folder)
    job = api.job(remote.job_name("vx_fail", DS, 1, "vx_training/manual__9"))
    assert job["state"] == "JOB_STATE_FAILED"
    assert api.violations == []


def test_the_loopback_api_refuses_what_google_would_refuse(api: VertexAPI) -> None:
    """So ``api.violations == []`` above means something: each kind of refusal is recorded."""
    import requests

    from mlops_core.clouds.gcp.client import GoogleApiError, VertexClient

    vertex = VertexClient(requests.Session(), PROJECT, "europe-west4", api.url)
    api.violations.clear()
    try:
        op = vertex.create_endpoint({"displayName": "mlops-refusals"})
        api.settle()
        name = vertex.get_operation(op["name"])["response"]["name"]
        assert name.startswith("projects/424242424242/")  # the project number, as Google answers
        with pytest.raises(GoogleApiError, match="HTTP 400.*unknown field"):  # the API description
            vertex.deploy_model(name, {"model": "m", "dedicatedResource": {}}, {"0": 100})
        with pytest.raises(GoogleApiError, match="not deployed on the endpoint"):  # a rule in prose
            vertex.set_traffic(name, {"999": 100})
        endpoint = api.endpoints[name.rsplit("/", 1)[-1]]
        endpoint["deployedModels"] += [{"id": "1", "model": "m1"}, {"id": "2", "model": "m2"}]
        endpoint["trafficSplit"] = {"1": 50, "2": 50}
        with pytest.raises(GoogleApiError, match="add up to 100"):
            vertex.set_traffic(name, {"1": 50, "2": 40})
        with pytest.raises(GoogleApiError, match="cannot be undeployed"):
            vertex.undeploy_model(name, "1")
        with pytest.raises(GoogleApiError, match="HTTP 400.*no method"):
            vertex.call("POST", f"{vertex.url(name)}:deploy", {})
        assert len(api.violations) == 5, api.violations
    finally:
        api.endpoints.pop(name.rsplit("/", 1)[-1], None)
        api.violations.clear()
