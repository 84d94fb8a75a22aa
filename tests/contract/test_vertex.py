"""Vertex AI and Cloud Monitoring contract: the exact REST requests, in order, of every step.

No emulator covers Vertex AI, so a recording session stands in for ``AuthorizedSession``: it
records ``(method, url, json, params)`` of each request and answers with canned responses in
order; a request nobody expected fails the test. Every request, and every canned answer, is also
validated against Google's published API description (the discovery documents of
``aiplatform.v1`` and ``monitoring.v3``, :mod:`tests.contract.discovery`), so a field name or a
type that both the code and this test got wrong still fails. The MLflow registry is real (a
SQLite store with two versions of a tiny scikit-learn model), so ``promote`` and ``rollback``
really move aliases. The same calls run over HTTP, stateful, in tests/emulators/test_gcp_operators.py.
"""

from __future__ import annotations

import copy
import json
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pytest

from mlops_core.clouds.gcp import client as gcp
from mlops_core.clouds.gcp import monitoring
from mlops_core.clouds.gcp.deploy import VertexTarget
from mlops_core.deploy import READY, UPDATING, Deployment, DeploymentFailed
from mlops_core.model import remote
from mlops_core.runs import registry
from mlops_core.spec.profiles import CloudProfile
from tests.contract import discovery
from tests.helpers import example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.contract

ROOT = "https://europe-west4-aiplatform.googleapis.com/v1"
PARENT = f"{ROOT}/projects/proj/locations/europe-west4"
LOC = "projects/123/locations/europe-west4"
EP = f"{LOC}/endpoints/555"
MODEL_V1, MODEL_V2 = f"{LOC}/models/901", f"{LOC}/models/902"
OLD_ID, NEW_ID = "111", "222"
DEPLOY_OP = f"{EP}/operations/7"
SERVING_IMAGE = "europe-docker.pkg.dev/proj/mlops/serving:1"
TRAINING_IMAGE = "europe-docker.pkg.dev/proj/mlops/train:1"
NAME = "breast_cancer"
TYPE = "type.googleapis.com/google.cloud.aiplatform.v1."

PROFILE = CloudProfile(
    name="gcp",
    lake="gs://lake/lake",
    landing="gs://lake/landing",
    conn_id="google_cloud_default",
    training_backend="vertex",
    deploy_target="vertex",
    monitoring_export="cloud_monitoring",
    settings={
        "project": "proj",
        "location": "europe-west4",
        "service_account": "trainer@proj.iam.gserviceaccount.com",
        "training_image": TRAINING_IMAGE,
        "serving_image": SERVING_IMAGE,
        "training_machine_type": "n1-standard-4",
        "machine_type": "n1-standard-2",
    },
)


class FakeResponse:
    def __init__(self, status_code: int, body: Any):
        self.status_code, self._body = status_code, body

    def json(self) -> Any:
        return self._body

    @property
    def text(self) -> str:
        return json.dumps(self._body)


class Recorder:
    """A ``requests.Session`` stand-in: records each request and answers the next canned response.

    Both sides are held to Google's published API description (:mod:`tests.contract.discovery`):
    a request the API would refuse, or a canned answer the API could not give, fails the test
    at once (and is kept in :attr:`violations`, which an autouse fixture asserts empty, in case
    the code under test swallowed the error).
    """

    made: list[Recorder] = []  # every Recorder of the running test

    def __init__(self, *responses: dict[str, Any] | tuple[int, dict[str, Any]]):
        self.responses = list(responses)
        self.calls: list[tuple[str, str, Any, Any]] = []
        self.violations: list[str] = []
        Recorder.made.append(self)

    def request(
        self, method: str, url: str, json: Any = None, params: Any = None, timeout: Any = None
    ) -> Any:
        # copies: what was sent then, even if the caller reuses or changes its dicts afterwards
        self.calls.append((method, url, copy.deepcopy(json), copy.deepcopy(params)))
        self._hold(discovery.request_errors(method, url, json, params))
        if not self.responses:
            raise AssertionError(f"unexpected request: {method} {url} json={json} params={params}")
        answer = self.responses.pop(0)
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        self._hold([f"canned: {e}" for e in discovery.response_errors(method, url, status, body)])
        return FakeResponse(status, body)

    def _hold(self, problems: list[str]) -> None:
        if problems:
            self.violations.extend(problems)
            raise AssertionError("not what the API description allows:\n  " + "\n  ".join(problems))

    def done(self) -> None:
        assert not self.responses, f"{len(self.responses)} canned response(s) never requested"


