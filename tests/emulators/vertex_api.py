"""A stateful Vertex AI v1 API (and Cloud Monitoring's ``timeSeries.create``) on 127.0.0.1.

No emulator of Vertex AI exists, so the operators' Vertex path would otherwise never run over
HTTP. :class:`VertexAPI` is a :class:`~tests.emulators.loopback.LoopbackAPI` that answers the
methods this package calls, keeps their state and refuses what Google would refuse:

* every request is first held to Google's published API description
  (:mod:`tests.contract.discovery`: the method, its query parameters, its body); then to the
  rules the description states in prose (a traffic split adds up to 100 and names deployed
  models; a deployed model with traffic cannot be undeployed; label and env var names; one point
  per time series...). A refusal raises :class:`~tests.emulators.loopback.Invalid`: the client
  gets a 400 and the test finds it in ``violations``. The emulator's own answers are checked
  against the description too, so they are answers the real API could give;
* long-running operations (model upload, endpoint creation, deploy, undeploy) finish after
  ``operation_polls`` polls, or when the test calls :meth:`VertexAPI.settle` (time passing);
  names carry the project *number*, as the real API's do, even when the request used the id;
* the deployed model answers like its serving container: deploying downloads the Model's
  ``artifactUri`` from the (emulated) Cloud Storage, loads it with MLflow, and ``predict`` runs
  MLflow's own scoring code (``mlflow.pyfunc.scoring_server.invocations``, what the container's
  ``/invocations`` runs) on the request. A model whose display name is in
  :attr:`VertexAPI.wrong_predictions` answers wrong predictions (a broken image);
* custom jobs go PENDING -> QUEUED on polls; :meth:`VertexAPI.start_container` runs the job's
  container command from the CustomJob body (``python`` is this interpreter, the image's
  environment is ``container_env``) and reports RUNNING, then SUCCEEDED or FAILED by its exit
  status (``fail_with`` fails it on demand).

No authentication is checked (the test connection is anonymous; a bearer token, if sent, must
be well formed).
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.contract import discovery
from tests.emulators.loopback import Invalid, LoopbackAPI
from tests.helpers import load_as_serving_container

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.emulators.loopback import Request

TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."
_LABEL = re.compile(r"^[\w-]{0,63}$")  # lowercase letters, digits, _ and - (international allowed)
_LABEL_KEY = re.compile(r"^[a-z][\w-]{0,62}$")
_C_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_METRIC_LABEL = re.compile(r"^[a-z][a-z0-9_]{0,99}$")
_IMAGE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
_FILTER_TERM = re.compile(r'^\s*(?P<key>[A-Za-z_.]+)\s*(?P<op>!=|=)\s*(?P<value>"(?:[^"\\]|\\.)*"|\S+)\s*$')


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": status, "message": message, "status": code}}


def _labels(labels: dict[str, str], where: str) -> None:
    for key, value in labels.items():
        if not _LABEL_KEY.match(key) or key != key.lower():
            raise Invalid(
                f"{where}: label key {key!r} must start with a lowercase letter (<= 63 of [a-z0-9_-])"
            )
        if not _LABEL.match(value) or value != value.lower():
            raise Invalid(f"{where}: label value {value!r} may only hold lowercase letters, digits, _ and -")


def _split_rules(split: dict[str, int], allowed: set[str], where: str) -> None:
    """Endpoint.trafficSplit: known deployed models, percentages adding up to 100 (or empty)."""
    unknown = set(split) - allowed
    if unknown:
        raise Invalid(
            f"{where}: {sorted(unknown)} are not deployed on the endpoint (deployed: {sorted(allowed)})"
        )
    if any(not 0 <= pct <= 100 for pct in split.values()):
        raise Invalid(f"{where}: percentages must be between 0 and 100, got {split}")
    if split and sum(split.values()) != 100:
        raise Invalid(
            f"{where}: the traffic percentages must add up to 100, got {split} ({sum(split.values())})"
        )


@dataclass
class Operation:
    """A long-running operation: done after ``polls`` reads, then ``finish()`` gives its response."""

    name: str
    metadata_type: str
    finish: Callable[[], dict[str, Any]]
    polls: int
    created: str = field(default_factory=now)
    done: bool = False
    response: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

    def complete(self) -> None:
        if self.done:
            return
        self.done = True
        try:
            self.response = self.finish()
        except OperationFailed as failed:
            self.error = {"code": failed.code, "message": str(failed)}

    def to_json(self) -> dict[str, Any]:
        generic = {"createTime": self.created, "updateTime": now()}
        body: dict[str, Any] = {
            "name": self.name,
            "metadata": {"@type": f"{TYPE}{self.metadata_type}", "genericMetadata": generic},
            "done": self.done,
        }
        if self.error is not None:
            body["error"] = self.error
        elif self.done:
            body["response"] = self.response
        return body


class OperationFailed(Exception):
    """The platform's work behind an operation failed (``code``: a google.rpc.Code number)."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class Container:
    """A deployed model's serving container: the loaded MLflow model."""

    model: Any
    display_name: str


