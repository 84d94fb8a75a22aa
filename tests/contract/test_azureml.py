"""Azure ML contract: the exact REST requests, in order, of deploy/status/smoke/promote/rollback and training.

A recording session stands in for ARM: every request must be the next one the test expects
(method and URL), and gets a canned response. Both sides are checked against the service's
API description (:mod:`tests.contract.azure_models`): every request body is validated against
the published REST models of the ``api-version`` the package sends (unknown, mistyped, missing
required or read-only keys, discriminators, enums), every canned response against the model the
generated client would deserialize, so a canned answer cannot flatter the code under test. The
scoring call, operation polling and Azure Monitor metrics are checked against their documented
schemas. The MLflow registry is real (a SQLite store with two versions of a tiny sklearn model),
so ``promote`` and ``rollback`` really move the ``champion`` alias.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from mlops_core.clouds.azure.client import (
    API_VERSION,
    command_job_body,
    submit_training,
    training_state,
)
from mlops_core.clouds.azure.deploy import AzureMLTarget
from mlops_core.clouds.azure.monitor import write_metrics
from mlops_core.deploy import READY, UPDATING, Deployment, DeploymentFailed
from mlops_core.model.remote import RUNNING, SUCCEEDED, JobRequest, RemoteJobFailed
from mlops_core.runs import registry
from mlops_core.spec.profiles import CloudProfile
from tests.contract import azure_models
from tests.helpers import example_spec

pytestmark = pytest.mark.contract

SUB, RG, WS = "sub-1", "rg-ml", "ws-ml"
ROOT = "https://management.azure.com"
WSID = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.MachineLearningServices/workspaces/{WS}"
EP = "mlops-breast-cancer"
EP_PATH = f"onlineEndpoints/{EP}"
SCORING = f"https://{EP}.westeurope.inference.ml.azure.com/score"
OP = f"https://management.azure.com/subscriptions/sub-1/providers/Microsoft.MachineLearningServices/locations/westeurope/mfeOperationsStatus/op-1?api-version={API_VERSION}"
HEADERS_OF_INTEREST = ("Authorization", "azureml-model-deployment")


# -- the recording session ------------------------------------------------------------------------


@dataclass
class Response:
    """What ``requests.Response`` offers the code under test."""

    status_code: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "" if self.body is None else json.dumps(self.body)

    def json(self) -> Any:
        if self.body is None:
            raise ValueError("no JSON body")
        return self.body


@dataclass
class Call:
    method: str
    url: str  # workspace-relative for ARM calls ("onlineEndpoints/x"), absolute otherwise
    json: Any
    headers: dict[str, str]
    params: dict[str, str] | None


class Recorder:
    """A ``requests.Session`` stand-in: answers each request with the next expected response.

    ``expect(method, url, ...)`` queues one; a request that is not the next expected one (or
    comes when none is queued) fails the test with both sides shown. The request (URL, query,
    body) and the canned response are validated against the API description
    (:mod:`tests.contract.azure_models`): an invalid request is the code's fault, an invalid
    canned response the test's, and either fails the test.
    """

    def __init__(self) -> None:
        self.expected: list[tuple[str, str, Response]] = []
        self.calls: list[Call] = []
        self.versions: list[str] = []  # the api-version each call was validated against

    def expect(
        self,
        method: str,
        url: str,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Recorder:
        self.expected.append((method, url, Response(status, body, headers or {})))
        return self

    @staticmethod
    def short(url: str) -> str:
        prefix = f"{ROOT}{WSID}/"
        return url[len(prefix) :] if url.startswith(prefix) else url

    def request(self, method: str, url: str, **kw: Any) -> Response:
        got = (method, self.short(url))
        assert self.expected, f"unexpected request {got} (none expected)"
        method_w, url_w, response = self.expected.pop(0)
        assert got == (method_w, url_w), f"request {got}, expected {(method_w, url_w)}"
        version = azure_models.api_version_of(method, url, kw.get("params"))
        sent = azure_models.request_errors(method, url, kw.get("json"), kw.get("params"), version)
        assert not sent, f"{method} {got[1]} does not follow the API description ({version}): {sent}"
        canned = azure_models.response_errors(method, url, response.status_code, response.body, version)
        assert not canned, (
            f"the canned {response.status_code} to {method} {got[1]} is not what Azure sends: {canned}"
        )
        headers = {k: v for k, v in (kw.get("headers") or {}).items() if k in HEADERS_OF_INTEREST}
        self.calls.append(Call(method, got[1], kw.get("json"), headers, kw.get("params")))
        self.versions.append(version)
        return response

    def done(self) -> None:
        assert not self.expected, f"expected requests never made: {[(m, u) for m, u, _ in self.expected]}"

    def reset(self) -> None:
        self.done()
        self.calls.clear()
        self.versions.clear()


# -- fixtures -------------------------------------------------------------------------------------


def endpoint(traffic: dict[str, int], state: str = "Succeeded") -> dict[str, Any]:
    return {
        "name": EP,
        "location": "westeurope",
        "identity": {"type": "SystemAssigned"},
        "kind": "Managed",
        "tags": {"mlops.pipeline": "breast_cancer"},
        "properties": {
            "authMode": "Key",
            "description": "mlops endpoint of breast_cancer",
            "provisioningState": state,
            "traffic": traffic,
            "scoringUri": SCORING,
        },
    }


def deployment_resource(state: str, name: str = "green-v1", version: str = "1") -> dict[str, Any]:
    """An OnlineDeployment as ARM returns it (it has no error field: failures are on the operation)."""
    return {
        "id": f"{WSID}/onlineEndpoints/{EP}/deployments/{name}",
        "name": name,
        "type": "Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments",
        "location": "westeurope",
        "kind": "Managed",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            "model": f"{WSID}/models/breast_cancer/versions/{version}",
            "instanceType": "Standard_DS3_v2",
            "provisioningState": state,
        },
    }


def model_version(version: str) -> dict[str, Any]:
    return {
        "id": f"{WSID}/models/breast_cancer/versions/{version}",
        "name": version,
        "type": "Microsoft.MachineLearningServices/workspaces/models/versions",
        "properties": {"modelType": "mlflow_model", "modelUri": "https://mlopslake.blob.core.windows.net/x"},
    }


def not_found(what: str = "resource") -> dict[str, Any]:
    return {"error": {"code": "NotFound", "message": f"the {what} does not exist"}}


PROFILE = CloudProfile(
    name="azure",
    lake="abfs://mlops-lake/lake",
    landing="abfs://mlops-lake/landing",
    conn_id="azure_data_lake_default",
    training_backend="azureml",
    deploy_target="azureml",
    monitoring_export="azure_monitor",
    settings={
        "ml_conn_id": "azure_ml_default",
        "subscription_id": SUB,
        "resource_group": RG,
        "workspace": WS,
        "location": "westeurope",
        "compute": "cpu-cluster",
        "environment": "mlops-train:3",
        "instance_type": "Standard_DS3_v2",
        "storage_account": "mlopslake",
        "metrics_resource_id": WSID,
    },
)


class Target(AzureMLTarget):
    """The target with packaging stubbed: the contract is about Azure ML requests, not the lake."""

    poll_seconds = 0.0

    def package(self, spec: Any, version: str) -> str:
        return f"{self.profile.lake}/{spec.name}/models/v{version}/model.tar.gz"


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A SQLite MLflow store with versions 1 and 2 of ``breast_cancer`` (a tiny sklearn model)."""
    import mlflow
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from mlops_core.runs import tracking

    tmp = tmp_path_factory.mktemp("mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(tmp))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
        client = tracking.configure()
        x = np.arange(20, dtype=float).reshape(10, 2)
        model = LogisticRegression().fit(x, [0, 1] * 5)
        # an explicit experiment: set_experiment() would leave a process-wide active experiment
        # that later tests' stores do not have
        experiment = client.create_experiment("azureml-contract")
        for _ in range(2):
            with mlflow.start_run(experiment_id=experiment):
                # explicit requirements: inferring them starts a subprocess (seconds)
                info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
            mlflow.register_model(info.model_uri, "breast_cancer")
        yield client


@pytest.fixture
def store(mlflow_store: Any) -> Any:
    """The store with no aliases set (each test sets the champion it starts from)."""
    for alias in (registry.CHAMPION, registry.PREVIOUS, registry.CHALLENGER):
        try:
            mlflow_store.delete_registered_model_alias("breast_cancer", alias)
        except Exception:
            pass
    return mlflow_store


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


def target(rec: Recorder) -> Target:
    services: list[str] = []

    def clients(service: str) -> Recorder:
        services.append(service)
        return rec

    t = Target(PROFILE, clients)
    t.services = services  # type: ignore[attr-defined]
    return t


def spec(strategy: str = "canary") -> Any:
    return example_spec(
        cloud="azure", deployment={"target": "azureml", "strategy": strategy, "canary_percent": 10}
    )


def model_put(version: str) -> tuple[str, str]:
    return ("PUT", f"models/breast_cancer/versions/{version}")


# -- deployment -----------------------------------------------------------------------------------


def test_first_deploy_creates_endpoint_and_green_then_gives_it_all_traffic(rec: Recorder, store: Any) -> None:
    t = target(rec)
    rec.expect(*model_put("1"), 201, model_version("1"))
    rec.expect("GET", EP_PATH, 404, not_found("endpoint"))
    rec.expect("PUT", EP_PATH, 201, endpoint({}, "Creating"), {"Azure-AsyncOperation": OP})
    rec.expect(
        "PUT",
        f"{EP_PATH}/deployments/green-v1",
        201,
        deployment_resource("Creating"),
        {"Azure-AsyncOperation": OP},
    )

    dep = t.deploy(spec("canary"), "1")

    assert [(c.method, c.url) for c in rec.calls] == [
        model_put("1"),
        ("GET", EP_PATH),
        ("PUT", EP_PATH),
        ("PUT", f"{EP_PATH}/deployments/green-v1"),
    ]
    model_body, ep_body, dep_body = rec.calls[0].json, rec.calls[2].json, rec.calls[3].json
    assert model_body == {
        "properties": {
            "modelType": "mlflow_model",  # no scoring script or environment needed
            "modelUri": "https://mlopslake.blob.core.windows.net/mlops-lake/lake/breast_cancer/models/v1/model",
            "description": "MLflow model breast_cancer v1",
            "tags": {"mlops.pipeline": "breast_cancer", "mlflow.version": "1"},
        }
    }
    assert ep_body == {
        "location": "westeurope",
        "identity": {"type": "SystemAssigned"},
        "tags": {"mlops.pipeline": "breast_cancer"},
        # key auth, and no traffic: the endpoint starts with no split
        "properties": {"authMode": "Key", "description": "mlops endpoint of breast_cancer"},
    }
    # every field of the deployment: a managed (not Kubernetes) deployment of the registered
    # version, on the profile's instance type, spec.deployment.instance_count instances
    assert dep_body == {
        "location": "westeurope",
        "kind": "Managed",
        "sku": {"name": "Default", "capacity": 1},
        "properties": {
            "endpointComputeType": "Managed",
            "model": f"{WSID}/models/breast_cancer/versions/1",
            "instanceType": "Standard_DS3_v2",
            "scaleSettings": {"scaleType": "Default"},
        },
    }
    assert all(c.params == {"api-version": API_VERSION} for c in rec.calls)
    assert dep.state == UPDATING and dep.previous_version is None
    assert dep.extra["deployment"] == "green-v1" and dep.extra["previous_deployment"] is None
    assert dep.extra["operation"] == OP
    assert set(t.services) == {"azureml"}  # type: ignore[attr-defined]
    rec.reset()

    # still creating -> updating; Succeeded -> green gets 100 % (first deploy); then ready
    rec.expect("GET", f"{EP_PATH}/deployments/green-v1", 200, deployment_resource("Creating"))
    assert t.status(dep) == UPDATING
    rec.expect("GET", f"{EP_PATH}/deployments/green-v1", 200, deployment_resource("Succeeded"))
    rec.expect("GET", EP_PATH, 200, endpoint({}))
    rec.expect("GET", EP_PATH, 200, endpoint({}))
    rec.expect("PUT", EP_PATH, 201, endpoint({"green-v1": 100}, "Updating"), {"Azure-AsyncOperation": OP})
    assert t.status(dep) == UPDATING
    # the whole endpoint again (a PUT replaces it), only the traffic changed, nothing read-only sent
    assert rec.calls[-1].json == {
        "location": "westeurope",
        "kind": "Managed",
        "tags": {"mlops.pipeline": "breast_cancer"},
        "identity": {"type": "SystemAssigned"},
        "properties": {
            "description": "mlops endpoint of breast_cancer",
            "authMode": "Key",
            "traffic": {"green-v1": 100},
        },
    }
    rec.expect("GET", f"{EP_PATH}/deployments/green-v1", 200, deployment_resource("Succeeded"))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100}))
    assert t.status(dep) == READY
    rec.reset()

    # promote: traffic is already 100 % on green, there is no blue to delete; the alias moves
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100}))
    t.promote(spec("canary"), dep)
    rec.done()
    assert registry.alias_version("breast_cancer", registry.CHAMPION) == "1"


