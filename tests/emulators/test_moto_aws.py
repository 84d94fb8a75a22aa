"""AWS paths on a moto server: packaging to S3, SageMaker create paths, alarms, metrics, training jobs.

One ``ThreadedMotoServer`` per module on a free local port. Nothing in the code under test is
given an endpoint: ``AWS_ENDPOINT_URL`` (honoured by botocore >= 1.31 and by aiobotocore, hence
s3fs) sends boto3 clients *and* the lake's s3fs filesystem to the emulator, as a deployment
would send them to LocalStack. What moto does not implement (``UpdateEndpoint`` with a
blue/green ``DeploymentConfig``) is covered by tests/contract/test_sagemaker.py.
"""

from __future__ import annotations

import io
import json
import tarfile
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import pytest

from mlops_core.clouds.aws.deploy import SageMakerTarget
from mlops_core.deploy import READY, UPDATING
from tests.contract.test_sagemaker import REGION, aws_profile, register_tiny_versions, use_mlflow_store
from tests.helpers import example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.emulator

BUCKET = "mlops-lake"
LAKE = f"s3://{BUCKET}/lake"
NAME = "breast_cancer"


@pytest.fixture(scope="module")
def moto_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto server for the module, reached through AWS_ENDPOINT_URL; MLflow in a temporary store."""
    import s3fs
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    try:
        with pytest.MonkeyPatch.context() as mp:
            for var in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_SESSION_TOKEN"):
                mp.delenv(var, raising=False)
            mp.setenv("AWS_ACCESS_KEY_ID", "testing")
            mp.setenv("AWS_SECRET_ACCESS_KEY", "testing")
            mp.setenv("AWS_DEFAULT_REGION", REGION)
            mp.setenv("AWS_ENDPOINT_URL", url)
            use_mlflow_store(tmp_path_factory.mktemp("moto-aws"), mp)
            s3fs.S3FileSystem.clear_instance_cache()  # no filesystem made before the env was set
            yield url
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.stop()


@pytest.fixture
def aws(moto_url: str) -> Any:
    """A ClientFactory like the Airflow layer's (no endpoint argument), on an emptied emulator."""
    import boto3

    urllib.request.urlopen(urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")).close()
    boto3.client("s3", region_name=REGION).create_bucket(
        Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    return lambda service: boto3.client(service, region_name=REGION)


@pytest.fixture(scope="module")
def version(moto_url: str) -> str:
    return register_tiny_versions(NAME, 1)[0]


def role_arn(aws: Any) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "sagemaker.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = aws("iam").create_role(RoleName="mlops-sagemaker", AssumeRolePolicyDocument=json.dumps(trust))
    return str(role["Role"]["Arn"])


def test_deploy_packages_to_s3_creates_the_endpoint_and_a_retry_is_idempotent(aws: Any, version: str) -> None:
    from mlops_core.runs import registry

    profile = aws_profile(LAKE, role_arn=role_arn(aws))
    target = SageMakerTarget(profile, aws)  # the real package(): MLflow -> s3fs -> moto S3
    spec = example_spec(NAME, cloud="aws", deployment={"target": "sagemaker", "strategy": "canary"})

    dep = target.deploy(spec, version)
    sm = aws("sagemaker")
    assert dep.state == UPDATING and dep.extra["previous_endpoint_config"] is None
    model_data = f"{LAKE}/{NAME}/models/v{version}/model.tar.gz"
    container = sm.describe_model(ModelName=dep.extra["model_name"])["PrimaryContainer"]
    assert container["ModelDataUrl"] == model_data and container["Image"] == profile.settings["serving_image"]
    variants = sm.describe_endpoint_config(EndpointConfigName=dep.extra["endpoint_config"])[
        "ProductionVariants"
    ]
    assert (
        variants[0]["ModelName"] == dep.extra["model_name"] and variants[0]["InstanceType"] == "ml.m5.large"
    )

    # the tarball has MLmodel at its top (what MLflow's SageMaker image unpacks to /opt/ml/model)
    s3 = aws("s3")
    blob = s3.get_object(Bucket=BUCKET, Key=f"lake/{NAME}/models/v{version}/model.tar.gz")["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        assert "MLmodel" in tar.getnames()
    s3.head_object(Bucket=BUCKET, Key=f"lake/{NAME}/models/v{version}/model/MLmodel")

    assert target.status(dep) == READY  # moto endpoints are InService at once
    again = target.deploy(spec, version)
    assert again.extra == dep.extra
    assert len(sm.list_models()["Models"]) == 1
    assert len(sm.list_endpoint_configs()["EndpointConfigs"]) == 1
    assert [e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]] == [dep.endpoint]

    target.promote(spec, dep)
    assert registry.alias_version(NAME, registry.CHAMPION) == version
    target.rollback(spec, dep)  # a first deploy: the endpoint goes, the alias too
    assert sm.list_endpoints()["Endpoints"] == []
    assert registry.alias_version(NAME, registry.CHAMPION) is None
    # rollback never deletes the config or the model: a rerun of the same version reuses them
    configs = [c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]]
    assert configs == [dep.extra["endpoint_config"]]
    assert [m["ModelName"] for m in sm.list_models()["Models"]] == [dep.extra["model_name"]]


def test_alarm_and_metrics_reach_cloudwatch(aws: Any) -> None:
    from mlops_core.clouds.aws.training import put_metrics

    profile = aws_profile(LAKE)
    alarm = SageMakerTarget(profile, aws)._put_alarm("mlops-breast-cancer")
    cloudwatch = aws("cloudwatch")
    (described,) = cloudwatch.describe_alarms(AlarmNames=[alarm])["MetricAlarms"]
    assert (described["Namespace"], described["MetricName"]) == ("AWS/SageMaker", "Invocation5XXErrors")
    assert {"Name": "EndpointName", "Value": "mlops-breast-cancer"} in described["Dimensions"]

    put_metrics(
        profile,
        aws,
        NAME,
        {"drift_share": 0.25, "roc_auc": 0.97, "skipped": float("nan")},
        {"Stage": "monitoring"},
    )
    listed = cloudwatch.list_metrics(Namespace="MLOps")["Metrics"]
    assert sorted(m["MetricName"] for m in listed) == ["drift_share", "roc_auc"]
    dims = [{"Name": "Pipeline", "Value": NAME}, {"Name": "Stage", "Value": "monitoring"}]
    assert all(sorted(m["Dimensions"], key=lambda d: d["Name"]) == dims for m in listed)
    now = datetime.now(UTC)
    data = cloudwatch.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "drift",
                "MetricStat": {
                    "Metric": {"Namespace": "MLOps", "MetricName": "drift_share", "Dimensions": dims},
                    "Period": 60,
                    "Stat": "Maximum",
                },
            }
        ],
        StartTime=now - timedelta(minutes=10),
        EndTime=now + timedelta(minutes=10),
    )["MetricDataResults"]
    assert data[0]["Values"] == [0.25]


