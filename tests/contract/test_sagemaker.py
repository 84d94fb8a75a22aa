"""SageMaker target: the exact requests, in order, for every path of deploy / status / promote / rollback.

No emulator implements ``UpdateEndpoint`` with a blue/green ``DeploymentConfig`` (moto has no
UpdateEndpoint at all), so these tests put ``botocore.stub.Stubber`` on real boto3 clients: each
request is checked against botocore's service model *and* against the parameters we expect,
and every response is a valid response shape. A recorder on the clients' event hooks checks the
order across services (CloudWatch's PutMetricAlarm must come before SageMaker's UpdateEndpoint).

The MLflow registry is real (a SQLite store in a temporary directory, tiny sklearn versions),
so ``registry.promote`` / ``registry.restore`` run and the aliases are asserted.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pytest

from mlops_core.clouds.aws.deploy import SERVING_ENV, SageMakerTarget
from mlops_core.deploy import READY, UPDATING, Deployment, DeploymentFailed
from mlops_core.spec.profiles import CloudProfile
from tests.helpers import example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.contract

REGION = "eu-west-1"
ACCOUNT = "123456789012"
ROLE = f"arn:aws:iam::{ACCOUNT}:role/mlops-sagemaker"
IMAGE = f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlflow-pyfunc:3.1"
LAKE = "s3://mlops-lake/lake"
NAME = "breast_cancer"
ENDPOINT = "mlops-breast-cancer"
ENDPOINT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"
OLD_CONFIG = "mlops-breast-cancer-v1-0123abcd"
NOW = datetime(2026, 1, 5, tzinfo=UTC)


def aws_profile(lake: str = LAKE, **settings: str) -> CloudProfile:
    """The ``aws`` profile as ``clouds.resolve`` builds it, with test values."""
    values = {
        "region": REGION,
        "role_arn": ROLE,
        "serving_image": IMAGE,
        "training_image": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/mlops:latest",
        "training_instance_type": "ml.m5.large",
        "instance_type": "ml.m5.large",
        "metric_namespace": "MLOps",
        **settings,
    }
    return CloudProfile(
        "aws", lake, LAKE.replace("lake", "landing"), None, "sagemaker", "sagemaker", "cloudwatch", values
    )


def register_tiny_versions(name: str, count: int) -> list[str]:
    """Register ``count`` versions of a 2-feature logistic regression as MLflow model ``name``."""
    import mlflow
    from sklearn.linear_model import LogisticRegression

    from mlops_core.runs import tracking

    tracking.configure()
    x = pd.DataFrame({"mean_radius": [10.0, 11.0, 20.0, 21.0], "mean_texture": [12.0, 13.0, 25.0, 26.0]})
    y = ["benign", "benign", "malignant", "malignant"]
    versions = []
    for i in range(count):
        with mlflow.start_run(experiment_id=tracking.experiment_id(name)):
            info = mlflow.sklearn.log_model(
                LogisticRegression(C=1.0 + i).fit(x, y),
                name="model",
                pip_requirements=["scikit-learn"],  # skips inferring them in a subprocess (seconds)
            )
        versions.append(str(mlflow.register_model(info.model_uri, name).version))
    return versions


_EMPTY_STORE: list[Path] = []  # a migrated, empty MLflow SQLite DB, made once per test process


def use_mlflow_store(folder: Path, mp: pytest.MonkeyPatch) -> None:
    """Point MLflow and the lake at ``folder``. Creating MLflow's schema takes seconds, so it runs
    once per process and later stores start from a copy of the empty database."""
    import shutil

    from mlops_core.runs import registry, tracking

    db = folder / "mlflow.db"
    if _EMPTY_STORE:
        shutil.copy(_EMPTY_STORE[0], db)
    mp.setenv("MLOPS_LOCAL_DIR", str(folder))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    tracking.configure()
    registry.client().search_registered_models()  # creates the schema on a new file
    if not _EMPTY_STORE:
        _EMPTY_STORE.append(Path(shutil.copy(db, folder / "empty-mlflow.db")))


@pytest.fixture(scope="module")
def versions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Versions 1 and 2 of ``breast_cancer`` in a throw-away MLflow store (env kept for the module)."""
    with pytest.MonkeyPatch.context() as mp:
        use_mlflow_store(tmp_path_factory.mktemp("sagemaker-contract"), mp)
        yield register_tiny_versions(NAME, 2)