def test_a_traffic_update_keeps_every_writable_field_and_sends_nothing_read_only(rec: Recorder) -> None:
    """The traffic goes in a PUT, which replaces the endpoint: what the PUT leaves out is reset."""
    t = target(rec)
    uai = f"/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/ml"
    current = endpoint({"green-v1": 100})
    current["id"] = f"{WSID}/{EP_PATH}"
    current["systemData"] = {"createdBy": "someone", "createdAt": "2026-01-05T10:00:00Z"}
    current["sku"] = {"name": "Default"}
    current["identity"] = {
        "type": "SystemAssigned,UserAssigned",
        "principalId": "p-1",
        "tenantId": "t-1",
        "userAssignedIdentities": {uai: {"principalId": "p-2", "clientId": "c-2"}},
    }
    current["properties"].update(
        {
            "publicNetworkAccess": "Disabled",  # dropping it would open the endpoint to the internet
            "mirrorTraffic": {"green-v1": 5},
            "swaggerUri": f"https://{EP}.westeurope.inference.ml.azure.com/swagger.json",
        }
    )
    rec.expect("GET", EP_PATH, 200, current)
    rec.expect("PUT", EP_PATH, 200, endpoint({"green-v2": 100}, "Updating"))
    t.client.set_traffic(EP, {"green-v2": 100})
    rec.done()
    assert rec.calls[1].json == {
        "location": "westeurope",
        "kind": "Managed",
        "sku": {"name": "Default"},
        "tags": {"mlops.pipeline": "breast_cancer"},
        "identity": {"type": "SystemAssigned,UserAssigned", "userAssignedIdentities": {uai: {}}},
        "properties": {
            "description": "mlops endpoint of breast_cancer",
            "mirrorTraffic": {"green-v1": 5},
            "publicNetworkAccess": "Disabled",
            "authMode": "Key",
            "traffic": {"green-v2": 100},
        },
    }


