"""Managed ingestion by contract: the exact requests the providers' operators send for the day's
Glue job, Dataflow flex template and Data Factory pipeline, when they start, wait, fail and retry.

Each operator runs its real provider code; only the wire is replaced:

- Glue: botocore's ``Stubber`` on the hook's client (each request checked against botocore's
  service model, in order, with exact parameters);
- Dataflow: ``googleapiclient`` built from the packaged ``dataflow v1b3`` discovery document over
  a recording HTTP object (the request URI, method and body the client library really builds);
- Data Factory: ``azure-mgmt-datafactory``'s client over a recording ``requests`` adapter (the
  REST call the SDK really serialises, api-version included).

A retry (try 2) must attach to the run its first try started, and start a new one only when that
run is gone or failed. The waits are the providers' triggers; their payloads are asserted here,
and the Glue trigger itself polls moto in ``tests/emulators/test_managed_ingestion.py``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.contract

DS = "2026-01-31"
RUN_ID = "manual__2026-01-31"
DAG_ID = "orders_training"


class FakeTI:
    """What the operators use of a task instance; XCom starts empty on every try, as in Airflow 3."""

    def __init__(self, try_number: int) -> None:
        self.dag_id, self.task_id, self.run_id, self.map_index = DAG_ID, "managed_ingestion", RUN_ID, -1
        self.try_number = try_number
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value

    def xcom_pull(self, key: str | None = None, task_ids: Any = None) -> Any:
        return None


def context(op: Any, try_number: int = 1) -> dict[str, Any]:
    ti = FakeTI(try_number)
    run_after = datetime(2026, 1, 31, tzinfo=UTC)
    return {
        "ti": ti,
        "task_instance": ti,
        "task": op,
        "dag_run": SimpleNamespace(run_type="manual", triggering_user_name="tester", run_after=run_after),
        "logical_date": run_after,
        "triggering_asset_events": {},
    }


@pytest.fixture(autouse=True)
def _roots(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_AWS_LANDING", "s3://acme-landing/landing")
    monkeypatch.setenv("MLOPS_GCP_LANDING", "gs://acme-landing/landing")
    monkeypatch.setenv("MLOPS_GCP_PROJECT", "acme-data")
    monkeypatch.setenv("MLOPS_AZURE_LANDING", "abfs://landing/landing")
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {"conn_type": "aws", "login": "x", "password": "y", "extra": {"region_name": "eu-west-1"}}
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT",
        json.dumps({"conn_type": "google_cloud_platform", "extra": {"project": "conn-project"}}),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_AZURE_DATA_FACTORY_DEFAULT",
        json.dumps(
            {
                "conn_type": "azure_data_factory",
                "login": "client-id",
                "password": "client-secret",
                "extra": {"tenantId": "tenant", "subscriptionId": "sub-1"},
            }
        ),
    )


# -- Glue ------------------------------------------------------------------------------------

GLUE = {"job_name": "orders-export", "arguments": {"--output": "${MLOPS_LANDING}/orders/ds={ds}/"}}
UUID_ARG = f"{DAG_ID}:managed_ingestion:{RUN_ID}:-1"
ARGS = {
    "--output": f"s3://acme-landing/landing/orders/ds={DS}/",
    "--ds": DS,
    "--airflow_task_uuid": UUID_ARG,
}


def glue_operator() -> Any:
    from mlops_airflow.operators.ingestion.glue import GlueIngestionOperator

    spec = example_spec(name="orders", cloud="aws", ingestion={"glue": GLUE, "poll_seconds": 30})
    return GlueIngestionOperator(task_id="managed_ingestion", pipeline=spec)


@pytest.fixture
def glue() -> Iterator[SimpleNamespace]:
    """The operator with a Stubber on its hook's Glue client: every request must be expected."""
    import boto3
    from botocore.stub import Stubber

    op = glue_operator()
    client = boto3.client("glue", region_name="eu-west-1", aws_access_key_id="x", aws_secret_access_key="y")
    op.hook.__dict__["conn"] = client  # the hook's cached client
    with Stubber(client) as stub:
        yield SimpleNamespace(op=op, stub=stub)
        stub.assert_no_pending_responses()


def _job(stub: Any) -> None:
    stub.add_response("get_job", {"Job": {"Name": "orders-export"}}, {"JobName": "orders-export"})