@pytest.fixture
def champion(versions: list[str]) -> Any:
    """Reset the aliases and the rollback marks; call the result with a version to make it champion
    (and with ``previous`` to set ``previous_champion`` too, as a promotion leaves them)."""
    from mlops_core.runs import registry

    client = registry.client()
    for alias in (registry.CHAMPION, registry.PREVIOUS):
        if registry.alias_version(NAME, alias) is not None:
            client.delete_registered_model_alias(NAME, alias)
    for version in versions:  # another test's rollback must not satisfy this test's tag check
        if "mlops.rolled_back" in client.get_model_version(NAME, version).tags:
            client.delete_model_version_tag(NAME, version, "mlops.rolled_back")

    def set_champion(version: str | None, previous: str | None = None) -> None:
        if version is not None:
            client.set_registered_model_alias(NAME, registry.CHAMPION, version)
        if previous is not None:
            client.set_registered_model_alias(NAME, registry.PREVIOUS, previous)

    return set_champion


def aliases() -> tuple[str | None, str | None]:
    from mlops_core.runs import registry

    return registry.alias_version(NAME, registry.CHAMPION), registry.alias_version(NAME, registry.PREVIOUS)


class StubbedClients:
    """A ClientFactory of real boto3 clients with Stubbers, recording ``service.Operation`` in call order."""

    def __init__(self) -> None:
        import boto3
        from botocore.stub import Stubber

        self.calls: list[str] = []
        self.clients = {
            name: boto3.client(name, region_name=REGION)
            for name in ("sagemaker", "sagemaker-runtime", "cloudwatch", "application-autoscaling")
        }
        self.stubs = {name: Stubber(client) for name, client in self.clients.items()}
        for client in self.clients.values():
            client.meta.events.register("before-parameter-build.*.*", self._record)
        for stub in self.stubs.values():
            stub.activate()

    def _record(self, event_name: str, **_: Any) -> None:
        _, service, operation = event_name.split(".")
        self.calls.append(f"{service}.{operation}")

    def __call__(self, name: str) -> Any:
        return self.clients[name]

    def sm(self, method: str, response: dict[str, Any], params: dict[str, Any] | None = None) -> None:
        self.stubs["sagemaker"].add_response(method, response, params)

    def sm_error(self, method: str, message: str, params: dict[str, Any] | None = None) -> None:
        self.stubs["sagemaker"].add_client_error(
            method, "ValidationException", message, http_status_code=400, expected_params=params
        )

    def verify(self) -> None:
        for stub in self.stubs.values():
            stub.assert_no_pending_responses()


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[StubbedClients]:
    for var in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    stubs = StubbedClients()
    yield stubs
    stubs.verify()


class Target(SageMakerTarget):
    """Packaging is the one non-boto step (MLflow download + s3fs upload): it is tested against moto
    in tests/emulators/test_moto_aws.py, so here it returns the URI it would have written."""

    def package(self, spec: Any, version: str) -> str:
        return f"{LAKE}/{spec.name}/models/v{version}/model.tar.gz"


def spec_for(strategy: str = "canary", **deployment: Any) -> Any:
    return example_spec(
        NAME,
        cloud="aws",
        deployment={
            "target": "sagemaker",
            "strategy": strategy,
            "canary_percent": 10,
            "canary_wait_minutes": 5,
            **deployment,
        },
    )


def names(
    version: str, instance_type: str = "ml.m5.large", count: int = 1
) -> tuple[str, str, dict[str, Any]]:
    model = f"mlops-breast-cancer-v{version}"
    variant = {
        "VariantName": "AllTraffic",
        "ModelName": model,
        "InstanceType": instance_type,
        "InitialInstanceCount": count,
    }
    return model, SageMakerTarget.endpoint_config_name(model, variant), variant


def endpoint(status: str, config: str, **more: Any) -> dict[str, Any]:
    """A valid DescribeEndpoint response."""
    return {
        "EndpointName": ENDPOINT,
        "EndpointArn": ENDPOINT_ARN,
        "EndpointConfigName": config,
        "EndpointStatus": status,
        "CreationTime": NOW,
        "LastModifiedTime": NOW,
        **more,
    }


