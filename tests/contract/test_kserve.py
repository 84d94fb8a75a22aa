"""KServe target: the exact Kubernetes requests, in order, of deploy / status / smoke test / promote / rollback.

No cluster runs here. An in-process HTTP server (:class:`FakeKubeAPI`) plays the Kubernetes API
server for ``/apis/serving.kserve.io/v1beta1/namespaces/<ns>/inferenceservices[/<name>]``: it
records every request (method, path, content type, JSON body) and answers the next recorded
response, shaped like what KServe really returns (``status.url``, ``status.conditions``,
``status.components.predictor`` with its revisions and traffic, ``modelStatus``); a request
nobody expected fails the test. The requests are made by the real ``kubernetes`` Python client
(``CustomObjectsApi`` on a ``Configuration`` pointing at the server), so paths, verbs, content
types (merge patch for a dict body) and JSON are the client's own.

The smoke test goes to a second server that plays the ingress gateway in front of MLServer: it
answers ``POST /v2/models/<name>/infer`` only for the ``Host`` of the new revision's ``latest``
tag URL, checks the body is a valid V2 ``InferenceRequest`` and scores it with the registered
MLflow model loaded by ``mlflow.pyfunc`` (what MLServer's MLflow runtime does). The MLflow
registry is real (SQLite, two versions of a tiny scikit-learn model), so ``promote`` and
``rollback`` really move aliases.
"""

from __future__ import annotations

import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pandas as pd
import pytest

from mlops_core.clouds.kubernetes.deploy import KServeTarget
from mlops_core.deploy import READY, UPDATING, Deployment, DeploymentFailed
from mlops_core.spec.profiles import CloudProfile
from tests.contract import kserve_schema
from tests.contract.test_sagemaker import register_tiny_versions, use_mlflow_store
from tests.helpers import example_spec, load_as_serving_container

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.contract

NAME = "breast_cancer"
NS = "mlops"
ISVC = "mlops-breast-cancer"
COLLECTION = f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices"
ITEM = f"{COLLECTION}/{ISVC}"
LAKE = "s3://mlops-lake/lake"
URI = {v: f"{LAKE}/{NAME}/models/v{v}/model" for v in ("1", "2")}
REV1, REV2, REV3 = (f"{ISVC}-predictor-0000{i}" for i in (1, 2, 3))
DOMAIN = f"{NS}.example.com"
LATEST_HOST = f"latest-{ISVC}-predictor.{DOMAIN}"
JSON, MERGE = "application/json", "application/merge-patch+json"
SERVICE_ACCOUNT = "kserve-lake-reader"


# -- the Kubernetes API server, recorded ----------------------------------------------------------