def test_endpoint_names_keep_to_azure_ml_s_32_characters() -> None:
    assert AzureMLTarget.endpoint_name(spec()) == EP
    long_a = AzureMLTarget.endpoint_name(
        example_spec(name="customer_churn_prediction_model_a", cloud="azure")
    )
    long_b = AzureMLTarget.endpoint_name(
        example_spec(name="customer_churn_prediction_model_b", cloud="azure")
    )
    for name in (long_a, long_b):
        assert len(name) <= 32 and re.fullmatch(r"[a-z][a-z0-9-]{1,30}[a-z0-9]", name), name
    assert long_a != long_b  # the hash keeps two long names apart


def canary_deployed(rec: Recorder, strategy: str = "canary") -> tuple[Target, Deployment]:
    """v1 is champion and serves 100 % as green-v1; v2 deployed as green-v2."""
    registry.promote("breast_cancer", "1")
    t = target(rec)
    rec.expect(*model_put("2"), 200, model_version("2"))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100}))
    rec.expect(
        "PUT",
        f"{EP_PATH}/deployments/green-v2",
        201,
        deployment_resource("Creating", "green-v2", "2"),
        {"Azure-AsyncOperation": OP},
    )
    dep = t.deploy(spec(strategy), "2")
    assert dep.extra["previous_deployment"] == "green-v1" and dep.previous_version == "1"
    assert dep.extra["previous_traffic"] == {"green-v1": 100}
    rec.reset()
    return t, dep