@pytest.fixture(autouse=True)
def _no_violations() -> Iterator[None]:
    Recorder.made.clear()
    yield
    assert [v for r in Recorder.made for v in r.violations] == []


class Target(VertexTarget):
    """The Vertex target without MLflow packaging (the lake copy is package_model's own business)."""

    poll_seconds = 0.0

    def __init__(self, session: Recorder):
        super().__init__(PROFILE, lambda service: session)
        self.packaged: list[str] = []

    def package(self, spec: Any, version: str) -> str:
        self.packaged.append(version)
        return f"{PROFILE.lake}/{spec.name}/models/v{version}/model.tar.gz"


def canary_spec(**deployment: Any) -> Any:
    return example_spec(
        cloud="gcp", deployment={"target": "vertex", "strategy": "canary", "canary_percent": 10, **deployment}
    )


def filt(display_name: str) -> dict[str, str]:
    return {"filter": f'display_name="{display_name}"'}


def endpoint(split: dict[str, int], *deployed: tuple[str, str]) -> dict[str, Any]:
    return {
        "name": EP,
        "displayName": "mlops-breast-cancer",
        "deployedModels": [{"id": i, "model": m} for i, m in deployed],
        "trafficSplit": split,
    }


# what an operation's ``response`` (a google.protobuf.Any) holds: the message type, then its fields
UPLOADED = {"@type": f"{TYPE}UploadModelResponse", "model": MODEL_V2}
ENDPOINT_TYPE = {"@type": f"{TYPE}Endpoint"}
DEPLOYED = {"@type": f"{TYPE}DeployModelResponse", "deployedModel": {"id": NEW_ID, "model": MODEL_V2}}

UPLOAD_BODY = {
    "model": {
        "displayName": "breast_cancer-v2",
        "description": "MLflow model breast_cancer version 2",
        "artifactUri": "gs://lake/lake/breast_cancer/models/v2/model",
        "containerSpec": {
            "imageUri": SERVING_IMAGE,
            "predictRoute": "/invocations",
            "healthRoute": "/ping",
            "ports": [{"containerPort": 8080}],
        },
        "labels": {"mlops-pipeline": NAME, "mlflow-model": NAME, "mlflow-version": "2"},
    }
}
DEPLOYED_V2 = {
    "model": MODEL_V2,
    "displayName": "breast_cancer-v2",
    "dedicatedResources": {
        "machineSpec": {"machineType": "n1-standard-2"},
        "minReplicaCount": 1,
        "maxReplicaCount": 1,
    },
}


# -- a real MLflow registry: versions 1 and 2 of a tiny model


@pytest.fixture(scope="module")
def mlflow_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    tmp = tmp_path_factory.mktemp("vertex-mlflow")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp}/mlflow.db")
        mp.setenv("MLOPS_LOCAL_DIR", str(tmp))
        import mlflow
        import numpy as np
        from sklearn.linear_model import LogisticRegression

        from mlops_core.runs import tracking

        tracking.configure()
        x = np.array([[0.0], [1.0], [2.0], [3.0]])
        model = LogisticRegression().fit(x, np.array([0, 0, 1, 1]))
        experiment = tracking.experiment_id(NAME)
        for _ in range(2):
            with mlflow.start_run(experiment_id=experiment):
                # explicit requirements: inferring them imports the model in a subprocess (slow)
                info = mlflow.sklearn.log_model(model, name="model", pip_requirements=["scikit-learn"])
            mlflow.register_model(info.model_uri, NAME)
        yield tmp


@pytest.fixture
def champion(mlflow_store: Path) -> Iterator[Any]:
    """Set the champion alias (or none) for one test; aliases are cleared afterwards."""
    client = registry.client()

    def reset() -> None:
        for alias in (registry.CHAMPION, registry.PREVIOUS):
            if registry.alias_version(NAME, alias) is not None:
                client.delete_registered_model_alias(NAME, alias)

    def set_to(version: str | None) -> None:
        reset()
        if version is not None:
            client.set_registered_model_alias(NAME, registry.CHAMPION, version)

    yield set_to
    reset()