def expect_create_model_and_config(
    aws: StubbedClients,
    version: str,
    previous: str | None,
    exists: bool = False,
    instance_type: str = "ml.m5.large",
    count: int = 1,
) -> str:
    """CreateModel + CreateEndpointConfig with their full parameters (or "already existing" errors)."""
    model, config, variant = names(version, instance_type, count)
    model_params = {
        "ModelName": model,
        "ExecutionRoleArn": ROLE,
        "PrimaryContainer": {
            "Image": IMAGE,
            "ModelDataUrl": f"{LAKE}/{NAME}/models/v{version}/model.tar.gz",
            "Environment": {
                "MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function",
                "SERVING_ENVIRONMENT": "SageMaker",
            },
        },
        "Tags": [{"Key": "mlops:pipeline", "Value": NAME}, {"Key": "mlops:model-version", "Value": version}],
    }
    config_params = {
        "EndpointConfigName": config,
        "ProductionVariants": [variant],
        "Tags": [
            {"Key": "mlops:pipeline", "Value": NAME},
            {"Key": "mlops:previous-endpoint-config", "Value": previous or ""},
        ],
    }
    if exists:
        arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}"
        aws.sm_error(
            "create_model", f'Cannot create already existing model "{arn}:model/{model}".', model_params
        )
        aws.sm_error(
            "create_endpoint_config",
            f'Cannot create already existing endpoint configuration "{arn}:endpoint-config/{config}".',
            config_params,
        )
    else:
        aws.sm(
            "create_model", {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{model}"}, model_params
        )
        aws.sm(
            "create_endpoint_config",
            {"EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{config}"},
            config_params,
        )
    return config


def expect_update(aws: StubbedClients, version: str, deployment_config: dict[str, Any]) -> str:
    """The update of an endpoint serving OLD_CONFIG: describe, create, alarm, UpdateEndpoint."""
    aws.sm("describe_endpoint", endpoint("InService", OLD_CONFIG), {"EndpointName": ENDPOINT})
    config = expect_create_model_and_config(aws, version, previous=OLD_CONFIG)
    aws.stubs["cloudwatch"].add_response(
        "put_metric_alarm",
        {},
        {
            "AlarmName": "mlops-breast-cancer-5xx",
            "AlarmDescription": "5xx errors of SageMaker endpoint mlops-breast-cancer: rolls a deployment back",
            "Namespace": "AWS/SageMaker",
            "MetricName": "Invocation5XXErrors",
            "Dimensions": [
                {"Name": "EndpointName", "Value": ENDPOINT},
                {"Name": "VariantName", "Value": "AllTraffic"},
            ],
            "Statistic": "Sum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 0.0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        },
    )
    aws.sm(
        "update_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {"EndpointName": ENDPOINT, "EndpointConfigName": config, "DeploymentConfig": deployment_config},
    )
    return config


UPDATE_CALLS = [
    "sagemaker.DescribeEndpoint",
    "sagemaker.CreateModel",
    "sagemaker.CreateEndpointConfig",
    "cloudwatch.PutMetricAlarm",
    "sagemaker.UpdateEndpoint",
]


def canary_config() -> dict[str, Any]:
    return {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 10},
                "WaitIntervalInSeconds": 300,
            },
            "TerminationWaitInSeconds": 0,
            "MaximumExecutionTimeoutInSeconds": 2100,
        },
        "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "mlops-breast-cancer-5xx"}]},
    }


# -- (a) first deploy ---------------------------------------------------------------------------


def test_first_deploy_creates_model_config_and_endpoint_then_promotes(
    aws: StubbedClients, champion: Any
) -> None:
    champion(None)
    target = Target(aws_profile(), aws)
    aws.sm_error(
        "describe_endpoint", f'Could not find endpoint "{ENDPOINT_ARN}".', {"EndpointName": ENDPOINT}
    )
    config = expect_create_model_and_config(aws, "1", previous=None)
    aws.sm(
        "create_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": config,
            "Tags": [{"Key": "mlops:pipeline", "Value": NAME}],
        },
    )
    aws.sm("describe_endpoint", endpoint("Creating", config), {"EndpointName": ENDPOINT})
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})

    dep = target.deploy(spec_for("all_at_once"), "1")
    assert (dep.state, dep.previous_version, dep.endpoint) == (UPDATING, None, ENDPOINT)
    assert dep.extra == {
        "endpoint_config": config,
        "previous_endpoint_config": None,
        "model_name": "mlops-breast-cancer-v1",
        "model_data": f"{LAKE}/{NAME}/models/v1/model.tar.gz",
        "alarm": None,
    }
    assert [target.status(dep), target.status(dep)] == [UPDATING, READY]
    assert target.promote(spec_for("all_at_once"), dep).state == READY
    assert aliases() == ("1", None)
    assert aws.calls == [
        "sagemaker.DescribeEndpoint",
        "sagemaker.CreateModel",
        "sagemaker.CreateEndpointConfig",
        "sagemaker.CreateEndpoint",
        *["sagemaker.DescribeEndpoint"] * 3,
    ]