def to_canary(t: Target, rec: Recorder, dep: Deployment) -> None:
    rec.expect(
        "GET", f"{EP_PATH}/deployments/green-v2", 200, deployment_resource("Succeeded", "green-v2", "2")
    )
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100}))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100}))
    rec.expect("PUT", EP_PATH, 201, endpoint({"green-v1": 90, "green-v2": 10}, "Updating"))
    assert t.status(dep) == UPDATING
    assert rec.calls[-1].json["properties"]["traffic"] == {"green-v2": 10, "green-v1": 90}
    rec.expect(
        "GET", f"{EP_PATH}/deployments/green-v2", 200, deployment_resource("Succeeded", "green-v2", "2")
    )
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}, "Updating"))
    assert t.status(dep) == UPDATING  # the split is being applied
    rec.expect(
        "GET", f"{EP_PATH}/deployments/green-v2", 200, deployment_resource("Succeeded", "green-v2", "2")
    )
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    assert t.status(dep) == READY
    rec.reset()


def test_canary_smoke_and_promote(rec: Recorder, store: Any) -> None:
    t, dep = canary_deployed(rec)
    to_canary(t, rec, dep)

    # smoke predict: scoring URI, endpoint key, routed to green-v2 by header
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("POST", f"{EP_PATH}/listKeys", 200, {"primaryKey": "k-primary", "secondaryKey": "k2"})
    rec.expect("POST", SCORING, 200, ["benign", "malignant"])  # no-code MLflow deployments answer a list
    features = pd.DataFrame({"mean_radius": [12.0, 20.5], "mean_texture": [float("nan"), 19.0]})
    got = t.predict(dep, features)
    assert list(got) == ["benign", "malignant"]
    score = rec.calls[-1]
    assert score.headers == {"Authorization": "Bearer k-primary", "azureml-model-deployment": "green-v2"}
    assert score.json == {
        "input_data": {"columns": ["mean_radius", "mean_texture"], "data": [[12.0, None], [20.5, 19.0]]}
    }
    rec.reset()

    # promote: green 100 % (wait for the operation), delete blue, champion -> v2
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("PUT", EP_PATH, 201, endpoint({"green-v2": 100}, "Updating"), {"Azure-AsyncOperation": OP})
    rec.expect("GET", OP, 200, {"status": "InProgress"})
    rec.expect("GET", OP, 200, {"status": "Succeeded"})
    rec.expect("DELETE", f"{EP_PATH}/deployments/green-v1", 202, None, {"Location": OP})
    t.promote(spec(), dep)
    rec.done()
    assert rec.calls[2].json["properties"]["traffic"] == {"green-v2": 100}
    assert rec.calls[3].params == {}  # the operation URL carries its own api-version
    assert registry.alias_version("breast_cancer", registry.CHAMPION) == "2"
    assert registry.alias_version("breast_cancer", registry.PREVIOUS) == "1"