def deployment(previous_version: str | None = "1", **extra: Any) -> Deployment:
    return Deployment(
        "vertex",
        NAME,
        "2",
        previous_version,
        EP,
        strategy="canary",
        state=UPDATING,
        extra={
            "endpoint": EP,
            "model": MODEL_V2,
            "operation": DEPLOY_OP,
            "previous_deployed_model_id": OLD_ID if previous_version else None,
            "previous_traffic_split": {OLD_ID: 100} if previous_version else {},
            **extra,
        },
    )


# -- deploy


def test_first_deploy_uploads_creates_the_endpoint_and_sends_all_traffic(champion: Any) -> None:
    champion(None)
    session = Recorder(
        {},  # no model called breast_cancer-v2 yet
        {"name": f"{MODEL_V2}/operations/1", "done": False},
        {"name": f"{MODEL_V2}/operations/1", "done": True, "response": UPLOADED},
        {},  # no endpoint yet
        {"name": f"{EP}/operations/2", "done": True, "response": {**ENDPOINT_TYPE, "name": EP}},
        {"name": DEPLOY_OP, "done": False},
    )
    target = Target(session)
    dep = target.deploy(canary_spec(), "2")

    assert session.calls == [
        ("GET", f"{PARENT}/models", None, filt("breast_cancer-v2")),
        ("POST", f"{PARENT}/models:upload", UPLOAD_BODY, None),
        ("GET", f"{ROOT}/{MODEL_V2}/operations/1", None, None),
        ("GET", f"{PARENT}/endpoints", None, filt("mlops-breast-cancer")),
        (
            "POST",
            f"{PARENT}/endpoints",
            {"displayName": "mlops-breast-cancer", "labels": {"mlops-pipeline": NAME}},
            None,
        ),
        # canary with nothing serving yet: the new model takes all traffic
        (
            "POST",
            f"{ROOT}/{EP}:deployModel",
            {"deployedModel": DEPLOYED_V2, "trafficSplit": {"0": 100}},
            None,
        ),
    ]
    session.done()
    assert target.packaged == ["2"]
    assert (dep.state, dep.endpoint, dep.previous_version, dep.strategy) == (UPDATING, EP, None, "canary")
    assert dep.extra == {
        "endpoint": EP,
        "model": MODEL_V2,
        "operation": DEPLOY_OP,
        "previous_deployed_model_id": None,
        "previous_traffic_split": {},
    }


def test_canary_deploy_splits_traffic_with_the_serving_model(champion: Any) -> None:
    champion("1")
    serving_v1 = endpoint({OLD_ID: 100}, (OLD_ID, MODEL_V1))
    session = Recorder(
        {},
        {"name": f"{MODEL_V2}/operations/1", "done": True, "response": UPLOADED},
        {"endpoints": [{"name": EP, "displayName": "mlops-breast-cancer"}]},
        serving_v1,
        {"name": DEPLOY_OP, "done": False},
    )
    dep = Target(session).deploy(canary_spec(), "2")

    assert session.calls == [
        ("GET", f"{PARENT}/models", None, filt("breast_cancer-v2")),
        ("POST", f"{PARENT}/models:upload", UPLOAD_BODY, None),
        ("GET", f"{PARENT}/endpoints", None, filt("mlops-breast-cancer")),
        ("GET", f"{ROOT}/{EP}", None, None),
        (
            "POST",
            f"{ROOT}/{EP}:deployModel",
            {"deployedModel": DEPLOYED_V2, "trafficSplit": {"0": 10, OLD_ID: 90}},
            None,
        ),
    ]
    session.done()
    assert dep.previous_version == "1"
    assert dep.extra["previous_deployed_model_id"] == OLD_ID
    assert dep.extra["previous_traffic_split"] == {OLD_ID: 100}


