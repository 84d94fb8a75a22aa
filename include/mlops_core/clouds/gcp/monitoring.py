"""Cloud Monitoring over its REST API: the pipeline's metrics as custom time series, and the alert
policy on the realized metric (``alerts.metric_alarm``).

Every call goes through the authorised session of ``clients("monitoring")``, with the errors and
retries of :mod:`mlops_core.clouds.gcp.client`; ``settings.monitoring_endpoint`` replaces
``https://monitoring.googleapis.com`` (private endpoints, tests). Nothing here imports Airflow.
"""

from __future__ import annotations

import logging
import math
import re
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_core.base.retry import retry_call
from mlops_core.clouds.gcp.client import GoogleApiError, call, label, send

if TYPE_CHECKING:
    from mlops_core.spec.profiles import ClientFactory, CloudProfile

log = logging.getLogger(__name__)

METRIC_PREFIX = "custom.googleapis.com/mlops/"
MAX_SERIES_PER_REQUEST = 200  # Cloud Monitoring's limit for timeSeries.create


def _label_key(key: str) -> str:
    """A Cloud Monitoring label key: ``[a-z][a-z0-9_]*``."""
    cleaned = re.sub(r"[^a-z0-9_]", "_", str(key).lower())
    return cleaned if cleaned[:1].isalpha() else f"l_{cleaned}"


def _rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def write_metrics(
    profile: CloudProfile,
    clients: ClientFactory,
    pipeline: str,
    metrics: dict[str, float],
    labels: dict[str, str],
    now: datetime | None = None,
) -> None:
    """Write each metric as a GAUGE DOUBLE point of ``custom.googleapis.com/mlops/<metric>`` (resource ``global``).

    Every series carries the labels ``pipeline`` and ``labels``; NaN and infinite values are
    skipped (Cloud Monitoring rejects them), and requests hold at most 200 series.
    """
    project = profile.setting("project")
    root = (profile.settings.get("monitoring_endpoint") or "https://monitoring.googleapis.com").rstrip("/")
    url = f"{root}/v3/projects/{project}/timeSeries"
    point_time = _rfc3339(now or datetime.now(UTC))
    metric_labels = {"pipeline": pipeline, **{_label_key(k): str(v) for k, v in labels.items()}}
    series = []
    for name, value in sorted(metrics.items()):
        number = float(value)
        if not math.isfinite(number):
            log.info("metric %s of %s is %s; not exported", name, pipeline, number)
            continue
        metric_type = METRIC_PREFIX + re.sub(r"[^A-Za-z0-9_/]", "_", name)
        series.append(
            {
                "metric": {"type": metric_type, "labels": dict(metric_labels)},
                "resource": {"type": "global", "labels": {"project_id": project}},
                "metricKind": "GAUGE",
                "valueType": "DOUBLE",
                "points": [{"interval": {"endTime": point_time}, "value": {"doubleValue": number}}],
            }
        )
    if not series:
        return
    session = clients("monitoring")
    for start in range(0, len(series), MAX_SERIES_PER_REQUEST):
        _write_series(session, url, series[start : start + MAX_SERIES_PER_REQUEST])


def _write_series(session: Any, url: str, series: list[dict[str, Any]]) -> None:
    """``timeSeries.create``, retried; a retry refused because the points are there already is success.

    (Cloud Monitoring answers 400 to a point written twice; after a transient failure that means
    the first attempt landed.)
    """
    attempts = 0

    def once() -> dict[str, Any]:
        nonlocal attempts
        attempts += 1
        try:
            return send(session, "POST", url, {"timeSeries": series}, None, 60.0)
        except GoogleApiError as exc:
            duplicate = "more frequently than the maximum sampling period" in exc.api_message or (
                "must be written in order" in exc.api_message
            )
            if attempts > 1 and exc.status == 400 and duplicate:
                log.info("time series already written by an earlier attempt: %s", exc.api_message)
                return {}
            raise

    retry_call(once, what=f"POST {url}")


# -- alert policy on the realized metric (alerts.metric_alarm)


