"""AWS request builders that are not a deployment: the SageMaker training job and CloudWatch metrics.

No Airflow import and no client built here: :func:`training_job_config` returns the plain
``CreateTrainingJob`` request (what boto3's ``create_training_job(**config)`` and Airflow's
``SageMakerHook.create_training_job(config)`` both accept), and :func:`put_metrics` takes its
CloudWatch client from the profile's :data:`~mlops_core.spec.profiles.ClientFactory`, so tests can stub
or emulate every call.
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_core.model.remote import JobRequest
    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory, CloudProfile

DEFAULT_NAMESPACE = "MLOps"
# PutMetricData takes at most 1000 metric data per request (and 1 MB); one datum is ~100 bytes.
METRIC_BATCH = 1000
TRAINING_VOLUME_GB = 30

# AWS tag keys and values: letters, digits, spaces and _ . : / = + - @ (keys <= 128, values <= 256).
_TAG_UNSAFE = re.compile(r"[^\w .:/=+\-@]")


def _tag(key: str, value: str) -> dict[str, str]:
    return {"Key": _TAG_UNSAFE.sub("_", key)[:128], "Value": _TAG_UNSAFE.sub("_", str(value))[:256]}


def training_job_config(profile: CloudProfile, spec: PipelineSpec, job: JobRequest) -> dict[str, Any]:
    """The ``CreateTrainingJob`` request that runs ``python -m mlops_core.model.remote <job folder>``.

    The container is this project's image (``settings.training_image``); it reads the spec and
    request from the job folder in the lake and writes ``result.json`` beside them, so the job
    needs no input channel. Its output path only receives what SageMaker itself writes (the
    model is logged to MLflow). ``job.env`` (the MLflow tracking URI, ...) becomes the container
    environment; the job name comes from :func:`mlops_core.model.remote.job_name`, so a retried task
    finds its job by name instead of starting a second one.
    """
    command = job.command  # ["python", "-m", "mlops_core.model.remote", <folder>]
    tags = [
        _tag("mlops:pipeline", spec.name),
        _tag("mlops:job", job.name),
        _tag("mlops:ds", job.ds),
    ]
    return {
        "TrainingJobName": job.name,
        "AlgorithmSpecification": {
            "TrainingImage": profile.setting("training_image"),
            "TrainingInputMode": "File",
            "ContainerEntrypoint": command[:3],
            "ContainerArguments": command[3:],
        },
        "RoleArn": profile.setting("role_arn"),
        "OutputDataConfig": {"S3OutputPath": f"{profile.lake.rstrip('/')}/{spec.name}/jobs/"},
        "ResourceConfig": {
            "InstanceType": spec.training.instance_type or profile.setting("training_instance_type"),
            "InstanceCount": 1,
            "VolumeSizeInGB": TRAINING_VOLUME_GB,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": spec.training.timeout_minutes * 60},
        "Environment": dict(job.env),
        "Tags": tags,
    }


def put_metrics(
    profile: CloudProfile,
    clients: ClientFactory,
    pipeline: str,
    metrics: dict[str, float],
    dimensions: dict[str, str],
) -> None:
    """Publish ``metrics`` to CloudWatch (namespace ``settings.metric_namespace``, default ``MLOps``).

    Every datum carries the dimension ``Pipeline=<pipeline>`` plus ``dimensions`` (e.g.
    ``Stage=monitoring``), so one dashboard filters by pipeline. ``None`` and NaN values are
    skipped (CloudWatch rejects NaN, and a metric that could not be computed is not a zero).
    """
    namespace = profile.settings.get("metric_namespace") or DEFAULT_NAMESPACE
    dims = [{"Name": "Pipeline", "Value": pipeline}] + [
        {"Name": str(k), "Value": str(v)} for k, v in dimensions.items() if k != "Pipeline"
    ]
    data: list[dict[str, Any]] = []
    for name, value in metrics.items():
        if value is None:
            continue
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            continue
        data.append({"MetricName": str(name), "Dimensions": dims, "Value": number, "Unit": "None"})
    if not data:
        return
    cloudwatch = clients("cloudwatch")
    for start in range(0, len(data), METRIC_BATCH):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start : start + METRIC_BATCH])


# -- alarm on the realized metric (alerts.metric_alarm) ---------------------------------------------

ALARM_PERIOD_SECONDS = 86_400  # the performance step exports one realized value per monitored day


def alarm_name(pipeline: str, metric: str) -> str:
    """``mlops-<pipeline>-<metric>``: one alarm per pipeline and exported metric (create-or-update)."""
    return f"mlops-{pipeline}-{metric}"[:255]


def metric_alarm_request(
    profile: CloudProfile,
    pipeline: str,
    metric: str,
    threshold: float,
    *,
    higher_is_better: bool,
    dimensions: dict[str, str],
    topic_arn: str | None = None,
    description: str = "",
) -> dict[str, Any]:
    """The ``PutMetricAlarm`` request that watches ``metric`` exactly as :func:`put_metrics` writes it.

    Same namespace, name and dimension set (``Pipeline`` plus ``dimensions``, e.g.
    ``Stage=performance``: CloudWatch matches a metric on all its dimensions). The alarm fires
    when a day's average is on the wrong side of ``threshold`` (below it for higher-is-better
    metrics, above it for the others); a day without a value (no labels yet) leaves the state as
    it is. ``topic_arn`` receives both the ALARM and the OK transition.
    """
    namespace = profile.settings.get("metric_namespace") or DEFAULT_NAMESPACE
    dims = [{"Name": "Pipeline", "Value": pipeline}] + [
        {"Name": str(k), "Value": str(v)} for k, v in dimensions.items() if k != "Pipeline"
    ]
    actions = [topic_arn] if topic_arn else []
    return {
        "AlarmName": alarm_name(pipeline, metric),
        "AlarmDescription": description[:1024],
        "ActionsEnabled": True,
        "AlarmActions": actions,
        "OKActions": actions,
        "Namespace": namespace,
        "MetricName": metric,
        "Dimensions": dims,
        "Statistic": "Average",
        "Period": ALARM_PERIOD_SECONDS,
        "EvaluationPeriods": 1,
        "DatapointsToAlarm": 1,
        "Threshold": float(threshold),
        "ComparisonOperator": "LessThanThreshold" if higher_is_better else "GreaterThanThreshold",
        "TreatMissingData": "missing",
        # no Tags: PutMetricAlarm with tags also needs cloudwatch:TagResource (README "Least permissions")
    }


def put_metric_alarm(clients: ClientFactory, request: dict[str, Any]) -> str:
    """Create or update the alarm (``PutMetricAlarm`` is both); returns its name."""
    clients("cloudwatch").put_metric_alarm(**request)
    return str(request["AlarmName"])
