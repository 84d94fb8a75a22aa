"""Azure ML over its REST API (ARM), with an injected HTTP session.

Everything goes through ``session.request(method, url, json=..., params=..., headers=...,
timeout=...)`` of a ``requests.Session``-like object the Airflow layer authorises
(:class:`mlops_airflow.hooks.azureml.AzureMLHook`); this module never reads a credential, does not
need the ``azure-ai-ml`` SDK, and a contract test can record every request.

* :class:`AzureMLClient`: command jobs, MLflow model versions, managed online endpoints and
  deployments, traffic, endpoint keys and scoring, long-running-operation polling.
* :func:`command_job_body`, :func:`submit_training`, :func:`training_state`: remote training as
  an Azure ML command job named by :func:`mlops_core.model.remote.job_name` (PUT by a client-chosen
  name, so a retried task attaches to the job its try started).
* Azure Monitor (custom metrics, the metric alert rule on the realized metric) is
  :mod:`mlops_core.clouds.azure.monitor`, over the same errors and retries.

Transient failures (connection errors, timeouts, HTTP 408/429/5xx) are retried with backoff
(:mod:`mlops_core.base.retry`, ``Retry-After`` honoured). ARM PUTs and DELETEs by a client-chosen name
are idempotent; the one create that is not (a job PUT: jobs are immutable) looks the job up before
a retry and takes a 409 on a retry as "it landed".

Nothing here imports Airflow.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlops_core.base.retry import RetryPolicy, retry_after, retry_call
from mlops_core.model.remote import RUNNING, SUCCEEDED, RemoteJobFailed
from mlops_core.model.remote import job_spec as remote_job_spec

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlops_core.model.remote import JobRequest
    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory, CloudProfile

log = logging.getLogger(__name__)

# The newest GA version whose REST description ships with azure-ai-ml 1.23.1 (the dev lock): the
# contract tests validate every body against exactly this version's published models
# (tests/contract/azure_models.py). 2024-04-01 is GA too but absent from that SDK, so it could not
# be checked; 2023-10-01 has every operation used here (jobs, model versions, online endpoints and
# deployments, listKeys).
API_VERSION = "2023-10-01"
# The one call that needs a preview version: the PUT of a mirrored shadow's deployment with a data
# collector (``properties.dataCollector`` is in no GA version azure-ai-ml 1.23.1 ships; this is the
# newest preview there, and the contract tests validate that one body against its models).
PREVIEW_API_VERSION = "2024-10-01-preview"
ARM_ROOT = "https://management.azure.com"
TIMEOUT = 60.0  # seconds per HTTP call; scoring calls use SCORING_TIMEOUT
SCORING_TIMEOUT = 120.0

# Azure ML job statuses (JobStatus in the REST spec) -> mlops_core.model.remote states.
JOB_DONE = frozenset({"Completed"})
JOB_RUNNING = frozenset(
    {
        "NotStarted",
        "Queued",
        "Preparing",
        "Provisioning",
        "Starting",
        "Running",
        "Finalizing",
        "CancelRequested",
        "Paused",
        "Unknown",
    }
)
JOB_FAILED = frozenset({"Failed", "Canceled", "NotResponding"})

# provisioningState of online endpoints and deployments
PROVISIONING = frozenset({"Creating", "Updating", "Scaling", "Deleting", "Accepted", "InProgress"})
PROVISION_FAILED = frozenset({"Failed", "Canceled"})

# What a PUT of an online endpoint may carry (OnlineEndpoint / OnlineEndpointProperties of the REST
# description, read-only fields left out; ``keys`` is write-once and always read back as null).
ENDPOINT_WRITABLE = ("location", "kind", "sku", "tags")
ENDPOINT_PROPERTIES_WRITABLE = (
    "description",
    "compute",
    "mirrorTraffic",
    "publicNetworkAccess",
    "properties",
)


class AzureMLError(RuntimeError):
    """An Azure REST call failed; the message names the call, the HTTP status and ARM's own error."""

    def __init__(
        self, method: str, url: str, status: int, code: str, message: str, retry_after: float | None = None
    ):
        self.method, self.url, self.status, self.code = method, url, status, code
        self.retry_after = retry_after
        hint = _HINTS.get(status, "")
        super().__init__(f"Azure {method} {url.split('?')[0]} failed: HTTP {status} {code}: {message}{hint}")


_HINTS = {
    401: " (the service principal's token was refused: check the Azure ML connection's tenant, client id and secret)",
    403: " (the service principal lacks a role: grant it 'AzureML Data Scientist' on the workspace, "
    "or 'Monitoring Metrics Publisher' on the metrics resource)",
    404: " (check settings.subscription_id, resource_group and workspace of the azure cloud profile)",
}


