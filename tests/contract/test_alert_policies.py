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
* Azure: the metric alert rule against the published model, azure-mgmt-monitor's
  ``MetricAlertResource`` generated from ``Microsoft.Insights`` metricAlerts 2018-03-01 (unknown
  or misspelt keys, types, required and read-only keys, the criteria discriminators), and its
  method, path and api-version against that client's generated request builder
  (:func:`tests.contract.azure_models.metric_alert_errors`, ``metric_alert_request``); the
  custom-metric POST that precedes it is checked by :mod:`tests.contract.azure_models` against
  the documented schema (no published model of that API exists).

And end to end through :func:`mlops_airflow.hooks.cloud.export_metrics`: the alarm's filter (labels,
dimensions) names exactly the series the exporter wrote in the same call.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

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
# A valid policy (the discovery document holds it), the canned answer of the tests below; what
# alert_policy_body must produce is derived in test_a_new_alert_policy_is_created instead.
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


def _written(metric: str, labels: dict[str, str]) -> list[dict[str, Any]]:
    """The time series ``gcp.write_metrics`` POSTs for this pipeline: what the policy must select."""
    sent: list[Any] = []

    class Monitoring:
        def request(self, method: str, url: str, json: Any = None, **_: Any) -> Any:
            assert not discovery.request_errors(method, url, json)
            sent.append(json)
            return Answer(200, {})

    gcp.write_metrics(GCP, lambda service: Monitoring(), NAME, {metric: 0.5}, labels)
    (body,) = sent
    return list(body["timeSeries"])


def test_a_new_alert_policy_is_created() -> None:
    body = _policy()
    # Expectations from elsewhere than the implementation: the monitoring.v3 discovery document
    # (the Recorder checks every request), the series the exporter writes, and the alert's
    # documented meaning (docs/alerts.md: the day's average below the floor, for a higher-is-better
    # metric, notifying the profile's channels).
    (series,) = _written("realized_roc_auc", {"Stage": "performance"})
    (condition,) = body["conditions"]
    threshold = condition["conditionThreshold"]
    # Cloud Monitoring's filter language: the policy selects exactly the written series
    assert set(threshold["filter"].split(" AND ")) == {
        f'metric.type = "{series["metric"]["type"]}"',
        f'resource.type = "{series["resource"]["type"]}"',
        *(f'metric.labels.{k} = "{v}"' for k, v in series["metric"]["labels"].items()),
    }
    assert (threshold["comparison"], threshold["thresholdValue"]) == ("COMPARISON_LT", 0.95)
    # one point per day, its mean: the "daily average" (alignment period of a day, in seconds)
    assert threshold["aggregations"] == [
        {"alignmentPeriod": f"{24 * 3600}s", "perSeriesAligner": "ALIGN_MEAN"}
    ]
    assert body["notificationChannels"] == [GCP.settings["alert_notification_channels"]]
    assert body["documentation"]["content"] == DESCRIPTION and body["enabled"] is True
    assert body["displayName"] == gcp.alert_policy_name(NAME, "realized_roc_auc")
    session = Recorder(_google, {}, {**body, "name": POLICY})
    created = gcp.upsert_alert_policy(GCP, lambda service: session, body)
    assert created["name"] == POLICY
    # looked up by its display name first (the API's documented filter on alertPolicies.list)
    lookup = ("GET", POLICIES, None, {"filter": f'display_name = "{body["displayName"]}"'})
    assert session.calls == [lookup, ("POST", POLICIES, body, None)]


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

RULE_URL = (
    "https://management.azure.com/subscriptions/sub-1/resourceGroups/rg-ml/providers/"
    "Microsoft.Insights/metricAlerts/mlops-breast_cancer-realized_roc_auc"
)
# A valid rule (azure-mgmt-monitor's MetricAlertResource holds it), the canned request and answer of the tests below; what
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
    errors = azure_models.metric_alert_errors(body)
    # what azure-mgmt-monitor's generated client sends for the same rule
    named = re.search(r"/subscriptions/([^/]+)/resourceGroups/([^/]+)/.*/([^/]+)$", urlsplit(url).path)
    if named is None:
        return [*errors, f"{url}: no subscription, resource group and rule name"]
    want = azure_models.metric_alert_request(*named.groups())
    got = (method, urlsplit(url).path, dict(params or {}))
    if got != want:
        errors.append(f"{got} is not the generated client's create-or-update request {want}")
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
    # published model of Microsoft.Insights/metricAlerts 2018-03-01 and the alert's meaning.
    assert not azure_models.metric_alert_errors(body)
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
    assert body["properties"]["actions"] == [] and not azure_models.metric_alert_errors(body)
    session = Recorder(_azure, _answered(body))
    session.api_root = "https://management.usgovcloudapi.net"  # type: ignore[attr-defined]
    azure.put_metric_alert(profile, lambda service: session, "mlops-breast_cancer-realized_rmse", body)
    assert session.calls[0][1].startswith("https://management.usgovcloudapi.net/subscriptions/sub-1/")


@pytest.mark.parametrize(
    ("change", "error"),
    [
        (lambda b: b["properties"].update(evaluationFrequncy="PT1H"), "did you mean 'evaluationFrequency'"),
        (
            lambda b: b["properties"]["criteria"].update({"odata.type": "Single"}),
            "is not a MetricAlertCriteria",
        ),
        (lambda b: b["properties"].pop("scopes"), "scopes: required by MetricAlertResource"),
        (lambda b: b["properties"].update(severity="2"), "severity: expected int"),
        (lambda b: b.update(id="/subscriptions/x"), "read-only"),
    ],
)
def test_the_published_model_refuses_a_broken_rule(change: Any, error: str) -> None:
    """The negative case: what the service would not take, the check must not take either."""
    body = json.loads(json.dumps(RULE_BODY))
    assert not azure_models.metric_alert_errors(body)
    change(body)
    problems = azure_models.metric_alert_errors(body)
    assert any(error in p for p in problems), problems


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