@pytest.mark.parametrize("strategy", ["all_at_once", "blue_green"])
def test_all_at_once_and_blue_green_send_all_traffic_but_keep_the_old_model(
    champion: Any, strategy: str
) -> None:
    champion("1")
    session = Recorder(
        {"models": [{"name": MODEL_V2, "displayName": "breast_cancer-v2"}]},
        {"endpoints": [{"name": EP}]},
        endpoint({OLD_ID: 100}, (OLD_ID, MODEL_V1)),
        {"name": DEPLOY_OP, "done": False},
    )
    dep = Target(session).deploy(canary_spec(strategy=strategy), "2")
    assert session.calls[-1] == (
        "POST",
        f"{ROOT}/{EP}:deployModel",
        {"deployedModel": DEPLOYED_V2, "trafficSplit": {"0": 100}},
        None,
    )
    assert dep.extra["previous_deployed_model_id"] == OLD_ID  # stays deployed until promote
    session.done()


def test_retry_reuses_the_uploaded_and_deployed_model(champion: Any) -> None:
    champion("1")
    canary = endpoint({OLD_ID: 90, NEW_ID: 10}, (OLD_ID, MODEL_V1), (NEW_ID, MODEL_V2))
    session = Recorder(
        {"models": [{"name": MODEL_V2, "displayName": "breast_cancer-v2"}]},
        {"endpoints": [{"name": EP}]},
        canary,
        canary,  # status
    )
    target = Target(session)
    dep = target.deploy(canary_spec(), "2")
    assert target.status(dep) == READY

    assert session.calls == [
        ("GET", f"{PARENT}/models", None, filt("breast_cancer-v2")),
        ("GET", f"{PARENT}/endpoints", None, filt("mlops-breast-cancer")),
        ("GET", f"{ROOT}/{EP}", None, None),
        ("GET", f"{ROOT}/{EP}", None, None),  # no operation: status checks the endpoint instead
    ]
    session.done()
    assert target.packaged == []  # no second packaging, upload or deployModel
    assert dep.extra["operation"] is None
    assert dep.extra["previous_deployed_model_id"] == OLD_ID


def test_upload_failure_names_the_reason(champion: Any) -> None:
    session = Recorder(
        {},
        {"name": "op/1", "done": True, "error": {"code": 3, "message": "artifactUri has no MLmodel"}},
    )
    with pytest.raises(
        DeploymentFailed, match="upload of model breast_cancer-v2 failed: artifactUri has no MLmodel"
    ):
        Target(session).deploy(canary_spec(), "2")


# -- status


@pytest.mark.parametrize(
    ("operation", "state"),
    [
        ({"name": DEPLOY_OP, "done": False}, UPDATING),
        ({"name": DEPLOY_OP, "done": True, "response": DEPLOYED}, READY),
    ],
)
def test_status_polls_the_deploy_operation_once(operation: dict[str, Any], state: str) -> None:
    session = Recorder(operation)
    assert Target(session).status(deployment()) == state
    assert session.calls == [("GET", f"{ROOT}/{DEPLOY_OP}", None, None)]


def test_status_raises_the_operation_error() -> None:
    session = Recorder(
        {"name": DEPLOY_OP, "done": True, "error": {"code": 13, "message": "Model server never became ready"}}
    )
    with pytest.raises(DeploymentFailed, match="Model server never became ready"):
        Target(session).status(deployment())


# -- smoke test


def test_predict_retries_until_the_new_model_answers() -> None:
    import pandas as pd

    features = pd.DataFrame({"mean_radius": [10.5, 20.0], "mean_texture": [12, 30]})
    session = Recorder(
        endpoint({OLD_ID: 90, NEW_ID: 10}, (OLD_ID, MODEL_V1), (NEW_ID, MODEL_V2)),
        {"predictions": ["benign", "benign"], "deployedModelId": OLD_ID},  # the old model: discarded
        {"predictions": ["benign", "malignant"], "deployedModelId": NEW_ID},
    )
    got = Target(session).predict(deployment(), features)

    instances = {
        "instances": [{"mean_radius": 10.5, "mean_texture": 12}, {"mean_radius": 20.0, "mean_texture": 30}]
    }
    assert session.calls == [
        ("GET", f"{ROOT}/{EP}", None, None),
        ("POST", f"{ROOT}/{EP}:predict", instances, None),
        ("POST", f"{ROOT}/{EP}:predict", instances, None),
    ]
    assert list(got) == ["benign", "malignant"]
    assert Target(Recorder())._smoke_attempts(10) == 66  # 0.9**66 < 1e-3