def test_canary_rollback_returns_traffic_to_blue_and_deletes_green(rec: Recorder, store: Any) -> None:
    t, dep = canary_deployed(rec)
    to_canary(t, rec, dep)
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 90, "green-v2": 10}))
    rec.expect("PUT", EP_PATH, 200, endpoint({"green-v1": 100}))
    rec.expect("DELETE", f"{EP_PATH}/deployments/green-v2", 202)
    t.rollback(spec(), dep)
    rec.done()
    assert rec.calls[2].json["properties"]["traffic"] == {"green-v1": 100}
    assert registry.alias_version("breast_cancer", registry.CHAMPION) == "1"
    tags = store.get_model_version("breast_cancer", "2").tags
    assert tags.get("mlops.rolled_back") == "true"


def test_blue_green_keeps_blue_at_100_and_is_ready_without_a_traffic_change(
    rec: Recorder, store: Any
) -> None:
    t, dep = canary_deployed(rec, "blue_green")
    rec.expect(
        "GET", f"{EP_PATH}/deployments/green-v2", 200, deployment_resource("Succeeded", "green-v2", "2")
    )
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100, "green-v2": 0}))
    assert t.status(dep) == READY
    rec.done()


def test_first_deploy_rollback_clears_traffic_deletes_green_and_keeps_the_endpoint(
    rec: Recorder, store: Any
) -> None:
    t = target(rec)
    dep = Deployment(
        "azureml", "breast_cancer", "1", None, EP, "canary", READY,
        {"endpoint": EP, "deployment": "green-v1", "previous_deployment": None, "model_id": "m"},
    )  # fmt: skip
    registry.promote("breast_cancer", "1")  # as if a caller had promoted before rolling back
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100}))
    rec.expect("GET", EP_PATH, 200, endpoint({"green-v1": 100}))
    rec.expect("PUT", EP_PATH, 200, endpoint({}))
    rec.expect("DELETE", f"{EP_PATH}/deployments/green-v1", 204)
    t.rollback(spec(), dep)
    rec.done()
    assert rec.calls[2].json["properties"]["traffic"] == {}
    assert not any(c.method == "DELETE" and c.url == EP_PATH for c in rec.calls)
    assert registry.alias_version("breast_cancer", registry.CHAMPION) is None


