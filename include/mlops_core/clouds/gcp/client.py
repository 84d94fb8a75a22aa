"""Google Cloud through its REST APIs: Vertex AI (models, endpoints, custom jobs) and BigQuery.

No Google SDK is used: every call is one ``session.request(method, url, json=..., params=...,
timeout=...)`` on the authorised ``requests.Session``-like object that ``clients("vertex")`` or
``clients("monitoring")`` returns (``google.auth.transport.requests.AuthorizedSession`` in
production), so a contract test records the exact requests with a ten-line fake. Bodies follow
Google's REST encoding of the protos (camelCase fields, int64 as JSON strings); the tests hold
each request to the published API description (discovery document).

The ``gcp`` cloud profile supplies ``project``, ``location``, ``service_account``,
``training_image``, ``training_machine_type``, ``serving_image`` and ``machine_type``; the optional
``api_endpoint`` (a host or URL, without ``/v1``) replaces ``https://<location>-aiplatform.googleapis.com``
and ``monitoring_endpoint`` replaces ``https://monitoring.googleapis.com`` (private endpoints, tests).

Remote training (:func:`submit_training`, :func:`training_state`) runs ``python -m
mlops_core.model.remote <job folder>`` in the training image as a Vertex AI custom job named after the
job request, so a retried task attaches to the job its try already started. Cloud Monitoring
(metrics and the alert policy on the realized metric) is :mod:`mlops_core.clouds.gcp.monitoring`,
over the same :func:`call`.

Transient failures (connection errors, timeouts, HTTP 408/429/5xx) are retried with backoff
(:mod:`mlops_core.base.retry`, ``Retry-After`` honoured). Creates are made safe to repeat: before a
retry, a create looks up what it was creating (by display name; by deployed model for
``deployModel``, which is retried only when the request surely never landed).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from mlops_core.base.retry import RetryPolicy, is_transient, is_unsent, retry_after, retry_call
from mlops_core.model.remote import RUNNING, SUCCEEDED, RemoteJobFailed
from mlops_core.model.remote import job_spec as remote_job_spec

if TYPE_CHECKING:
    from collections.abc import Callable

    from mlops_core.model.remote import JobRequest
    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory, CloudProfile

log = logging.getLogger(__name__)


# Custom job states after which the job will never succeed: a resubmission creates a new one.
_DEAD_JOB_STATES = frozenset(
    {"JOB_STATE_FAILED", "JOB_STATE_CANCELLING", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"}
)

_HINTS = {
    400: "the request was rejected as invalid; the message above names the field",
    401: "the credentials were refused; check the Airflow connection of the gcp profile (conn_id)",
    403: (
        "the service account lacks a permission (roles/aiplatform.user for Vertex AI, "
        "roles/monitoring.metricWriter for Cloud Monitoring) or the API is not enabled in the project"
    ),
    404: "check settings.project and settings.location of the gcp profile, and that the resource still exists",
    409: "a resource with that name already exists or is being changed by another request; retry",
    429: "a quota is exhausted; retry later or ask for a higher quota",
}


class GoogleApiError(RuntimeError):
    """A Google Cloud REST call failed; the message names the call, the HTTP status, the API's reason and a fix."""

    def __init__(self, method: str, url: str, status: int, message: str, retry_after: float | None = None):
        self.method, self.url, self.status, self.api_message = method, url, status, message
        self.retry_after = retry_after
        hint = _HINTS.get(status, "see the message above" if status < 500 else "a server error; retry")
        super().__init__(f"{method} {url} returned HTTP {status}: {message} ({hint})")


def _error_message(response: Any) -> str:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if isinstance(error, dict) and error.get("message"):
        status = f"{error['status']}: " if error.get("status") else ""
        return f"{status}{error['message']}"
    return (getattr(response, "text", "") or "no response body")[:500]