# -- (b) canary update, status polling, promote -------------------------------------------------


def test_canary_update_uses_blue_green_policy_with_alarm_rollback(aws: StubbedClients, champion: Any) -> None:
    champion("1")
    target = Target(aws_profile(), aws)
    spec = spec_for("canary")
    config = expect_update(aws, "2", canary_config())
    pending = {"PendingDeploymentSummary": {"EndpointConfigName": config}}
    aws.sm("describe_endpoint", endpoint("Updating", OLD_CONFIG, **pending), {"EndpointName": ENDPOINT})
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})

    dep = target.deploy(spec, "2")
    assert dep.previous_version == "1" and dep.strategy == "canary"
    assert dep.extra["previous_endpoint_config"] == OLD_CONFIG
    assert dep.extra["alarm"] == "mlops-breast-cancer-5xx"
    assert [target.status(dep), target.status(dep)] == [UPDATING, READY]
    promoted = target.promote(spec, dep)
    assert promoted.state == READY and promoted.version == "2"
    assert aliases() == ("2", "1")
    assert aws.calls == UPDATE_CALLS + ["sagemaker.DescribeEndpoint"] * 3


def test_promote_refuses_an_endpoint_sagemaker_rolled_back(aws: StubbedClients, champion: Any) -> None:
    champion("1")
    target = Target(aws_profile(), aws)
    _, config, _ = names("2")
    dep = Deployment(
        "sagemaker",
        NAME,
        "2",
        "1",
        ENDPOINT,
        "canary",
        UPDATING,
        {"endpoint_config": config, "alarm": "mlops-breast-cancer-5xx"},
    )
    aws.sm("describe_endpoint", endpoint("InService", OLD_CONFIG), {"EndpointName": ENDPOINT})
    with pytest.raises(
        DeploymentFailed, match=r"SageMaker rolled the endpoint back \(alarm mlops-breast-cancer-5xx"
    ):
        target.promote(spec_for(), dep)
    assert aliases() == ("1", None)


# -- (c) rollback after a failed smoke test -----------------------------------------------------


def smoke_partitions(tmp_path: Path, want: list[str]) -> tuple[str, str]:
    """A holdout partition (2 features + target) and the offline predictions for it."""
    from mlops_core.data import storage

    root = tmp_path.as_uri()
    hold = pd.DataFrame(
        {"mean_radius": [10.5, 20.5], "mean_texture": [12.5, np.nan], "diagnosis": ["benign", "malignant"]}
    )
    storage.write_partition({"data": hold}, root, NAME, "holdout", "2026-01-05")
    storage.write_partition(
        {"predictions": pd.DataFrame({"prediction": want})}, root, NAME, "predictions", "2026-01-05"
    )
    return storage.partition_uri(root, NAME, "holdout", "2026-01-05"), storage.partition_uri(
        root, NAME, "predictions", "2026-01-05"
    )


def expect_invoke(aws: StubbedClients, answer: Any) -> None:
    """InvokeEndpoint with MLflow's ``dataframe_split`` body (no index, NaN as null)."""
    from botocore.response import StreamingBody

    body = {
        "dataframe_split": {
            "columns": ["mean_radius", "mean_texture"],
            "data": [[10.5, 12.5], [20.5, None]],
        }
    }
    raw = json.dumps(answer).encode()
    aws.stubs["sagemaker-runtime"].add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json"},
        {
            "EndpointName": ENDPOINT,
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps(body),
        },
    )