class FakeKubeAPI:
    """Plays the Kubernetes API server for InferenceServices: records, answers the next canned response.

    Each request is recorded as ``(method, path with query, content type, JSON body or None)``;
    :attr:`headers` keeps the headers of each (the unit test of the Airflow layer reads the
    bearer token there). A request past the canned answers, or outside the InferenceService
    paths, answers 500 and is kept in :attr:`problems`, which :meth:`done` asserts empty.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.answers: list[tuple[int, Any]] = []
        self.problems: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                body = json.loads(raw) if raw else None
                # the content type only of a request with a body (the client sends one on GET too)
                content_type = self.headers.get("Content-Type") if raw else None
                status, answer = fake._answer(self.command, self.path, content_type, body)
                fake.headers.append(dict(self.headers))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

            def log_message(self, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def _answer(self, method: str, path: str, content_type: str | None, body: Any) -> tuple[int, Any]:
        self.calls.append((method, path, content_type, body))
        if not path.startswith(COLLECTION):
            self.problems.append(f"{method} {path}: not an InferenceService path")
            return 500, status_object(500, "InternalError", "unexpected path")
        if isinstance(body, dict) and method in ("POST", "PUT", "PATCH"):
            refused = kserve_schema.errors(body, patch=method == "PATCH")
            if refused:  # what the API server would prune (or refuse with fieldValidation=Strict)
                self.problems.append(f"{method} {path}: not what the InferenceService CRD allows: {refused}")
                return 422, status_object(422, "Invalid", "; ".join(refused))
        if not self.answers:
            self.problems.append(f"unexpected request: {method} {path} {json.dumps(body)}")
            return 500, status_object(500, "InternalError", "no canned answer")
        return self.answers.pop(0)

    def expect(self, *answers: dict[str, Any] | tuple[int, Any]) -> None:
        self.calls.clear()
        self.answers = [a if isinstance(a, tuple) else (200, a) for a in answers]
        for _, answer in self.answers:  # the canned objects too are held to the CRD
            if isinstance(answer, dict) and answer.get("kind") == "InferenceService":
                assert kserve_schema.errors(answer) == [], kserve_schema.errors(answer)

    def done(self) -> None:
        assert self.problems == []
        assert self.answers == [], f"{len(self.answers)} canned answer(s) never requested"

    def api(self) -> Any:
        """The real client: ``CustomObjectsApi`` on a ``Configuration`` pointing at this server."""
        from kubernetes import client

        return client.CustomObjectsApi(client.ApiClient(client.Configuration(host=self.url)))

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def status_object(code: int, reason: str, message: str) -> dict[str, Any]:
    """A ``meta/v1 Status``, what the API server answers for an error."""
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": {"name": ISVC, "group": "serving.kserve.io", "kind": "inferenceservices"},
        "code": code,
    }


NOT_FOUND = (404, status_object(404, "NotFound", f'inferenceservices.serving.kserve.io "{ISVC}" not found'))


# -- InferenceServices as KServe returns them ------------------------------------------------------


def predictor_spec(version: str, canary: int | None = None, **fields: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "minReplicas": 1,
        "maxReplicas": 1,
        "model": {"modelFormat": {"name": "mlflow"}, "protocolVersion": "v2", "storageUri": URI[version]},
        **fields,
    }
    if canary is not None:
        spec["canaryTrafficPercent"] = canary
    return spec


def annotations(version: str, previous: str | None = None) -> dict[str, str]:
    found = {
        "serving.kserve.io/enable-tag-routing": "true",
        "mlops/model-name": NAME,
        "mlops/model-version": version,
    }
    if previous is not None:
        found |= {"mlops/previous-model-version": previous, "mlops/previous-storage-uri": URI[previous]}
    return found


def condition(kind: str, status: str = "True", reason: str | None = None, message: str | None = None) -> dict:
    found = {"type": kind, "status": status, "lastTransitionTime": "2026-01-05T10:00:00Z"}
    if reason:
        found["reason"] = reason
    if message:
        found["message"] = message
    return found


READY_CONDITIONS = [
    condition(kind)
    for kind in (
        "IngressReady",
        "LatestDeploymentReady",
        "PredictorConfigurationReady",
        "PredictorReady",
        "PredictorRouteReady",
        "Ready",
        "RoutesReady",
    )
]


def target(revision: str, percent: int, latest: bool, tag: str | None = None) -> dict[str, Any]:
    """A ``status.components.predictor.traffic`` entry (Knative's TrafficTarget, tag URLs included)."""
    entry: dict[str, Any] = {"latestRevision": latest, "percent": percent, "revisionName": revision}
    if tag:
        entry |= {"tag": tag, "url": f"http://{tag}-{ISVC}-predictor.{DOMAIN}"}
    return entry


def ready_status(
    generation: int,
    traffic: list[dict[str, Any]],
    *,
    created: str,
    ready: str | None = None,
    rolled_out: str = REV1,
    previous: str | None = None,
    conditions: list[dict[str, Any]] | None = None,
    model: dict[str, Any] | None = None,
) -> dict[str, Any]:
    predictor: dict[str, Any] = {
        "latestCreatedRevision": created,
        "latestReadyRevision": created if ready is None else ready,
        "latestRolledoutRevision": rolled_out,
        "traffic": traffic,
        "url": f"http://{ISVC}-predictor.{DOMAIN}",
        "address": {"url": f"http://{ISVC}-predictor.{NS}.svc.cluster.local"},
    }
    if previous:
        predictor["previousRolledoutRevision"] = previous
    return {
        "observedGeneration": generation,
        "url": f"http://{ISVC}.{DOMAIN}",
        "address": {"url": f"http://{ISVC}.{NS}.svc.cluster.local"},
        "conditions": conditions or READY_CONDITIONS,
        "components": {"predictor": predictor},
        "modelStatus": model
        or {
            "transitionStatus": "UpToDate",
            "states": {"activeModelState": "Loaded", "targetModelState": "Loaded"},
            "copies": {"failedCopies": 0, "totalCopies": 1},  # the CRD requires both
        },
        "deploymentMode": "Serverless",
    }


def isvc(
    version: str,
    *,
    generation: int,
    canary: int | None = None,
    previous: str | None = None,
    status: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An InferenceService as the API server returns it (server-set metadata included)."""
    found: dict[str, Any] = {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {
            "name": ISVC,
            "namespace": NS,
            "uid": "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0",
            "generation": generation,
            "resourceVersion": f"{1000 + generation}",
            "creationTimestamp": "2026-01-05T09:59:00Z",
            "finalizers": ["inferenceservice.finalizers"],
            "labels": {"mlops/pipeline": NAME},
            "annotations": annotations(version, previous),
        },
        "spec": {"predictor": predictor_spec(version, canary)},
    }
    if status is not None:
        found["status"] = status
    return found


# v1 served to everyone (the champion), generation 1
SERVING_V1 = isvc(
    "1",
    generation=1,
    status=ready_status(1, [target(REV1, 100, True, "latest")], created=REV1),
)
# v2 as a canary beside it: KServe's split after the update of generation 2
CANARY_V2 = isvc(
    "2",
    generation=2,
    canary=10,
    previous="1",
    status=ready_status(
        2, [target(REV2, 10, True, "latest"), target(REV1, 90, False, "prev")], created=REV2, rolled_out=REV1
    ),
)


# -- a real MLflow registry: versions 1 and 2 of a tiny model ---------------------------------------


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    with pytest.MonkeyPatch.context() as mp:
        use_mlflow_store(tmp_path_factory.mktemp("kserve-contract"), mp)
        yield register_tiny_versions(NAME, 2)


@pytest.fixture
def champion(versions: list[str]) -> Any:
    """Reset the aliases and rollback marks; call the result with the version to make champion."""
    from mlops_core.runs import registry

    client = registry.client()
    for alias in (registry.CHAMPION, registry.PREVIOUS):
        if registry.alias_version(NAME, alias) is not None:
            client.delete_registered_model_alias(NAME, alias)
    for version in versions:
        if "mlops.rolled_back" in client.get_model_version(NAME, version).tags:
            client.delete_model_version_tag(NAME, version, "mlops.rolled_back")

    def set_champion(version: str | None) -> None:
        if version is not None:
            client.set_registered_model_alias(NAME, registry.CHAMPION, version)

    return set_champion


def aliases() -> tuple[str | None, str | None]:
    from mlops_core.runs import registry

    return registry.alias_version(NAME, registry.CHAMPION), registry.alias_version(NAME, registry.PREVIOUS)


# -- the target, on the recorded API -----------------------------------------------------------------


@pytest.fixture(scope="module")
def kube() -> Iterator[FakeKubeAPI]:
    fake = FakeKubeAPI()
    yield fake
    fake.close()


@pytest.fixture
def api(kube: FakeKubeAPI) -> Iterator[FakeKubeAPI]:
    kube.expect()
    kube.problems.clear()
    yield kube
    kube.done()


def profile(**settings: str) -> CloudProfile:
    """The ``aws`` profile with the kserve target, as ``clouds.resolve`` builds it."""
    values = {
        "region": "eu-west-1",
        "kubernetes_conn_id": "kubernetes_default",
        "kserve_namespace": NS,
        "kserve_service_account": SERVICE_ACCOUNT,
        **settings,
    }
    return CloudProfile(
        "aws", LAKE, LAKE.replace("lake", "landing"), None, "sagemaker", "kserve", "none", values
    )


class Target(KServeTarget):
    """Packaging (MLflow download + copy to the lake) is package_model's, tested on moto elsewhere."""

    poll_seconds = 0.0

    def __init__(self, kube: FakeKubeAPI, **settings: str) -> None:
        client = kube.api()
        super().__init__(profile(**settings), lambda service: client if service == "kubernetes" else None)
        self.packaged: list[str] = []

    def package(self, spec: Any, version: str) -> str:
        self.packaged.append(version)
        return f"{LAKE}/{spec.name}/models/v{version}/model.tar.gz"


def kserve_spec(**deployment: Any) -> Any:
    return example_spec(cloud="aws", deployment={"target": "kserve", **deployment})


def deployment(
    version: str = "2", previous: str | None = "1", canary: int | None = 10, **extra: Any
) -> Deployment:
    """What ``deploy`` returned (as it comes back from XCom)."""
    return Deployment(
        "kserve",
        NAME,
        version,
        previous,
        f"{NS}/{ISVC}",
        strategy="canary" if canary else "all_at_once",
        state=UPDATING,
        extra={
            "namespace": NS,
            "name": ISVC,
            "storage_uri": URI[version],
            "previous_storage_uri": URI[previous] if previous else None,
            "previous_model_version": previous,
            "canary_percent": canary,
            "generation": 2 if previous else 1,
            **extra,
        },
    )


# -- deploy ---------------------------------------------------------------------------------------------

MANIFEST_V1 = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {
        "name": ISVC,
        "namespace": NS,
        "labels": {"mlops/pipeline": NAME},
        "annotations": annotations("1"),
    },
    "spec": {"predictor": predictor_spec("1")},
}


def test_the_crd_schema_holds_the_manifest_and_refuses_a_misspelling(api: FakeKubeAPI, champion: Any) -> None:
    """The manifest the target sends is what KServe v0.20.0's InferenceService CRD declares; the
    same manifest with a misspelt field (``storageURI`` for ``storageUri``) is refused, by the schema
    and by the fake API server, which answers 422 as the real one does with strict field validation."""
    import copy

    assert kserve_schema.errors(MANIFEST_V1) == []
    misspelt = copy.deepcopy(MANIFEST_V1)
    model = misspelt["spec"]["predictor"]["model"]
    model["storageURI"] = model.pop("storageUri")
    refused = kserve_schema.errors(misspelt)
    assert refused == [
        "spec.predictor.model: Additional properties are not allowed ('storageURI' was unexpected)"
    ]
    wrong_type = copy.deepcopy(MANIFEST_V1)
    wrong_type["spec"]["predictor"]["minReplicas"] = "one"
    assert [e.split(":")[0] for e in kserve_schema.errors(wrong_type)] == ["spec.predictor.minReplicas"]
    assert kserve_schema.errors({"spec": {"predictor": {"canaryTrafficPercent": 10}}}, patch=True) == []
    assert kserve_schema.errors({"spec": {"predictor": {"canaryTraficPercent": 10}}}, patch=True) != []

    from kubernetes.client.exceptions import ApiException

    api.expect()
    with pytest.raises(ApiException) as err:
        api.api().create_namespaced_custom_object(
            "serving.kserve.io", "v1beta1", NS, "inferenceservices", misspelt
        )
    assert err.value.status == 422 and "'storageURI' was unexpected" in str(err.value.body)
    assert len(api.problems) == 1 and "storageURI" in api.problems[0]
    api.problems.clear()


def test_first_deploy_creates_the_inference_service_then_waits_for_ready(
    api: FakeKubeAPI, champion: Any
) -> None:
    champion(None)
    created = isvc("1", generation=1)  # no status yet: KServe has not reconciled it
    api.expect(NOT_FOUND, (201, created))
    target = Target(api)
    dep = target.deploy(kserve_spec(strategy="canary"), "1")  # canary with nothing serving: all traffic

    assert api.calls == [
        ("GET", ITEM, None, None),
        ("POST", COLLECTION, JSON, MANIFEST_V1),
    ]
    assert target.packaged == ["1"]
    assert (dep.target, dep.endpoint, dep.state, dep.previous_version) == (
        "kserve",
        f"{NS}/{ISVC}",
        UPDATING,
        None,
    )
    assert dep.extra == {
        "namespace": NS,
        "name": ISVC,
        "storage_uri": URI["1"],
        "previous_storage_uri": None,
        "previous_model_version": None,
        "canary_percent": None,
        "generation": 1,
    }

    # status: not reconciled -> revision coming up (Ready is False then: IngressReady) -> ready
    coming_up = ready_status(
        1,
        [],
        created=REV1,
        ready="",  # none yet
        conditions=[
            condition("IngressReady", "False", "Predictor ingress not created"),
            condition(
                "PredictorReady",
                "Unknown",
                "RevisionMissing",
                f'Configuration "{ISVC}-predictor" is waiting for a Revision to become ready.',
            ),
            condition("Ready", "False", "Predictor ingress not created"),
        ],
        model={
            "transitionStatus": "InProgress",
            "states": {"activeModelState": "", "targetModelState": "Pending"},
        },
    )
    api.expect(created, isvc("1", generation=1, status=coming_up), SERVING_V1)
    assert [target.status(dep) for _ in range(3)] == [UPDATING, UPDATING, READY]
    assert api.calls == [("GET", ITEM, None, None)] * 3


def test_canary_deploy_on_top_of_the_champion_splits_traffic(api: FakeKubeAPI, champion: Any) -> None:
    champion("1")
    api.expect(SERVING_V1, isvc("2", generation=2, canary=10, previous="1"))
    target = Target(api)
    dep = target.deploy(kserve_spec(strategy="canary", canary_percent=10), "2")

    patch = {
        "metadata": {
            "resourceVersion": "1001",  # the update fails (409) if the InferenceService changed since the read
            "labels": {"mlops/pipeline": NAME},
            "annotations": {
                **annotations("2", previous="1"),
                "autoscaling.knative.dev/class": None,
            },
        },
        "spec": {
            "predictor": {
                **predictor_spec("2", canary=10),
                "scaleMetric": None,
                "scaleTarget": None,
                "nodeSelector": None,
                "model": {**predictor_spec("2")["model"], "runtime": None, "resources": None},
            }
        },
    }
    assert api.calls == [("GET", ITEM, None, None), ("PATCH", ITEM, MERGE, patch)]
    assert target.packaged == ["2"]
    assert dep.previous_version == "1"
    assert dep.extra["previous_storage_uri"] == URI["1"]
    assert (dep.extra["canary_percent"], dep.extra["generation"]) == (10, 2)

    # status: the old generation is still observed, then the split is in place
    api.expect(isvc("2", generation=2, canary=10, previous="1", status=SERVING_V1["status"]), CANARY_V2)
    assert [target.status(dep) for _ in range(2)] == [UPDATING, READY]


@pytest.mark.parametrize(("strategy", "canary"), [("blue_green", 0), ("all_at_once", None)])
def test_blue_green_stands_beside_at_zero_percent_and_all_at_once_removes_the_split(
    api: FakeKubeAPI, champion: Any, strategy: str, canary: int | None
) -> None:
    champion("1")
    previous = isvc("1", generation=3, canary=0)  # pinned by an earlier rollback: all_at_once must unpin it
    api.expect(previous, isvc("2", generation=4, canary=canary, previous="1"))
    dep = Target(api).deploy(kserve_spec(strategy=strategy), "2")
    sent = api.calls[-1][3]["spec"]["predictor"]
    assert "canaryTrafficPercent" in sent and sent["canaryTrafficPercent"] == canary  # null: removed
    assert dep.extra["canary_percent"] == canary


def test_retried_deploy_finds_what_the_first_try_made(api: FakeKubeAPI, champion: Any) -> None:
    """The first try created the InferenceService and died; the retry reads it and writes nothing."""
    champion(None)
    api.expect(NOT_FOUND, (201, isvc("1", generation=1)))
    first = Target(api).deploy(kserve_spec(), "1")

    api.expect(isvc("1", generation=1))
    retry_target = Target(api)
    retry = retry_target.deploy(kserve_spec(), "1")
    assert api.calls == [("GET", ITEM, None, None)]  # no second POST
    assert retry_target.packaged == []
    assert retry.to_dict() == first.to_dict()

    # a retried canary update: the annotations still say what served before it
    champion("1")
    api.expect(CANARY_V2)
    again = Target(api).deploy(kserve_spec(strategy="canary"), "2")
    assert api.calls == [("GET", ITEM, None, None)]  # no second PATCH
    assert (again.extra["previous_storage_uri"], again.extra["previous_model_version"]) == (URI["1"], "1")
    assert (again.extra["canary_percent"], again.extra["generation"]) == (10, 2)


def test_a_deploy_over_an_unfinished_canary_keeps_the_champion_as_previous(
    api: FakeKubeAPI, champion: Any
) -> None:
    """v2's canary was never promoted nor rolled back (champion still v1): v1 is what to roll back to."""
    champion("1")
    api.expect(CANARY_V2, isvc("2", generation=3))
    Target(api).deploy(kserve_spec(strategy="canary"), "1")  # v1 again, e.g. a forced redeploy
    sent = api.calls[-1][3]
    assert sent["metadata"]["annotations"]["mlops/previous-storage-uri"] == URI["1"]


def test_autoscaling_resources_and_instance_type(api: FakeKubeAPI, champion: Any) -> None:
    champion(None)
    api.expect(NOT_FOUND, (201, isvc("1", generation=1)))
    spec = kserve_spec(
        instance_type="m5.xlarge",
        autoscaling={"min_instances": 2, "max_instances": 8, "target_cpu_percent": 65},
        kserve={"cpu": "500m", "memory": "1Gi", "memory_limit": "2Gi", "runtime": "kserve-mlserver"},
    )
    Target(api).deploy(spec, "1")
    body = api.calls[-1][3]
    assert body["metadata"]["annotations"]["autoscaling.knative.dev/class"] == "hpa.autoscaling.knative.dev"
    assert body["spec"]["predictor"] == {
        "serviceAccountName": SERVICE_ACCOUNT,
        "minReplicas": 2,
        "maxReplicas": 8,
        "scaleMetric": "cpu",
        "scaleTarget": 65,
        "nodeSelector": {"node.kubernetes.io/instance-type": "m5.xlarge"},
        "model": {
            "modelFormat": {"name": "mlflow"},
            "protocolVersion": "v2",
            "runtime": "kserve-mlserver",
            "storageUri": URI["1"],
            "resources": {
                "requests": {"cpu": "500m", "memory": "1Gi"},
                "limits": {"cpu": "500m", "memory": "2Gi"},
            },
        },
    }


def test_raw_deployment_mode_refuses_a_canary(api: FakeKubeAPI, champion: Any) -> None:
    champion("1")
    raw = isvc("1", generation=1, status={**SERVING_V1["status"], "deploymentMode": "RawDeployment"})
    api.expect(raw)
    with pytest.raises(DeploymentFailed, match="RawDeployment mode, which cannot split traffic"):
        Target(api).deploy(kserve_spec(strategy="canary"), "2")
    assert [c[0] for c in api.calls] == ["GET"]  # nothing written


def test_a_webhook_refusal_is_a_deployment_failure_naming_its_message(
    api: FakeKubeAPI, champion: Any
) -> None:
    champion(None)
    message = (
        'admission webhook "inferenceservice.kserve-webhook-server.validator.webhook" denied the request: '
        "storageUri, must be one of: [gs://, s3://, ...]"
    )
    api.expect(NOT_FOUND, (422, status_object(422, "Invalid", message)))
    with pytest.raises(
        DeploymentFailed, match=r"refused creating InferenceService mlops/mlops-breast-cancer \(HTTP 422\)"
    ):
        Target(api).deploy(kserve_spec(), "1")


# -- status -----------------------------------------------------------------------------------------------

REVISION_FAILED = (
    f'Revision "{REV2}" failed with message: Container failed with: ModuleNotFoundError: '
    "No module named 'lightgbm'."
)


def test_a_failed_revision_raises_with_kserves_reason(api: FakeKubeAPI) -> None:
    failed = ready_status(
        2,
        [
            target(REV1, 10, True, "latest"),
            target(REV1, 90, False, "prev"),
        ],  # the new revision never got ready
        created=REV2,
        ready=REV1,
        conditions=[
            condition("IngressReady", "False", "Predictor ingress not created"),
            condition("LatestDeploymentReady", "False", "PredictorConfigurationReady not ready"),
            condition("PredictorConfigurationReady", "False", "RevisionFailed", REVISION_FAILED),
            condition("PredictorReady", "False", "RevisionFailed", REVISION_FAILED),
            condition("Ready", "False", "RevisionFailed", REVISION_FAILED),
        ],
        model={
            "transitionStatus": "BlockedByFailedLoad",
            "states": {"activeModelState": "Loaded", "targetModelState": "FailedToLoad"},
            "lastFailureInfo": {
                "location": f"{REV2}-deployment-7d9c5b6f4-x2k8q",
                "reason": "ModelLoadFailed",
                "message": "No module named 'lightgbm'",
                "exitCode": 1,
            },
        },
    )
    api.expect(isvc("2", generation=2, canary=10, previous="1", status=failed))
    with pytest.raises(DeploymentFailed) as err:
        Target(api).status(deployment())
    text = str(err.value)
    assert "Ready=False (RevisionFailed)" in text and REVISION_FAILED in text
    assert "model ModelLoadFailed: No module named 'lightgbm'" in text
    assert text.count(REVISION_FAILED) == 1  # Ready and PredictorReady say the same: once


def test_status_fails_when_someone_else_changed_the_model(api: FakeKubeAPI) -> None:
    api.expect(SERVING_V1)
    with pytest.raises(
        DeploymentFailed, match="now serves s3://mlops-lake/lake/breast_cancer/models/v1/model"
    ):
        Target(api).status(deployment())


def test_status_of_a_deleted_inference_service(api: FakeKubeAPI) -> None:
    api.expect(NOT_FOUND)
    with pytest.raises(DeploymentFailed, match="does not exist"):
        Target(api).status(deployment())


def test_status_waits_while_the_new_revision_is_not_the_ready_one(api: FakeKubeAPI) -> None:
    """Ready (of the old revision) before the new one is: not ready yet, whatever Ready says."""
    early = ready_status(2, [target(REV1, 100, True, "latest")], created=REV2, ready=REV1)
    api.expect(isvc("2", generation=2, canary=10, previous="1", status=early))
    assert Target(api).status(deployment()) == UPDATING


# -- smoke test through the V2 inference protocol ---------------------------------------------------------

V2_DATATYPES = {
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
}  # fmt: skip


def _flat(data: Any) -> list[Any]:
    return [x for item in data for x in (_flat(item) if isinstance(item, list) else [item])]


def _element_ok(datatype: str, value: Any) -> bool:
    if datatype == "BOOL":
        return isinstance(value, bool)
    if datatype == "BYTES":
        return isinstance(value, str)
    if datatype.startswith(("INT", "UINT")):
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


def _tensor_errors(i: int, tensor: Any) -> list[str]:
    if not isinstance(tensor, dict):
        return [f"inputs[{i}] is not an object"]
    errors = [
        f"inputs[{i}].{k}: unknown field"
        for k in tensor
        if k not in {"name", "shape", "datatype", "parameters", "data"}
    ]
    errors += [f"inputs[{i}].{k}: required" for k in ("name", "shape", "datatype", "data") if k not in tensor]
    if errors:
        return errors
    shape, datatype, data = tensor["shape"], tensor["datatype"], tensor["data"]
    if not isinstance(tensor["name"], str) or not tensor["name"]:
        errors.append(f"inputs[{i}].name must be a non-empty string")
    if not (isinstance(shape, list) and all(isinstance(d, int) and d >= 0 for d in shape)):
        return [*errors, f"inputs[{i}].shape must be a list of non-negative integers"]
    if datatype not in V2_DATATYPES:
        errors.append(f"inputs[{i}].datatype {datatype!r} is not a V2 datatype")
    if not isinstance(data, list):
        return [*errors, f"inputs[{i}].data must be an array"]
    flat = _flat(data)
    if len(flat) != math.prod(shape):
        errors.append(f"inputs[{i}]: {len(flat)} elements for shape {shape}")
    errors += [f"inputs[{i}].data: {v!r} is not {datatype}" for v in flat if not _element_ok(datatype, v)]
    if "parameters" in tensor and not isinstance(tensor["parameters"], dict):
        errors.append(f"inputs[{i}].parameters must be an object")
    return errors


def v2_request_errors(body: Any) -> list[str]:
    """What makes ``body`` not a V2 ``InferenceRequest`` (KServe's Open Inference Protocol, REST/JSON)."""
    if not isinstance(body, dict):
        return ["the request is not a JSON object"]
    errors = [f"{k}: unknown field" for k in body if k not in {"id", "parameters", "inputs", "outputs"}]
    if "id" in body and not isinstance(body["id"], str):
        errors.append("id must be a string")
    if "parameters" in body and not isinstance(body["parameters"], dict):
        errors.append("parameters must be an object")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        return [*errors, "inputs must be a non-empty array"]
    names = [t.get("name") for t in inputs if isinstance(t, dict)]
    if len(set(names)) != len(names):
        errors.append("input names must be unique")
    for i, tensor in enumerate(inputs):
        errors += _tensor_errors(i, tensor)
    return errors


def test_the_v2_validator_refuses_what_the_protocol_does() -> None:
    good = {"inputs": [{"name": "x", "shape": [2, 1], "datatype": "FP64", "data": [1.0, 2.5]}]}
    assert v2_request_errors(good) == []
    assert v2_request_errors({"instances": [[1.0]]}) != []
    bad = {"inputs": [{"name": "x", "shape": [3, 1], "datatype": "FLOAT", "data": [1.0, "a"], "extra": 1}]}
    assert v2_request_errors(bad) == ["inputs[0].extra: unknown field"]
    bad["inputs"][0].pop("extra")
    assert v2_request_errors(bad) == [
        "inputs[0].datatype 'FLOAT' is not a V2 datatype",
        "inputs[0]: 2 elements for shape [3, 1]",
        "inputs[0].data: 'a' is not FLOAT",
    ]


class FakeInference:
    """The ingress gateway in front of MLServer's MLflow runtime, for one Host.

    ``POST /v2/models/<name>/infer`` with the expected ``Host``: the body is checked against the
    V2 protocol, decoded to a DataFrame (one column per input tensor) and scored by the MLflow
    model ``models:/breast_cancer/<version>`` loaded with ``mlflow.pyfunc``; the answer is a V2
    ``InferenceResponse``. Any other Host answers 404, as a gateway with no route for it does.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str | None, Any]] = []
        self.host, self.version = LATEST_HOST, "2"
        self.models: dict[str, Any] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
                fake.requests.append((self.path, self.headers.get("Host"), body))
                status, answer = fake.answer(self.path, self.headers.get("Host"), body)
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, path: str, host: str | None, body: Any) -> tuple[int, Any]:
        if host != self.host or path != f"/v2/models/{ISVC}/infer":
            return 404, {"error": f"no route for {host}{path}"}
        errors = v2_request_errors(body)
        if errors:
            return 400, {"error": "; ".join(errors)}

        frame = pd.DataFrame({t["name"]: _flat(t["data"]) for t in body["inputs"]})
        if self.version not in self.models:
            self.models[self.version] = load_as_serving_container(f"models:/{NAME}/{self.version}")
        predictions = [str(p) for p in self.models[self.version].predict(frame)]
        output = {"name": "output-1", "shape": [len(predictions)], "datatype": "BYTES", "data": predictions}
        return 200, {"model_name": ISVC, "id": "5c1e0f5a", "parameters": {}, "outputs": [output]}


@pytest.fixture(scope="module")
def inference() -> Iterator[FakeInference]:
    fake = FakeInference()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def smoke_partitions(tmp_path: Path, want: list[str]) -> tuple[str, str]:
    """A holdout partition (2 features + target) and the offline predictions for it."""
    from mlops_core.data import storage

    root = tmp_path.as_uri()
    hold = pd.DataFrame(
        {
            "mean_radius": [10.5, 20.5, 11.0],
            "mean_texture": [12.5, 25.5, 13],
            "diagnosis": ["benign", "malignant", "benign"],
        }
    )
    storage.write_partition({"data": hold}, root, NAME, "holdout", "2026-01-05")
    storage.write_partition(
        {"predictions": pd.DataFrame({"prediction": want})}, root, NAME, "predictions", "2026-01-05"
    )
    return (
        storage.partition_uri(root, NAME, "holdout", "2026-01-05"),
        storage.partition_uri(root, NAME, "predictions", "2026-01-05"),
    )


def test_smoke_test_reaches_the_canary_revision_through_the_ingress(
    api: FakeKubeAPI, inference: FakeInference, versions: list[str], tmp_path: Path
) -> None:
    inference.requests.clear()
    holdout, expected = smoke_partitions(tmp_path, ["benign", "malignant", "benign"])
    api.expect(CANARY_V2)
    result = Target(api, kserve_ingress_url=inference.url).smoke_test(
        kserve_spec(), deployment(), holdout, expected
    )

    assert api.calls == [("GET", ITEM, None, None)]
    assert result.passed and (result.rows, result.mismatches) == (3, 0), result.detail
    [(path, host, body)] = inference.requests
    assert (path, host) == (f"/v2/models/{ISVC}/infer", LATEST_HOST)  # the new revision's tag, not the split
    assert v2_request_errors(body) == []
    assert body == {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": "mean_radius", "shape": [3, 1], "datatype": "FP64", "data": [10.5, 20.5, 11.0]},
            {"name": "mean_texture", "shape": [3, 1], "datatype": "FP64", "data": [12.5, 25.5, 13.0]},
        ],
    }


def test_smoke_test_fails_when_the_served_model_disagrees(
    api: FakeKubeAPI, inference: FakeInference, versions: list[str], tmp_path: Path
) -> None:
    holdout, expected = smoke_partitions(tmp_path, ["malignant", "benign", "malignant"])  # not what v2 says
    api.expect(CANARY_V2)
    result = Target(api, kserve_ingress_url=inference.url).smoke_test(
        kserve_spec(), deployment(), holdout, expected
    )
    assert not result.passed and result.mismatches == 3


def test_predict_without_a_tag_url_under_a_split_refuses(api: FakeKubeAPI) -> None:
    untagged = json.loads(json.dumps(CANARY_V2))
    untagged["status"]["components"]["predictor"]["traffic"] = [
        target(REV2, 10, True),
        target(REV1, 90, False),
    ]
    api.expect(untagged)
    with pytest.raises(DeploymentFailed, match="no 'latest' tag URL"):
        Target(api).predict(deployment(), pd.DataFrame({"mean_radius": [1.0]}))


def test_all_at_once_smoke_test_uses_the_status_url(
    api: FakeKubeAPI, inference: FakeInference, versions: list[str]
) -> None:
    """No tag routing in the status (an older KServe): the predictor URL serves the new revision alone."""
    inference.requests.clear()
    inference.host = f"{ISVC}-predictor.{DOMAIN}"
    served = isvc(
        "2",
        generation=2,
        previous="1",
        status=ready_status(2, [target(REV2, 100, True)], created=REV2, rolled_out=REV2, previous=REV1),
    )
    api.expect(served)
    try:
        got = Target(api, kserve_ingress_url=inference.url).predict(
            deployment(canary=None), pd.DataFrame({"mean_radius": [10.5, 20.5], "mean_texture": [12.5, 25.5]})
        )
    finally:
        inference.host = LATEST_HOST
    assert list(got) == ["benign", "malignant"]
    assert inference.requests[0][1] == f"{ISVC}-predictor.{DOMAIN}"


# -- promote ------------------------------------------------------------------------------------------------


def test_promote_moves_all_traffic_to_the_canary_then_the_alias(api: FakeKubeAPI, champion: Any) -> None:
    champion("1")
    api.expect(CANARY_V2, isvc("2", generation=3, previous="1"))
    promoted = Target(api).promote(kserve_spec(strategy="canary"), deployment())

    assert api.calls == [
        ("GET", ITEM, None, None),
        (
            "PATCH",
            ITEM,
            MERGE,
            {"metadata": {"resourceVersion": "1002"}, "spec": {"predictor": {"canaryTrafficPercent": None}}},
        ),
    ]
    assert promoted.state == READY
    assert aliases() == ("2", "1")


def test_promote_of_all_at_once_only_moves_the_alias(api: FakeKubeAPI, champion: Any) -> None:
    champion(None)
    api.expect(SERVING_V1)
    Target(api).promote(kserve_spec(), deployment("1", previous=None, canary=None))
    assert [c[0] for c in api.calls] == ["GET"]  # all traffic is on it already: nothing to patch
    assert aliases() == ("1", None)


# -- rollback -------------------------------------------------------------------------------------------------

PIN = {"metadata": {"resourceVersion": "1002"}, "spec": {"predictor": {"canaryTrafficPercent": 0}}}


def back(resource_version: str) -> dict[str, Any]:
    return {
        "metadata": {
            "annotations": {
                "mlops/model-version": "1",
                "mlops/previous-model-version": None,
                "mlops/previous-storage-uri": None,
            },
            "resourceVersion": resource_version,
        },
        "spec": {"predictor": {"canaryTrafficPercent": 0, "model": {"storageUri": URI["1"]}}},
    }


def test_rollback_of_a_canary_pins_the_previous_revision_then_restores_the_model(
    api: FakeKubeAPI, champion: Any
) -> None:
    from mlops_core.runs import registry

    champion("1")
    pinned = isvc("2", generation=3, canary=0, previous="1", status=CANARY_V2["status"])  # not reconciled yet
    moved = isvc(
        "2",
        generation=3,
        canary=0,
        previous="1",
        status=ready_status(
            3, [target(REV2, 0, True, "latest"), target(REV1, 100, False, "prev")], created=REV2
        ),
    )
    api.expect(CANARY_V2, pinned, moved, isvc("1", generation=4, canary=0))
    Target(api).rollback(kserve_spec(strategy="canary"), deployment())

    assert api.calls == [
        ("GET", ITEM, None, None),
        ("PATCH", ITEM, MERGE, PIN),  # all traffic to the previous revision, at once
        ("GET", ITEM, None, None),  # ... until KServe shows it moved
        ("PATCH", ITEM, MERGE, back("1003")),  # then the spec names the previous model again
    ]
    assert aliases() == ("1", None)
    assert registry.client().get_model_version(NAME, "2").tags.get("mlops.rolled_back") == "true"


def test_rollback_after_all_at_once_waits_for_kserve_to_send_traffic_back(
    api: FakeKubeAPI, champion: Any
) -> None:
    """v2 had all traffic (latestRolledoutRevision); with canary 0 KServe first routes the 'prev' share
    to that same revision, then moves latestRolledoutRevision back to previousRolledoutRevision."""
    champion("2")  # a retried smoke test after the alias had moved: rollback must put it back
    rolled_out = isvc(
        "2",
        generation=2,
        previous="1",
        status=ready_status(
            2, [target(REV2, 100, True, "latest")], created=REV2, rolled_out=REV2, previous=REV1
        ),
    )
    first_pass = ready_status(
        3,
        [target(REV2, 0, True, "latest"), target(REV2, 100, False, "prev")],
        created=REV2,
        rolled_out=REV1,
        previous=REV1,
    )
    second_pass = ready_status(
        3,
        [target(REV2, 0, True, "latest"), target(REV1, 100, False, "prev")],
        created=REV2,
        rolled_out=REV1,
        previous=REV1,
    )
    api.expect(
        rolled_out,
        isvc("2", generation=3, canary=0, previous="1", status=rolled_out["status"]),
        isvc("2", generation=3, canary=0, previous="1", status=first_pass),
        isvc("2", generation=3, canary=0, previous="1", status=second_pass),
        isvc("1", generation=4, canary=0),
    )
    Target(api).rollback(kserve_spec(), deployment(canary=None, previous="1"))
    assert [c[:2] for c in api.calls] == [
        ("GET", ITEM),
        ("PATCH", ITEM),
        ("GET", ITEM),
        ("GET", ITEM),
        ("PATCH", ITEM),
    ]
    assert api.calls[1][3] == PIN
    assert api.calls[-1][3] == back("1003")
    assert aliases()[0] == "1"


def test_rollback_that_kserve_never_completes_fails_loudly(api: FakeKubeAPI, champion: Any) -> None:
    champion("1")
    stuck = isvc(
        "2",
        generation=3,
        canary=0,
        previous="1",
        status=ready_status(
            3,
            [target(REV2, 0, True, "latest"), target(REV2, 100, False, "prev")],
            created=REV2,
            rolled_out=REV2,
        ),
    )
    target_ = Target(api)
    target_.max_polls = 2
    api.expect(stuck, stuck, stuck)  # pinned already (blue/green): no PATCH, only reads
    with pytest.raises(RuntimeError, match=f"still routes traffic to {REV2}"):
        target_.rollback(kserve_spec(strategy="blue_green"), deployment(canary=0))
    assert [c[0] for c in api.calls] == ["GET", "GET", "GET"]
    assert aliases()[0] == "1"  # unchanged: rollout.rollback retries, then names the state


@pytest.mark.parametrize("before", [None, "1"])
def test_rollback_of_a_first_deploy_deletes_the_inference_service(
    api: FakeKubeAPI, champion: Any, before: str | None
) -> None:
    champion(before)  # "1": the alias had moved to the failed version already
    api.expect(isvc("1", generation=1, status=SERVING_V1["status"]), status_object(200, "Success", "deleted"))
    Target(api).rollback(kserve_spec(), deployment("1", previous=None, canary=None))
    assert [c[:2] for c in api.calls] == [("GET", ITEM), ("DELETE", ITEM)]
    assert aliases() == (None, None)


def test_rollback_leaves_an_inference_service_another_deploy_moved_on(
    api: FakeKubeAPI, champion: Any
) -> None:
    champion("1")
    api.expect(SERVING_V1)  # already back on v1 (a retried rollback, or someone else's deploy)
    Target(api).rollback(kserve_spec(), deployment())
    assert [c[0] for c in api.calls] == ["GET"]
    assert aliases()[0] == "1"


def test_rollback_in_raw_deployment_mode_rolls_forward_to_the_previous_model(
    api: FakeKubeAPI, champion: Any
) -> None:
    champion("1")
    raw = isvc(
        "2",
        generation=2,
        previous="1",
        status={"observedGeneration": 2, "deploymentMode": "RawDeployment", "conditions": READY_CONDITIONS},
    )
    api.expect(raw, isvc("1", generation=3))
    Target(api).rollback(kserve_spec(), deployment(canary=None))
    sent = api.calls[-1][3]
    assert sent["spec"]["predictor"] == {"canaryTrafficPercent": None, "model": {"storageUri": URI["1"]}}
    assert sent["metadata"]["resourceVersion"] == "1002"


def test_urls_of_the_recorded_objects_are_what_knative_makes() -> None:
    """The canned tag URLs follow Knative's ``{tag}-{route}.{namespace}.{domain}`` with KServe's route name."""
    assert urlsplit(target(REV2, 10, True, "latest")["url"]).netloc == LATEST_HOST
    assert len(LATEST_HOST.split(".")[0]) <= 63