def test_failed_deployment_raises_with_the_reason_arm_gives_on_its_operation(
    rec: Recorder, store: Any
) -> None:
    t, dep = canary_deployed(rec)
    rec.expect("GET", f"{EP_PATH}/deployments/green-v2", 200, deployment_resource("Failed", "green-v2", "2"))
    failed = {
        "status": "Failed",
        "error": {"code": "ResourceNotReady", "message": "User container has crashed or terminated"},
    }
    rec.expect("GET", OP, 200, failed)
    with pytest.raises(
        DeploymentFailed, match=r"green-v2 is Failed: User container has crashed or terminated; see its logs"
    ):
        t.status(dep)
    rec.done()


def test_busy_endpoint_defers_green_creation_to_status(rec: Recorder, store: Any) -> None:
    t = target(rec)
    rec.expect(*model_put("1"), 200, model_version("1"))
    rec.expect("GET", EP_PATH, 404, not_found("endpoint"))
    rec.expect("PUT", EP_PATH, 201, endpoint({}, "Creating"))
    conflict = {"error": {"code": "Conflict", "message": "endpoint is being created"}}
    rec.expect("PUT", f"{EP_PATH}/deployments/green-v1", 409, conflict)
    dep = t.deploy(spec(), "1")
    assert dep.extra["operation"] is None
    rec.expect("GET", f"{EP_PATH}/deployments/green-v1", 404, not_found("deployment"))
    rec.expect("GET", EP_PATH, 200, endpoint({}, "Creating"))
    assert t.status(dep) == UPDATING
    rec.expect("GET", f"{EP_PATH}/deployments/green-v1", 404, not_found("deployment"))
    rec.expect("GET", EP_PATH, 200, endpoint({}))
    rec.expect(
        "PUT",
        f"{EP_PATH}/deployments/green-v1",
        201,
        deployment_resource("Creating"),
        {"Azure-AsyncOperation": OP},
    )
    assert t.status(dep) == UPDATING
    rec.done()
    assert rec.calls[-1].json["properties"]["model"] == f"{WSID}/models/breast_cancer/versions/1"
    assert dep.extra["operation"] == OP  # a later failure is read from this operation


def test_http_errors_name_status_and_arm_message(rec: Recorder, store: Any) -> None:
    t = target(rec)
    rec.expect(*model_put("1"), 403, {"error": {"code": "AuthorizationFailed", "message": "no write access"}})
    with pytest.raises(
        Exception, match=r"HTTP 403 AuthorizationFailed: no write access.*AzureML Data Scientist"
    ):
        t.deploy(spec(), "1")


# -- training -------------------------------------------------------------------------------------


JOB = JobRequest(
    name="mlops-breast-cancer-20260105-t1",
    folder="abfs://mlops-lake/lake/breast_cancer/jobs/mlops-breast-cancer-20260105-t1",
    raw_uri="abfs://mlops-lake/lake/breast_cancer/raw/ds=2026-01-05",
    lake_root="abfs://mlops-lake/lake",
    ds="2026-01-05",
    tags={"airflow.dag_id": "breast_cancer_training"},
    env={"MLFLOW_TRACKING_URI": "azureml://tracking"},
)
JOB_PATH = f"jobs/{JOB.name}"


STUDIO = "https://ml.azure.com/runs/mlops-breast-cancer-20260105-t1?wsid=" + WSID