@pytest.mark.parametrize(
    ("before", "previous_after"),
    [
        (("1", None), None),  # SageMaker moves the alias only at promote: the smoke test runs before
        (("2", "1"), "1"),  # a retried smoke test after a promotion that moved it (the worker died)
    ],
)
def test_failed_smoke_test_rolls_back_to_previous_config(
    aws: StubbedClients,
    champion: Any,
    tmp_path: Path,
    before: tuple[str, str | None],
    previous_after: str | None,
) -> None:
    champion("1")
    target = Target(aws_profile(), aws)
    spec = spec_for("canary")
    config = expect_update(aws, "2", canary_config())
    expect_invoke(aws, {"predictions": ["benign", "benign"]})  # the second row is wrong
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})
    aws.sm(
        "update_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": OLD_CONFIG,
            "RetainDeploymentConfig": False,
            "DeploymentConfig": {
                "BlueGreenUpdatePolicy": {
                    "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                    "TerminationWaitInSeconds": 0,
                    "MaximumExecutionTimeoutInSeconds": 1800,
                }
            },
        },
    )

    dep = target.deploy(spec, "2")
    holdout, expected = smoke_partitions(tmp_path, ["benign", "malignant"])
    result = target.smoke_test(spec, dep, holdout, expected)
    assert not result.passed and (result.rows, result.mismatches) == (2, 1)
    champion(*before)
    target.rollback(spec, dep)
    assert aliases() == ("1", previous_after)  # v1 again, whether or not the alias had moved to v2
    from mlops_core.runs import registry

    assert registry.client().get_model_version(NAME, "2").tags["mlops.rolled_back"] == "true"
    assert aws.calls == UPDATE_CALLS + [
        "sagemaker-runtime.InvokeEndpoint",
        "sagemaker.DescribeEndpoint",
        "sagemaker.UpdateEndpoint",
    ]


@pytest.mark.parametrize(
    "before",
    [
        None,  # SageMaker moves the alias only at promote: nothing to undo, nothing may be invented
        "1",  # a retried smoke test after a promotion that moved it (the worker died): it goes
    ],
)
def test_rollback_of_a_first_deploy_deletes_the_endpoint(
    aws: StubbedClients, champion: Any, before: str | None
) -> None:
    from mlops_core.runs import registry

    champion(before)
    target = Target(aws_profile(), aws)
    _, config, _ = names("1")
    dep = Deployment(
        "sagemaker",
        NAME,
        "1",
        None,
        ENDPOINT,
        "all_at_once",
        READY,
        {"endpoint_config": config, "previous_endpoint_config": None},
    )
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})
    aws.sm("delete_endpoint", {}, {"EndpointName": ENDPOINT})
    target.rollback(spec_for("all_at_once"), dep)
    assert aliases() == (None, None)
    assert registry.client().get_model_version(NAME, "1").tags["mlops.rolled_back"] == "true"
    assert aws.calls == ["sagemaker.DescribeEndpoint", "sagemaker.DeleteEndpoint"]


def test_passing_smoke_test_scores_through_invoke_endpoint(
    aws: StubbedClients, champion: Any, tmp_path: Path
) -> None:
    target = Target(aws_profile(), aws)
    dep = Deployment("sagemaker", NAME, "2", "1", ENDPOINT, "canary", READY)
    expect_invoke(aws, ["benign", "malignant"])  # a bare list is accepted too
    holdout, expected = smoke_partitions(tmp_path, ["benign", "malignant"])
    result = target.smoke_test(spec_for(), dep, holdout, expected)
    assert result.passed and result.rows == 2, result.detail


def test_predict_rejects_an_answer_that_is_not_mlflow_scoring_format(aws: StubbedClients) -> None:
    target = Target(aws_profile(), aws)
    dep = Deployment("sagemaker", NAME, "2", "1", ENDPOINT)
    expect_invoke(aws, {"error": "boom"})
    features = pd.DataFrame({"mean_radius": [10.5, 20.5], "mean_texture": [12.5, np.nan]})
    with pytest.raises(DeploymentFailed, match="expected"):
        target.predict(dep, features)


# -- (d) blue_green and all_at_once: ALL_AT_ONCE routing ---------------------------------------


@pytest.mark.parametrize(
    ("strategy", "termination", "timeout"), [("blue_green", 300, 2100), ("all_at_once", 0, 1800)]
)
def test_blue_green_and_all_at_once_route_all_traffic_at_once(
    aws: StubbedClients, champion: Any, strategy: str, termination: int, timeout: int
) -> None:
    champion("1")
    expect_update(
        aws,
        "2",
        {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                "TerminationWaitInSeconds": termination,
                "MaximumExecutionTimeoutInSeconds": timeout,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "mlops-breast-cancer-5xx"}]},
        },
    )
    dep = Target(aws_profile(), aws).deploy(spec_for(strategy), "2")
    assert dep.strategy == strategy and aws.calls == UPDATE_CALLS