# -- promote / roll back


def test_canary_promote_moves_all_traffic_undeploys_the_old_model_and_the_alias(champion: Any) -> None:
    champion("1")
    session = Recorder(
        endpoint({OLD_ID: 90, NEW_ID: 10}, (OLD_ID, MODEL_V1), (NEW_ID, MODEL_V2)),
        endpoint({NEW_ID: 100}, (OLD_ID, MODEL_V1), (NEW_ID, MODEL_V2)),
        {"name": f"{EP}/operations/8", "done": False},
    )
    promoted = Target(session).promote(canary_spec(), deployment())

    assert session.calls == [
        ("GET", f"{ROOT}/{EP}", None, None),
        ("PATCH", f"{ROOT}/{EP}", {"trafficSplit": {NEW_ID: 100}}, {"updateMask": "traffic_split"}),
        ("POST", f"{ROOT}/{EP}:undeployModel", {"deployedModelId": OLD_ID}, None),
    ]
    session.done()
    assert promoted.state == READY and promoted.extra["deployed_model_id"] == NEW_ID
    assert registry.alias_version(NAME, registry.CHAMPION) == "2"
    assert registry.alias_version(NAME, registry.PREVIOUS) == "1"


def test_rollback_restores_traffic_undeploys_the_new_model_and_the_alias(champion: Any) -> None:
    champion("1")
    session = Recorder(
        endpoint({OLD_ID: 90, NEW_ID: 10}, (OLD_ID, MODEL_V1), (NEW_ID, MODEL_V2)),
        endpoint({OLD_ID: 100}, (OLD_ID, MODEL_V1), (NEW_ID, MODEL_V2)),
        {"name": f"{EP}/operations/9", "done": False},
    )
    Target(session).rollback(canary_spec(), deployment())

    assert session.calls == [
        ("GET", f"{ROOT}/{EP}", None, None),
        ("PATCH", f"{ROOT}/{EP}", {"trafficSplit": {OLD_ID: 100}}, {"updateMask": "traffic_split"}),
        ("POST", f"{ROOT}/{EP}:undeployModel", {"deployedModelId": NEW_ID}, None),
    ]
    session.done()
    assert registry.alias_version(NAME, registry.CHAMPION) == "1"
    tags = registry.client().get_model_version(NAME, "2").tags
    assert tags.get("mlops.rolled_back") == "true"


@pytest.mark.parametrize("before", [None, "2"])
def test_rollback_of_a_first_deploy_undeploys_and_leaves_no_champion(
    champion: Any, before: str | None
) -> None:
    # "2": the alias had moved to the failed version already (a promotion whose smoke test is
    # retried), so "no champion afterwards" is something rollback must do, not the starting state
    champion(before)
    session = Recorder(
        endpoint({NEW_ID: 100}, (NEW_ID, MODEL_V2)),
        {"name": f"{EP}/operations/9", "done": False},
    )
    Target(session).rollback(canary_spec(), deployment(previous_version=None))
    assert session.calls == [
        ("GET", f"{ROOT}/{EP}", None, None),
        ("POST", f"{ROOT}/{EP}:undeployModel", {"deployedModelId": NEW_ID}, None),
    ]
    assert registry.alias_version(NAME, registry.CHAMPION) is None


def test_rollback_before_the_deploy_finished_cancels_its_operation(champion: Any) -> None:
    champion("1")
    session = Recorder(
        endpoint({OLD_ID: 100}, (OLD_ID, MODEL_V1)),  # the new model is not on the endpoint yet
        {"name": DEPLOY_OP, "done": False},
        {},  # operations.cancel answers google.protobuf.Empty
    )
    Target(session).rollback(canary_spec(), deployment())
    assert session.calls == [
        ("GET", f"{ROOT}/{EP}", None, None),
        ("GET", f"{ROOT}/{DEPLOY_OP}", None, None),
        ("POST", f"{ROOT}/{DEPLOY_OP}:cancel", None, None),
    ]
    session.done()
    assert registry.alias_version(NAME, registry.CHAMPION) == "1"


# -- remote training