def job(status: str, services: dict[str, Any] | None = None) -> dict[str, Any]:
    """A CommandJob as ARM returns it: the job as submitted, plus status and services."""
    props = command_job_body(PROFILE, example_spec(cloud="azure"), JOB)["properties"]
    studio = {"Studio": {"jobServiceType": "Studio", "endpoint": STUDIO}}
    return {
        "id": f"{WSID}/jobs/{JOB.name}",
        "name": JOB.name,
        "type": "Microsoft.MachineLearningServices/workspaces/jobs",
        "properties": {**props, "status": status, "services": services or studio},
    }


def test_command_job_body() -> None:
    body = command_job_body(PROFILE, example_spec(cloud="azure", training={"timeout_minutes": 90}), JOB)
    assert azure_models.model_errors("JobBase", body, request=True) == []
    # every field: what runs (the image's entry point on the job folder), where (the profile's
    # compute and environment), with what (the MLflow server), for how long, and no outputs:
    # the job writes its result into the job folder in the lake, which the worker reads back
    assert body == {
        "properties": {
            "jobType": "Command",
            "displayName": JOB.name,
            "experimentName": "breast_cancer",
            "description": "mlops training of breast_cancer for 2026-01-05",
            "command": f"python -m mlops_core.model.remote {JOB.folder}",
            "environmentId": f"{WSID}/environments/mlops-train/versions/3",
            "computeId": f"{WSID}/computes/cpu-cluster",
            "environmentVariables": {"MLFLOW_TRACKING_URI": "azureml://tracking"},
            "limits": {"jobLimitsType": "Command", "timeout": "PT1H30M"},
            "tags": {
                "airflow.dag_id": "breast_cancer_training",
                "mlops.pipeline": "breast_cancer",
                "mlops.ds": "2026-01-05",
            },
        }
    }


def test_submit_training_creates_once_and_attaches_on_retry(rec: Recorder) -> None:
    clients = lambda service: rec  # noqa: E731
    rec.expect("GET", JOB_PATH, 404, not_found("job"))
    rec.expect("PUT", JOB_PATH, 201, job("NotStarted"))
    assert submit_training(PROFILE, clients, JOB, example_spec(cloud="azure")) == {"job": JOB.name}
    rec.expect("GET", JOB_PATH, 200, job("Running"))  # the retried task: no second PUT
    assert submit_training(PROFILE, clients, JOB, example_spec(cloud="azure")) == {"job": JOB.name}
    rec.done()
    assert [(c.method, c.url) for c in rec.calls] == [("GET", JOB_PATH), ("PUT", JOB_PATH), ("GET", JOB_PATH)]
    assert rec.calls[1].json["properties"]["displayName"] == JOB.name


def test_submit_training_refuses_to_reuse_a_failed_job_name(rec: Recorder) -> None:
    rec.expect("GET", JOB_PATH, 200, job("Failed"))
    with pytest.raises(RemoteJobFailed, match=f"already exists and is Failed: .*logs: {re.escape(STUDIO)}"):
        submit_training(PROFILE, lambda s: rec, JOB, example_spec(cloud="azure"))


@pytest.mark.parametrize(
    ("status", "state"),
    [("Completed", SUCCEEDED)]
    + [
        (s, RUNNING)
        for s in (
            "NotStarted",
            "Queued",
            "Preparing",
            "Provisioning",
            "Starting",
            "Running",
            "Finalizing",
            "CancelRequested",
        )
    ],
)
def test_training_state_mapping(rec: Recorder, status: str, state: str) -> None:
    rec.expect("GET", JOB_PATH, 200, job(status))
    assert training_state(PROFILE, lambda s: rec, {"job": JOB.name}) == state


@pytest.mark.parametrize("status", ["Failed", "Canceled", "NotResponding"])
def test_training_state_failures_raise_with_where_to_read_why(rec: Recorder, status: str) -> None:
    # the job resource has no error field: the message points at the run in studio
    rec.expect("GET", JOB_PATH, 200, job(status))
    with pytest.raises(
        RemoteJobFailed,
        match=rf"is {status}: the job resource reports no error text; logs: {re.escape(STUDIO)}",
    ):
        training_state(PROFILE, lambda s: rec, {"job": JOB.name})