class VertexAPI(LoopbackAPI):
    """Vertex AI v1 models, endpoints, custom jobs and operations, plus Cloud Monitoring time series.

    :param storage_options: fsspec options of ``gs://`` (the GCS emulator) for the artifacts.
    :param container_env: the environment the training image gives a job's command (on top of
        the job's own ``env``).
    :param operation_polls: reads of an operation before it is done.
    :param page_size: list calls answer at most this many per page (the client must page).
    """

    def __init__(
        self,
        *,
        project: str = "mlops-test",
        project_number: str = "424242424242",
        location: str = "europe-west4",
        storage_options: dict[str, Any] | None = None,
        container_env: dict[str, str] | None = None,
        operation_polls: int = 2,
        page_size: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__("Vertex AI")
        self.project, self.number, self.location = project, project_number, location
        self.storage_options = dict(storage_options or {})
        self.container_env = dict(container_env or {})
        self.operation_polls, self.page_size = operation_polls, page_size
        self.random = random.Random(seed)
        self._ids = itertools.count(1_000_001)
        self.models: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, Operation] = {}
        self.containers: dict[str, Container] = {}  # by deployed model id
        self.series: list[dict[str, Any]] = []
        self.job_states_served: list[tuple[str, str]] = []  # (job name, state) of each job read
        self.container_runs: dict[str, subprocess.CompletedProcess[str]] = {}
        self.container_seconds: dict[str, float] = {}
        self.predictions_served: list[tuple[str, str]] = []  # (deployed model id, model display name)
        self.wrong_predictions: set[str] = set()  # model display names whose container answers wrong
        self.handlers: dict[str, Callable[[Request, dict[str, str]], tuple[int, Any]]] = {
            "projects.locations.models.upload": self._upload_model,
            "projects.locations.models.list": self._list_models,
            "projects.locations.models.operations.get": self._get_operation,
            "projects.locations.endpoints.create": self._create_endpoint,
            "projects.locations.endpoints.get": self._get_endpoint,
            "projects.locations.endpoints.list": self._list_endpoints,
            "projects.locations.endpoints.patch": self._patch_endpoint,
            "projects.locations.endpoints.deployModel": self._deploy_model,
            "projects.locations.endpoints.undeployModel": self._undeploy_model,
            "projects.locations.endpoints.predict": self._predict,
            "projects.locations.endpoints.operations.get": self._get_operation,
            "projects.locations.endpoints.operations.cancel": self._cancel_operation,
            "projects.locations.operations.get": self._get_operation,
            "projects.locations.customJobs.create": self._create_job,
            "projects.locations.customJobs.get": self._get_job,
            "projects.locations.customJobs.list": self._list_jobs,
            "projects.timeSeries.create": self._create_time_series,
        }
        for verb in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            self.route(verb, r"/.*")(self._dispatch)

    # -- dispatch: the API description first, then the method's own rules

    def _dispatch(self, req: Request) -> tuple[int, Any]:
        auth = req.headers.get("Authorization") or req.headers.get("authorization")
        if auth is not None and not re.fullmatch(r"Bearer \S+", auth):
            return _error(401, "UNAUTHENTICATED", "Request had invalid authentication credentials.")
        problems = discovery.request_errors(req.method, req.path, req.body, req.query)
        if problems:
            raise Invalid("; ".join(problems))
        method = discovery.find_method(req.method, req.path)
        method_id = method.id.split(".", 1)[1]
        handler = self.handlers.get(method_id)
        if handler is None:
            raise Invalid(f"{method.id} is in the API description, but this emulator does not implement it")
        match = method.pattern.fullmatch(req.path.lstrip("/"))
        groups = match.groupdict() if match else {}
        if "projectsId" in groups:
            if groups["projectsId"] not in (self.project, self.number):
                return _error(
                    403, "PERMISSION_DENIED", f"Permission denied on project {groups['projectsId']}"
                )
            if groups.get("locationsId", self.location) != self.location:
                raise Invalid(
                    f"location {groups['locationsId']} is not the one this API serves ({self.location})"
                )
        try:
            status, body = handler(req, groups)
        except Invalid:
            raise
        except Exception as err:  # the emulator's own bug: a test failure, not a retryable outage
            self.violations.append(
                f"the emulator failed on {req.method} {req.path}: {type(err).__name__}: {err}"
            )
            return _error(400, "INTERNAL", f"emulator error: {type(err).__name__}: {err}")
        for problem in discovery.response_errors(req.method, req.path, status, body):
            self.violations.append(f"the emulator's own answer: {problem}")
        return status, body

    def _parent(self) -> str:
        return f"projects/{self.number}/locations/{self.location}"

    def _new_id(self) -> str:
        return str(next(self._ids))

    def _operation(
        self, resource: str, metadata_type: str, finish: Callable[[], dict[str, Any]]
    ) -> dict[str, Any]:
        op = Operation(f"{resource}/operations/{self._new_id()}", metadata_type, finish, self.operation_polls)
        self.operations[op.name] = op
        return op.to_json()

    def settle(self) -> None:
        """Let time pass: every operation still running finishes."""
        with self.lock:
            for op in list(self.operations.values()):
                op.complete()

    def _page(self, items: list[dict[str, Any]], req: Request, key: str) -> tuple[int, dict[str, Any]]:
        start = int(req.query.get("pageToken") or 0)
        size = min(int(req.query.get("pageSize") or self.page_size), self.page_size)
        page: dict[str, Any] = {}
        if items[start : start + size]:
            page[key] = [copy.deepcopy(i) for i in items[start : start + size]]
        if start + size < len(items):
            page["nextPageToken"] = str(start + size)
        return 200, page

    @staticmethod
    def _matches(resource: dict[str, Any], flt: str, fields: dict[str, str]) -> bool:
        """The filter grammar the list methods document, for the fields ``fields`` names (and labels)."""
        if not flt.strip():
            return True
        for term in re.split(r"\s+AND\s+", flt.strip()):
            found = _FILTER_TERM.match(term)
            if not found:
                raise Invalid(f"filter {flt!r}: cannot parse {term!r}")
            key, op, value = found["key"], found["op"], found["value"]
            value = json.loads(value) if value.startswith('"') else value
            snake = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
            if snake.startswith("labels."):
                actual = (resource.get("labels") or {}).get(key.split(".", 1)[1])
            elif snake in fields:
                actual = resource.get(fields[snake])
                if snake in ("model", "endpoint") and actual:
                    actual = str(actual).rsplit("/", 1)[-1]
            else:
                raise Invalid(
                    f"filter {flt!r}: {key!r} is not a filter field here ({', '.join(fields)}, labels)"
                )
            if (actual == value) != (op == "="):
                return False
        return True

    # -- models

    def _upload_model(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        model = copy.deepcopy(req.body["model"])
        _labels(model.get("labels") or {}, "model.labels")
        if len(model["displayName"]) > 128:
            raise Invalid("model.displayName: at most 128 characters")
        if not str(model.get("artifactUri", "")).startswith("gs://"):
            raise Invalid(
                f"model.artifactUri must be a Cloud Storage directory (gs://...), got {model.get('artifactUri')!r}"
            )
        model_id = self._new_id()
        name = f"{self._parent()}/models/{model_id}"

        def finish() -> dict[str, Any]:
            stamp = now()
            self.models[model_id] = {
                **model,
                "name": name,
                "versionId": "1",
                "createTime": stamp,
                "updateTime": stamp,
            }
            return {"@type": f"{TYPE}UploadModelResponse", "model": name, "modelVersionId": "1"}

        return 200, self._operation(name, "UploadModelOperationMetadata", finish)

    def _list_models(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        flt = req.query.get("filter", "")
        fields = {"display_name": "displayName", "model": "name"}
        found = [m for m in self.models.values() if self._matches(m, flt, fields)]
        return self._page(found, req, "models")

    # -- operations

    def _find_operation(self, path: str) -> Operation | None:
        name = path.lstrip("/").split("/", 1)[1]  # drop v1/
        return self.operations.get(name.replace(f"projects/{self.project}/", f"projects/{self.number}/", 1))

    def _get_operation(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        op = self._find_operation(req.path)
        if op is None:
            return _error(404, "NOT_FOUND", f"Operation {req.path} not found.")
        if not op.done:
            op.polls -= 1
            if op.polls <= 0:
                op.complete()
        return 200, op.to_json()

    def _cancel_operation(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        op = self._find_operation(req.path.removesuffix(":cancel"))
        if op is None:
            return _error(404, "NOT_FOUND", f"Operation {req.path} not found.")
        if not op.done:
            op.done, op.error = True, {"code": 1, "message": "Operation cancelled by the caller."}
        return 200, {}

    # -- endpoints

    def _endpoint(self, groups: dict[str, str]) -> dict[str, Any] | None:
        return self.endpoints.get(groups["endpointsId"])

    @staticmethod
    def _endpoint_json(endpoint: dict[str, Any]) -> dict[str, Any]:
        """As the API renders it: empty lists and maps left out (proto3 JSON)."""
        return {k: copy.deepcopy(v) for k, v in endpoint.items() if v not in ({}, [], None)}

    def _create_endpoint(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        body = copy.deepcopy(req.body)
        _labels(body.get("labels") or {}, "endpoint.labels")
        endpoint_id = self._new_id()
        name = f"{self._parent()}/endpoints/{endpoint_id}"

        def finish() -> dict[str, Any]:
            stamp = now()
            self.endpoints[endpoint_id] = {
                **body,
                "name": name,
                "deployedModels": [],
                "trafficSplit": {},
                "etag": "1",
                "createTime": stamp,
                "updateTime": stamp,
            }
            return {"@type": f"{TYPE}Endpoint", **self._endpoint_json(self.endpoints[endpoint_id])}

        return 200, self._operation(name, "CreateEndpointOperationMetadata", finish)

    def _get_endpoint(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        endpoint = self._endpoint(groups)
        if endpoint is None:
            return _error(404, "NOT_FOUND", f"Endpoint {groups['endpointsId']} not found.")
        return 200, self._endpoint_json(endpoint)

    def _list_endpoints(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        flt = req.query.get("filter", "")
        fields = {"display_name": "displayName", "endpoint": "name"}
        found = [self._endpoint_json(e) for e in self.endpoints.values() if self._matches(e, flt, fields)]
        return self._page(found, req, "endpoints")

    def _patch_endpoint(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        endpoint = self._endpoint(groups)
        if endpoint is None:
            return _error(404, "NOT_FOUND", f"Endpoint {groups['endpointsId']} not found.")
        mask = req.query.get("updateMask")
        if mask is None:
            raise Invalid(
                "endpoints.patch without updateMask would replace the whole endpoint; this emulator wants a mask"
            )
        fields = {re.sub(r"_([a-z])", lambda m: m.group(1).upper(), p.strip()) for p in mask.split(",")}
        if fields - {"trafficSplit", "displayName", "description", "labels"}:
            raise Invalid(
                f"updateMask {mask!r}: only traffic_split, display_name, description and labels can be updated"
            )
        if "trafficSplit" in fields:
            split = dict(req.body.get("trafficSplit") or {})
            _split_rules(split, {d["id"] for d in endpoint["deployedModels"]}, "endpoint.trafficSplit")
            endpoint["trafficSplit"] = split
        if "labels" in fields:
            _labels(req.body.get("labels") or {}, "endpoint.labels")
        for key in fields - {"trafficSplit"}:
            endpoint[key] = copy.deepcopy(req.body.get(key))
        endpoint["etag"] = str(int(endpoint["etag"]) + 1)
        endpoint["updateTime"] = now()
        return 200, self._endpoint_json(endpoint)

    def _deploy_model(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        endpoint = self._endpoint(groups)
        if endpoint is None:
            return _error(404, "NOT_FOUND", f"Endpoint {groups['endpointsId']} not found.")
        wanted = copy.deepcopy(req.body["deployedModel"])
        model_id = str(wanted.get("model", "")).rsplit("/models/", 1)[-1].split("@", 1)[0]
        model = self.models.get(model_id)
        if model is None:
            raise Invalid(
                f"deployedModel.model {wanted.get('model')!r} is not a Model of this project and location"
            )
        resources = wanted.get("dedicatedResources")
        if resources is None:
            raise Invalid("a Model served by a custom container needs deployedModel.dedicatedResources")
        if not resources["machineSpec"].get("machineType"):
            raise Invalid("deployedModel.dedicatedResources.machineSpec.machineType is needed")
        low, high = (
            resources["minReplicaCount"],
            resources.get("maxReplicaCount", resources["minReplicaCount"]),
        )
        if low < 1 or high < low:
            raise Invalid(f"replica counts: 1 <= minReplicaCount ({low}) <= maxReplicaCount ({high})")
        split = dict(req.body.get("trafficSplit") or {})
        _split_rules(split, {"0"} | {d["id"] for d in endpoint["deployedModels"]}, "trafficSplit")

        def finish() -> dict[str, Any]:
            container = self._serving_container(model)
            deployed_id = self._new_id()
            deployed = {
                **wanted,
                "id": deployed_id,
                "model": model["name"],
                "displayName": wanted.get("displayName") or model["displayName"],
                "modelVersionId": "1",
                "createTime": now(),
            }
            self.containers[deployed_id] = container
            endpoint["deployedModels"].append(deployed)
            if split:
                endpoint["trafficSplit"] = {(deployed_id if k == "0" else k): v for k, v in split.items()}
            endpoint["updateTime"] = now()
            return {"@type": f"{TYPE}DeployModelResponse", "deployedModel": copy.deepcopy(deployed)}

        return 200, self._operation(endpoint["name"], "DeployModelOperationMetadata", finish)

    def _serving_container(self, model: dict[str, Any]) -> Container:
        """What the serving image does at start: copy ``artifactUri`` locally and load the MLflow model."""
        import fsspec

        uri = str(model["artifactUri"]).rstrip("/")
        fs, root = fsspec.core.url_to_fs(uri, **self.storage_options)
        folder = Path(tempfile.mkdtemp(prefix="vertex-model-"))
        files = fs.find(root)
        if not any(f.rsplit("/", 1)[-1] == "MLmodel" for f in files):
            raise OperationFailed(
                3, f"Model server never became ready: no MLmodel under {uri} ({len(files)} files)"
            )
        for path in files:
            local = folder / path[len(root) :].lstrip("/")
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(fs.cat_file(path))
        try:
            loaded = load_as_serving_container(str(folder))
        except Exception as err:
            raise OperationFailed(
                13, f"Model server never became ready: {type(err).__name__}: {err}"
            ) from err
        return Container(loaded, model["displayName"])

    def _undeploy_model(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        endpoint = self._endpoint(groups)
        if endpoint is None:
            return _error(404, "NOT_FOUND", f"Endpoint {groups['endpointsId']} not found.")
        gone = str(req.body["deployedModelId"])
        ids = [d["id"] for d in endpoint["deployedModels"]]
        if gone not in ids:
            raise Invalid(f"deployedModelId {gone} is not deployed on {endpoint['name']} (deployed: {ids})")
        split = req.body.get("trafficSplit")
        last = len(ids) == 1
        if split is not None:
            _split_rules(dict(split), set(ids) - {gone}, "trafficSplit")
        elif endpoint["trafficSplit"].get(gone, 0) > 0 and not last:
            raise Invalid(
                f"deployed model {gone} still has {endpoint['trafficSplit'][gone]} % of the traffic; move it away "
                "first (or pass trafficSplit): a DeployedModel with traffic cannot be undeployed"
            )

        def finish() -> dict[str, Any]:
            endpoint["deployedModels"] = [d for d in endpoint["deployedModels"] if d["id"] != gone]
            self.containers.pop(gone, None)
            if not endpoint["deployedModels"]:
                endpoint["trafficSplit"] = {}
            elif split is not None:
                endpoint["trafficSplit"] = dict(split)
            else:
                endpoint["trafficSplit"].pop(gone, None)
            endpoint["updateTime"] = now()
            return {"@type": f"{TYPE}UndeployModelResponse"}

        return 200, self._operation(endpoint["name"], "UndeployModelOperationMetadata", finish)

    def _predict(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        from mlflow.pyfunc import scoring_server

        endpoint = self._endpoint(groups)
        if endpoint is None:
            return _error(404, "NOT_FOUND", f"Endpoint {groups['endpointsId']} not found.")
        split = {k: v for k, v in endpoint["trafficSplit"].items() if v > 0}
        if not split:
            raise Invalid(
                f"endpoint {endpoint['name']} has no traffic split: no deployed model serves requests"
            )
        served = self.random.choices(list(split), weights=list(split.values()))[0]
        container = self.containers[served]
        body = {k: v for k, v in req.body.items() if k in ("instances", "parameters")}
        answer = scoring_server.invocations(
            json.dumps(body), "application/json", container.model, container.model.metadata.get_input_schema()
        )
        if answer.status != 200:
            return _error(
                400,
                "FAILED_PRECONDITION",
                f"the model server answered {answer.status}: {answer.response[:500]}",
            )
        predictions = json.loads(answer.response)["predictions"]
        if container.display_name in self.wrong_predictions:
            predictions = [f"not-{p}" if isinstance(p, str) else p + 1 for p in predictions]
        self.predictions_served.append((served, container.display_name))
        deployed = next(d for d in endpoint["deployedModels"] if d["id"] == served)
        return 200, {
            "predictions": predictions,
            "deployedModelId": served,
            "model": deployed["model"],
            "modelDisplayName": self.models[deployed["model"].rsplit("/", 1)[-1]]["displayName"],
            "modelVersionId": "1",
        }

    # -- custom jobs

    def _create_job(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        job = copy.deepcopy(req.body)
        _labels(job.get("labels") or {}, "customJob.labels")
        pools = job["jobSpec"]["workerPoolSpecs"]
        if not pools or int(pools[0].get("replicaCount", "1")) != 1:
            raise Invalid("workerPoolSpecs[0] (the chief) needs exactly one replica")
        for i, pool in enumerate(pools):
            if not (pool.get("machineSpec") or {}).get("machineType"):
                raise Invalid(f"workerPoolSpecs[{i}].machineSpec.machineType is needed")
            if "containerSpec" not in pool:
                raise Invalid(f"workerPoolSpecs[{i}] needs a containerSpec (or a pythonPackageSpec)")
            for var in pool["containerSpec"].get("env") or []:
                if not _C_IDENTIFIER.match(var["name"]):
                    raise Invalid(f"env var name {var['name']!r} is not a C identifier")
        account = job["jobSpec"].get("serviceAccount")
        if account is not None and not re.fullmatch(r"[^@\s]+@[^@\s]+\.iam\.gserviceaccount\.com", account):
            raise Invalid(f"jobSpec.serviceAccount {account!r} is not a service account email")
        job_id = self._new_id()
        stamp = now()
        job |= {
            "name": f"{self._parent()}/customJobs/{job_id}",
            "state": "JOB_STATE_PENDING",
            "createTime": stamp,
            "updateTime": stamp,
        }
        self.jobs[job_id] = job
        return 200, copy.deepcopy(job)

    def _get_job(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        job = self.jobs.get(groups["customJobsId"])
        if job is None:
            return _error(404, "NOT_FOUND", f"CustomJob {groups['customJobsId']} not found.")
        if job["state"] == "JOB_STATE_PENDING":
            job["state"] = "JOB_STATE_QUEUED"
        self.job_states_served.append((job["name"], job["state"]))
        return 200, copy.deepcopy(job)

    def _list_jobs(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        flt = req.query.get("filter", "")
        fields = {"display_name": "displayName", "state": "state"}
        found = [j for j in self.jobs.values() if self._matches(j, flt, fields)]
        return self._page(found, req, "customJobs")

    def job(self, display_name: str) -> dict[str, Any]:
        """The one custom job of that display name (a copy)."""
        with self.lock:
            found = [j for j in self.jobs.values() if j["displayName"] == display_name]
            assert len(found) == 1, f"{len(found)} custom jobs are named {display_name}"
            return copy.deepcopy(found[0])

    def start_container(self, name: str, fail_with: str | None = None) -> threading.Thread:
        """Run custom job ``name``'s chief container in the background: RUNNING, then its outcome.

        The command and env come from the CustomJob the client created (``python`` is this
        interpreter); ``fail_with`` fails the job with that message instead of running it.
        """
        with self.lock:
            job = self.jobs[name.rsplit("/", 1)[-1]]
            spec = job["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]
            job |= {"state": "JOB_STATE_RUNNING", "startTime": now(), "updateTime": now()}

        def run() -> None:
            outcome: dict[str, Any]
            if fail_with is not None:
                outcome = {"state": "JOB_STATE_FAILED", "error": {"code": 13, "message": fail_with}}
            else:
                command = [
                    sys.executable if c == "python" else c for c in [*spec["command"], *spec.get("args", [])]
                ]
                # an image's own environment (PATH, HOME...), the image's extras, then the job's env:
                # nothing of the test process leaks in, so what the job needs must be in its body
                base = {k: v for k, v in os.environ.items() if k in _IMAGE_ENV}
                env = {**base, **self.container_env, **{v["name"]: v["value"] for v in spec.get("env", [])}}
                started = time.monotonic()
                done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
                self.container_seconds[job["name"]] = time.monotonic() - started
                self.container_runs[job["name"]] = done
                outcome = (
                    {"state": "JOB_STATE_SUCCEEDED"}
                    if done.returncode == 0
                    else {
                        "state": "JOB_STATE_FAILED",
                        "error": {
                            "code": 13,
                            "message": f"The replica workerpool0-0 exited with a non-zero status of "
                            f"{done.returncode}. {done.stderr[-300:]}",
                        },
                    }
                )
            with self.lock:
                job.update(outcome, endTime=now(), updateTime=now())

        thread = threading.Thread(target=run, name=f"container {name}", daemon=True)
        thread.start()
        return thread

    # -- Cloud Monitoring

    def _create_time_series(self, req: Request, groups: dict[str, str]) -> tuple[int, Any]:
        series = req.body["timeSeries"]
        if not 1 <= len(series) <= 200:
            raise Invalid(f"timeSeries: between 1 and 200 per request, got {len(series)}")
        latest = {self._series_key(s): s["points"][0]["interval"]["endTime"] for s in self.series}
        for i, one in enumerate(series):
            self._check_series(one, f"timeSeries[{i}]", groups["projectsId"], latest)
        self.series.extend(copy.deepcopy(series))
        return 200, {}

    @staticmethod
    def _series_key(one: dict[str, Any]) -> str:
        return json.dumps([one["metric"], one["resource"]], sort_keys=True)

    def _check_series(self, one: dict[str, Any], where: str, project: str, latest: dict[str, str]) -> None:
        metric = one.get("metric") or {}
        if not str(metric.get("type", "")).startswith("custom.googleapis.com/"):
            raise Invalid(
                f"{where}.metric.type {metric.get('type')!r}: a user-defined metric is custom.googleapis.com/..."
            )
        for key in metric.get("labels") or {}:
            if not _METRIC_LABEL.match(key):
                raise Invalid(f"{where}.metric.labels: key {key!r} must match [a-z][a-z0-9_]*")
        resource = one.get("resource") or {}
        if resource.get("type") == "global" and set(resource.get("labels") or {}) != {"project_id"}:
            raise Invalid(f"{where}.resource: the global resource takes exactly the label project_id")
        if (resource.get("labels") or {}).get("project_id") not in (project, self.project, self.number):
            raise Invalid(f"{where}.resource.labels.project_id is not the project written to")
        points = one.get("points") or []
        if len(points) != 1:
            raise Invalid(f"{where}.points: exactly one point per time series in a create, got {len(points)}")
        value_field = {
            "DOUBLE": "doubleValue",
            "INT64": "int64Value",
            "BOOL": "boolValue",
            "STRING": "stringValue",
        }
        want = value_field.get(one.get("valueType", "DOUBLE"))
        if want not in points[0]["value"]:
            raise Invalid(f"{where}.points[0].value: valueType {one.get('valueType')} needs {want}")
        interval = points[0]["interval"]
        if one.get("metricKind", "GAUGE") == "GAUGE" and interval.get("startTime") not in (
            None,
            interval["endTime"],
        ):
            raise Invalid(f"{where}.points[0].interval: a GAUGE point has no start time (or start == end)")
        end = datetime.fromisoformat(interval["endTime"].replace("Z", "+00:00"))
        if not datetime.now(UTC) - timedelta(hours=25) <= end <= datetime.now(UTC) + timedelta(minutes=5):
            raise Invalid(
                f"{where}.points[0].interval.endTime {interval['endTime']} is more than 25 h old or in the future"
            )
        before = latest.get(self._series_key(one))
        if before is not None and before >= interval["endTime"]:
            raise Invalid(
                f"{where}: Points must be written in order (the series has a point at {before} already)"
            )