def send(
    session: Any,
    method: str,
    url: str,
    body: dict[str, Any] | None,
    params: dict[str, Any] | None,
    timeout: float,
) -> dict[str, Any]:
    """One REST call, not retried: the JSON answer, or :class:`GoogleApiError`."""
    response = session.request(method, url, json=body, params=params, timeout=timeout)
    if response.status_code >= 400:
        raise GoogleApiError(
            method, url, int(response.status_code), _error_message(response), retry_after(response)
        )
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {"value": data}


def call(
    session: Any,
    method: str,
    url: str,
    body: dict[str, Any] | None = None,
    params: dict[str, Any] | None = None,
    timeout: float = 60.0,
    *,
    policy: RetryPolicy | None = None,
    classify: Callable[[BaseException], bool] = is_transient,
    recover: Callable[[BaseException], dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """One REST call through ``session.request``; the JSON answer, or :class:`GoogleApiError`.

    Transient failures are retried within ``policy``; ``classify`` and ``recover`` are those of
    :func:`~mlops_core.base.retry.retry_call` (non-idempotent calls narrow the one or pass the other).
    """
    return retry_call(
        lambda: send(session, method, url, body, params, timeout),
        policy=policy,
        classify=classify,
        recover=recover,
        what=f"{method} {url.split('?')[0]}",
    )


def _done(name: str, response: dict[str, Any] | None = None) -> dict[str, Any]:
    """A finished long-running operation standing in for one whose start was answered by an error."""
    return {"name": f"{name}/operations/recovered", "done": True, "response": dict(response or {})}


def label(value: str) -> str:
    """A Google Cloud label value: lowercase letters, digits, ``_`` and ``-``, at most 63 characters."""
    return re.sub(r"[^a-z0-9_-]", "-", str(value).lower())[:63]


class VertexClient:
    """The Vertex AI v1 REST calls this package needs, on one project and location.

    Collection calls (upload, list, create) go to
    ``<root>/v1/projects/<project>/locations/<location>/...``; calls on a resource or an operation
    take its full resource name (``projects/.../endpoints/123``) as the API returns it.

    :param retry: bounds of the retries of transient failures (default
        :data:`mlops_core.base.retry.DEFAULT_POLICY`: 5 attempts, 1 s base, 30 s cap, 120 s in all).
    """

    def __init__(
        self,
        session: Any,
        project: str,
        location: str,
        api_root: str | None = None,
        timeout: float = 60.0,
        retry: RetryPolicy | None = None,
    ):
        root = (api_root or f"https://{location}-aiplatform.googleapis.com").rstrip("/")
        if "://" not in root:
            root = f"https://{root}"
        self.session, self.timeout, self.retry = session, timeout, retry
        self.root = root if root.endswith("/v1") else f"{root}/v1"
        self.parent = f"{self.root}/projects/{project}/locations/{location}"

    @classmethod
    def for_profile(cls, profile: CloudProfile, clients: ClientFactory) -> VertexClient:
        """The client of the ``gcp`` profile's project and location, on ``clients("vertex")``."""
        return cls(
            clients("vertex"),
            profile.setting("project"),
            profile.setting("location"),
            profile.settings.get("api_endpoint") or None,
        )

    def url(self, name: str) -> str:
        """URL of a resource or operation from its resource name."""
        return f"{self.root}/{name.lstrip('/')}"

    def call(
        self,
        method: str,
        url: str,
        body: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
        *,
        classify: Callable[[BaseException], bool] = is_transient,
        recover: Callable[[BaseException], dict[str, Any] | None] | None = None,
    ) -> dict[str, Any]:
        return call(
            self.session,
            method,
            url,
            body,
            params,
            self.timeout,
            policy=self.retry,
            classify=classify,
            recover=recover,
        )

    def _list(self, collection: str, display_name: str) -> list[dict[str, Any]]:
        """Every resource of ``collection`` whose display name is ``display_name`` (all pages)."""
        params: dict[str, Any] = {"filter": f'display_name="{display_name}"'}
        found: list[dict[str, Any]] = []
        while True:
            page = self.call("GET", f"{self.parent}/{collection}", params=params)
            found.extend(page.get(collection) or [])
            token = page.get("nextPageToken")
            if not token:
                return found
            params = {**params, "pageToken": token}

    # -- operations
    def get_operation(self, name: str) -> dict[str, Any]:
        return self.call("GET", self.url(name))

    def cancel_operation(self, name: str) -> dict[str, Any]:
        return self.call("POST", f"{self.url(name)}:cancel")

    # -- models
    def find_models(self, display_name: str) -> list[dict[str, Any]]:
        return self._list("models", display_name)

    def upload_model(self, model: dict[str, Any]) -> dict[str, Any]:
        """``models:upload``; returns the long-running operation.

        Before a retry the model is looked up by display name: found, it is the answer (as a
        finished operation) and nothing is uploaded twice.
        """

        def uploaded(_: BaseException) -> dict[str, Any] | None:
            found = self.find_models(str(model.get("displayName", ""))) if model.get("displayName") else []
            return _done(str(found[0]["name"]), {"model": found[0]["name"]}) if found else None

        return self.call("POST", f"{self.parent}/models:upload", {"model": model}, recover=uploaded)

    # -- endpoints
    def find_endpoints(self, display_name: str) -> list[dict[str, Any]]:
        return self._list("endpoints", display_name)

    def create_endpoint(self, endpoint: dict[str, Any]) -> dict[str, Any]:
        """``endpoints.create``; returns the long-running operation (its response is the Endpoint).

        Before a retry the endpoint is looked up by display name, so a retry never makes a second one.
        """

        def created(_: BaseException) -> dict[str, Any] | None:
            found = (
                self.find_endpoints(str(endpoint.get("displayName", "")))
                if endpoint.get("displayName")
                else []
            )
            return _done(str(found[0]["name"]), found[0]) if found else None

        return self.call("POST", f"{self.parent}/endpoints", endpoint, recover=created)

    def get_endpoint(self, name: str) -> dict[str, Any]:
        return self.call("GET", self.url(name))

    def deploy_model(
        self, endpoint: str, deployed_model: dict[str, Any], traffic_split: dict[str, int]
    ) -> dict[str, Any]:
        """``endpoints.deployModel``; ``"0"`` in ``traffic_split`` is the model being deployed.

        A deploy in flight is not visible on the endpoint, so this is retried only when the request
        surely never landed (HTTP 429, no connection): a repeat would deploy the model twice.
        """
        body = {"deployedModel": deployed_model, "trafficSplit": traffic_split}
        return self.call("POST", f"{self.url(endpoint)}:deployModel", body, classify=is_unsent)

    def undeploy_model(self, endpoint: str, deployed_model_id: str) -> dict[str, Any]:
        """``endpoints.undeployModel`` (the deployed model must have no traffic left).

        Before a retry the endpoint is read: a deployed model already gone is success.
        """

        def gone(_: BaseException) -> dict[str, Any] | None:
            live = {str(d.get("id")) for d in self.get_endpoint(endpoint).get("deployedModels") or []}
            return None if str(deployed_model_id) in live else _done(endpoint)

        return self.call(
            "POST",
            f"{self.url(endpoint)}:undeployModel",
            {"deployedModelId": deployed_model_id},
            recover=gone,
        )

    def set_traffic(self, endpoint: str, traffic_split: dict[str, int]) -> dict[str, Any]:
        """``endpoints.patch`` of the traffic split only; returns the updated Endpoint."""
        return self.call(
            "PATCH",
            self.url(endpoint),
            {"trafficSplit": traffic_split},
            params={"updateMask": "traffic_split"},
        )

    def predict(self, endpoint: str, instances: list[Any]) -> dict[str, Any]:
        """``endpoints.predict``: ``{"predictions": [...], "deployedModelId": <who served it>}``."""
        return self.call("POST", f"{self.url(endpoint)}:predict", {"instances": instances})

    # -- custom jobs and hyperparameter tuning jobs
    def find_custom_jobs(self, display_name: str) -> list[dict[str, Any]]:
        return self._list("customJobs", display_name)

    def create_custom_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """``customJobs.create`` (synchronous); before a retry a live job of the same display name is the answer."""
        return self._create_job("customJobs", job)

    def create_tuning_job(self, job: dict[str, Any]) -> dict[str, Any]:
        """``hyperparameterTuningJobs.create``, made safe to retry like :meth:`create_custom_job`."""
        return self._create_job("hyperparameterTuningJobs", job)

    def _create_job(self, collection: str, job: dict[str, Any]) -> dict[str, Any]:
        def started(_: BaseException) -> dict[str, Any] | None:
            if not job.get("displayName"):
                return None
            live = [
                j
                for j in self._list(collection, str(job["displayName"]))
                if j.get("state") not in _DEAD_JOB_STATES
            ]
            return max(live, key=lambda j: str(j.get("createTime", ""))) if live else None

        return self.call("POST", f"{self.parent}/{collection}", job, recover=started)

    def get_custom_job(self, name: str) -> dict[str, Any]:
        """``customJobs.get`` or ``hyperparameterTuningJobs.get``: the resource name says which."""
        return self.call("GET", self.url(name))

    # -- feature store (Vertex AI Feature Store: feature groups over BigQuery)
    def get_feature_group(self, group: str) -> dict[str, Any]:
        return self.call("GET", f"{self.parent}/featureGroups/{group}")

    def list_features(self, group: str) -> list[dict[str, Any]]:
        """Every feature of feature group ``group`` (all pages)."""
        params: dict[str, Any] = {}
        found: list[dict[str, Any]] = []
        while True:
            page = self.call("GET", f"{self.parent}/featureGroups/{group}/features", params=params or None)
            found.extend(page.get("features") or [])
            token = page.get("nextPageToken")
            if not token:
                return found
            params = {"pageToken": token}


# -- BigQuery (the offline data of Vertex AI Feature Store)

BIGQUERY_ROOT = "https://bigquery.googleapis.com/bigquery/v2"
_BQ_PAGE = 10_000


def bigquery_query(
    profile: CloudProfile,
    clients: ClientFactory,
    sql: str,
    parameters: list[dict[str, Any]],
    *,
    max_rows: int,
) -> tuple[list[dict[str, Any]], list[list[Any]]]:
    """Run a read-only GoogleSQL query (``jobs.query``, named parameters) and read every page
    (``jobs.getQueryResults``); returns the schema's fields and the rows' raw cell values.

    More than ``max_rows`` rows is an error rather than a memory spike. ``clients("bigquery")`` is
    the profile's authorised session; ``settings.bigquery_endpoint`` replaces the public root.
    The query carries a ``requestId``, so a retried ``jobs.query`` runs it once.
    """
    import uuid

    session = clients("bigquery")
    root = (profile.settings.get("bigquery_endpoint") or BIGQUERY_ROOT).rstrip("/")
    project = profile.setting("project")
    body: dict[str, Any] = {
        "query": sql,
        "useLegacySql": False,
        "parameterMode": "NAMED",
        "queryParameters": parameters,
        "maxResults": _BQ_PAGE,
        "timeoutMs": 60_000,
        "formatOptions": {"useInt64Timestamp": True},
        "requestId": str(uuid.uuid4()),
    }
    page = call(session, "POST", f"{root}/projects/{project}/queries", body)
    reference = page.get("jobReference") or {}
    fields: list[dict[str, Any]] = list((page.get("schema") or {}).get("fields") or [])
    rows: list[list[Any]] = []
    while True:
        if page.get("jobComplete", True):
            fields = list((page.get("schema") or {}).get("fields") or fields)
            rows.extend([cell.get("v") for cell in row.get("f") or []] for row in page.get("rows") or [])
            if len(rows) > max_rows:
                raise ValueError(
                    f"the query returned more than {max_rows} rows; narrow it (max_age_days) or raise the bound"
                )
            if not page.get("pageToken"):
                return fields, rows
        params = {
            "maxResults": _BQ_PAGE,
            "timeoutMs": 60_000,
            "formatOptions.useInt64Timestamp": True,
            **({"location": reference["location"]} if reference.get("location") else {}),
            **({"pageToken": page["pageToken"]} if page.get("pageToken") else {}),
        }
        page = call(session, "GET", f"{root}/projects/{project}/queries/{reference['jobId']}", params=params)


# -- remote training


def custom_job_body(profile: CloudProfile, spec: PipelineSpec, job: JobRequest) -> dict[str, Any]:
    """The Vertex AI CustomJob that runs ``python -m mlops_core.model.remote <job folder>`` in the training image."""
    container: dict[str, Any] = {
        "imageUri": profile.setting("training_image"),
        "command": job.command,
        "env": [{"name": k, "value": str(v)} for k, v in sorted(job.env.items())],
    }
    pool = {
        "machineSpec": {
            "machineType": spec.training.instance_type or profile.setting("training_machine_type")
        },
        "replicaCount": "1",  # int64: a JSON string in Google's REST encoding
        "containerSpec": container,
    }
    job_spec: dict[str, Any] = {
        "workerPoolSpecs": [pool],
        "scheduling": {"timeout": f"{spec.training.timeout_minutes * 60}s"},
    }
    if profile.settings.get("service_account"):
        job_spec["serviceAccount"] = profile.settings["service_account"]
    return {"displayName": job.name, "jobSpec": job_spec, "labels": {"mlops-pipeline": label(spec.name)}}


def submit_training(
    profile: CloudProfile, clients: ClientFactory, job: JobRequest, spec: PipelineSpec | None = None
) -> dict[str, Any]:
    """Start the custom job of ``job`` (or attach to it); returns the handle ``{"job": <resource name>}``.

    Idempotent: a job with the same display name that has not failed or been cancelled is the one
    an earlier try started, and is reused. ``spec`` defaults to the one in the job folder.
    """
    body = custom_job_body(profile, spec or remote_job_spec(job.folder), job)
    return _submit(VertexClient.for_profile(profile, clients), "customJobs", body)


def _submit(vertex: VertexClient, collection: str, body: dict[str, Any]) -> dict[str, Any]:
    name = str(body["displayName"])
    existing = sorted(
        vertex._list(collection, name), key=lambda j: str(j.get("createTime", "")), reverse=True
    )
    for found in existing:
        if found.get("state") not in _DEAD_JOB_STATES:
            log.info(
                "%s %s already exists (%s); attaching to it", collection, found["name"], found.get("state")
            )
            return {"job": str(found["name"])}
    created = vertex._create_job(collection, body)
    log.info("started Vertex AI %s %s (%s)", collection, created.get("name"), name)
    return {"job": str(created["name"])}


def training_state(profile: CloudProfile, clients: ClientFactory, handle: dict[str, Any]) -> str:
    """``succeeded`` or ``running``; :class:`RemoteJobFailed` with the job's error once it failed or stopped."""
    name = str(handle["job"])
    job = VertexClient.for_profile(profile, clients).get_custom_job(name)
    state = str(job.get("state") or "JOB_STATE_UNSPECIFIED")
    if state == "JOB_STATE_SUCCEEDED":
        return SUCCEEDED
    if state in _DEAD_JOB_STATES or state == "JOB_STATE_PARTIALLY_SUCCEEDED":
        message = (job.get("error") or {}).get("message") or "no error message"
        kind = "hyperparameter tuning job" if "/hyperparameterTuningJobs/" in name else "custom job"
        raise RemoteJobFailed(
            f"Vertex AI {kind} {name} ended {state}: {message}; "
            "see its logs (Vertex AI > Training, or Cloud Logging)"
        )
    return RUNNING  # PENDING, QUEUED, RUNNING, UPDATING, PAUSED, UNSPECIFIED
