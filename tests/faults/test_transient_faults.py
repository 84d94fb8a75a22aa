"""Transient faults for real: a local HTTP server answers 503, 429, resets connections, then 200.

The Vertex AI and Azure ML clients (real ``requests`` sessions, real sockets on 127.0.0.1) must
retry what is transient and nothing else, never create a resource twice, and the triggers must
wait out a poll error instead of reporting a failed deploy (which would roll it back). Backoffs
are shrunk to milliseconds; the file runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest
import requests

from mlops_core.base import retry
from mlops_core.base.retry import RetryPolicy
from mlops_core.clouds.azure.client import AzureMLClient, AzureMLError
from mlops_core.clouds.gcp.client import GoogleApiError, VertexClient
from mlops_core.spec.profiles import CloudProfile

if TYPE_CHECKING:
    from collections.abc import Iterator

SUB, RG, WS = "sub-1", "rg-ml", "ws-ml"
WSID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
VERTEX_PARENT = "/v1/projects/proj/locations/europe-west4"

RESET = "reset"  # an answer: close the connection with an RST instead of answering

Answer = tuple[int, Any] | tuple[int, Any, dict[str, str]] | str


class FaultServer:
    """Scripted answers per ``(method, path)``: each request takes the next; the last one repeats."""

    def __init__(self) -> None:
        self.script: dict[tuple[str, str], list[Answer]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = urlsplit(self.path).path
                answer = server.next(self.command, path, json.loads(raw) if raw else None)
                if isinstance(answer, str):  # RESET
                    # SO_LINGER 0: close() sends RST, the client sees "connection reset by peer"
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                status, body = answer[0], answer[1]
                headers: dict[str, str] = answer[2] if len(answer) > 2 else {}
                data = json.dumps(body).encode() if body is not None else b""
                self.send_response(int(status))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def on(self, method: str, path: str, *answers: Answer) -> FaultServer:
        self.script[(method, path)] = list(answers)
        return self

    def next(self, method: str, path: str, body: Any) -> Answer:
        with self.lock:
            self.requests.append((method, path, body))
            answers = self.script.get((method, path))
            if not answers:
                return 404, {
                    "error": {"code": "NotFound", "message": f"nothing scripted for {method} {path}"}
                }
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in self.requests if (m, p) == (method, path))

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[FaultServer]:
    srv = FaultServer()
    yield srv
    srv.close()


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every client built with the default policy retries fast (5 attempts) and records its waits."""
    waits: list[float] = []
    monkeypatch.setattr(
        retry,
        "DEFAULT_POLICY",
        RetryPolicy(attempts=5, base=0.001, max_delay=0.01, max_total=5, sleep=waits.append),
    )
    return waits


def vertex(server: FaultServer) -> VertexClient:
    return VertexClient(requests.Session(), "proj", "europe-west4", api_root=server.url, timeout=5)


def azure(server: FaultServer) -> AzureMLClient:
    return AzureMLClient(requests.Session(), SUB, RG, WS, api_root=server.url)


FLAKY: tuple[Answer, ...] = (
    (503, {"error": {"code": 503, "status": "UNAVAILABLE", "message": "backend unavailable"}}),
    (429, {"error": {"code": 429, "message": "quota"}}, {"Retry-After": "0"}),
    RESET,
)


# -- clients: retry what is transient --------------------------------------------------------------


def test_vertex_client_rides_out_503_429_and_a_reset(server: FaultServer, sleeps: list[float]) -> None:
    path = f"{VERTEX_PARENT}/endpoints/7"
    server.on("GET", path, *FLAKY, (200, {"name": "endpoints/7", "trafficSplit": {"1": 100}}))
    got = vertex(server).get_endpoint(path.removeprefix("/v1/"))
    assert got["trafficSplit"] == {"1": 100}
    assert server.count("GET", path) == 4
    assert len(sleeps) == 3 and sleeps[1] == 0.0  # Retry-After: 0 is honoured in place of the backoff