def error_of(response: Any) -> tuple[str, str]:
    """(code, message) of an ARM error body ``{"error": {"code", "message"}}``, else the raw text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        inner = body.get("error")
        err: dict[str, Any] = inner if isinstance(inner, dict) else body
        code = str(err.get("code") or "")
        message = str(err.get("message") or "")
        if code or message:
            return code or "Error", message or json.dumps(body)[:500]
    return "Error", (getattr(response, "text", "") or "")[:500] or "(empty response body)"


@dataclass(frozen=True)
class Operation:
    """A long-running ARM operation's state: ``InProgress``, ``Succeeded``, ``Failed`` or ``Canceled``."""

    state: str
    message: str = ""

    @property
    def done(self) -> bool:
        return self.state != "InProgress"


def operation_url(response: Any) -> str | None:
    """Where ARM says to poll a long-running PUT/DELETE: ``Azure-AsyncOperation``, else ``Location``."""
    headers = getattr(response, "headers", None) or {}
    return headers.get("Azure-AsyncOperation") or headers.get("Location") or None


class AzureMLClient:
    """One Azure ML workspace through ARM (``api-version`` :data:`API_VERSION`).

    :param session: ``requests.Session``-like, already authorised for ARM.
    :param api_root: ARM root; ``https://management.azure.com`` unless overridden (sovereign
        clouds, or a test server), from the profile's ``settings.api_endpoint``.
    :param retry: bounds of the retries of transient failures (default
        :data:`mlops_core.base.retry.DEFAULT_POLICY`: 5 attempts, 1 s base, 30 s cap, 120 s in all).
    """

    def __init__(
        self,
        session: Any,
        subscription_id: str,
        resource_group: str,
        workspace: str,
        api_root: str | None = None,
        retry: RetryPolicy | None = None,
    ):
        self.session, self.retry = session, retry
        self.subscription_id, self.resource_group, self.workspace = subscription_id, resource_group, workspace
        self.api_root = (api_root or ARM_ROOT).rstrip("/")

    @property
    def workspace_id(self) -> str:
        """ARM id of the workspace (the prefix of every asset id it holds)."""
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )

    def url(self, path: str) -> str:
        return f"{self.api_root}{self.workspace_id}/{path.lstrip('/')}"

    # -- HTTP -------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        url: str,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        allow_404: bool = False,
        timeout: float = TIMEOUT,
        recover: Callable[[BaseException], Any] | None = None,
        api_version: str = API_VERSION,
    ) -> Any:
        """One request, retried on transient failures; the response (None for an allowed 404) or :class:`AzureMLError`.

        :param recover: see :func:`~mlops_core.base.retry.retry_call` (the lookup of a create).
        :param api_version: of an ARM call; :data:`API_VERSION` but for the one preview call.
        """
        if params is None and url.startswith(self.api_root):
            params = {"api-version": api_version}
        kwargs: dict[str, Any] = {"params": params, "timeout": timeout}
        if body is not None:
            kwargs["json"] = body
        if headers:
            kwargs["headers"] = headers

        def once() -> Any:
            response = self.session.request(method, url, **kwargs)
            if allow_404 and response.status_code == 404:
                return None
            if response.status_code >= 400:
                code, message = error_of(response)
                raise AzureMLError(method, url, response.status_code, code, message, retry_after(response))
            return response

        return retry_call(
            once, policy=self.retry, recover=recover, what=f"Azure {method} {url.split('?')[0]}"
        )

    def _json(self, response: Any) -> dict[str, Any]:
        if response is None or response.status_code == 204 or not getattr(response, "text", "x"):
            return {}
        data = response.json()
        return dict(data) if isinstance(data, dict) else {"value": data}

    def get(self, path: str) -> dict[str, Any] | None:
        """The resource at ``path`` under the workspace, or None when it does not exist."""
        response = self.call("GET", self.url(path), allow_404=True)
        return None if response is None else self._json(response)

    def put(
        self, path: str, body: dict[str, Any], api_version: str = API_VERSION
    ) -> tuple[dict[str, Any], str | None]:
        """Create-or-update ``path``; returns (resource, operation url to poll or None)."""
        response = self.call("PUT", self.url(path), body=body, api_version=api_version)
        return self._json(response), operation_url(response)

    def delete(self, path: str) -> str | None:
        """Delete ``path`` (a missing resource is fine: deleting is idempotent); returns the operation url."""
        response = self.call("DELETE", self.url(path), allow_404=True)
        return None if response is None else operation_url(response)

    def operation(self, url: str) -> Operation:
        """Poll a long-running operation once (never blocks).

        ``Azure-AsyncOperation`` URLs answer ``{"status": ..., "error": {...}}``; ``Location``
        URLs answer 202 while running and 200/201/204 when done.
        """
        response = self.call("GET", url, params={} if "api-version=" in url else None)
        if response.status_code == 202:
            return Operation("InProgress")
        body = self._json(response)
        status = str(body.get("status") or "Succeeded")
        if status in {"Succeeded", "Failed", "Canceled"}:
            error = body.get("error") or {}
            return Operation(
                status, str(error.get("message") or "") if isinstance(error, dict) else str(error)
            )
        return Operation("InProgress")

    # -- jobs -------------------------------------------------------------------------------

    def get_job(self, name: str) -> dict[str, Any] | None:
        return self.get(f"jobs/{quote(name)}")

    def put_job(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT the job; a failed attempt is followed by a lookup, so a retry never meets its own job as a stranger."""
        response = self.call(
            "PUT", self.url(f"jobs/{quote(name)}"), body=body, recover=lambda _: self.get_job(name)
        )
        return response if isinstance(response, dict) else self._json(response)

    def job_state(self, name: str) -> str:
        """:data:`~mlops_core.model.remote.SUCCEEDED` or :data:`~mlops_core.model.remote.RUNNING`; raises on failure."""
        job = self.get_job(name)
        if job is None:
            raise RemoteJobFailed(
                f"Azure ML job {name} does not exist in workspace {self.workspace}; it was deleted or "
                "never submitted (clear the task to submit it again)"
            )
        return job_state_of(name, job)

    def submit_job(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """PUT job ``name`` unless it exists: a retried or resumed task attaches to the running job.

        An existing *failed* job is an error rather than an attach: Azure ML jobs are immutable,
        so the name cannot be reused (the next Airflow try gets a new name).
        """
        existing = self.get_job(name)
        if existing is not None:
            status = str(existing.get("properties", {}).get("status", "Unknown"))
            if status in JOB_FAILED:
                raise RemoteJobFailed(
                    f"Azure ML job {name} already exists and is {status}: {_job_message(existing)}; "
                    "a retry of the task submits a new job under the next try's name"
                )
            log.info("Azure ML job %s already exists (%s); attaching to it", name, status)
            return existing
        log.info("submitting Azure ML job %s", name)
        return self.put_job(name, body)

    # -- models -----------------------------------------------------------------------------

    def model_id(self, name: str, version: str) -> str:
        return f"{self.workspace_id}/models/{name}/versions/{version}"

    def register_model(
        self, name: str, version: str, path: str, description: str = "", tags: dict[str, str] | None = None
    ) -> str:
        """PUT model ``name`` version ``version`` (an MLflow model folder at ``path``); returns its id.

        The version number is the MLflow registry's, so the PUT is idempotent and both
        registries agree on what ``v3`` is.
        """
        body = {
            "properties": {
                "modelType": "mlflow_model",
                "modelUri": path,
                "description": description,
                "tags": dict(tags or {}),
            }
        }
        self.put(f"models/{quote(name)}/versions/{quote(str(version))}", body)
        return self.model_id(name, version)

    # -- online endpoints and deployments ---------------------------------------------------

    def get_endpoint(self, endpoint: str) -> dict[str, Any] | None:
        return self.get(f"onlineEndpoints/{quote(endpoint)}")

    def put_endpoint(self, endpoint: str, body: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        return self.put(f"onlineEndpoints/{quote(endpoint)}", body)

    def get_deployment(self, endpoint: str, deployment: str) -> dict[str, Any] | None:
        return self.get(f"onlineEndpoints/{quote(endpoint)}/deployments/{quote(deployment)}")

    def put_deployment(
        self, endpoint: str, deployment: str, body: dict[str, Any], api_version: str = API_VERSION
    ) -> tuple[dict[str, Any], str | None]:
        return self.put(
            f"onlineEndpoints/{quote(endpoint)}/deployments/{quote(deployment)}", body, api_version
        )

    def get_datastore(self, name: str) -> dict[str, Any] | None:
        return self.get(f"datastores/{quote(name)}")

    def delete_deployment(self, endpoint: str, deployment: str) -> str | None:
        return self.delete(f"onlineEndpoints/{quote(endpoint)}/deployments/{quote(deployment)}")

    def set_traffic(
        self,
        endpoint: str,
        traffic: dict[str, int],
        mirror: dict[str, int] | None = None,
        current: dict[str, Any] | None = None,
    ) -> str | None:
        """Make ``traffic`` the endpoint's whole split; returns the operation url.

        ``mirror``: the endpoint's ``mirrorTraffic`` too (``{}``: no mirroring); None keeps the
        endpoint's own (its zero entries dropped, so no deleted deployment stays named in it).
        ``current``: the endpoint as just read, so it is not read again.

        ARM's PATCH on online endpoints only takes identity and tags, so the traffic goes in a
        PUT of the endpoint as it is now (read first) with ``properties.traffic`` replaced. A PUT
        replaces the whole resource, so every writable field is carried over (a dropped
        ``publicNetworkAccess: Disabled`` would open the endpoint to the internet, a dropped
        user-assigned identity would detach it) and no read-only one is sent back.
        """
        current = current or self.get_endpoint(endpoint)
        if current is None:
            raise AzureMLError(
                "PUT", self.url(f"onlineEndpoints/{endpoint}"), 404, "NotFound", "the endpoint disappeared"
            )
        props = current.get("properties", {})
        body: dict[str, Any] = {
            k: current[k] for k in ENDPOINT_WRITABLE if current.get(k) not in (None, "", {})
        }
        identity = current.get("identity") or {"type": "SystemAssigned"}
        body["identity"] = {"type": identity.get("type", "SystemAssigned")}
        if identity.get("userAssignedIdentities"):  # their principal and client ids are read-only
            body["identity"]["userAssignedIdentities"] = {k: {} for k in identity["userAssignedIdentities"]}
        body["properties"] = {
            **{k: props[k] for k in ENDPOINT_PROPERTIES_WRITABLE if props.get(k) not in (None, "", {})},
            "authMode": props.get("authMode", "Key"),
            "traffic": {k: int(v) for k, v in traffic.items()},
        }
        if mirror is None:
            mirror = {k: int(v) for k, v in (props.get("mirrorTraffic") or {}).items() if int(v) > 0}
        if mirror or props.get("mirrorTraffic"):
            body["properties"]["mirrorTraffic"] = {k: int(v) for k, v in mirror.items()}
        else:
            body["properties"].pop("mirrorTraffic", None)
        return self.put_endpoint(endpoint, body)[1]

    def endpoint_key(self, endpoint: str) -> str:
        """The endpoint's primary key (``listKeys``), the credential of key-auth scoring calls."""
        response = self.call("POST", self.url(f"onlineEndpoints/{quote(endpoint)}/listKeys"))
        key = self._json(response).get("primaryKey")
        if not key:
            raise AzureMLError(
                "POST", self.url(f"onlineEndpoints/{endpoint}/listKeys"), response.status_code, "NoKey",
                "the endpoint returned no primaryKey; is its authMode Key?",
            )  # fmt: skip
        return str(key)

    def score(self, endpoint: str, deployment: str | None, payload: dict[str, Any]) -> Any:
        """POST ``payload`` to the endpoint's scoring URI, to ``deployment`` precisely when given.

        The ``azureml-model-deployment`` header routes the call to that deployment whatever the
        traffic split, so a green deployment at 0 % can be smoke-tested before it gets traffic.
        """
        ep = self.get_endpoint(endpoint)
        uri = (ep or {}).get("properties", {}).get("scoringUri")
        if not uri:
            raise AzureMLError(
                "GET", self.url(f"onlineEndpoints/{endpoint}"), 404 if ep is None else 200, "NoScoringUri",
                "the endpoint has no scoringUri yet; wait until it is Succeeded",
            )  # fmt: skip
        headers = {
            "Authorization": f"Bearer {self.endpoint_key(endpoint)}",
            "Content-Type": "application/json",
        }
        if deployment:
            headers["azureml-model-deployment"] = deployment
        response = self.call("POST", uri, body=payload, headers=headers, params={}, timeout=SCORING_TIMEOUT)
        return response.json()


def _job_message(job: dict[str, Any]) -> str:
    """The failure text a job resource carries, and where to read the logs.

    The ARM job resource has no error field (the run's error lives in the run history, shown in
    studio); what it has is ``services``, whose entries carry an ``errorMessage`` when a part of
    the job (the compute, a service) failed, and the studio URL of the run.
    """
    services = (job.get("properties", {}) or {}).get("services") or {}
    errors = [
        f"{name}: {svc['errorMessage']}"
        for name, svc in services.items()
        if isinstance(svc, dict) and svc.get("errorMessage")
    ]
    studio = (services.get("Studio") or {}).get("endpoint")
    where = f"; logs: {studio}" if studio else "; see the job's logs in Azure ML studio"
    return ("; ".join(errors) or "the job resource reports no error text") + where


def job_state_of(name: str, job: dict[str, Any]) -> str:
    """Map an Azure ML job resource to RUNNING / SUCCEEDED, raising :class:`RemoteJobFailed` on failure."""
    status = str(job.get("properties", {}).get("status", "Unknown"))
    if status in JOB_DONE:
        return SUCCEEDED
    if status in JOB_FAILED:
        raise RemoteJobFailed(f"Azure ML job {name} is {status}: {_job_message(job)}")
    if status not in JOB_RUNNING:
        log.warning("Azure ML job %s has unknown status %r; treating it as running", name, status)
    return RUNNING


# -- profile-level helpers (what the lifecycle and the targets call) ---------------------------


def client_for(profile: CloudProfile, clients: ClientFactory, service: str = "azureml") -> AzureMLClient:
    """The workspace of the ``azure`` profile, through ``clients(service)``.

    The ARM root is the profile's ``settings.api_endpoint``, else the one the session says it is
    authorised for (``session.api_root``: :class:`mlops_airflow.hooks.azureml.AzureMLHook` sets it from
    its connection's ``api_endpoint``, the audience of the session's tokens), else public ARM.
    """
    session = clients(service)
    return AzureMLClient(
        session,
        profile.setting("subscription_id"),
        profile.setting("resource_group"),
        profile.setting("workspace"),
        api_root=profile.settings.get("api_endpoint") or getattr(session, "api_root", None) or None,
    )


def iso_duration(minutes: int) -> str:
    """``90`` -> ``PT1H30M`` (the ISO 8601 durations Azure ML limits take)."""
    hours, rest = divmod(int(minutes), 60)
    return "PT" + (f"{hours}H" if hours else "") + (f"{rest}M" if rest or not hours else "")


def environment_id(profile: CloudProfile, workspace_id: str) -> str:
    """``settings.environment`` as the ARM id a job needs.

    Accepts a full ARM id, a registry asset (``azureml://registries/...``), or a workspace
    environment as ``name:version`` / ``azureml:name:version``.
    """
    env = profile.setting("environment")
    if env.startswith(("/subscriptions/", "azureml://")):
        return env
    name, sep, version = env.removeprefix("azureml:").partition(":")
    if not sep or not name or not version:
        raise ValueError(
            f"settings.environment {env!r} of cloud profile {profile.name!r} must be 'name:version' "
            "(an Azure ML environment of the workspace), 'azureml://registries/...' or a full ARM id"
        )
    return f"{workspace_id}/environments/{name}/versions/{version}"


def command_job_body(profile: CloudProfile, spec: PipelineSpec, job: JobRequest) -> dict[str, Any]:
    """The Azure ML command job that runs ``python -m mlops_core.model.remote <job folder>``."""
    ws = (
        f"/subscriptions/{profile.setting('subscription_id')}/resourceGroups/{profile.setting('resource_group')}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{profile.setting('workspace')}"
    )
    tags = {**job.tags, "mlops.pipeline": spec.name, "mlops.ds": job.ds}
    return {
        "properties": {
            "jobType": "Command",
            "displayName": job.name,
            "experimentName": spec.name,
            "description": f"mlops training of {spec.name} for {job.ds}",
            "command": " ".join(job.command),
            "environmentId": environment_id(profile, ws),
            "computeId": f"{ws}/computes/{profile.setting('compute')}",
            "environmentVariables": dict(job.env),
            "limits": {"jobLimitsType": "Command", "timeout": iso_duration(spec.training.timeout_minutes)},
            "tags": {str(k): str(v) for k, v in tags.items()},
        }
    }


def submit_training(
    profile: CloudProfile, clients: ClientFactory, job: JobRequest, spec: PipelineSpec | None = None
) -> dict[str, Any]:
    """Start (or attach to) the command job ``job.name``; returns the handle ``{"job": name}``.

    ``spec`` defaults to the one in the job folder (written by :func:`mlops_core.model.remote.prepare`).
    """
    client = client_for(profile, clients)
    body = command_job_body(profile, spec or remote_job_spec(job.folder), job)
    client.submit_job(job.name, body)
    return {"job": job.name}


def training_state(profile: CloudProfile, clients: ClientFactory, handle: dict[str, Any]) -> str:
    """RUNNING or SUCCEEDED; :class:`~mlops_core.model.remote.RemoteJobFailed` with the job's error."""
    return client_for(profile, clients).job_state(str(handle["job"]))