# -- (e) a retried deploy reuses what the first try made --------------------------------------


def test_retry_after_a_crash_before_create_endpoint_reuses_model_and_config(
    aws: StubbedClients, champion: Any
) -> None:
    champion(None)
    aws.sm_error(
        "describe_endpoint", f'Could not find endpoint "{ENDPOINT_ARN}".', {"EndpointName": ENDPOINT}
    )
    config = expect_create_model_and_config(aws, "1", previous=None, exists=True)
    aws.sm(
        "create_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": config,
            "Tags": [{"Key": "mlops:pipeline", "Value": NAME}],
        },
    )
    dep = Target(aws_profile(), aws).deploy(spec_for("all_at_once"), "1")
    assert dep.extra["endpoint_config"] == config and dep.extra["previous_endpoint_config"] is None
    assert aws.calls == [
        "sagemaker.DescribeEndpoint",
        "sagemaker.CreateModel",
        "sagemaker.CreateEndpointConfig",
        "sagemaker.CreateEndpoint",
    ]


@pytest.mark.parametrize("recorded", ["", OLD_CONFIG])
def test_retry_after_the_endpoint_moved_creates_nothing_and_reads_the_previous_config(
    aws: StubbedClients, champion: Any, recorded: str
) -> None:
    """The first try created (or updated) the endpoint; its config tag says what was there before."""
    champion("1" if recorded else None)
    _, config, variant = names("2")
    config_arn = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{config}"
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})
    aws.sm(
        "describe_endpoint_config",
        {
            "EndpointConfigName": config,
            "EndpointConfigArn": config_arn,
            "ProductionVariants": [variant],
            "CreationTime": NOW,
        },
        {"EndpointConfigName": config},
    )
    aws.sm(
        "list_tags",
        {
            "Tags": [
                {"Key": "mlops:pipeline", "Value": NAME},
                {"Key": "mlops:previous-endpoint-config", "Value": recorded},
            ]
        },
        {"ResourceArn": config_arn},
    )
    dep = Target(aws_profile(), aws).deploy(spec_for("canary"), "2")
    assert dep.extra["endpoint_config"] == config
    assert dep.extra["previous_endpoint_config"] == (recorded or None)
    assert dep.extra["alarm"] == ("mlops-breast-cancer-5xx" if recorded else None)
    assert aws.calls == [
        "sagemaker.DescribeEndpoint",
        "sagemaker.DescribeEndpointConfig",
        "sagemaker.ListTags",
    ]


def test_retried_update_in_progress_is_not_started_again(aws: StubbedClients, champion: Any) -> None:
    champion("1")
    _, config, _ = names("2")
    pending = {"PendingDeploymentSummary": {"EndpointConfigName": config}}
    aws.sm("describe_endpoint", endpoint("Updating", OLD_CONFIG, **pending), {"EndpointName": ENDPOINT})
    dep = Target(aws_profile(), aws).deploy(spec_for("canary"), "2")
    assert dep.extra["previous_endpoint_config"] == OLD_CONFIG and dep.previous_version == "1"
    assert aws.calls == ["sagemaker.DescribeEndpoint"]


def test_endpoint_config_name_changes_with_the_variant() -> None:
    assert names("2")[1].startswith("mlops-breast-cancer-v2-")
    assert names("2")[1] == names("2")[1] != names("2", instance_type="ml.c5.xlarge")[1]
    long = SageMakerTarget.model_resource_name("mlops-" + "x" * 70, "12")
    assert len(long) <= 63 and long.endswith("-v12")
    assert SERVING_ENV["SERVING_ENVIRONMENT"] == "SageMaker"


# -- (f) failures carry SageMaker's reason ------------------------------------------------------


@pytest.mark.parametrize("status", ["Failed", "UpdateRollbackFailed", "RollingBack"])
def test_failed_status_raises_with_failure_reason(aws: StubbedClients, status: str) -> None:
    _, config, _ = names("2")
    dep = Deployment("sagemaker", NAME, "2", "1", ENDPOINT, "canary", UPDATING, {"endpoint_config": config})
    reason = "The primary container for production variant AllTraffic did not pass the ping health check."
    aws.sm("describe_endpoint", endpoint(status, config, FailureReason=reason), {"EndpointName": ENDPOINT})
    with pytest.raises(DeploymentFailed, match=f"{status} while deploying {config}: The primary container"):
        Target(aws_profile(), aws).status(dep)