def _monitoring_root(profile: CloudProfile) -> str:
    return (profile.settings.get("monitoring_endpoint") or "https://monitoring.googleapis.com").rstrip("/")


def _filter_value(value: str) -> str:
    """A double-quoted string of a Cloud Monitoring filter."""
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def alert_policy_name(pipeline: str, metric: str) -> str:
    """The display name of the policy (what create-or-update looks it up by)."""
    return f"mlops-{pipeline}-{metric}"


def alert_policy_body(
    profile: CloudProfile,
    pipeline: str,
    metric: str,
    threshold: float,
    *,
    higher_is_better: bool,
    labels: dict[str, str],
    description: str = "",
) -> dict[str, Any]:
    """The ``AlertPolicy`` watching ``custom.googleapis.com/mlops/<metric>`` as :func:`write_metrics` writes it.

    The filter names the metric type, the ``global`` resource and every label the series
    carries (``pipeline`` plus ``labels``, keys as :func:`write_metrics` cleans them). It opens an
    incident when a day's mean is on the wrong side of ``threshold``; notifications go to the
    profile's ``settings.alert_notification_channels`` (comma-separated
    ``projects/<p>/notificationChannels/<id>``; none: the incident is only in the console).
    """
    metric_type = METRIC_PREFIX + re.sub(r"[^A-Za-z0-9_/]", "_", metric)
    series_labels = {"pipeline": pipeline, **{_label_key(k): str(v) for k, v in labels.items()}}
    clauses = [f"metric.type = {_filter_value(metric_type)}", 'resource.type = "global"'] + [
        f"metric.labels.{key} = {_filter_value(value)}" for key, value in sorted(series_labels.items())
    ]
    channels = [
        c.strip() for c in (profile.settings.get("alert_notification_channels") or "").split(",") if c.strip()
    ]
    side = "<" if higher_is_better else ">"
    return {
        "displayName": alert_policy_name(pipeline, metric),
        "documentation": {"content": description[:8000], "mimeType": "text/markdown"},
        "userLabels": {"mlops_pipeline": label(pipeline), "mlops_metric": label(metric)},
        "combiner": "OR",
        "conditions": [
            {
                "displayName": f"{metric} {side} {threshold:g}",
                "conditionThreshold": {
                    "filter": " AND ".join(clauses),
                    "comparison": "COMPARISON_LT" if higher_is_better else "COMPARISON_GT",
                    "thresholdValue": float(threshold),
                    "duration": "0s",
                    # one value per monitored day; 86400 s is within the 25 h alerting maximum
                    "aggregations": [{"alignmentPeriod": "86400s", "perSeriesAligner": "ALIGN_MEAN"}],
                    "trigger": {"count": 1},
                },
            }
        ],
        "notificationChannels": channels,
        "enabled": True,
        "severity": "WARNING",
    }


def upsert_alert_policy(
    profile: CloudProfile, clients: ClientFactory, body: dict[str, Any]
) -> dict[str, Any]:
    """Create the policy, or replace the one with its display name (``alertPolicies.list`` first).

    Policies get server-chosen ids, so the display name is the key: an existing policy is
    replaced whole (``PATCH`` without ``updateMask``); a create whose answer was lost is looked
    up again before a retry, so a retry never makes a second policy.
    """
    project = profile.setting("project")
    root = _monitoring_root(profile)
    collection = f"{root}/v3/projects/{project}/alertPolicies"
    session = clients("monitoring")
    wanted = {"filter": f"display_name = {_filter_value(body['displayName'])}"}

    def existing() -> list[dict[str, Any]]:
        return list(call(session, "GET", collection, params=wanted).get("alertPolicies") or [])

    found = existing()
    if found:
        if len(found) > 1:
            log.warning(
                "%d alert policies are named %s; updating %s",
                len(found),
                body["displayName"],
                found[0]["name"],
            )
        name = str(found[0]["name"])
        return call(session, "PATCH", f"{root}/v3/{name}", {**body, "name": name})

    def created(_: BaseException) -> dict[str, Any] | None:
        again = existing()
        return again[0] if again else None

    return call(session, "POST", collection, body, recover=created)