def test_azure_client_rides_out_503_429_and_a_reset(server: FaultServer, sleeps: list[float]) -> None:
    path = f"{WSID}/onlineEndpoints/ep"
    server.on("GET", path, *FLAKY, (200, {"name": "ep", "properties": {"provisioningState": "Succeeded"}}))
    got = azure(server).get_endpoint("ep")
    assert got is not None and got["properties"]["provisioningState"] == "Succeeded"
    assert server.count("GET", path) == 4
    assert sleeps[1] == 0.0


def test_retry_after_seconds_are_waited(server: FaultServer, sleeps: list[float]) -> None:
    path = f"{WSID}/onlineEndpoints/ep"
    server.on(
        "GET", path, (429, {"error": {"code": "TooMany"}}, {"Retry-After": "0.02"}), (200, {"name": "ep"})
    )
    azure(server).get_endpoint("ep")
    assert sleeps == [0.02]


@pytest.mark.parametrize("status", [400, 401, 403, 409])
def test_a_client_error_fails_at_once_without_retry(
    server: FaultServer, sleeps: list[float], status: int
) -> None:
    g_path, a_path = f"{VERTEX_PARENT}/endpoints/7", f"{WSID}/onlineEndpoints/ep"
    server.on("GET", g_path, (status, {"error": {"message": "no"}}), (200, {}))
    server.on("GET", a_path, (status, {"error": {"code": "Bad", "message": "no"}}), (200, {}))
    with pytest.raises(GoogleApiError, match=f"HTTP {status}"):
        vertex(server).get_endpoint(g_path.removeprefix("/v1/"))
    with pytest.raises(AzureMLError, match=f"HTTP {status}"):
        azure(server).get_endpoint("ep")
    assert server.count("GET", g_path) == 1 and server.count("GET", a_path) == 1 and sleeps == []


def test_retries_are_bounded_by_attempts(server: FaultServer, sleeps: list[float]) -> None:
    path = f"{WSID}/onlineEndpoints/ep"
    server.on("GET", path, (503, {"error": {"code": "ServiceUnavailable", "message": "down"}}))
    with pytest.raises(AzureMLError, match="HTTP 503") as info:
        azure(server).get_endpoint("ep")
    assert server.count("GET", path) == 5 and len(sleeps) == 4
    assert "gave up after 5 attempt(s)" in "\n".join(getattr(info.value, "__notes__", []))