# -- put_metrics batching (moto checks the data itself) ----------------------------------------


def test_put_metrics_batches_by_1000_and_skips_nan(aws: StubbedClients) -> None:
    from mlops_core.clouds.aws.training import put_metrics

    metrics: dict[str, float] = {f"m{i}": float(i) for i in range(1001)}
    metrics["nan"] = float("nan")
    dims = [{"Name": "Pipeline", "Value": NAME}, {"Name": "Stage", "Value": "monitoring"}]
    data = [
        {"MetricName": f"m{i}", "Dimensions": dims, "Value": float(i), "Unit": "None"} for i in range(1001)
    ]
    aws.stubs["cloudwatch"].add_response(
        "put_metric_data", {}, {"Namespace": "MLOps", "MetricData": data[:1000]}
    )
    aws.stubs["cloudwatch"].add_response(
        "put_metric_data", {}, {"Namespace": "MLOps", "MetricData": data[1000:]}
    )
    put_metrics(aws_profile(), aws, NAME, metrics, {"Stage": "monitoring"})
    assert aws.calls == ["cloudwatch.PutMetricData"] * 2


# -- autoscaling (Application Auto Scaling) -----------------------------------------------------

SCALABLE = {
    "ServiceNamespace": "sagemaker",
    "ResourceId": f"endpoint/{ENDPOINT}/variant/AllTraffic",
    "ScalableDimension": "sagemaker:variant:DesiredInstanceCount",
}


def expect_autoscaling(aws: StubbedClients, policy: dict[str, Any], low: int = 2, high: int = 6) -> None:
    stub = aws.stubs["application-autoscaling"]
    stub.add_response("register_scalable_target", {}, {**SCALABLE, "MinCapacity": low, "MaxCapacity": high})
    stub.add_response(
        "put_scaling_policy",
        {"PolicyARN": f"arn:aws:autoscaling:{REGION}:{ACCOUNT}:scalingPolicy:x:resource/sagemaker/y"},
        {
            **SCALABLE,
            "PolicyName": f"{ENDPOINT}-target-tracking",
            "PolicyType": "TargetTrackingScaling",
            "TargetTrackingScalingPolicyConfiguration": policy,
        },
    )


def test_first_deploy_with_autoscaling_starts_at_min_and_scales_on_invocations(
    aws: StubbedClients, champion: Any
) -> None:
    champion(None)
    target = Target(aws_profile(), aws)
    spec = spec_for(
        "all_at_once",
        autoscaling={"min_instances": 2, "max_instances": 6, "target_invocations_per_instance": 500},
    )
    aws.sm_error(
        "describe_endpoint", f'Could not find endpoint "{ENDPOINT_ARN}".', {"EndpointName": ENDPOINT}
    )
    config = expect_create_model_and_config(aws, "1", previous=None, count=2)  # starts at min_instances
    aws.sm(
        "create_endpoint",
        {"EndpointArn": ENDPOINT_ARN},
        {
            "EndpointName": ENDPOINT,
            "EndpointConfigName": config,
            "Tags": [{"Key": "mlops:pipeline", "Value": NAME}],
        },
    )
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})
    expect_autoscaling(
        aws,
        {
            "TargetValue": 500.0,
            "PredefinedMetricSpecification": {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            },
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        },
    )
    dep = target.deploy(spec, "1")
    assert target.status(dep) == READY
    target.promote(spec, dep)
    assert aliases() == ("1", None)
    # registered before the champion moves: a promotion is all of the spec or none of it
    assert aws.calls[-2:] == [
        "application-auto-scaling.RegisterScalableTarget",
        "application-auto-scaling.PutScalingPolicy",
    ]


def test_autoscaling_that_cannot_be_applied_leaves_the_champion_where_it_was(
    aws: StubbedClients, champion: Any
) -> None:
    champion("1")
    target = Target(aws_profile(), aws)
    spec = spec_for("all_at_once", autoscaling={"min_instances": 2, "max_instances": 6})
    _, config, _ = names("2", count=2)
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})
    aws.stubs["application-autoscaling"].add_client_error(
        "register_scalable_target", "AccessDeniedException", "not allowed", http_status_code=400
    )
    dep = Deployment(
        "sagemaker", NAME, "2", "1", ENDPOINT, "all_at_once", UPDATING, {"endpoint_config": config}
    )
    with pytest.raises(Exception, match="not allowed"):
        target.promote(spec, dep)
    assert aliases()[0] == "1"