def test_training_state_failure_carries_the_error_a_job_service_reports(rec: Recorder) -> None:
    services = {
        "Studio": {"jobServiceType": "Studio", "endpoint": STUDIO},
        "Tracking": {"jobServiceType": "Tracking", "errorMessage": "compute cpu-cluster was deallocated"},
    }
    rec.expect("GET", JOB_PATH, 200, job("Failed", services))
    with pytest.raises(
        RemoteJobFailed, match=r"is Failed: Tracking: compute cpu-cluster was deallocated; logs"
    ):
        training_state(PROFILE, lambda s: rec, {"job": JOB.name})


# -- monitoring -----------------------------------------------------------------------------------


def test_write_metrics_posts_one_custom_metric_per_value_and_skips_nan(rec: Recorder) -> None:
    services: list[str] = []

    def clients(service: str) -> Recorder:
        services.append(service)
        return rec

    url = f"https://westeurope.monitoring.azure.com{WSID}/metrics"
    rec.expect("POST", url, 200).expect("POST", url, 200)
    write_metrics(
        PROFILE,
        clients,
        "breast_cancer",
        {"roc_auc": 0.97, "drift": math.nan, "rows": 120},
        {"ds": "2026-01-05"},
    )
    rec.done()
    assert services == ["monitor"]
    assert len(rec.calls) == 2
    body = rec.calls[0].json
    assert set(body) == {"time", "data"} and body["time"].endswith("Z")
    assert body["data"]["baseData"] == {
        "metric": "roc_auc",
        "namespace": "MLOps",
        "dimNames": ["pipeline", "ds"],
        "series": [
            {"dimValues": ["breast_cancer", "2026-01-05"], "min": 0.97, "max": 0.97, "sum": 0.97, "count": 1}
        ],
    }
    assert rec.calls[1].json["data"]["baseData"]["metric"] == "rows"


def test_core_modules_import_no_airflow() -> None:
    """mlops_core stays Airflow-free: the remote training container has no Airflow."""
    import ast

    root = Path(__file__).resolve().parents[2] / "include" / "mlops_core" / "clouds" / "azure"
    for path in sorted(root.glob("*.py")):
        tree = ast.parse(path.read_text())
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        assert not [n for n in names if n.split(".")[0] == "airflow"], path


def test_autoscaling_puts_target_utilization_scale_settings(rec: Recorder, store: Any) -> None:
    """Validated against azure-ai-ml's REST models (TargetUtilizationScaleSettings) by the recorder."""
    t = target(rec)
    rec.expect(*model_put("1"), 201, model_version("1"))
    rec.expect("GET", EP_PATH, 404, not_found("endpoint"))
    rec.expect("PUT", EP_PATH, 201, endpoint({}, "Creating"), {"Azure-AsyncOperation": OP})
    rec.expect(
        "PUT",
        f"{EP_PATH}/deployments/green-v1",
        201,
        deployment_resource("Creating"),
        {"Azure-AsyncOperation": OP},
    )
    scaled = example_spec(
        cloud="azure",
        deployment={
            "target": "azureml",
            "strategy": "canary",
            "autoscaling": {"min_instances": 2, "max_instances": 5, "target_cpu_percent": 60},
        },
    )
    dep = t.deploy(scaled, "1")
    body = rec.calls[3].json
    assert body["sku"] == {"name": "Default", "capacity": 2}  # starts at min_instances
    assert body["properties"]["scaleSettings"] == {
        "scaleType": "TargetUtilization",
        "minInstances": 2,
        "maxInstances": 5,
        "targetUtilizationPercentage": 60,
        "pollingInterval": "PT1M",
    }
    assert dep.extra["autoscaling"]["max_instances"] == 5  # what a delayed PUT (status) sends again
    rec.done()
    wrong = {
        **body,
        "properties": {
            **body["properties"],
            "scaleSettings": {**body["properties"]["scaleSettings"], "maxInstance": 5},
        },
    }
    url = f"{ROOT}{WSID}/{EP_PATH}/deployments/green-v1?api-version={API_VERSION}"
    assert azure_models.request_errors("PUT", url, wrong), "the validator must refuse a misspelt field"