def test_glue_first_try_starts_one_run_with_the_day_and_defers_on_the_providers_trigger(glue: Any) -> None:
    from airflow.providers.amazon.aws.triggers.glue import GlueJobCompleteTrigger
    from airflow.sdk.exceptions import TaskDeferred

    _job(glue.stub)  # ours: the job must exist
    _job(glue.stub)  # the provider's get_or_create: it exists, so nothing is created
    glue.stub.add_response(
        "start_job_run", {"JobRunId": "jr_1"}, {"JobName": "orders-export", "Arguments": ARGS}
    )
    ctx = context(glue.op)
    with pytest.raises(TaskDeferred) as deferred:
        glue.op.execute(ctx)
    trigger = deferred.value.trigger
    assert isinstance(trigger, GlueJobCompleteTrigger)
    assert deferred.value.method_name == "execute_complete"
    kind, kwargs = trigger.serialize()
    assert kwargs["job_name"] == "orders-export" and kwargs["run_id"] == "jr_1"
    assert kwargs["waiter_delay"] == 30 and kwargs["waiter_max_attempts"] == 120 * 60 // 30
    assert ctx["ti"].pushed["glue_job_run_id"] == "jr_1"


def test_glue_retry_attaches_to_the_run_its_first_try_started(glue: Any) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    _job(glue.stub)
    glue.stub.add_response(
        "get_job_runs",
        {
            "JobRuns": [
                {
                    "Id": "jr_other",
                    "JobRunState": "RUNNING",
                    "Arguments": {"--airflow_task_uuid": "x:y:z:-1"},
                },
                {"Id": "jr_1", "JobRunState": "RUNNING", "Arguments": ARGS},
            ]
        },
        {"JobName": "orders-export", "MaxResults": 200},
    )
    with pytest.raises(TaskDeferred) as deferred:  # no StartJobRun: the stubber would refuse it
        glue.op.execute(context(glue.op, try_number=2))
    assert deferred.value.trigger.serialize()[1]["run_id"] == "jr_1"


def test_glue_retry_after_a_failed_run_starts_a_new_one(glue: Any) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    _job(glue.stub)
    glue.stub.add_response(
        "get_job_runs",
        {"JobRuns": [{"Id": "jr_1", "JobRunState": "FAILED", "Arguments": ARGS}]},
        {"JobName": "orders-export", "MaxResults": 200},
    )
    _job(glue.stub)
    glue.stub.add_response(
        "start_job_run", {"JobRunId": "jr_2"}, {"JobName": "orders-export", "Arguments": ARGS}
    )
    with pytest.raises(TaskDeferred) as deferred:
        glue.op.execute(context(glue.op, try_number=2))
    assert deferred.value.trigger.serialize()[1]["run_id"] == "jr_2"


def test_glue_missing_job_fails_without_a_retry_and_starts_nothing(glue: Any) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    glue.stub.add_client_error(
        "get_job", "EntityNotFoundException", "Job not found", expected_params={"JobName": "orders-export"}
    )
    with pytest.raises(AirflowFailException, match=r"'orders-export' does not exist in eu-west-1.*job_name"):
        glue.op.execute(context(glue.op))


def test_glue_failed_run_fails_the_task() -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    op = glue_operator()
    with pytest.raises(AirflowException, match="FAILED"):
        op.execute_complete(
            context(op), {"status": "error", "message": "Job run jr_1 FAILED", "run_id": "jr_1"}
        )
    assert op.execute_complete(context(op), {"status": "success", "run_id": "jr_1"}) == "jr_1"


# -- Dataflow --------------------------------------------------------------------------------

FLOW = {
    "template": "gs://acme-templates/flex/orders.json",
    "parameters": {"output": "${MLOPS_LANDING}/orders/ds={ds}/", "shards": 4},
    "location": "europe-west1",
    "max_workers": 5,
}


