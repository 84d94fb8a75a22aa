"""A stateful Azure ML workspace (ARM) and its Microsoft Entra token endpoint, on 127.0.0.1 over TLS.

No emulator of Azure ML exists, so the operators' Azure ML path would otherwise never run over
HTTP. :class:`AzureMLAPI` is a :class:`~tests.emulators.loopback.LoopbackAPI` that answers what
this package calls, keeps its state and refuses what Azure would refuse:

* **HTTPS with its own CA.** azure-identity only talks to an ``https`` authority, so the server
  speaks TLS with a certificate for 127.0.0.1 signed by a throw-away CA (:attr:`ca_file`); the
  test trusts it the way a company trusts its own CA, through ``REQUESTS_CA_BUNDLE``.
* **Tokens.** ``POST /<tenant>/oauth2/v2.0/token`` is the client-credentials grant of the
  Microsoft identity platform (with the OpenID configuration MSAL reads first). Only the
  service principal it was built with gets a token; every ARM call must carry a token issued for
  this server's ARM audience (``<url>/.default``) and every metrics call one for Azure Monitor's.
* **Every request is first held to the API description** (:mod:`tests.contract.azure_models`:
  the published REST models of the ``api-version`` sent; documented schemas for scoring and
  custom metrics); then to what the documentation states in prose (endpoint names of 3-32
  characters; a traffic split adds up to 100 and names Succeeded deployments; a deployment with
  traffic cannot be deleted; a deployment's model, a job's environment and compute must exist in
  the workspace; no second operation on a busy endpoint). A refusal raises
  :class:`~tests.emulators.loopback.Invalid`: the client gets a 400 and the test finds it in
  ``violations``. The emulator's own answers are validated too, so they are answers Azure could
  give.
* **Long-running operations** (endpoint create and update, deployment create and delete) answer
  ``Azure-AsyncOperation`` (or ``Location`` for a delete) and finish after ``operation_polls``
  reads of the resource or the operation, or when the test calls :meth:`AzureMLAPI.settle`.
* **Deployments answer like the MLflow scoring container** of a no-code deployment: creating one
  downloads its model version's ``modelUri`` (blob storage: the lake on Azurite), loads it with
  MLflow, and ``/score`` runs MLflow's own scoring code on the ``input_data`` rows. A deployment
  named in :attr:`AzureMLAPI.wrong_predictions` answers wrong predictions (a broken image); one
  in :attr:`AzureMLAPI.failing_deployments` fails to provision.
* **Command jobs** are NotStarted, then Queued on the next read; :meth:`AzureMLAPI.start_container`
  runs the job's ``command`` with its ``environmentVariables`` (``python`` is this interpreter,
  the image's environment is ``container_env``) and reports Running, then Completed or Failed by
  its exit status (``fail`` fails it on demand).
"""

from __future__ import annotations

import copy
import itertools
import os
import random
import re
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from tests.contract import azure_models
from tests.emulators.loopback import Invalid, LoopbackAPI
from tests.helpers import load_as_serving_container

if TYPE_CHECKING:
    from collections.abc import Callable

    from tests.emulators.loopback import Request

MONITOR_SCOPE = "https://monitoring.azure.com/.default"
_IMAGE_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ")
# documented rule of online endpoint names (how-to-manage-quotas: "Azure Machine Learning online endpoints")
_ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")
_RG_TYPE = "Microsoft.MachineLearningServices/workspaces"


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
    return status, {"error": {"code": code, "message": message}}


def self_signed(folder: Path) -> tuple[ssl.SSLContext, Path]:
    """A CA and a certificate for 127.0.0.1 it signed: (server TLS context, CA file to trust)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    start, end = datetime.now(UTC) - timedelta(minutes=5), datetime.now(UTC) + timedelta(days=1)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(name("mlops test CA"))
        .issuer_name(name("mlops test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    import ipaddress

    leaf = (
        x509.CertificateBuilder()
        .subject_name(name("127.0.0.1"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_file, cert_file, key_file = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    return context, ca_file


class OperationFailed(Exception):
    """The platform's work behind an operation failed (``code``: ARM's error code)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass
class ArmOperation:
    """A long-running ARM operation: done after ``polls`` reads, then ``finish()`` applies it."""

    id: str
    finish: Callable[[], None]
    polls: int
    start: str = field(default_factory=now)
    end: str | None = None
    status: str = "InProgress"
    error: dict[str, str] | None = None

    def tick(self) -> None:
        self.polls -= 1
        if self.polls <= 0:
            self.complete()

    def complete(self) -> None:
        if self.status != "InProgress":
            return
        try:
            self.finish()
            self.status = "Succeeded"
        except OperationFailed as failed:
            self.status, self.error = "Failed", {"code": failed.code, "message": str(failed)}
        self.end = now()

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "name": self.id.rsplit("/", 1)[-1], "status": self.status}
        body["startTime"] = self.start
        if self.end:
            body["endTime"] = self.end
        if self.error:
            body["error"] = self.error
        return body


@dataclass
class Container:
    """A deployment's scoring container: the MLflow model it loaded."""

    model: Any
    deployment: str


class AzureMLAPI(LoopbackAPI):
    """One Azure ML workspace through ARM, its token endpoint, scoring and Azure Monitor metrics.

    :param read_blob_folder: copies a ``modelUri`` folder (an ``https://<account>.blob...`` URL)
        to a local folder, as the service does before it starts a deployment; returns False when
        the folder does not exist.
    :param environments: ``name:version`` of the environments the workspace has.
    :param computes: names of the workspace's compute clusters.
    :param instance_types: VM sizes managed online deployments may use (a subset of Azure's list).
    :param container_env: the environment the training image gives a job's command (on top of the
        job's own ``environmentVariables``).
    :param operation_polls: reads of a resource or operation before its operation is done.
    """

    def __init__(
        self,
        *,
        tls_dir: Path,
        read_blob_folder: Callable[[str, Path], bool],
        subscription_id: str = "00000000-0000-0000-0000-00000000a2e0",
        resource_group: str = "rg-mlops",
        workspace: str = "ws-mlops",
        location: str = "westeurope",
        tenant_id: str = "11111111-1111-1111-1111-111111111111",
        client_id: str = "22222222-2222-2222-2222-222222222222",
        client_secret: str = "emulator-client-secret",
        environments: tuple[str, ...] = ("mlops-train:3",),
        computes: tuple[str, ...] = ("cpu-cluster",),
        instance_types: tuple[str, ...] = ("Standard_DS3_v2", "Standard_F2s_v2", "Standard_F4s_v2"),
        container_env: dict[str, str] | None = None,
        operation_polls: int = 2,
        seed: int = 0,
    ) -> None:
        super().__init__("Azure ML")
        self.subscription_id, self.resource_group, self.workspace = subscription_id, resource_group, workspace
        self.location, self.tenant_id = location, tenant_id
        self.client_id, self.client_secret = client_id, client_secret
        self.environments, self.computes, self.instance_types = environments, computes, instance_types
        self.read_blob_folder = read_blob_folder
        self.container_env = dict(container_env or {})
        self.operation_polls = operation_polls
        self.random = random.Random(seed)
        self._tls, self.ca_file = self_signed(tls_dir)
        self._ids = itertools.count(1)
        self._reply_headers = threading.local()
        self.tokens: dict[str, str] = {}  # access token -> scope it was issued for
        self.models: dict[tuple[str, str], dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.keys: dict[str, dict[str, str]] = {}
        self.deployments: dict[tuple[str, str], dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, ArmOperation] = {}
        self.pending: dict[str, ArmOperation] = {}  # resource path -> its running operation
        self.containers: dict[tuple[str, str], Container] = {}
        self.metrics: list[dict[str, Any]] = []
        self.job_states_served: list[tuple[str, str]] = []  # (job name, status) of each job read
        self.container_runs: dict[str, subprocess.CompletedProcess[str]] = {}
        self.predictions_served: list[tuple[str, str]] = []  # (endpoint, deployment) of each score
        self.wrong_predictions: set[str] = set()  # deployment names whose container answers wrong
        self.failing_deployments: set[str] = set()  # deployment names whose container never starts
        for verb in ("GET", "POST", "PUT", "PATCH", "DELETE"):
            self.route(verb, r"/.*")(self._dispatch)

    # -- server: TLS and response headers on top of LoopbackAPI -------------------------------------

    def start(self) -> AzureMLAPI:
        """Start, then speak TLS and let handlers add headers; before :attr:`url` is known to anyone,
        so no client can have connected to the plain socket."""
        super().start()
        server = self._server
        assert server is not None
        server.socket = self._tls.wrap_socket(server.socket, server_side=True)
        api, base = self, server.RequestHandlerClass

        class _WithHeaders(base):  # type: ignore[misc, valid-type]
            def end_headers(self) -> None:
                for key, value in (getattr(api._reply_headers, "value", None) or {}).items():
                    self.send_header(key, value)
                api._reply_headers.value = {}
                super().end_headers()

        server.RequestHandlerClass = _WithHeaders
        return self

    @property
    def url(self) -> str:
        return super().url.replace("http://", "https://", 1)

    def _headers(self, **headers: str) -> None:
        self._reply_headers.value = {k.replace("_", "-"): v for k, v in headers.items()}

    # -- names ----------------------------------------------------------------------------------------

    @property
    def workspace_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.workspace}"
        )

    @property
    def arm_scope(self) -> str:
        return f"{self.url}/.default"

    def _operation(self, resource: str, finish: Callable[[], None], kind: str = "mfeOperationsStatus") -> str:
        op_id = (
            f"/subscriptions/{self.subscription_id}/providers/Microsoft.MachineLearningServices"
            f"/locations/{self.location}/{kind}/op-{next(self._ids)}"
        )
        op = ArmOperation(op_id, finish, self.operation_polls)
        self.operations[op_id.rsplit("/", 1)[-1]] = op
        self.pending[resource] = op
        return f"{self.url}{op_id}?api-version={azure_models.API_VERSION}"

    def _tick(self, resource: str) -> None:
        op = self.pending.get(resource)
        if op is not None:
            op.tick()
            if op.status != "InProgress":
                self.pending.pop(resource, None)

    def settle(self) -> None:
        """Let time pass: every operation still running finishes."""
        with self.lock:
            for resource, op in list(self.pending.items()):
                op.complete()
                self.pending.pop(resource, None)

    # -- dispatch -------------------------------------------------------------------------------------

    def _dispatch(self, req: Request) -> tuple[int, Any]:
        self._reply_headers.value = {}
        path = req.path
        if re.fullmatch(rf"/{re.escape(self.tenant_id)}/v2\.0/\.well-known/openid-configuration", path):
            return self._openid()
        if re.fullmatch(r"/[^/]+/oauth2/v2\.0/token", path):
            return self._token(req)
        url = f"{self.url}{path}"
        problems = azure_models.request_errors(req.method, url, req.body, req.query)
        if problems:
            raise Invalid("; ".join(problems))
        metrics = req.method == "POST" and path.endswith("/metrics")
        denied = self._authorize(req, MONITOR_SCOPE if metrics else self.arm_scope)
        if denied is not None:
            return denied
        try:
            status, body = self._handle(req)
        except Invalid:
            raise
        except Exception as err:  # the emulator's own bug: a test failure, not a retryable outage
            self.violations.append(f"the emulator failed on {req.method} {path}: {type(err).__name__}: {err}")
            return _error(400, "InternalEmulatorError", f"{type(err).__name__}: {err}")
        if not metrics:
            for problem in azure_models.response_errors(req.method, url, status, body):
                self.violations.append(f"the emulator's own answer to {req.method} {path}: {problem}")
        return status, body

    def _authorize(self, req: Request, scope: str) -> tuple[int, Any] | None:
        """ARM's answer to a missing, unknown or wrong-audience token (and a violation: the code's fault)."""
        if req.path.endswith("/score"):
            return None  # key auth, checked by the scoring handler
        auth = req.headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else None
        issued = self.tokens.get(token or "")
        if issued == scope:
            return None
        why = (
            "no bearer token"
            if token is None
            else f"a token for {issued!r}"
            if issued
            else "an unknown token"
        )
        self.violations.append(f"{req.method} {req.path}: {why}, where {scope} is needed")
        return _error(
            401, "InvalidAuthenticationToken", f"The access token is invalid: {why}, audience {scope}"
        )

    def _handle(self, req: Request) -> tuple[int, Any]:  # noqa: C901 - a routing table
        path, method = req.path, req.method
        if method == "POST" and path.endswith("/score"):
            return self._score(req)
        if method == "POST" and path.endswith("/metrics"):
            return self._metric(req)
        found = re.fullmatch(
            r"/subscriptions/[^/]+/providers/Microsoft\.MachineLearningServices/locations/[^/]+"
            r"/(?P<kind>mfeOperationsStatus|mfeOperationResults)/(?P<id>[^/]+)",
            path,
        )
        if found:
            return self._get_operation(found["kind"], found["id"])
        if not path.lower().startswith(self.workspace_id.lower()):
            return _error(404, "ResourceNotFound", f"no workspace at {path}")
        rest = path[len(self.workspace_id) :]
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            ("GET", r"", self._get_workspace),
            ("GET", r"/jobs/(?P<name>[^/]+)", self._get_job),
            ("PUT", r"/jobs/(?P<name>[^/]+)", self._put_job),
            ("PUT", r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._put_model),
            ("GET", r"/models/(?P<name>[^/]+)/versions/(?P<version>[^/]+)", self._get_model),
            ("GET", r"/onlineEndpoints/(?P<endpoint>[^/]+)", self._get_endpoint),
            ("PUT", r"/onlineEndpoints/(?P<endpoint>[^/]+)", self._put_endpoint),
            ("POST", r"/onlineEndpoints/(?P<endpoint>[^/]+)/listKeys", self._list_keys),
            (
                "GET",
                r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<name>[^/]+)",
                self._get_deployment,
            ),
            (
                "PUT",
                r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<name>[^/]+)",
                self._put_deployment,
            ),
            (
                "DELETE",
                r"/onlineEndpoints/(?P<endpoint>[^/]+)/deployments/(?P<name>[^/]+)",
                self._delete_deployment,
            ),
        ]
        for verb, pattern, handler in routes:
            match = re.fullmatch(pattern, rest)
            if verb == method and match:
                return handler(req, **match.groupdict())
        raise Invalid(f"{method} {path} is in the API description, but this emulator does not implement it")

    # -- Microsoft Entra ------------------------------------------------------------------------------

    def _openid(self) -> tuple[int, Any]:
        base = f"{self.url}/{self.tenant_id}"
        return 200, {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{self.url}/{self.tenant_id}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }

    def _token(self, req: Request) -> tuple[int, Any]:
        problems = azure_models.token_form_errors(req.body)
        if problems:
            raise Invalid("; ".join(problems))
        form = {k: v[-1] for k, v in parse_qs(req.body).items()}
        tenant = req.path.split("/")[1]
        if tenant != self.tenant_id:
            return 400, {
                "error": "invalid_request",
                "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
            }
        if (form["client_id"], form["client_secret"]) != (self.client_id, self.client_secret):
            return 401, {
                "error": "invalid_client",
                "error_description": "AADSTS7000215: Invalid client secret provided.",
            }
        token = secrets.token_urlsafe(24)
        self.tokens[token] = form["scope"]
        return 200, {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": token,
        }

    # -- operations and the workspace -----------------------------------------------------------------

    def _get_operation(self, kind: str, op_id: str) -> tuple[int, Any]:
        op = self.operations.get(op_id)
        if op is None:
            return _error(404, "NotFound", f"operation {op_id} not found")
        if op.status == "InProgress":
            op.tick()
            for resource, pending in list(self.pending.items()):
                if pending is op and op.status != "InProgress":
                    self.pending.pop(resource)
        if kind == "mfeOperationResults":  # a Location URL: 202 while running, then the outcome
            if op.status == "InProgress":
                self._headers(Location=f"{self.url}{op.id}?api-version={azure_models.API_VERSION}")
                return 202, None
            if op.status == "Failed":
                assert op.error is not None
                return _error(400, op.error["code"], op.error["message"])
            return 200, None
        return 200, op.to_json()

    def _get_workspace(self, req: Request) -> tuple[int, Any]:
        return 200, {
            "id": self.workspace_id,
            "name": self.workspace,
            "type": _RG_TYPE,
            "location": self.location,
            "properties": {"friendlyName": self.workspace, "discoveryUrl": f"{self.url}/discovery"},
        }

    # -- jobs -----------------------------------------------------------------------------------------

    def _put_job(self, req: Request, name: str) -> tuple[int, Any]:
        if name in self.jobs:
            return _error(
                409, "UserError", f"A job with this name already exists: {name}; jobs cannot be changed"
            )
        props = copy.deepcopy(req.body["properties"])
        environment = str(props["environmentId"])
        prefix = f"{self.workspace_id}/environments/"
        known = [f"{prefix}{e.replace(':', '/versions/')}" for e in self.environments]
        if environment not in known:
            raise Invalid(f"environmentId {environment} is no environment version of the workspace ({known})")
        compute = str(props.get("computeId") or "")
        if compute not in [f"{self.workspace_id}/computes/{c}" for c in self.computes]:
            raise Invalid(
                f"computeId {compute!r} is no compute of the workspace ({', '.join(self.computes)})"
            )
        props["status"] = "NotStarted"
        props["services"] = {
            "Studio": {
                "jobServiceType": "Studio",
                "endpoint": f"https://ml.azure.com/runs/{name}?wsid={self.workspace_id}",
            },
            "Tracking": {
                "jobServiceType": "Tracking",
                "endpoint": f"azureml://{self.location}.api.azureml.ms/mlflow/v1.0{self.workspace_id}",
            },
        }
        self.jobs[name] = {
            "id": f"{self.workspace_id}/jobs/{name}",
            "name": name,
            "type": f"{_RG_TYPE}/jobs",
            "properties": props,
        }
        return 201, copy.deepcopy(self.jobs[name])

    def _get_job(self, req: Request, name: str) -> tuple[int, Any]:
        job = self.jobs.get(name)
        if job is None:
            return _error(404, "UserError", f"Could not find job {name}")
        if job["properties"]["status"] == "NotStarted":
            job["properties"]["status"] = "Queued"
        self.job_states_served.append((name, job["properties"]["status"]))
        return 200, copy.deepcopy(job)

    def start_container(self, name: str, fail: bool = False) -> threading.Thread:
        """Run job ``name``'s command in the background: Running, then Completed or Failed by its exit status.

        The command and variables come from the job the client created (``python`` is this
        interpreter); nothing of the test process leaks in but :data:`_IMAGE_ENV` and
        ``container_env``, so what the job needs must be in its body. ``fail`` fails it instead
        of running it.
        """
        with self.lock:
            props = self.jobs[name]["properties"]
            props["status"] = "Running"

        def run() -> None:
            if fail:
                status = "Failed"
            else:
                command = [sys.executable if c == "python" else c for c in str(props["command"]).split()]
                base = {k: v for k, v in os.environ.items() if k in _IMAGE_ENV}
                env = {**base, **self.container_env, **props.get("environmentVariables", {})}
                done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
                self.container_runs[name] = done
                status = "Completed" if done.returncode == 0 else "Failed"
            with self.lock:
                props["status"] = status

        thread = threading.Thread(target=run, name=f"job {name}", daemon=True)
        thread.start()
        return thread

    # -- models ---------------------------------------------------------------------------------------

    def _put_model(self, req: Request, name: str, version: str) -> tuple[int, Any]:
        props = copy.deepcopy(req.body["properties"])
        if props.get("modelType") != "mlflow_model":
            raise Invalid(
                f"modelType {props.get('modelType')!r}: this workspace serves MLflow models (mlflow_model)"
            )
        uri = str(props.get("modelUri") or "")
        folder = Path(tempfile.mkdtemp(prefix="azureml-model-"))
        if not uri or not self.read_blob_folder(uri, folder) or not (folder / "MLmodel").exists():
            raise Invalid(f"modelUri {uri!r}: an mlflow_model needs a folder with an MLmodel file")
        existed = (name, version) in self.models
        self.models[(name, version)] = {
            "id": f"{self.workspace_id}/models/{name}/versions/{version}",
            "name": version,
            "type": f"{_RG_TYPE}/models/versions",
            "properties": {**props, "provisioningState": "Succeeded"},
            "_folder": str(folder),
        }
        return (200 if existed else 201), self._model_json(name, version)

    def _model_json(self, name: str, version: str) -> dict[str, Any]:
        return {k: copy.deepcopy(v) for k, v in self.models[(name, version)].items() if not k.startswith("_")}

    def _get_model(self, req: Request, name: str, version: str) -> tuple[int, Any]:
        if (name, version) not in self.models:
            return _error(404, "UserError", f"model {name}:{version} not found")
        return 200, self._model_json(name, version)

    # -- endpoints ------------------------------------------------------------------------------------

    def _endpoint_path(self, endpoint: str) -> str:
        return f"{self.workspace_id}/onlineEndpoints/{endpoint}"

    def _endpoint_json(self, endpoint: str) -> dict[str, Any]:
        return copy.deepcopy(self.endpoints[endpoint])

    def _get_endpoint(self, req: Request, endpoint: str) -> tuple[int, Any]:
        if endpoint not in self.endpoints:
            return _error(404, "UserError", f"Endpoint {endpoint} not found")
        self._tick(self._endpoint_path(endpoint))
        return 200, self._endpoint_json(endpoint)

    def _check_traffic(self, endpoint: str, traffic: dict[str, int], where: str) -> None:
        for name, share in traffic.items():
            if not 0 <= share <= 100:
                raise Invalid(f"{where}: {name} gets {share} %, outside 0..100")
            dep = self.deployments.get((endpoint, name))
            if dep is None:
                raise Invalid(f"{where}: deployment {name} does not exist on {endpoint}")
            if share and dep["properties"]["provisioningState"] != "Succeeded":
                raise Invalid(
                    f"{where}: deployment {name} is {dep['properties']['provisioningState']}, not Succeeded"
                )
        total = sum(traffic.values())
        if traffic and total not in (0, 100):
            raise Invalid(f"{where}: traffic adds up to {total}; it must add up to 100 (or 0)")

    def _put_endpoint(self, req: Request, endpoint: str) -> tuple[int, Any]:
        body = copy.deepcopy(req.body)
        if not _ENDPOINT_NAME.match(endpoint):
            raise Invalid(
                f"endpoint name {endpoint!r}: 3-32 characters, a letter first, letters, digits and '-'"
            )
        if body["location"] != self.location:
            raise Invalid(f"location {body['location']!r}: the workspace is in {self.location}")
        props = body["properties"]
        traffic = {k: int(v) for k, v in (props.get("traffic") or {}).items()}
        self._check_traffic(endpoint, traffic, "properties.traffic")
        path = self._endpoint_path(endpoint)
        current = self.endpoints.get(endpoint)
        if current is not None and current["properties"]["provisioningState"] not in ("Succeeded", "Failed"):
            return _error(
                409,
                "Conflict",
                f"Endpoint {endpoint} is {current['properties']['provisioningState']}: "
                "wait for the running operation to finish",
            )
        creating = current is None
        if creating:
            self.keys[endpoint] = {
                "primaryKey": secrets.token_urlsafe(24),
                "secondaryKey": secrets.token_urlsafe(24),
            }
        identity = dict(body.get("identity") or {"type": "None"})
        if "SystemAssigned" in identity.get("type", ""):
            identity |= {"principalId": "33333333-3333-3333-3333-333333333333", "tenantId": self.tenant_id}
        resource = {
            **{k: v for k, v in body.items() if k != "properties"},
            "id": path,
            "name": endpoint,
            "type": f"{_RG_TYPE}/onlineEndpoints",
            "identity": identity,
            "properties": {
                **props,
                "traffic": traffic,
                "provisioningState": "Creating" if creating else "Updating",
                "scoringUri": f"{self.url}/endpoints/{endpoint}/score",
                "swaggerUri": f"{self.url}/endpoints/{endpoint}/swagger.json",
            },
        }
        self.endpoints[endpoint] = resource

        def finish() -> None:
            resource["properties"]["provisioningState"] = "Succeeded"

        self._headers(Azure_AsyncOperation=self._operation(path, finish), x_ms_async_operation_timeout="PT1H")
        return (201 if creating else 200), self._endpoint_json(endpoint)

    def _list_keys(self, req: Request, endpoint: str) -> tuple[int, Any]:
        if endpoint not in self.endpoints:
            return _error(404, "UserError", f"Endpoint {endpoint} not found")
        if self.endpoints[endpoint]["properties"]["authMode"] != "Key":
            return _error(400, "BadArgument", f"Endpoint {endpoint} does not use key auth")
        return 200, dict(self.keys[endpoint])

    # -- deployments ----------------------------------------------------------------------------------

    def _deployment_path(self, endpoint: str, name: str) -> str:
        return f"{self._endpoint_path(endpoint)}/deployments/{name}"

    def _get_deployment(self, req: Request, endpoint: str, name: str) -> tuple[int, Any]:
        self._tick(self._deployment_path(endpoint, name))  # may finish its deletion
        if (endpoint, name) not in self.deployments:
            return _error(404, "UserError", f"Deployment {name} not found on {endpoint}")
        return 200, copy.deepcopy(self.deployments[(endpoint, name)])

    def _put_deployment(self, req: Request, endpoint: str, name: str) -> tuple[int, Any]:
        body = copy.deepcopy(req.body)
        ep = self.endpoints.get(endpoint)
        if ep is None:
            return _error(404, "UserError", f"Endpoint {endpoint} not found")
        if ep["properties"]["provisioningState"] == "Creating":
            return _error(
                409, "Conflict", f"Endpoint {endpoint} is Creating: create deployments once it is Succeeded"
            )
        if body["location"] != self.location:
            raise Invalid(f"location {body['location']!r}: the endpoint is in {self.location}")
        props = body["properties"]
        if props["endpointComputeType"] != "Managed":
            raise Invalid(
                f"endpointComputeType {props['endpointComputeType']}: {endpoint} is a managed endpoint"
            )
        model = str(props.get("model") or "")
        found = re.fullmatch(re.escape(f"{self.workspace_id}/models/") + r"([^/]+)/versions/([^/]+)", model)
        if found is None or (found[1], found[2]) not in self.models:
            raise Invalid(f"properties.model {model!r} is no model version of the workspace")
        if props.get("instanceType") not in self.instance_types:
            raise Invalid(f"instanceType {props.get('instanceType')!r} is not a managed online endpoint SKU")
        capacity = int((body.get("sku") or {}).get("capacity", 1))
        if capacity < 1:
            raise Invalid(f"sku.capacity {capacity}: a deployment needs at least one instance")
        path = self._deployment_path(endpoint, name)
        current = self.deployments.get((endpoint, name))
        if current is not None and current["properties"]["provisioningState"] not in ("Succeeded", "Failed"):
            return _error(
                409, "Conflict", f"Deployment {name} is {current['properties']['provisioningState']}"
            )
        resource = {
            **{k: v for k, v in body.items() if k != "properties"},
            "id": path,
            "name": name,
            "type": f"{_RG_TYPE}/onlineEndpoints/deployments",
            "properties": {**props, "provisioningState": "Creating" if current is None else "Updating"},
        }
        self.deployments[(endpoint, name)] = resource
        model_key = (found[1], found[2])

        def finish() -> None:
            """What the service does: pull the model, start the container, wait for it to be ready."""
            if name in self.failing_deployments:
                resource["properties"]["provisioningState"] = "Failed"
                raise OperationFailed("ResourceNotReady", f"User container has crashed or terminated: {name}")

            try:
                loaded = load_as_serving_container(self.models[model_key]["_folder"])
            except Exception as err:
                resource["properties"]["provisioningState"] = "Failed"
                raise OperationFailed(
                    "ResourceNotReady", f"the model did not load: {type(err).__name__}: {err}"
                ) from err
            self.containers[(endpoint, name)] = Container(loaded, name)
            resource["properties"]["provisioningState"] = "Succeeded"

        self._headers(Azure_AsyncOperation=self._operation(path, finish), x_ms_async_operation_timeout="PT1H")
        return (201 if current is None else 200), copy.deepcopy(resource)

    def _delete_deployment(self, req: Request, endpoint: str, name: str) -> tuple[int, Any]:
        if (endpoint, name) not in self.deployments:
            return 204, None
        ep = self.endpoints[endpoint]
        share = int((ep["properties"].get("traffic") or {}).get(name, 0))
        mirrored = int((ep["properties"].get("mirrorTraffic") or {}).get(name, 0))
        if share or mirrored:
            raise Invalid(
                f"deployment {name} still gets {share or mirrored} % of {endpoint}'s traffic; "
                "move the traffic away before deleting it"
            )
        if ep["properties"]["provisioningState"] != "Succeeded":
            return _error(409, "Conflict", f"Endpoint {endpoint} is {ep['properties']['provisioningState']}")
        self.deployments[(endpoint, name)]["properties"]["provisioningState"] = "Deleting"

        def finish() -> None:
            self.deployments.pop((endpoint, name), None)
            self.containers.pop((endpoint, name), None)

        url = self._operation(self._deployment_path(endpoint, name), finish, "mfeOperationResults")
        self._headers(Location=url, Retry_After="1")
        return 202, None

    # -- scoring and metrics --------------------------------------------------------------------------

    def _score(self, req: Request) -> tuple[int, Any]:
        from mlflow.pyfunc import scoring_server

        endpoint = req.path.split("/")[-2]
        ep = self.endpoints.get(endpoint)
        if ep is None:
            return 404, {"message": f"no endpoint {endpoint}"}
        if (
            req.headers.get("Authorization") != f"Bearer {self.keys[endpoint]['primaryKey']}"
            and req.headers.get("Authorization") != f"Bearer {self.keys[endpoint]['secondaryKey']}"
        ):
            self.violations.append(f"POST {req.path}: scored without the endpoint's key")
            return 401, {"message": "key auth: the Authorization header carries no key of this endpoint"}
        wanted = req.headers.get("azureml-model-deployment")
        if wanted:
            if (endpoint, wanted) not in self.containers:
                return 404, {"message": f"deployment {wanted} is not serving on {endpoint}"}
            served = wanted
        else:
            split = {k: v for k, v in ep["properties"]["traffic"].items() if v > 0}
            if not split:
                return 424, {
                    "message": f"endpoint {endpoint} routes no traffic: set a split or name a deployment"
                }
            served = self.random.choices(list(split), weights=list(split.values()))[0]
        container = self.containers[(endpoint, served)]
        # what the no-code MLflow scoring script does with input_data: MLflow's split orientation
        mlflow_body = {
            "dataframe_split": req.body["input_data"],
            **({"params": req.body["params"]} if "params" in req.body else {}),
        }
        import json

        answer = scoring_server.invocations(
            json.dumps(mlflow_body),
            "application/json",
            container.model,
            container.model.metadata.get_input_schema(),
        )
        if answer.status != 200:
            return 400, {"message": f"the model server answered {answer.status}: {answer.response[:500]}"}
        predictions = json.loads(answer.response)["predictions"]
        if served in self.wrong_predictions:
            predictions = [f"not-{p}" if isinstance(p, str) else p + 1 for p in predictions]
        self.predictions_served.append((endpoint, served))
        self._headers(azureml_model_deployment=served)
        return 200, predictions

    def _metric(self, req: Request) -> tuple[int, Any]:
        resource = req.path.removesuffix("/metrics")
        if resource != self.workspace_id:
            raise Invalid(f"custom metrics for {resource}: this API hosts only {self.workspace_id}")
        self.metrics.append(copy.deepcopy(req.body))
        return 200, None

    # -- what tests read ------------------------------------------------------------------------------

    def traffic(self, endpoint: str) -> dict[str, int]:
        with self.lock:
            return {k: v for k, v in self.endpoints[endpoint]["properties"]["traffic"].items() if v}

    def deployment_names(self, endpoint: str) -> list[str]:
        with self.lock:
            return sorted(name for ep, name in self.deployments if ep == endpoint)

    def job(self, name: str) -> dict[str, Any]:
        with self.lock:
            return copy.deepcopy(self.jobs[name])


def blob_reader(connection_string: str) -> Callable[[str, Path], bool]:
    """Copy ``https://<account>.blob.core.windows.net/<container>/<folder>`` from Azurite (its account)."""

    def read(uri: str, dest: Path) -> bool:
        from azure.storage.blob import BlobServiceClient

        parts = urlsplit(uri)
        account = (parts.hostname or "").split(".")[0]
        service = BlobServiceClient.from_connection_string(connection_string)
        if parts.scheme != "https" or account != service.account_name:
            return False
        container, _, prefix = parts.path.lstrip("/").partition("/")
        client = service.get_container_client(container)
        names = [b.name for b in client.list_blobs(name_starts_with=prefix.rstrip("/") + "/")]
        for blob in names:
            local = dest / blob[len(prefix.rstrip("/")) + 1 :]
            local.parent.mkdir(parents=True, exist_ok=True)
            local.write_bytes(client.download_blob(blob).readall())
        return bool(names)

    return read