def test_retries_are_bounded_by_time(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Retry-After beyond the time budget ends the retries rather than sleeping past it."""
    waits: list[float] = []
    client = azure(server)
    client.retry = RetryPolicy(attempts=10, base=0.001, max_total=1.0, sleep=waits.append)
    path = f"{WSID}/onlineEndpoints/ep"
    server.on("GET", path, (429, {"error": {"code": "TooMany"}}, {"Retry-After": "3600"}))
    with pytest.raises(AzureMLError, match="HTTP 429"):
        client.get_endpoint("ep")
    assert server.count("GET", path) == 1 and waits == []


def test_a_refused_connection_is_retried_then_reported(sleeps: list[float]) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = AzureMLClient(requests.Session(), SUB, RG, WS, api_root=f"http://127.0.0.1:{port}")
    with pytest.raises(requests.ConnectionError):
        client.get_endpoint("ep")
    assert len(sleeps) == 4


# -- clients: creates are safe to repeat ------------------------------------------------------------


def test_vertex_custom_job_create_is_not_repeated_when_the_first_landed(
    server: FaultServer, sleeps: list[float]
) -> None:
    """POST customJobs answers 503 although the job was created: the lookup finds it, no second POST."""
    collection = f"{VERTEX_PARENT}/customJobs"
    job = {
        "name": "projects/proj/locations/europe-west4/customJobs/42",
        "displayName": "train-1",
        "state": "JOB_STATE_QUEUED",
    }
    server.on("POST", collection, (503, {"error": {"message": "unavailable"}}), (200, job))
    server.on("GET", collection, (200, {"customJobs": [job]}))
    created = vertex(server).create_custom_job({"displayName": "train-1", "jobSpec": {}})
    assert created["name"] == job["name"]
    assert server.count("POST", collection) == 1


def test_vertex_custom_job_create_is_retried_when_the_first_did_not_land(
    server: FaultServer, sleeps: list[float]
) -> None:
    collection = f"{VERTEX_PARENT}/customJobs"
    job = {"name": "projects/proj/locations/europe-west4/customJobs/43", "displayName": "train-2"}
    server.on("POST", collection, (503, {"error": {"message": "unavailable"}}), (200, job))
    server.on("GET", collection, (200, {"customJobs": []}))
    assert vertex(server).create_custom_job({"displayName": "train-2", "jobSpec": {}})["name"] == job["name"]
    assert server.count("POST", collection) == 2


def test_vertex_endpoint_create_finds_the_endpoint_made_by_a_failed_attempt(
    server: FaultServer, sleeps: list[float]
) -> None:
    collection = f"{VERTEX_PARENT}/endpoints"
    ep = {"name": "projects/proj/locations/europe-west4/endpoints/9", "displayName": "mlops-x"}
    server.on("POST", collection, RESET, (200, {"name": "never"}))
    server.on("GET", collection, (200, {"endpoints": [ep]}))
    op = vertex(server).create_endpoint({"displayName": "mlops-x"})
    assert op["done"] is True and op["response"]["name"] == ep["name"]
    assert server.count("POST", collection) == 1


def test_vertex_deploy_model_is_not_repeated_after_an_ambiguous_5xx(
    server: FaultServer, sleeps: list[float]
) -> None:
    """A deploy in flight is invisible, so a 5xx on deployModel is reported, not retried (no double deploy)."""
    path = f"{VERTEX_PARENT}/endpoints/9:deployModel"
    server.on("POST", path, (500, {"error": {"message": "internal"}}), (200, {"name": "op"}))
    with pytest.raises(GoogleApiError, match="HTTP 500"):
        vertex(server).deploy_model(
            "projects/proj/locations/europe-west4/endpoints/9", {"model": "m"}, {"0": 100}
        )
    assert server.count("POST", path) == 1


def test_vertex_deploy_model_is_retried_when_throttled(server: FaultServer, sleeps: list[float]) -> None:
    path = f"{VERTEX_PARENT}/endpoints/9:deployModel"
    server.on(
        "POST", path, (429, {"error": {"message": "quota"}}, {"Retry-After": "0"}), (200, {"name": "op-1"})
    )
    op = vertex(server).deploy_model(
        "projects/proj/locations/europe-west4/endpoints/9", {"model": "m"}, {"0": 100}
    )
    assert op["name"] == "op-1" and server.count("POST", path) == 2


def test_azure_job_put_is_not_repeated_when_the_first_landed(
    server: FaultServer, sleeps: list[float]
) -> None:
    path = f"{WSID}/jobs/train-1"
    job = {"name": "train-1", "properties": {"status": "Queued"}}
    server.on("PUT", path, (502, {"error": {"code": "BadGateway", "message": "gateway"}}), (201, job))
    server.on("GET", path, (200, job))
    assert azure(server).put_job("train-1", {"properties": {}}) == job
    assert server.count("PUT", path) == 1


def test_azure_job_put_takes_409_on_a_retry_as_success(server: FaultServer, sleeps: list[float]) -> None:
    """PUT times out (reset), the lookup is not consistent yet (404), the retry meets 409: it landed."""
    path = f"{WSID}/jobs/train-2"
    job = {"name": "train-2", "properties": {"status": "Running"}}
    server.on("PUT", path, RESET, (409, {"error": {"code": "Conflict", "message": "already exists"}}))
    server.on("GET", path, (404, {"error": {"code": "NotFound", "message": "no"}}), (200, job))
    assert azure(server).put_job("train-2", {"properties": {}}) == job
    assert server.count("PUT", path) == 2


def test_azure_job_put_409_on_the_first_attempt_is_an_error(server: FaultServer, sleeps: list[float]) -> None:
    path = f"{WSID}/jobs/train-3"
    server.on("PUT", path, (409, {"error": {"code": "Conflict", "message": "already exists"}}))
    with pytest.raises(AzureMLError, match="HTTP 409"):
        azure(server).put_job("train-3", {"properties": {}})
    assert server.count("PUT", path) == 1


# -- triggers: a poll error is not a failed deploy ---------------------------------------------------

AZ_DEPLOYMENT = f"{WSID}/onlineEndpoints/mlops-x/deployments/green-v2"
AZ_ENDPOINT = f"{WSID}/onlineEndpoints/mlops-x"


def az_profile(server: FaultServer) -> CloudProfile:
    return CloudProfile(
        name="azure",
        lake="file:///tmp/lake",
        landing="file:///tmp/landing",
        conn_id="azure_default",
        training_backend="azureml",
        deploy_target="azureml",
        monitoring_export="none",
        settings={
            "subscription_id": SUB,
            "resource_group": RG,
            "workspace": WS,
            "location": "westeurope",
            "api_endpoint": server.url,
        },
    )


def gcp_profile(server: FaultServer) -> CloudProfile:
    return CloudProfile(
        name="gcp",
        lake="file:///tmp/lake",
        landing="file:///tmp/landing",
        conn_id="google_cloud_default",
        training_backend="vertex",
        deploy_target="vertex",
        monitoring_export="none",
        settings={"project": "proj", "location": "europe-west4", "api_endpoint": server.url},
    )


@pytest.fixture
def no_client_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Clients give up at the first error, so what is tested is the trigger's own tolerance."""
    monkeypatch.setattr(retry, "DEFAULT_POLICY", retry.NO_RETRY)


@pytest.fixture
def cloud(monkeypatch: pytest.MonkeyPatch, server: FaultServer) -> FaultServer:
    """The triggers resolve the profile pointing at the fault server and talk to it with plain sessions."""
    from mlops_airflow.hooks import cloud as cloud_glue
    from mlops_core.spec import profiles as clouds

    profiles = {"azure": az_profile(server), "gcp": gcp_profile(server)}
    monkeypatch.setattr(clouds, "resolve", lambda name: profiles[name])
    session = requests.Session()
    monkeypatch.setattr(cloud_glue, "clients_for", lambda profile: lambda service: session)
    return server


def collect(trigger: Any) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(asyncio.wait_for(run(), timeout=20))


def endpoint_trigger(**kw: Any) -> Any:
    from mlops_airflow.triggers.cloud import EndpointTrigger
    from mlops_core.deploy import UPDATING

    deployment = {
        "target": "azureml",
        "model_name": "m",
        "version": "2",
        "previous_version": "1",
        "endpoint": "mlops-x",
        "state": UPDATING,
        "extra": {"endpoint": "mlops-x", "deployment": "green-v2", "previous_deployment": None},
    }
    opts = {"poll_seconds": 0, "retry_base_seconds": 0.001, "retry_max_seconds": 0.01, **kw}
    return EndpointTrigger("azure", "azureml", deployment, **opts)


def state(value: str) -> tuple[int, Any]:
    return 200, {"name": "green-v2", "properties": {"provisioningState": value}}


READY_ENDPOINT = (
    200,
    {"name": "mlops-x", "properties": {"provisioningState": "Succeeded", "traffic": {"green-v2": 100}}},
)
ERROR_500 = (500, {"error": {"code": "InternalServerError", "message": "try again"}})


@pytest.mark.usefixtures("no_client_retry")
def test_endpoint_trigger_survives_a_500_between_updating_polls(cloud: FaultServer) -> None:
    cloud.on("GET", AZ_DEPLOYMENT, state("Updating"), ERROR_500, state("Updating"), state("Succeeded"))
    cloud.on("GET", AZ_ENDPOINT, READY_ENDPOINT)
    (event,) = collect(endpoint_trigger())
    assert event["status"] == "success" and event["deployment"]["state"] == "ready"
    assert cloud.count("GET", AZ_DEPLOYMENT) == 4


@pytest.mark.usefixtures("no_client_retry")
def test_endpoint_trigger_survives_a_reset_and_a_429(cloud: FaultServer) -> None:
    throttled = (429, {"error": {"code": "TooManyRequests", "message": "slow down"}}, {"Retry-After": "0"})
    cloud.on("GET", AZ_DEPLOYMENT, state("Creating"), RESET, throttled, state("Succeeded"))
    cloud.on("GET", AZ_ENDPOINT, READY_ENDPOINT)
    (event,) = collect(endpoint_trigger())
    assert event["status"] == "success"


@pytest.mark.usefixtures("no_client_retry")
def test_endpoint_trigger_reports_a_failed_deployment(cloud: FaultServer) -> None:
    # the reason lives on the deployment's operation (a deployment resource has no error field)
    op = f"/subscriptions/{SUB}/providers/Microsoft.MachineLearningServices/locations/westeurope/mfeOperationsStatus/op-1"
    cloud.on("GET", AZ_DEPLOYMENT, state("Updating"), state("Failed"))
    cloud.on(
        "GET", op, (200, {"status": "Failed", "error": {"code": "ImagePullFailure", "message": "image pull"}})
    )
    trigger = endpoint_trigger()
    trigger.deployment["extra"]["operation"] = f"{cloud.url}{op}?api-version=2023-10-01"
    (event,) = collect(trigger)
    assert event["status"] == "error" and event["reason"] == "failed"
    assert "is Failed: image pull" in event["message"]


@pytest.mark.usefixtures("no_client_retry")
def test_endpoint_trigger_gives_up_after_too_many_transient_errors(cloud: FaultServer) -> None:
    cloud.on("GET", AZ_DEPLOYMENT, state("Updating"), ERROR_500)
    (event,) = collect(endpoint_trigger(max_transient_errors=3))
    assert event["status"] == "error" and event["reason"] == "transient"
    assert "gave up after 4 transient error(s) in a row" in event["message"]
    assert cloud.count("GET", AZ_DEPLOYMENT) == 5  # one good poll, 3 tolerated errors, the 4th ends it


@pytest.mark.usefixtures("no_client_retry")
def test_endpoint_trigger_stops_at_once_on_a_non_transient_error(cloud: FaultServer) -> None:
    cloud.on("GET", AZ_DEPLOYMENT, (403, {"error": {"code": "AuthorizationFailed", "message": "no role"}}))
    (event,) = collect(endpoint_trigger())
    assert event["status"] == "error" and event["reason"] == "error" and "HTTP 403" in event["message"]
    assert cloud.count("GET", AZ_DEPLOYMENT) == 1


@pytest.mark.usefixtures("no_client_retry")
def test_endpoint_trigger_transient_count_resets_after_a_good_poll(cloud: FaultServer) -> None:
    cloud.on(
        "GET",
        AZ_DEPLOYMENT,
        ERROR_500,
        ERROR_500,
        state("Updating"),
        ERROR_500,
        ERROR_500,
        state("Succeeded"),
    )
    cloud.on("GET", AZ_ENDPOINT, READY_ENDPOINT)
    (event,) = collect(endpoint_trigger(max_transient_errors=2))
    assert event["status"] == "success"


def test_endpoint_trigger_round_trips_its_retry_settings() -> None:
    from airflow.sdk.module_loading import import_string

    path, kwargs = endpoint_trigger(max_transient_errors=4, max_transient_seconds=60).serialize()
    json.dumps(kwargs)
    assert kwargs["max_transient_errors"] == 4 and kwargs["max_transient_seconds"] == 60
    assert import_string(path)(**kwargs).serialize() == (path, kwargs)


VERTEX_JOB = "projects/proj/locations/europe-west4/customJobs/42"


def job_trigger(**kw: Any) -> Any:
    from mlops_airflow.triggers.cloud import RemoteJobTrigger

    opts = {"poll_seconds": 0, "retry_base_seconds": 0.001, "retry_max_seconds": 0.01, **kw}
    return RemoteJobTrigger("gcp", {"job": VERTEX_JOB}, **opts)


@pytest.mark.usefixtures("no_client_retry")
def test_remote_job_trigger_survives_a_503(cloud: FaultServer) -> None:
    path = f"/v1/{VERTEX_JOB}"
    cloud.on(
        "GET",
        path,
        (200, {"state": "JOB_STATE_RUNNING"}),
        (503, {"error": {"status": "UNAVAILABLE", "message": "later"}}),
        (200, {"state": "JOB_STATE_SUCCEEDED"}),
    )
    (event,) = collect(job_trigger())
    assert event == {"status": "success", "handle": {"job": VERTEX_JOB}}


@pytest.mark.usefixtures("no_client_retry")
def test_remote_job_trigger_reports_a_failed_job(cloud: FaultServer) -> None:
    path = f"/v1/{VERTEX_JOB}"
    cloud.on("GET", path, (200, {"state": "JOB_STATE_FAILED", "error": {"message": "OOM"}}))
    (event,) = collect(job_trigger())
    assert event["status"] == "error" and event["reason"] == "failed" and "OOM" in event["message"]


def azure_job_trigger(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> Any:
    from mlops_airflow.hooks.azureml import AzureMLHook
    from mlops_airflow.triggers.azureml import AzureMLJobTrigger

    conn = {"conn_type": "azure_ml", "login": "id", "password": "secret", "extra": {"tenant_id": "t"}}
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_ML_FAULTS", json.dumps(conn))
    session = requests.Session()
    monkeypatch.setattr(AzureMLHook, "get_session", lambda self, scope="": session)
    return AzureMLJobTrigger(
        job_name="train-1",
        azure_ml_conn_id="azure_ml_faults",
        poke_interval=0,
        max_attempts=20,
        subscription_id=SUB,
        resource_group=RG,
        workspace=WS,
        api_root=server.url,
        retry_base_seconds=0.001,
        retry_max_seconds=0.01,
    )


@pytest.mark.usefixtures("no_client_retry")
def test_azure_job_trigger_survives_a_reset_and_a_503(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = f"{WSID}/jobs/train-1"
    server.on(
        "GET",
        path,
        (200, {"properties": {"status": "Running"}}),
        RESET,
        (503, {"error": {"code": "ServiceUnavailable", "message": "later"}}),
        (200, {"properties": {"status": "Completed"}}),
    )
    (event,) = collect(azure_job_trigger(server, monkeypatch))
    assert event["status"] == "success", event


@pytest.mark.usefixtures("no_client_retry")
def test_azure_job_trigger_reports_a_failed_job(server: FaultServer, monkeypatch: pytest.MonkeyPatch) -> None:
    path = f"{WSID}/jobs/train-1"
    failed = {"jobType": "Command", "status": "Failed", "services": {"Tracking": {"errorMessage": "exit 3"}}}
    server.on("GET", path, (200, {"properties": failed}))
    (event,) = collect(azure_job_trigger(server, monkeypatch))
    assert event["status"] == "error" and event["reason"] == "failed" and "exit 3" in event["message"]


# -- one classification for everyone ------------------------------------------------------------------


def _sdk_faults() -> list[tuple[BaseException, bool]]:
    from azure.core.exceptions import HttpResponseError, ServiceRequestError
    from botocore.exceptions import ClientError, EndpointConnectionError

    def boto(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
            "Describe",
        )

    unavailable = HttpResponseError(message="down")
    unavailable.status_code = 503
    forbidden = HttpResponseError(message="no")
    forbidden.status_code = 403
    return [
        (boto("ThrottlingException", 400), True),
        (boto("InternalFailure", 500), True),
        (boto("ValidationException", 400), False),
        (EndpointConnectionError(endpoint_url="http://x"), True),
        (ServiceRequestError("no route"), True),
        (unavailable, True),
        (forbidden, False),
        (ConnectionResetError(), True),
        (TimeoutError(), True),
        (ValueError("bad"), False),
    ]


def test_is_transient_classifies_sdk_errors() -> None:
    from mlops_core.deploy import DeploymentFailed
    from mlops_core.model.remote import RemoteJobFailed

    for fault, want in [*_sdk_faults(), (DeploymentFailed("Failed"), False), (RemoteJobFailed("x"), False)]:
        assert retry.is_transient(fault) is want, fault
    assert [retry.is_transient(s) for s in (408, 429, 500, 503, 599, 400, 401, 404, 409)] == [True] * 5 + [
        False
    ] * 4