class RecordingHttp:
    """What googleapiclient sends, answered in order from ``answers`` ((status, body) pairs)."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.requests: list[tuple[str, str, Any]] = []

    def request(self, uri: str, method: str = "GET", body: Any = None, headers: Any = None, **_: Any) -> Any:
        import httplib2

        self.requests.append((method, uri, json.loads(body) if body else None))
        status, answer = self.answers.pop(0)
        return httplib2.Response({"status": status, "content-type": "application/json"}), json.dumps(
            answer
        ).encode()


@pytest.fixture
def dataflow(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    from airflow.providers.google.cloud.hooks.dataflow import DataflowHook
    from googleapiclient.discovery import build

    from mlops_airflow.operators.ingestion.dataflow import DataflowIngestionOperator

    http = RecordingHttp()
    service = build("dataflow", "v1b3", http=http, cache_discovery=False, static_discovery=True)
    monkeypatch.setattr(DataflowHook, "get_conn", lambda self: service)
    spec = example_spec(name="orders", cloud="gcp", ingestion={"dataflow": FLOW})
    op = DataflowIngestionOperator(task_id="managed_ingestion", pipeline=spec)
    yield SimpleNamespace(op=op, http=http, spec=spec)
    assert not http.answers, "answers left over: a request the operator should have sent"


BASE = "https://dataflow.googleapis.com/v1b3/projects/acme-data/locations/europe-west1"


def _name(spec: Any) -> str:
    from mlops_core.data.ingestion import dataflow_job_name

    return dataflow_job_name(spec, DAG_ID, RUN_ID, DS)


def test_dataflow_first_try_looks_up_its_name_launches_the_template_and_defers(dataflow: Any) -> None:
    from airflow.providers.google.cloud.triggers.dataflow import TemplateJobStartTrigger
    from airflow.sdk.exceptions import TaskDeferred

    name = _name(dataflow.spec)
    assert name.startswith("mlops-orders-20260131-") and len(name) <= 63
    dataflow.http.answers = [(200, {}), (200, {"job": {"id": "2026-01-31_job1", "name": name}})]
    with pytest.raises(TaskDeferred) as deferred:
        dataflow.op.execute(context(dataflow.op))
    (m1, uri1, _), (m2, uri2, body) = dataflow.http.requests
    assert m1 == "GET" and uri1.startswith(f"{BASE}/jobs?")
    assert f"name={name}" in uri1 and "filter=ALL" in uri1
    assert (m2, uri2.split("?")[0]) == ("POST", f"{BASE}/flexTemplates:launch")
    assert body == {
        "launchParameter": {
            "jobName": name,
            "containerSpecGcsPath": "gs://acme-templates/flex/orders.json",
            "parameters": {"output": f"gs://acme-landing/landing/orders/ds={DS}/", "shards": "4", "ds": DS},
            "environment": {"maxWorkers": 5},
        }
    }
    trigger = deferred.value.trigger
    assert isinstance(trigger, TemplateJobStartTrigger)
    kwargs = trigger.serialize()[1]
    assert (kwargs["job_id"], kwargs["project_id"], kwargs["location"]) == (
        "2026-01-31_job1",
        "acme-data",
        "europe-west1",
    )


def test_dataflow_retry_attaches_to_the_running_job_of_its_name(dataflow: Any) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    name = _name(dataflow.spec)
    dataflow.http.answers = [
        (200, {"jobs": [{"id": "job1", "name": name, "currentState": "JOB_STATE_RUNNING"}]})
    ]
    ctx = context(dataflow.op, try_number=2)
    with pytest.raises(TaskDeferred) as deferred:  # one request: no second launch
        dataflow.op.execute(ctx)
    assert deferred.value.trigger.serialize()[1]["job_id"] == "job1"
    assert ctx["ti"].pushed["job_id"] == "job1"


def test_dataflow_retry_of_a_finished_job_succeeds_without_waiting(dataflow: Any) -> None:
    name = _name(dataflow.spec)
    job = {"id": "job1", "name": name, "currentState": "JOB_STATE_DONE"}
    dataflow.http.answers = [(200, {"jobs": [job]})]
    assert dataflow.op.execute(context(dataflow.op, try_number=2)) == job


def test_dataflow_retry_after_a_failed_job_launches_a_new_one(dataflow: Any) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    name = _name(dataflow.spec)
    dataflow.http.answers = [
        (200, {"jobs": [{"id": "job1", "name": name, "currentState": "JOB_STATE_FAILED"}]}),
        (200, {"job": {"id": "job2", "name": name}}),
    ]
    with pytest.raises(TaskDeferred) as deferred:
        dataflow.op.execute(context(dataflow.op, try_number=2))
    assert dataflow.http.requests[1][0] == "POST"
    assert deferred.value.trigger.serialize()[1]["job_id"] == "job2"


def test_dataflow_failed_job_fails_the_task(dataflow: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    with pytest.raises(AirflowException, match="JOB_STATE_FAILED"):
        dataflow.op.execute_complete(
            context(dataflow.op),
            {"status": "error", "message": "Dataflow job job1 is JOB_STATE_FAILED", "job_id": "job1"},
        )


def test_dataflow_launch_refused_by_the_api_fails_with_its_message(dataflow: Any) -> None:
    from googleapiclient.errors import HttpError

    dataflow.http.answers = [
        (200, {}),
        (400, {"error": {"code": 400, "message": "Invalid template file", "status": "INVALID_ARGUMENT"}}),
    ]
    with pytest.raises(HttpError, match="Invalid template file"):
        dataflow.op.execute(context(dataflow.op))


# -- Data Factory ----------------------------------------------------------------------------

ADF = {
    "pipeline_name": "CopyOrders",
    "resource_group_name": "rg-data",
    "factory_name": "acme-adf",
    "parameters": {"sink": "${MLOPS_LANDING}/orders/ds={ds}/", "full": False},
}
FACTORY = (
    "https://management.azure.com/subscriptions/sub-1/resourceGroups/rg-data"
    "/providers/Microsoft.DataFactory/factories/acme-adf"
)
KEY = f"{DAG_ID}:{RUN_ID}:{DS}"
PARAMS = {"sink": f"abfs://landing/landing/orders/ds={DS}/", "full": False, "ds": DS, "mlops_run_key": KEY}


class RecordingAdapter:
    """A ``requests`` transport adapter: records what the Azure SDK sends, answers in order."""

    def __init__(self) -> None:
        self.answers: list[tuple[int, dict[str, Any]]] = []
        self.requests: list[tuple[str, str, Any]] = []

    def send(self, request: Any, **_: Any) -> Any:
        import io

        import requests
        import urllib3

        body = json.loads(request.body) if request.body else None
        self.requests.append((request.method, request.url, body))
        status, answer = self.answers.pop(0)
        response = requests.Response()
        response.status_code, response.url, response.request = status, request.url, request
        response.headers["content-type"] = "application/json"
        content = json.dumps(answer).encode()
        response.raw = urllib3.HTTPResponse(body=io.BytesIO(content), status=status, preload_content=False)
        response._content = content
        return response

    def close(self) -> None:
        pass


@pytest.fixture
def adf(monkeypatch: pytest.MonkeyPatch) -> Iterator[SimpleNamespace]:
    import requests
    from airflow.providers.microsoft.azure.hooks.data_factory import AzureDataFactoryHook
    from azure.core.credentials import AccessToken
    from azure.core.pipeline.transport import RequestsTransport
    from azure.mgmt.datafactory import DataFactoryManagementClient

    from mlops_airflow.operators.ingestion.data_factory import DataFactoryIngestionOperator

    adapter = RecordingAdapter()
    session = requests.Session()
    session.mount("https://", adapter)  # type: ignore[arg-type]
    credential = SimpleNamespace(get_token=lambda *scopes, **kw: AccessToken("token", 2**31))
    client = DataFactoryManagementClient(
        credential, "sub-1", transport=RequestsTransport(session=session, session_owner=False)
    )
    monkeypatch.setattr(AzureDataFactoryHook, "get_conn", lambda self: client)
    spec = example_spec(name="orders", cloud="azure", ingestion={"data_factory": ADF, "timeout_minutes": 90})
    op = DataFactoryIngestionOperator(task_id="managed_ingestion", pipeline=spec)
    yield SimpleNamespace(op=op, adapter=adapter)
    assert not adapter.answers, "answers left over: a request the operator should have sent"


def _query_checked(request: tuple[str, str, Any]) -> None:
    method, url, body = request
    assert (method, url) == ("POST", f"{FACTORY}/queryPipelineRuns?api-version=2018-06-01")
    assert body["filters"] == [{"operand": "PipelineName", "operator": "Equals", "values": ["CopyOrders"]}]
    assert set(body) == {"lastUpdatedAfter", "lastUpdatedBefore", "filters"}


def test_adf_first_try_queries_then_creates_one_run_with_the_day_and_defers(adf: Any) -> None:
    from airflow.providers.microsoft.azure.triggers.data_factory import AzureDataFactoryTrigger
    from airflow.sdk.exceptions import TaskDeferred

    adf.adapter.answers = [
        (200, {"value": []}),
        (200, {"runId": "run-1"}),
        (200, {"runId": "run-1", "status": "InProgress"}),
    ]
    ctx = context(adf.op)
    with pytest.raises(TaskDeferred) as deferred:
        adf.op.execute(ctx)
    query, create, status = adf.adapter.requests
    _query_checked(query)
    assert create == ("POST", f"{FACTORY}/pipelines/CopyOrders/createRun?api-version=2018-06-01", PARAMS)
    assert status[:2] == ("GET", f"{FACTORY}/pipelineruns/run-1?api-version=2018-06-01")
    trigger = deferred.value.trigger
    assert isinstance(trigger, AzureDataFactoryTrigger)
    kwargs = trigger.serialize()[1]
    assert (kwargs["run_id"], kwargs["resource_group_name"], kwargs["factory_name"]) == (
        "run-1",
        "rg-data",
        "acme-adf",
    )
    assert kwargs["azure_data_factory_conn_id"] == "azure_data_factory_default"
    assert ctx["ti"].pushed["run_id"] == "run-1"


def test_adf_retry_attaches_to_the_run_carrying_its_key(adf: Any) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    adf.adapter.answers = [
        (
            200,
            {
                "value": [
                    {"runId": "run-0", "status": "InProgress", "parameters": {"mlops_run_key": "other"}},
                    {"runId": "run-1", "status": "InProgress", "parameters": {"mlops_run_key": KEY}},
                ]
            },
        )
    ]
    with pytest.raises(TaskDeferred) as deferred:  # one request: no second createRun
        adf.op.execute(context(adf.op, try_number=2))
    assert deferred.value.trigger.serialize()[1]["run_id"] == "run-1"


def test_adf_retry_follows_the_query_pages(adf: Any) -> None:
    adf.adapter.answers = [
        (200, {"value": [], "continuationToken": "page-2"}),
        (200, {"value": [{"runId": "run-1", "status": "Succeeded", "parameters": {"mlops_run_key": KEY}}]}),
    ]
    assert adf.op.execute(context(adf.op, try_number=2)) is None  # done already: nothing to wait for
    assert adf.adapter.requests[1][2]["continuationToken"] == "page-2"


def test_adf_retry_after_a_failed_run_starts_a_new_one(adf: Any) -> None:
    from airflow.sdk.exceptions import TaskDeferred

    adf.adapter.answers = [
        (200, {"value": [{"runId": "run-1", "status": "Failed", "parameters": {"mlops_run_key": KEY}}]}),
        (200, {"runId": "run-2"}),
        (200, {"runId": "run-2", "status": "Queued"}),
    ]
    with pytest.raises(TaskDeferred) as deferred:
        adf.op.execute(context(adf.op, try_number=2))
    assert adf.adapter.requests[1][2] == PARAMS
    assert deferred.value.trigger.serialize()[1]["run_id"] == "run-2"


def test_adf_run_that_fails_at_once_fails_the_task(adf: Any) -> None:
    from airflow.providers.microsoft.azure.hooks.data_factory import AzureDataFactoryPipelineRunException

    adf.adapter.answers = [
        (200, {"value": []}),
        (200, {"runId": "run-1"}),
        (200, {"runId": "run-1", "status": "Failed"}),
    ]
    with pytest.raises(AzureDataFactoryPipelineRunException, match="run-1 has failed"):
        adf.op.execute(context(adf.op))


def test_adf_failure_reported_by_the_trigger_fails_the_task(adf: Any) -> None:
    from airflow.providers.common.compat.sdk import AirflowException

    with pytest.raises(AirflowException, match="run-1 has Failed"):
        adf.op.execute_complete(
            context(adf.op), {"status": "error", "message": "The pipeline run run-1 has Failed."}
        )


def test_adf_trigger_polls_the_run_until_it_ends(adf: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider's trigger loop (the triggerer's code) over the SDK's async client: one GET of
    the run per poll, InProgress -> Succeeded, then a run that fails."""
    import asyncio

    import requests
    from airflow.providers.microsoft.azure.hooks.data_factory import AzureDataFactoryAsyncHook
    from airflow.providers.microsoft.azure.triggers.data_factory import AzureDataFactoryTrigger
    from azure.core.credentials import AccessToken
    from azure.core.pipeline.transport import AsyncioRequestsTransport
    from azure.mgmt.datafactory.aio import DataFactoryManagementClient

    session = requests.Session()
    session.mount("https://", adf.adapter)  # type: ignore[arg-type]

    async def token(*scopes: str, **kw: Any) -> AccessToken:
        return AccessToken("token", 2**31)

    async def client(self: Any) -> Any:
        credential = SimpleNamespace(get_token=token, close=lambda: None)
        return DataFactoryManagementClient(
            credential, "sub-1", transport=AsyncioRequestsTransport(session=session, session_owner=False)
        )

    monkeypatch.setattr(AzureDataFactoryAsyncHook, "get_async_conn", client)
    monkeypatch.setattr(AzureDataFactoryAsyncHook, "close", lambda self: asyncio.sleep(0))

    def trigger() -> AzureDataFactoryTrigger:
        return AzureDataFactoryTrigger(
            run_id="run-1",
            azure_data_factory_conn_id="azure_data_factory_default",
            end_time=datetime.now(UTC).timestamp() + 60,
            resource_group_name="rg-data",
            factory_name="acme-adf",
            check_interval=0,
        )

    adf.adapter.answers = [
        (200, {"runId": "run-1", "status": s}) for s in ("Queued", "InProgress", "Succeeded")
    ]
    event = asyncio.run(_first(trigger()))
    assert event.payload == {
        "status": "success",
        "message": "The pipeline run run-1 has Succeeded.",
        "run_id": "run-1",
    }
    assert {r[:2] for r in adf.adapter.requests} == {
        ("GET", f"{FACTORY}/pipelineruns/run-1?api-version=2018-06-01")
    } and len(adf.adapter.requests) == 3

    adf.adapter.answers = [
        (200, {"runId": "run-1", "status": s}) for s in ("InProgress", "InProgress", "Failed")
    ]
    event = asyncio.run(_first(trigger()))
    assert event.payload["status"] == "error" and "has Failed" in event.payload["message"]


