"""Alerts on AWS, on the moto server: SNS delivery to a subscribed SQS queue, and the CloudWatch
alarm on the realized metric (created or updated where the metric is exported).

Everything goes through Airflow connections, as in a deployment: ``aws_default`` (the
``moto_endpoint`` fixture) or, for ``cloud: aws`` pipelines, the aws profile's connection. moto
stores alarms but never evaluates them, so the alarm test checks what CloudWatch was asked to
watch (metric, dimensions, threshold, comparison, actions) against the series actually exported.
"""

from __future__ import annotations

import json
import socket
import uuid
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import example_spec

if TYPE_CHECKING:
    from collections.abc import Callable

pytestmark = pytest.mark.emulator

REGION = "eu-west-1"
FEEDBACK = {"uri": "${MLOPS_LANDING}/breast_cancer/labels.csv", "key_columns": ["record_id"]}


@pytest.fixture
def aws(moto_endpoint: str) -> Callable[[str], Any]:
    import boto3

    def client(service: str) -> Any:
        return boto3.client(
            service,
            endpoint_url=moto_endpoint,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    return client


@pytest.fixture
def topic(aws: Callable[[str], Any]) -> SimpleNamespace:
    """An SNS topic with an SQS queue subscribed to it (the envelope, not raw delivery)."""
    name = f"mlops-alerts-{uuid.uuid4().hex[:8]}"
    arn = aws("sns").create_topic(Name=name)["TopicArn"]
    queue = aws("sqs").create_queue(QueueName=name)["QueueUrl"]
    queue_arn = aws("sqs").get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    aws("sns").subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)

    def received() -> list[dict[str, Any]]:
        answer = aws("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=2)
        return [json.loads(m["Body"]) for m in answer.get("Messages", [])]

    return SimpleNamespace(arn=arn, received=received)


def _context(task_id: str) -> Any:
    ti = SimpleNamespace(
        dag_id="breast_cancer_monitoring",
        run_id="scheduled__2026-02-04T00:00:00+00:00",
        task_id=task_id,
        try_number=1,
        map_index=-1,
        log_url=f"http://airflow.test/dags/breast_cancer_monitoring/runs/r/tasks/{task_id}",
    )
    return {"ti": ti, "task_instance": ti, "outlet_events": {}}


def test_a_drift_alert_reaches_a_queue_subscribed_to_the_topic(topic: SimpleNamespace) -> None:
    from mlops_airflow.operators.monitor import EmitDriftEventOperator

    spec = example_spec(alerts={"sns_topic_arn": topic.arn, "events": ["policy_fired"]})
    decision = {
        "fire": True,
        "ds": "2026-02-04",
        "reasons": ["2026-02-04: drift share 0.40 >= 0.3, 200 rows >= min_rows 100"],
        "drift": {"drift_share": 0.4, "drifted_columns": ["mean_radius", "mean_area"], "rows": 200},
    }
    step = EmitDriftEventOperator(task_id="emit_drift_event", pipeline=spec, decision=decision)
    step.execute(_context("emit_drift_event"))

    (envelope,) = topic.received()
    assert envelope["TopicArn"] == topic.arn
    # SNS takes fewer than 100 ASCII characters: cut at a word
    assert envelope["Subject"] == (
        "[mlops] breast_cancer: policy_fired - drift policy fired on 2026-02-04 (drift share 0.40):..."
    )
    message = envelope["Message"]
    assert "drift share 0.40 >= 0.3, 200 rows >= min_rows 100" in message
    assert "drifted_columns:\n  - mean_radius\n  - mean_area" in message and "rows: 200" in message
    assert "task: emit_drift_event" in message
    attributes = {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}
    assert attributes == {"pipeline": "breast_cancer", "event": "policy_fired"}


def _dead_endpoint_conn() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return json.dumps(
        {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": f"http://127.0.0.1:{port}", "region_name": REGION},
        }
    )


def test_on_cloud_aws_the_profiles_connection_publishes(
    topic: SimpleNamespace, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from mlops_airflow.notifications import alerts as notifiers

    # aws_default leads nowhere; only the profile's connection reaches the emulator
    monkeypatch.setenv("AIRFLOW_CONN_MLOPS_ALERTS_AWS", os.environ["AIRFLOW_CONN_AWS_DEFAULT"])
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", _dead_endpoint_conn())
    monkeypatch.setenv("MLOPS_AWS_CONN_ID", "mlops_alerts_aws")
    spec = example_spec(cloud="aws", alerts={"sns_topic_arn": topic.arn})
    url = "http://airflow.test/dags/breast_cancer_training/runs/r/tasks/approve/required_actions"
    assert notifiers.notify_approval_waiting(spec, _context("approve"), "7", url) == [f"sns ({topic.arn})"]
    (envelope,) = topic.received()
    assert envelope["Subject"] == "[mlops] breast_cancer: approval_waiting - v7 waits for approval"
    assert f"approve_at: {url}" in envelope["Message"]


def test_a_dead_sns_endpoint_does_not_fail_the_step(
    topic: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from mlops_airflow.notifications import alerts as notifiers

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", _dead_endpoint_conn())
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore: no retries of the refused connection
    spec = example_spec(alerts={"sns_topic_arn": topic.arn})
    with caplog.at_level(logging.WARNING, logger="mlops_airflow.notifications.alerts"):
        assert notifiers.notify_approval_waiting(spec, _context("approve"), "7", "x") == []
    assert any(f"via sns ({topic.arn}) failed" in r.getMessage() for r in caplog.records)


def _alarm_spec(name: str, topic_arn: str | None, **changes: Any) -> Any:
    return example_spec(
        name=name,
        cloud="aws",
        feedback=changes.pop("feedback", FEEDBACK),
        alerts={"metric_alarm": True, **({"sns_topic_arn": topic_arn} if topic_arn else {})},
        **changes,
    )


def test_the_realized_metric_alarm_watches_the_exported_series(
    topic: SimpleNamespace, aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_airflow.hooks.cloud import export_metrics, profile_of

    monkeypatch.setenv("MLOPS_AWS_MONITORING_EXPORT", "cloudwatch")
    name = f"alerts_{uuid.uuid4().hex[:8]}"
    spec = _alarm_spec(name, topic.arn)  # floor: evaluation.floors.roc_auc = 0.95
    profile = profile_of(spec)
    dimensions = {"Stage": "performance"}
    export_metrics(
        profile, spec.name, {"realized_roc_auc": 0.91, "labelled_rows": 480}, dimensions, spec=spec
    )

    cloudwatch = aws("cloudwatch")
    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[f"mlops-{name}-realized_roc_auc"])["MetricAlarms"]
    assert (alarm["Namespace"], alarm["MetricName"]) == ("MLOps", "realized_roc_auc")
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0.95, "LessThanThreshold")
    assert (alarm["Statistic"], alarm["Period"], alarm["EvaluationPeriods"]) == ("Average", 86400, 1)
    assert alarm["AlarmActions"] == [topic.arn] and alarm["OKActions"] == [topic.arn]
    assert alarm["TreatMissingData"] == "missing" and alarm["ActionsEnabled"] is True
    # the alarm's dimensions are exactly those of the series the exporter wrote
    (series,) = cloudwatch.list_metrics(
        Namespace="MLOps", MetricName="realized_roc_auc", Dimensions=[{"Name": "Pipeline", "Value": name}]
    )["Metrics"]
    key = sorted((d["Name"], d["Value"]) for d in series["Dimensions"])
    assert sorted((d["Name"], d["Value"]) for d in alarm["Dimensions"]) == key
    assert key == [("Pipeline", name), ("Stage", "performance")]

    # create-or-update: a new decay floor moves the same alarm
    moved = _alarm_spec(name, topic.arn, feedback={**FEEDBACK, "decay": {"floor": 0.9}})
    export_metrics(profile, moved.name, {"realized_roc_auc": 0.93}, dimensions, spec=moved)
    alarms = cloudwatch.describe_alarms(AlarmNamePrefix=f"mlops-{name}-")["MetricAlarms"]
    assert [(a["AlarmName"], a["Threshold"]) for a in alarms] == [(f"mlops-{name}-realized_roc_auc", 0.9)]

    # other metrics of the export (holdout, drift) make no alarm
    export_metrics(profile, name, {"drift_share": 0.4}, {"Stage": "monitoring"}, spec=spec)
    assert len(cloudwatch.describe_alarms(AlarmNamePrefix=f"mlops-{name}-")["MetricAlarms"]) == 1


def test_a_lower_is_better_metric_alarms_above_its_floor(
    aws: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_airflow.hooks.cloud import export_metrics, profile_of

    monkeypatch.setenv("MLOPS_AWS_MONITORING_EXPORT", "cloudwatch")
    name = f"alerts_{uuid.uuid4().hex[:8]}"
    spec = example_spec(
        "diabetes",
        name=name,
        cloud="aws",
        feedback={
            **FEEDBACK,
            "uri": "${MLOPS_LANDING}/diabetes/labels.csv",
            "decay": {"metric": "rmse", "floor": 60},
        },
        alerts={"metric_alarm": True},
        monitoring={"enabled": True},
    )
    export_metrics(profile_of(spec), name, {"realized_rmse": 58.0}, {"Stage": "performance"}, spec=spec)
    (alarm,) = aws("cloudwatch").describe_alarms(AlarmNames=[f"mlops-{name}-realized_rmse"])["MetricAlarms"]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (60.0, "GreaterThanThreshold")
    assert alarm["AlarmActions"] == []  # no topic: the alarm is visible in CloudWatch only