@pytest.fixture
def job(tmp_path: Path) -> remote.JobRequest:
    # remote.prepare writes into the job folder without creating it (object stores need no folders)
    (tmp_path / NAME / "jobs" / remote.job_name(NAME, "2026-01-05", 1)).mkdir(parents=True)
    return remote.prepare(
        canary_spec(),
        "gs://lake/landing/breast_cancer.csv",
        str(tmp_path),
        "2026-01-05",
        {"mlops.airflow_run": "dag/run"},
        1,
        env={"MLFLOW_TRACKING_URI": "https://mlflow.example"},
    )


JOB = f"{LOC}/customJobs/77"


def test_submit_creates_the_custom_job(job: remote.JobRequest) -> None:
    session = Recorder({}, {"name": JOB, "state": "JOB_STATE_PENDING"})
    handle = gcp.submit_training(PROFILE, lambda service: session, job)  # spec read from the job folder

    body = {
        "displayName": "mlops-breast-cancer-20260105-t1",
        "jobSpec": {
            "workerPoolSpecs": [
                {
                    "machineSpec": {"machineType": "n1-standard-4"},
                    "replicaCount": "1",
                    "containerSpec": {
                        "imageUri": TRAINING_IMAGE,
                        "command": ["python", "-m", "mlops_core.model.remote", job.folder],
                        "env": [{"name": "MLFLOW_TRACKING_URI", "value": "https://mlflow.example"}],
                    },
                }
            ],
            "scheduling": {"timeout": "7200s"},
            "serviceAccount": "trainer@proj.iam.gserviceaccount.com",
        },
        "labels": {"mlops-pipeline": NAME},
    }
    assert session.calls == [
        ("GET", f"{PARENT}/customJobs", None, filt("mlops-breast-cancer-20260105-t1")),
        ("POST", f"{PARENT}/customJobs", body, None),
    ]
    assert handle == {"job": JOB}


def test_resubmit_attaches_to_the_running_job(job: remote.JobRequest) -> None:
    session = Recorder({"customJobs": [{"name": JOB, "state": "JOB_STATE_RUNNING"}]})
    assert gcp.submit_training(PROFILE, lambda service: session, job) == {"job": JOB}
    assert [c[0] for c in session.calls] == ["GET"]  # no create


def test_resubmit_after_a_failure_creates_a_new_job(job: remote.JobRequest) -> None:
    session = Recorder(
        {"customJobs": [{"name": f"{LOC}/customJobs/76", "state": "JOB_STATE_FAILED"}]},
        {"name": JOB},
    )
    assert gcp.submit_training(PROFILE, lambda service: session, job, canary_spec()) == {"job": JOB}
    assert [c[:2] for c in session.calls] == [
        ("GET", f"{PARENT}/customJobs"),
        ("POST", f"{PARENT}/customJobs"),
    ]


@pytest.mark.parametrize(
    ("state", "expected"),
    [
        ("JOB_STATE_QUEUED", remote.RUNNING),
        ("JOB_STATE_PENDING", remote.RUNNING),
        ("JOB_STATE_RUNNING", remote.RUNNING),
        ("JOB_STATE_SUCCEEDED", remote.SUCCEEDED),
    ],
)
def test_training_state(state: str, expected: str) -> None:
    session = Recorder({"name": JOB, "state": state})
    assert gcp.training_state(PROFILE, lambda service: session, {"job": JOB}) == expected
    assert session.calls == [("GET", f"{ROOT}/{JOB}", None, None)]


@pytest.mark.parametrize("state", ["JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"])
def test_training_state_raises_the_job_error(state: str) -> None:
    session = Recorder({"name": JOB, "state": state, "error": {"code": 3, "message": "OOM in replica 0"}})
    with pytest.raises(remote.RemoteJobFailed, match=f"ended {state}: OOM in replica 0"):
        gcp.training_state(PROFILE, lambda service: session, {"job": JOB})


def test_http_errors_name_the_status_and_the_api_message() -> None:
    session = Recorder(
        (
            403,
            {
                "error": {
                    "code": 403,
                    "message": "Permission 'aiplatform.customJobs.get' denied",
                    "status": "PERMISSION_DENIED",
                }
            },
        )
    )
    with pytest.raises(
        gcp.GoogleApiError,
        match=r"HTTP 403: PERMISSION_DENIED: Permission 'aiplatform.customJobs.get' denied",
    ):
        gcp.training_state(PROFILE, lambda service: session, {"job": JOB})