def test_dataflow_trigger_polls_the_job_until_it_ends(monkeypatch: pytest.MonkeyPatch) -> None:
    """The provider's trigger loop over the job's states (its async client speaks gRPC, which
    nothing here records: the hook call and its arguments are the contract)."""
    import asyncio

    from airflow.providers.google.cloud.hooks.dataflow import AsyncDataflowHook
    from airflow.providers.google.cloud.triggers.dataflow import TemplateJobStartTrigger
    from google.cloud.dataflow_v1beta3 import JobState

    calls: list[dict[str, Any]] = []
    states: list[Any] = []

    async def status(self: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return states.pop(0)

    monkeypatch.setattr(AsyncDataflowHook, "get_job_status", status)

    def run(*sequence: Any) -> Any:
        states[:] = list(sequence)
        trigger = TemplateJobStartTrigger(
            project_id="acme-data",
            job_id="job1",
            location="europe-west1",
            gcp_conn_id="google_cloud_default",
            poll_sleep=0,
        )
        return asyncio.run(_first(trigger)).payload

    done = run(JobState.JOB_STATE_PENDING, JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_DONE)
    assert done["status"] == "success" and done["job_id"] == "job1"
    assert calls == [{"project_id": "acme-data", "job_id": "job1", "location": "europe-west1"}] * 3
    assert run(JobState.JOB_STATE_RUNNING, JobState.JOB_STATE_FAILED)["status"] == "error"
    assert run(JobState.JOB_STATE_STOPPED)["status"] == "stopped"


async def _first(trigger: Any) -> Any:
    async for event in trigger.run():
        return event
    raise AssertionError("the trigger ended without an event")


def test_dataflow_resume_after_the_deferral_reads_the_job_in_the_profiles_project(dataflow: Any) -> None:
    """``execute_complete`` runs in a new process (the operator rebuilt from the DAG file): it must
    find the same project as ``execute`` did, not the connection's."""
    from mlops_airflow.operators.ingestion.dataflow import DataflowIngestionOperator

    fresh = DataflowIngestionOperator(task_id="managed_ingestion", pipeline=dataflow.spec)
    dataflow.http.answers = [(200, {"id": "job1", "currentState": "JOB_STATE_DONE"})]
    job = fresh.execute_complete(context(fresh), {"status": "success", "job_id": "job1", "message": "done"})
    assert job["id"] == "job1"
    method, uri, _ = dataflow.http.requests[0]
    assert (method, uri.split("?")[0]) == ("GET", f"{BASE}/jobs/job1")