def test_training_job_config_is_accepted_by_create_training_job(aws: Any) -> None:
    from mlops_core.clouds.aws.training import training_job_config
    from mlops_core.model.remote import JobRequest, job_name

    profile = aws_profile(LAKE, role_arn=role_arn(aws))
    spec = example_spec(NAME, cloud="aws", training={"backend": "sagemaker", "timeout_minutes": 30})
    name = job_name(NAME, "2026-01-05", 1)
    job = JobRequest(
        name,
        f"{LAKE}/{NAME}/jobs/{name}",
        "s3://mlops-lake/landing/breast_cancer/breast_cancer.csv",
        LAKE,
        "2026-01-05",
        {"mlops.airflow_run": "breast_cancer_training/manual__2026-01-05"},
        {"MLFLOW_TRACKING_URI": "http://mlflow.internal:5000"},
    )
    config = training_job_config(profile, spec, job)
    sm = aws("sagemaker")
    sm.create_training_job(**config)
    got = sm.describe_training_job(TrainingJobName=name)
    assert got["TrainingJobName"] == name and got["RoleArn"] == profile.settings["role_arn"]
    assert got["AlgorithmSpecification"]["TrainingImage"] == profile.settings["training_image"]
    assert got["OutputDataConfig"]["S3OutputPath"] == f"{LAKE}/{NAME}/jobs/"
    assert got["ResourceConfig"] == {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 30}
    assert got["StoppingCondition"]["MaxRuntimeInSeconds"] == 1800
    # what moto does not echo back, the request itself must say
    assert config["AlgorithmSpecification"]["ContainerEntrypoint"] == [
        "python",
        "-m",
        "mlops_core.model.remote",
    ]
    assert config["AlgorithmSpecification"]["ContainerArguments"] == [job.folder]
    assert config["Environment"] == job.env
    assert {"Key": "mlops:pipeline", "Value": NAME} in config["Tags"]
