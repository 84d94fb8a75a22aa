"""The ``alerts`` section: which events go where (email, SNS, Slack, a metric alarm)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from mlops_core.spec.common import SpecModel

AlertEvent = Literal[
    "policy_fired",
    "gate_rejected",
    "rolled_back",
    "validation_failed",
    "approval_waiting",
    "metric_below_floor",
    "labels_unmatched",
    "task_failed",
]
ALERT_EVENTS: tuple[AlertEvent, ...] = AlertEvent.__args__  # type: ignore[attr-defined]


class AlertsSpec(SpecModel):
    """Where events go: Airflow notifiers (email through the smtp provider, SNS through the
    amazon provider, Slack through the slack provider's incoming-webhook notifier) and, where the cloud profile exports metrics, a metric alarm on the
    realized primary metric. Recipients are addresses and topic ARNs, never credentials: the
    SMTP server and the AWS account come from Airflow connections."""

    events: list[AlertEvent] = Field(list(ALERT_EVENTS), min_length=1)
    email: list[Annotated[str, Field(pattern=r"^[^@\s,;<>]+@[^@\s,;<>]+\.[^@\s,;<>]+$", max_length=254)]] = (
        Field([], max_length=50)
    )
    smtp_conn_id: str = Field("smtp_default", min_length=1, max_length=250)
    # an Airflow connection of type Slack Incoming Webhook (the webhook URL is its secret)
    slack_conn_id: str | None = Field(None, min_length=1, max_length=250)
    sns_topic_arn: str | None = Field(
        None, pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$"
    )
    metric_alarm: bool = False

    @model_validator(mode="after")
    def _somewhere(self) -> AlertsSpec:
        if not self.email and not self.sns_topic_arn and not self.slack_conn_id and not self.metric_alarm:
            raise ValueError(
                "alerts need at least one destination: email, sns_topic_arn, slack_conn_id or metric_alarm"
            )
        return self
