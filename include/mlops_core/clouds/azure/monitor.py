"""Azure Monitor over its REST APIs: custom metrics and the metric alert rule on the realized metric.

* :func:`write_metrics`: Azure Monitor custom metrics (namespace ``MLOps``) on
  ``settings.metrics_resource_id``, through ``clients("monitor")``;
* :func:`metric_alert_body`, :func:`put_metric_alert`: the ``Microsoft.Insights/metricAlerts``
  rule watching one of those metrics (``alerts.metric_alarm``), through ``clients("arm")``.

Sessions, errors and retries are those of :mod:`mlops_core.clouds.azure.client`. Nothing here
imports Airflow.
"""

from __future__ import annotations

import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mlops_core.base.retry import retry_after, retry_call
from mlops_core.clouds.azure.client import ARM_ROOT, TIMEOUT, AzureMLError, error_of

if TYPE_CHECKING:
    from mlops_core.spec.profiles import ClientFactory, CloudProfile

log = logging.getLogger(__name__)

METRIC_NAMESPACE = "MLOps"


def write_metrics(
    profile: CloudProfile,
    clients: ClientFactory,
    pipeline: str,
    metrics: dict[str, float],
    dims: dict[str, str],
) -> None:
    """Azure Monitor custom metrics (namespace ``MLOps``) on ``settings.metrics_resource_id``.

    One POST per metric (the API takes one metric per call); NaN and infinite values are
    skipped because Azure Monitor rejects them. ``pipeline`` is always a dimension. The
    regional ingestion root is ``https://<location>.monitoring.azure.com`` unless
    ``settings.metrics_endpoint`` names another (clouds other than Azure's public one).
    """
    resource = profile.setting("metrics_resource_id")
    if not resource.startswith("/"):
        raise ValueError(
            f"settings.metrics_resource_id {resource!r} must be an ARM resource id (/subscriptions/...)"
        )
    root = (
        profile.settings.get("metrics_endpoint")
        or f"https://{profile.setting('location')}.monitoring.azure.com"
    )
    url = f"{root.rstrip('/')}{resource}/metrics"
    dimensions = {"pipeline": pipeline, **{str(k): str(v) for k, v in dims.items()}}
    names, values = list(dimensions), [dimensions[k] for k in dimensions]
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    session = clients("monitor")
    for metric, value in metrics.items():
        number = float(value)
        if math.isnan(number) or math.isinf(number):
            log.info("not exporting %s of %s: %s", metric, pipeline, value)
            continue
        body = {
            "time": now,
            "data": {
                "baseData": {
                    "metric": metric,
                    "namespace": METRIC_NAMESPACE,
                    "dimNames": names,
                    "series": [
                        {"dimValues": values, "min": number, "max": number, "sum": number, "count": 1}
                    ],
                }
            },
        }
        _post_metric(session, url, body)


def _post_metric(session: Any, url: str, body: dict[str, Any]) -> None:
    """POST one custom metric, retried: a repeated point only adds to its sum and count, the average stays."""

    def once() -> None:
        response = session.request("POST", url, json=body, timeout=TIMEOUT)
        if response.status_code >= 400:
            code, message = error_of(response)
            raise AzureMLError("POST", url, response.status_code, code, message, retry_after(response))

    retry_call(once, what=f"Azure POST {url}")


# -- metric alert on the realized metric (alerts.metric_alarm) --------------------------------------

# Microsoft.Insights/metricAlerts: the newest GA version of the metric alert rules API.
METRIC_ALERTS_API_VERSION = "2018-03-01"


def metric_alert_name(pipeline: str, metric: str) -> str:
    """``mlops-<pipeline>-<metric>``: the rule's name, its key for create-or-update."""
    return f"mlops-{pipeline}-{metric}"


def metric_alert_url(profile: CloudProfile, name: str, api_root: str | None = None) -> str:
    """The rule's ARM id as a URL, in the profile's subscription and resource group."""
    root = (api_root or profile.settings.get("api_endpoint") or ARM_ROOT).rstrip("/")
    return (
        f"{root}/subscriptions/{quote(profile.setting('subscription_id'))}/resourceGroups/"
        f"{quote(profile.setting('resource_group'))}/providers/Microsoft.Insights/metricAlerts/{quote(name)}"
    )


def metric_alert_body(
    profile: CloudProfile,
    pipeline: str,
    metric: str,
    threshold: float,
    *,
    higher_is_better: bool,
    dims: dict[str, str],
    description: str = "",
) -> dict[str, Any]:
    """The metric alert rule on the custom metric ``MLOps/<metric>`` as :func:`write_metrics` writes it.

    Scope: ``settings.metrics_resource_id``; dimensions: ``pipeline`` plus ``dims`` (each pinned
    to its value). It fires when the day's average (a 24 h window, evaluated hourly) is on the
    wrong side of ``threshold``; ``skipMetricValidation`` because a custom metric only exists
    once its first value lands. Actions: the profile's ``settings.alert_action_group_ids``
    (comma-separated action group ids; none: the alert is only in the portal).
    """
    dimensions = {"pipeline": pipeline, **{str(k): str(v) for k, v in dims.items()}}
    groups = [
        g.strip() for g in (profile.settings.get("alert_action_group_ids") or "").split(",") if g.strip()
    ]
    return {
        "location": "global",
        "tags": {"mlops-pipeline": pipeline, "mlops-metric": metric},
        "properties": {
            "description": description[:2048],
            "severity": 2,
            "enabled": True,
            "scopes": [profile.setting("metrics_resource_id")],
            "evaluationFrequency": "PT1H",
            "windowSize": "PT24H",
            "criteria": {
                "odata.type": "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
                "allOf": [
                    {
                        "criterionType": "StaticThresholdCriterion",
                        "name": metric,
                        "metricName": metric,
                        "metricNamespace": METRIC_NAMESPACE,
                        "dimensions": [
                            {"name": key, "operator": "Include", "values": [value]}
                            for key, value in dimensions.items()
                        ],
                        "operator": "LessThan" if higher_is_better else "GreaterThan",
                        "threshold": float(threshold),
                        "timeAggregation": "Average",
                        "skipMetricValidation": True,
                    }
                ],
            },
            "autoMitigate": True,
            "actions": [{"actionGroupId": group} for group in groups],
        },
    }


def put_metric_alert(
    profile: CloudProfile, clients: ClientFactory, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    """Create or update the rule (an ARM PUT by name, safe to repeat); returns the rule ARM answered.

    The session is ``clients("arm")`` (a token for ARM, not for metric ingestion); its root is the
    profile's ``settings.api_endpoint``, else the session's own ``api_root``, else public ARM.
    """
    session = clients("arm")
    url = metric_alert_url(
        profile, name, profile.settings.get("api_endpoint") or getattr(session, "api_root", None)
    )

    def once() -> dict[str, Any]:
        response = session.request(
            "PUT", url, json=body, params={"api-version": METRIC_ALERTS_API_VERSION}, timeout=TIMEOUT
        )
        if response.status_code >= 400:
            code, message = error_of(response)
            raise AzureMLError("PUT", url, response.status_code, code, message, retry_after(response))
        try:
            data = response.json()
        except ValueError:
            return {}
        return dict(data) if isinstance(data, dict) else {}

    return retry_call(once, what=f"Azure PUT {url}")