def test_api_endpoint_setting_overrides_the_root() -> None:
    profile = CloudProfile(
        **{**PROFILE.__dict__, "settings": {**PROFILE.settings, "api_endpoint": "http://localhost:9000"}}
    )
    session = Recorder({"name": JOB, "state": "JOB_STATE_RUNNING"})
    gcp.training_state(profile, lambda service: session, {"job": JOB})
    assert session.calls[0][1] == f"http://localhost:9000/v1/{JOB}"


# -- Cloud Monitoring


def test_write_metrics_body() -> None:
    session = Recorder({})
    services: list[str] = []

    def clients(service: str) -> Recorder:
        services.append(service)
        return session

    now = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    monitoring.write_metrics(
        PROFILE,
        clients,
        NAME,
        {"roc_auc": 0.98, "drift_share": math.nan, "recall": 1},
        {"version": "2"},
        now=now,
    )

    def series(metric: str, value: float) -> dict[str, Any]:
        return {
            "metric": {
                "type": f"custom.googleapis.com/mlops/{metric}",
                "labels": {"pipeline": NAME, "version": "2"},
            },
            "resource": {"type": "global", "labels": {"project_id": "proj"}},
            "metricKind": "GAUGE",
            "valueType": "DOUBLE",
            "points": [
                {"interval": {"endTime": "2026-01-05T12:00:00.000000Z"}, "value": {"doubleValue": value}}
            ],
        }

    assert services == ["monitoring"]
    assert session.calls == [
        (
            "POST",
            "https://monitoring.googleapis.com/v3/projects/proj/timeSeries",
            {"timeSeries": [series("recall", 1.0), series("roc_auc", 0.98)]},  # NaN skipped
            None,
        )
    ]


def test_write_metrics_batches_200_series() -> None:
    session = Recorder({}, {})
    monitoring.write_metrics(
        PROFILE, lambda service: session, NAME, {f"m{i:03d}": float(i) for i in range(250)}, {}
    )
    assert [len(c[2]["timeSeries"]) for c in session.calls] == [200, 50]


def test_autoscaling_sets_the_replica_range_and_the_cpu_target(champion: Any) -> None:
    """Validated against aiplatform v1's discovery document by the recorder, like every request."""
    champion(None)
    session = Recorder(
        {},
        {"name": f"{MODEL_V2}/operations/1", "done": True, "response": UPLOADED},
        {},
        {"name": f"{EP}/operations/2", "done": True, "response": {**ENDPOINT_TYPE, "name": EP}},
        {"name": DEPLOY_OP, "done": False},
    )
    spec = canary_spec(autoscaling={"min_instances": 2, "max_instances": 8, "target_cpu_percent": 65})
    Target(session).deploy(spec, "2")
    method, url, body, _ = session.calls[-1]
    assert (method, url) == ("POST", f"{ROOT}/{EP}:deployModel")
    assert body["deployedModel"]["dedicatedResources"] == {
        "machineSpec": DEPLOYED_V2["dedicatedResources"]["machineSpec"],
        "minReplicaCount": 2,
        "maxReplicaCount": 8,
        "autoscalingMetricSpecs": [
            {"metricName": "aiplatform.googleapis.com/prediction/online/cpu/utilization", "target": 65}
        ],
    }
    session.done()
    # the validator refuses a misspelt field of the same body: the check above can fail
    wrong = {
        **body["deployedModel"]["dedicatedResources"],
        "autoscalingMetricSpecs": [{"metric": "cpu", "target": 65}],
    }
    errors = discovery.request_errors(
        "POST",
        f"{ROOT}/{EP}:deployModel",
        {"deployedModel": {**body["deployedModel"], "dedicatedResources": wrong}},
    )
    assert any("metric" in e for e in errors), errors


def test_invocations_per_instance_is_refused_on_vertex() -> None:
    from mlops_core.spec import SpecError

    with pytest.raises(SpecError, match="target_invocations_per_instance is SageMaker's"):
        canary_spec(
            autoscaling={"min_instances": 1, "max_instances": 3, "target_invocations_per_instance": 100}
        )
