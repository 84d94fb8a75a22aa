"""Alert on the realized metric, Google Cloud and Azure: contract only (no emulator serves either API).

``alerts.metric_alarm`` makes the export of ``realized_<metric>`` also create or update an alarm
on it: a Cloud Monitoring alert policy (``alertPolicies``, looked up by display name, then
created or replaced) or an Azure Monitor metric alert rule (``Microsoft.Insights/metricAlerts``,
PUT by name). A recording session stands in for the authorised session and records every
request; each test asserts the exact requests, in order, with their bodies written out.

What the bodies are held to:

* Google: the published API description, the ``monitoring.v3`` discovery document that
  google-api-python-client ships (:mod:`tests.contract.discovery`), for requests *and* canned
  answers; a misspelt field, a wrong type or enum, an unknown query parameter fails.
* Azure: no package in the lock carries the Microsoft.Insights models, so the metric alert body
  is checked against the documented schema written out below (a transcription of
  ``specification/monitor/resource-manager/Microsoft.Insights/stable/2018-03-01/metricAlert_API.json``
  in Azure/azure-rest-api-specs: ``MetricAlertResource``, ``MetricAlertProperties``,
  ``MetricAlertSingleResourceMultipleMetricCriteria``, ``MetricCriteria``, ``MetricDimension``);
  the custom-metric POST that precedes it is checked by :mod:`tests.contract.azure_models`.

And end to end through :func:`mlops_airflow.hooks.cloud.export_metrics`: the alarm's filter (labels,
dimensions) names exactly the series the exporter wrote in the same call.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from mlops_core.clouds.azure import monitor as azure
from mlops_core.clouds.azure.client import AzureMLError
from mlops_core.clouds.gcp import monitoring as gcp
from mlops_core.spec.profiles import CloudProfile
from tests.contract import azure_models, discovery
from tests.helpers import example_spec

pytestmark = pytest.mark.contract

NAME = "breast_cancer"
FEEDBACK = {"uri": "${MLOPS_LANDING}/breast_cancer/labels.csv", "key_columns": ["record_id"]}
CHANNEL = "projects/proj/notificationChannels/8812"
GROUP = "/subscriptions/sub-1/resourceGroups/rg-ml/providers/microsoft.insights/actionGroups/ml-oncall"
WORKSPACE = (
    "/subscriptions/sub-1/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws"
)

GCP = CloudProfile(
    name="gcp",
    lake="gs://lake/lake",
    landing="gs://lake/landing",
    conn_id="google_cloud_default",
    training_backend="vertex",
    deploy_target="vertex",
    monitoring_export="cloud_monitoring",
    settings={"project": "proj", "location": "europe-west4", "alert_notification_channels": CHANNEL},
)
AZURE = CloudProfile(
    name="azure",
    lake="abfs://mlops-lake/lake",
    landing="abfs://mlops-lake/landing",
    conn_id="azure_data_lake_default",
    training_backend="azureml",
    deploy_target="azureml",
    monitoring_export="azure_monitor",
    settings={
        "subscription_id": "sub-1",
        "resource_group": "rg-ml",
        "workspace": "ws",
        "location": "westeurope",
        "metrics_resource_id": WORKSPACE,
        "alert_action_group_ids": GROUP,
    },
)
DESCRIPTION = "realized roc_auc below its floor"


class Answer:
    def __init__(self, status_code: int, body: Any):
        self.status_code, self._body = status_code, body

    def json(self) -> Any:
        return self._body

    @property
    def text(self) -> str:
        return json.dumps(self._body)


class Recorder:
    """A session: records ``(method, url, json, params)``, answers in order, checks both sides."""

    def __init__(self, check: Any, *answers: Any):
        self.check, self.answers = check, list(answers)
        self.calls: list[tuple[str, str, Any, Any]] = []

    def request(
        self,
        method: str,
        url: str,
        json: Any = None,
        params: Any = None,
        timeout: Any = None,
        headers: Any = None,
    ) -> Answer:
        self.calls.append((method, url, json, params))
        problems = self.check(method, url, json, params)
        assert not problems, "not what the API description allows:\n  " + "\n  ".join(problems)
        assert self.answers, f"unexpected request: {method} {url}"
        answer = self.answers.pop(0)
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        if self.check is _google:
            canned = discovery.response_errors(method, url, status, body)
            assert not canned, f"canned answer not in the API description: {canned}"
        return Answer(status, body)


def _google(method: str, url: str, body: Any, params: Any) -> list[str]:
    return discovery.request_errors(method, url, body, params)


# -- Cloud Monitoring ---------------------------------------------------------------------------------

POLICIES = "https://monitoring.googleapis.com/v3/projects/proj/alertPolicies"
POLICY = "projects/proj/alertPolicies/42"
POLICY_BODY = {
    "displayName": "mlops-breast_cancer-realized_roc_auc",
    "documentation": {"content": DESCRIPTION, "mimeType": "text/markdown"},
    "userLabels": {"mlops_pipeline": "breast_cancer", "mlops_metric": "realized_roc_auc"},
    "combiner": "OR",
    "conditions": [
        {
            "displayName": "realized_roc_auc < 0.95",
            "conditionThreshold": {
                "filter": 'metric.type = "custom.googleapis.com/mlops/realized_roc_auc" AND '
                'resource.type = "global" AND metric.labels.pipeline = "breast_cancer" AND '
                'metric.labels.stage = "performance"',
                "comparison": "COMPARISON_LT",
                "thresholdValue": 0.95,
                "duration": "0s",
                "aggregations": [{"alignmentPeriod": "86400s", "perSeriesAligner": "ALIGN_MEAN"}],
                "trigger": {"count": 1},
            },
        }
    ],
    "notificationChannels": [CHANNEL],
    "enabled": True,
    "severity": "WARNING",
}
LOOKUP = ("GET", POLICIES, None, {"filter": 'display_name = "mlops-breast_cancer-realized_roc_auc"'})


def _policy(**changes: Any) -> dict[str, Any]:
    return gcp.alert_policy_body(
        GCP,
        NAME,
        "realized_roc_auc",
        0.95,
        higher_is_better=True,
        labels={"Stage": "performance"},
        description=DESCRIPTION,
        **changes,
    )


def test_a_new_alert_policy_is_created() -> None:
    session = Recorder(_google, {}, {**POLICY_BODY, "name": POLICY})
    assert _policy() == POLICY_BODY
    created = gcp.upsert_alert_policy(GCP, lambda service: session, _policy())
    assert created["name"] == POLICY
    assert session.calls == [LOOKUP, ("POST", POLICIES, POLICY_BODY, None)]


def test_an_existing_alert_policy_is_replaced_by_name() -> None:
    found = {"alertPolicies": [{**POLICY_BODY, "name": POLICY, "conditions": []}]}
    session = Recorder(_google, found, {**POLICY_BODY, "name": POLICY})
    gcp.upsert_alert_policy(GCP, lambda service: session, _policy())
    assert session.calls == [
        LOOKUP,
        ("PATCH", f"https://monitoring.googleapis.com/v3/{POLICY}", {**POLICY_BODY, "name": POLICY}, None),
    ]


def test_a_lost_create_answer_is_looked_up_not_repeated(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_core.base import retry

    monkeypatch.setattr(
        retry, "default_policy", lambda: retry.RetryPolicy(attempts=3, base=0.0, sleep=lambda s: None)
    )
    unavailable = (503, {"error": {"code": 503, "message": "backend unavailable", "status": "UNAVAILABLE"}})
    session = Recorder(_google, {}, unavailable, {"alertPolicies": [{**POLICY_BODY, "name": POLICY}]})
    assert gcp.upsert_alert_policy(GCP, lambda service: session, _policy())["name"] == POLICY
    assert [c[0] for c in session.calls] == ["GET", "POST", "GET"]  # one create, then the lookup


def test_a_lower_is_better_metric_alerts_above_its_floor() -> None:
    body = gcp.alert_policy_body(
        GCP, NAME, "realized_rmse", 60.0, higher_is_better=False, labels={"Stage": "performance"}
    )
    condition = body["conditions"][0]
    assert condition["displayName"] == "realized_rmse > 60"
    assert condition["conditionThreshold"]["comparison"] == "COMPARISON_GT"
    assert not discovery.request_errors("POST", POLICIES, body)


# -- Azure Monitor --------------------------------------------------------------------------------------

_DIMENSION = {
    "type": "object",
    "required": ["name", "operator", "values"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "operator": {"enum": ["Include", "Exclude"]},
        "values": {"type": "array", "items": {"type": "string"}},
    },
}
_STATIC_CRITERION = {
    "type": "object",
    "required": ["criterionType", "name", "metricName", "timeAggregation", "operator", "threshold"],
    "additionalProperties": False,
    "properties": {
        "criterionType": {"const": "StaticThresholdCriterion"},
        "name": {"type": "string", "minLength": 1},
        "metricName": {"type": "string", "minLength": 1},
        "metricNamespace": {"type": "string"},
        "timeAggregation": {"enum": ["Average", "Count", "Minimum", "Maximum", "Total"]},
        "dimensions": {"type": "array", "items": _DIMENSION},
        "skipMetricValidation": {"type": "boolean"},
        "operator": {
            "enum": [
                "Equals",
                "NotEquals",
                "GreaterThan",
                "GreaterThanOrEqual",
                "LessThan",
                "LessThanOrEqual",
            ]
        },
        "threshold": {"type": "number"},
    },
}
_DURATION = {"type": "string", "pattern": r"^P(T(\d+H)?(\d+M)?|\d+D)$", "minLength": 3}
METRIC_ALERT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["location", "properties"],
    "additionalProperties": False,  # id, name, type are read-only: never sent
    "properties": {
        "location": {"type": "string", "minLength": 1},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "properties": {
            "type": "object",
            "required": [
                "enabled",
                "description",
                "severity",
                "evaluationFrequency",
                "windowSize",
                "criteria",
            ],
            "additionalProperties": False,  # lastUpdatedTime, isMigrated are read-only
            "properties": {
                "description": {"type": "string"},
                "severity": {"type": "integer", "minimum": 0, "maximum": 4},
                "enabled": {"type": "boolean"},
                "scopes": {
                    "type": "array",
                    "minItems": 1,
                    "items": {"type": "string", "pattern": "^/subscriptions/"},
                },
                "evaluationFrequency": _DURATION,
                "windowSize": _DURATION,
                "targetResourceType": {"type": "string"},
                "targetResourceRegion": {"type": "string"},
                "criteria": {
                    "type": "object",
                    "required": ["odata.type", "allOf"],
                    "additionalProperties": False,
                    "properties": {
                        "odata.type": {
                            "const": "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria"
                        },
                        "allOf": {"type": "array", "minItems": 1, "items": _STATIC_CRITERION},
                    },
                },
                "autoMitigate": {"type": "boolean"},
                "actions": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "actionGroupId": {"type": "string", "pattern": "^/subscriptions/"},
                            "webHookProperties": {
                                "type": "object",
                                "additionalProperties": {"type": "string"},
                            },
                        },
                    },
                },
            },
        },
    },
}
RULE_URL = (
    "https://management.azure.com/subscriptions/sub-1/resourceGroups/rg-ml/providers/"
    "Microsoft.Insights/metricAlerts/mlops-breast_cancer-realized_roc_auc"
)
# A valid rule (the schema above holds it), the canned request and answer of the tests below; what
# metric_alert_body must produce is derived in test_the_metric_alert_rule_is_put_by_name instead.
RULE_BODY = {
    "location": "global",
    "tags": {"mlops-pipeline": "breast_cancer", "mlops-metric": "realized_roc_auc"},
    "properties": {
        "description": DESCRIPTION,
        "severity": 2,
        "enabled": True,
        "scopes": [WORKSPACE],
        "evaluationFrequency": "PT1H",
        "windowSize": "PT24H",
        "criteria": {
            "odata.type": "Microsoft.Azure.Monitor.SingleResourceMultipleMetricCriteria",
            "allOf": [
                {
                    "criterionType": "StaticThresholdCriterion",
                    "name": "realized_roc_auc",
                    "metricName": "realized_roc_auc",
                    "metricNamespace": "MLOps",
                    "dimensions": [
                        {"name": "pipeline", "operator": "Include", "values": ["breast_cancer"]},
                        {"name": "Stage", "operator": "Include", "values": ["performance"]},
                    ],
                    "operator": "LessThan",
                    "threshold": 0.95,
                    "timeAggregation": "Average",
                    "skipMetricValidation": True,
                }
            ],
        },
        "autoMitigate": True,
        "actions": [{"actionGroupId": GROUP}],
    },
}


def _azure(method: str, url: str, body: Any, params: Any) -> list[str]:
    if "/providers/Microsoft.Insights/metricAlerts/" not in url:
        return azure_models.request_errors(method, url, body, params)
    errors = azure_models.schema_errors(METRIC_ALERT_SCHEMA, body)
    if method != "PUT":
        errors.append(f"{method}: create-or-update of a metric alert is a PUT")
    if (params or {}).get("api-version") != "2018-03-01":
        errors.append(f"api-version {params!r}, the documented one is 2018-03-01")
    return errors


def _answered(body: dict[str, Any]) -> dict[str, Any]:
    return {
        **body,
        "id": RULE_URL.removeprefix("https://management.azure.com"),
        "type": "Microsoft.Insights/metricAlerts",
    }


def _published(metric: str, dims: dict[str, str]) -> dict[str, Any]:
    """The custom metric ``azure.write_metrics`` POSTs for this pipeline: what the rule must select."""
    sent: list[Any] = []

    class Ingestion:
        def request(self, method: str, url: str, json: Any = None, **_: Any) -> Any:
            sent.append(json)
            return Answer(200, {})

    azure.write_metrics(AZURE, lambda service: Ingestion(), NAME, {metric: 0.5}, dims)
    (body,) = sent
    return dict(body["data"]["baseData"])


def test_the_metric_alert_rule_is_put_by_name() -> None:
    body = azure.metric_alert_body(
        AZURE,
        NAME,
        "realized_roc_auc",
        0.95,
        higher_is_better=True,
        dims={"Stage": "performance"},
        description=DESCRIPTION,
    )
    # Expectations from elsewhere than the implementation: the series the exporter publishes, the
    # schema of Microsoft.Insights/metricAlerts 2018-03-01 and the alert's meaning.
    assert not azure_models.schema_errors(METRIC_ALERT_SCHEMA, body)
    published = _published("realized_roc_auc", {"Stage": "performance"})
    props = body["properties"]
    (criterion,) = props["criteria"]["allOf"]
    assert (criterion["metricName"], criterion["metricNamespace"]) == (
        published["metric"],
        published["namespace"],
    )
    (series,) = published["series"]
    assert criterion["dimensions"] == [
        {"name": name, "operator": "Include", "values": [value]}
        for name, value in zip(published["dimNames"], series["dimValues"], strict=True)
    ]
    # higher is better: it fires when the day's average (24 h window) is below the floor
    assert (criterion["operator"], criterion["threshold"], criterion["timeAggregation"]) == (
        "LessThan",
        0.95,
        "Average",
    )
    assert props["windowSize"] == "PT24H" and props["scopes"] == [AZURE.settings["metrics_resource_id"]]
    assert props["actions"] == [{"actionGroupId": GROUP}] and props["description"] == DESCRIPTION
    assert props["enabled"] is True and body["location"] == "global"  # metric alerts are global resources
    session = Recorder(_azure, _answered(body))
    services: list[str] = []

    def clients(service: str) -> Recorder:
        services.append(service)
        return session

    answered = azure.put_metric_alert(AZURE, clients, "mlops-breast_cancer-realized_roc_auc", body)
    assert answered["type"] == "Microsoft.Insights/metricAlerts"
    assert services == ["arm"]  # an ARM token, not the metric-ingestion one
    assert session.calls == [("PUT", RULE_URL, body, {"api-version": "2018-03-01"})]


def test_a_lower_is_better_metric_alert_and_the_sovereign_root() -> None:
    profile = CloudProfile(**{**AZURE.__dict__, "settings": {**AZURE.settings, "alert_action_group_ids": ""}})
    body = azure.metric_alert_body(profile, NAME, "realized_rmse", 60.0, higher_is_better=False, dims={})
    (criterion,) = body["properties"]["criteria"]["allOf"]
    assert (criterion["operator"], criterion["threshold"]) == ("GreaterThan", 60.0)
    assert body["properties"]["actions"] == [] and not azure_models.schema_errors(METRIC_ALERT_SCHEMA, body)
    session = Recorder(_azure, _answered(body))
    session.api_root = "https://management.usgovcloudapi.net"  # type: ignore[attr-defined]
    azure.put_metric_alert(profile, lambda service: session, "mlops-breast_cancer-realized_rmse", body)
    assert session.calls[0][1].startswith("https://management.usgovcloudapi.net/subscriptions/sub-1/")


def test_an_azure_error_names_the_call() -> None:
    denied = (403, {"error": {"code": "AuthorizationFailed", "message": "no write on metricAlerts"}})
    session = Recorder(_azure, denied)
    with pytest.raises(AzureMLError, match="HTTP 403 AuthorizationFailed: no write on metricAlerts"):
        azure.put_metric_alert(AZURE, lambda service: session, "mlops-x", RULE_BODY)


# -- end to end through export_metrics -------------------------------------------------------------------


def _spec(cloud: str) -> Any:
    return example_spec(cloud=cloud, feedback=FEEDBACK, alerts={"metric_alarm": True})


def test_cloud_monitoring_export_then_the_policy_on_the_same_series(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_airflow.hooks import cloud

    session = Recorder(_google, {}, {}, {**POLICY_BODY, "name": POLICY})
    monkeypatch.setattr(cloud, "clients_for", lambda profile: lambda service: session)
    cloud.export_metrics(GCP, NAME, {"realized_roc_auc": 0.91}, {"Stage": "performance"}, spec=_spec("gcp"))
    (write, lookup, create) = session.calls
    (series,) = write[2]["timeSeries"]
    assert lookup == LOOKUP and create[:2] == ("POST", POLICIES)
    wanted = create[2]["conditions"][0]["conditionThreshold"]["filter"]
    labels = " AND ".join(f'metric.labels.{k} = "{v}"' for k, v in sorted(series["metric"]["labels"].items()))
    assert wanted == f'metric.type = "{series["metric"]["type"]}" AND resource.type = "global" AND {labels}'
    assert create[2]["conditions"][0]["conditionThreshold"]["thresholdValue"] == 0.95


def test_azure_monitor_export_then_the_rule_on_the_same_series(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_airflow.hooks import cloud

    session = Recorder(_azure, (200, {}), _answered(RULE_BODY))
    monkeypatch.setattr(cloud, "clients_for", lambda profile: lambda service: session)
    cloud.export_metrics(
        AZURE, NAME, {"realized_roc_auc": 0.91}, {"Stage": "performance"}, spec=_spec("azure")
    )
    (post, put) = session.calls
    base = post[2]["data"]["baseData"]
    (criterion,) = put[2]["properties"]["criteria"]["allOf"]
    assert (criterion["metricNamespace"], criterion["metricName"]) == (base["namespace"], base["metric"])
    assert [(d["name"], d["values"]) for d in criterion["dimensions"]] == [
        (n, [v]) for n, v in zip(base["dimNames"], base["series"][0]["dimValues"], strict=True)
    ]
    assert put[2]["properties"]["scopes"] == [WORKSPACE] and post[1].endswith(f"{WORKSPACE}/metrics")


def test_no_alarm_without_a_floor_or_without_the_realized_metric(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_airflow.hooks import cloud

    session = Recorder(_google, {}, {})
    monkeypatch.setattr(cloud, "clients_for", lambda profile: lambda service: session)
    # a holdout metric of the same export: no alarm
    cloud.export_metrics(GCP, NAME, {"holdout_roc_auc": 0.97}, {"Stage": "evaluation"}, spec=_spec("gcp"))
    # no floor anywhere for the decay metric (max_drop only): no alarm either
    no_floor = example_spec(
        cloud="gcp",
        feedback={**FEEDBACK, "decay": {"metric": "accuracy"}},
        alerts={"metric_alarm": True},
    )
    assert cloud.realized_alarm(no_floor) is None
    cloud.export_metrics(GCP, NAME, {"realized_accuracy": 0.9}, {"Stage": "performance"}, spec=no_floor)
    assert [c[0] for c in session.calls] == ["POST", "POST"]  # the two timeSeries writes, nothing else