def test_a_new_instance_type_deregisters_autoscaling_before_the_update_and_cpu_policy_after(
    aws: StubbedClients, champion: Any
) -> None:
    champion("1")
    target = Target(aws_profile(), aws)
    spec = spec_for(
        "all_at_once",
        instance_type="ml.c5.xlarge",
        autoscaling={"min_instances": 2, "max_instances": 6, "target_cpu_percent": 55},
    )
    aws.sm("describe_endpoint", endpoint("InService", OLD_CONFIG), {"EndpointName": ENDPOINT})
    config = expect_create_model_and_config(
        aws, "2", previous=OLD_CONFIG, instance_type="ml.c5.xlarge", count=2
    )
    aws.stubs["cloudwatch"].add_response("put_metric_alarm", {}, None)
    aws.sm(
        "describe_endpoint_config",
        {
            "EndpointConfigName": OLD_CONFIG,
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{OLD_CONFIG}",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "mlops-breast-cancer-v1",
                    "InstanceType": "ml.m5.large",
                }
            ],
            "CreationTime": NOW,
        },
        {"EndpointConfigName": OLD_CONFIG},
    )
    aas = aws.stubs["application-autoscaling"]
    aas.add_response(
        "describe_scalable_targets",
        {
            "ScalableTargets": [
                {**SCALABLE, "MinCapacity": 1, "MaxCapacity": 4, "RoleARN": ROLE, "CreationTime": NOW}
            ]
        },
        {
            "ServiceNamespace": "sagemaker",
            "ResourceIds": [SCALABLE["ResourceId"]],
            "ScalableDimension": SCALABLE["ScalableDimension"],
        },
    )
    aas.add_response("deregister_scalable_target", {}, SCALABLE)
    aws.sm("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, None)
    dep = target.deploy(spec, "2")
    assert aws.calls[-4:] == [
        "sagemaker.DescribeEndpointConfig",
        "application-auto-scaling.DescribeScalableTargets",
        "application-auto-scaling.DeregisterScalableTarget",
        "sagemaker.UpdateEndpoint",
    ]
    aws.sm("describe_endpoint", endpoint("InService", config), {"EndpointName": ENDPOINT})
    expect_autoscaling(
        aws,
        {
            "TargetValue": 55.0,
            "CustomizedMetricSpecification": {
                "MetricName": "CPUUtilization",
                "Namespace": "/aws/sagemaker/Endpoints",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": ENDPOINT},
                    {"Name": "VariantName", "Value": "AllTraffic"},
                ],
                "Statistic": "Average",
                "Unit": "Percent",
            },
            "ScaleInCooldown": 300,
            "ScaleOutCooldown": 60,
        },
    )
    target.promote(spec, dep)
    assert aliases() == ("2", "1")


def test_a_new_model_on_the_same_instance_type_keeps_autoscaling_registered(
    aws: StubbedClients, champion: Any
) -> None:
    champion("1")
    target = Target(aws_profile(), aws)
    spec = spec_for("all_at_once", autoscaling={"min_instances": 2, "max_instances": 6})
    aws.sm("describe_endpoint", endpoint("InService", OLD_CONFIG), {"EndpointName": ENDPOINT})
    expect_create_model_and_config(aws, "2", previous=OLD_CONFIG, count=2)
    aws.stubs["cloudwatch"].add_response("put_metric_alarm", {}, None)
    aws.sm(
        "describe_endpoint_config",
        {
            "EndpointConfigName": OLD_CONFIG,
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/{OLD_CONFIG}",
            "ProductionVariants": [
                {
                    "VariantName": "AllTraffic",
                    "ModelName": "mlops-breast-cancer-v1",
                    "InstanceType": "ml.m5.large",
                }
            ],
            "CreationTime": NOW,
        },
        {"EndpointConfigName": OLD_CONFIG},
    )
    aws.sm("update_endpoint", {"EndpointArn": ENDPOINT_ARN}, None)
    target.deploy(spec, "2")
    assert "application-auto-scaling.DeregisterScalableTarget" not in aws.calls
    assert aws.calls[-2:] == ["sagemaker.DescribeEndpointConfig", "sagemaker.UpdateEndpoint"]
