"""The validator of tests/contract/azure_models.py: it must refuse what Azure refuses.

Every contract and emulator test of Azure ML trusts this validator, so each rule it applies is
shown failing here on a body that differs from a valid one by exactly that mistake (and the valid
one is shown passing, so a rule that refused everything would fail too).
"""

from __future__ import annotations

import copy
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from mlops_core.clouds.azure.client import API_VERSION
from tests.contract import azure_models

pytestmark = pytest.mark.contract

ARM = "https://management.azure.com"
WSID = (
    "/subscriptions/sub-1/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws-ml"
)
DEPLOYMENT_URL = f"{ARM}{WSID}/onlineEndpoints/mlops-x/deployments/green-v1"
JOB_URL = f"{ARM}{WSID}/jobs/mlops-x-20260105-t1"
PARAMS = {"api-version": API_VERSION}

DEPLOYMENT: dict[str, Any] = {
    "location": "westeurope",
    "kind": "Managed",
    "sku": {"name": "Default", "capacity": 1},
    "properties": {
        "endpointComputeType": "Managed",
        "model": f"{WSID}/models/x/versions/1",
        "instanceType": "Standard_DS3_v2",
        "scaleSettings": {"scaleType": "Default"},
    },
}
JOB: dict[str, Any] = {
    "properties": {
        "jobType": "Command",
        "command": "python -m mlops_core.model.remote abfs://lake/x/jobs/j",
        "environmentId": f"{WSID}/environments/mlops-train/versions/3",
        "computeId": f"{WSID}/computes/cpu-cluster",
        "limits": {"jobLimitsType": "Command", "timeout": "PT1H"},
    }
}


def changed(body: dict[str, Any], path: str, value: Any = ..., *, delete: bool = False) -> dict[str, Any]:
    """A copy of ``body`` with the dotted ``path`` set to ``value`` (or deleted)."""
    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    node = out
    for key in parents:
        node = node[key]
    if delete:
        del node[last]
    else:
        node[last] = value
    return out


def deployment_errors(body: dict[str, Any]) -> list[str]:
    return azure_models.request_errors("PUT", DEPLOYMENT_URL, body, PARAMS)


def test_the_valid_bodies_pass() -> None:
    assert deployment_errors(DEPLOYMENT) == []
    assert azure_models.request_errors("PUT", JOB_URL, JOB, PARAMS) == []


def test_the_models_are_those_of_the_api_version_sent_and_the_sdk_package_stays_unimported() -> None:
    assert azure_models.version_dir(API_VERSION) == "v2023_10_01"
    assert {op.default_api_version for op in azure_models.operations()} == {API_VERSION}
    assert "azure.ai.ml" not in sys.modules  # its __init__ (marshmallow<4) never ran
    with pytest.raises(RuntimeError, match="no REST models of api-version 2024-04-01; it has .*v2023_10_01"):
        azure_models.rest_package("2024-04-01")


def test_a_misspelt_key_fails_and_names_its_path() -> None:
    errors = deployment_errors(changed(DEPLOYMENT, "properties.instanceTyp", "Standard_DS3_v2"))
    assert errors == ["$.properties.instanceTyp: unknown key (did you mean 'instanceType'?)"]


def test_a_wrong_type_fails() -> None:
    assert deployment_errors(changed(DEPLOYMENT, "sku.capacity", "1")) == [
        "$.sku.capacity: expected int, got str '1'"
    ]
    assert deployment_errors(changed(DEPLOYMENT, "sku.capacity", True)) == [
        "$.sku.capacity: expected int, got bool True"
    ]
    assert deployment_errors(changed(DEPLOYMENT, "tags", {"a": 1})) == ["$.tags.a: expected str, got int 1"]


def test_a_missing_required_key_fails() -> None:
    assert deployment_errors(changed(DEPLOYMENT, "location", delete=True)) == [
        "$.location: required by OnlineDeployment but missing"
    ]
    assert deployment_errors(changed(DEPLOYMENT, "sku.name", delete=True)) == [
        "$.sku.name: required by Sku but missing"
    ]
    job_errors = azure_models.request_errors(
        "PUT", JOB_URL, changed(JOB, "properties.command", delete=True), PARAMS
    )
    assert job_errors == ["$.properties.command: required by CommandJob but missing"]


def test_a_wrong_or_missing_discriminator_fails() -> None:
    assert deployment_errors(changed(DEPLOYMENT, "properties.endpointComputeType", "Manged")) == [
        "$.properties.endpointComputeType: 'Manged' is not a OnlineDeploymentProperties kind; "
        "the description knows Kubernetes, Managed"
    ]
    missing = azure_models.request_errors(
        "PUT", JOB_URL, changed(JOB, "properties.jobType", delete=True), PARAMS
    )
    assert missing == [
        "$.properties.jobType: discriminator of JobBaseProperties missing (one of AutoML, Command, Pipeline, Sweep)"
    ]


def test_the_discriminator_selects_the_subtype_whose_fields_apply() -> None:
    # instanceType is a field of ManagedOnlineDeployment; Kubernetes deployments have it too, but
    # containerResourceRequirements only they have: a managed deployment may not send it
    errors = deployment_errors(changed(DEPLOYMENT, "properties.containerResourceRequirements", {}))
    assert errors and errors[0].startswith("$.properties.containerResourceRequirements: unknown key")
    kubernetes = changed(DEPLOYMENT, "properties.endpointComputeType", "Kubernetes")
    assert deployment_errors(changed(kubernetes, "properties.containerResourceRequirements", {})) == []
    # a nested discriminator: scaleSettings.scaleType picks DefaultScaleSettings
    errors = deployment_errors(changed(DEPLOYMENT, "properties.scaleSettings.maxInstances", 3))
    assert errors == [
        "$.properties.scaleSettings.maxInstances: unknown key; DefaultScaleSettings has scaleType"
    ]


def test_read_only_keys_fail_in_a_request_and_pass_in_a_response() -> None:
    sent = changed(DEPLOYMENT, "properties.provisioningState", "Succeeded")
    assert deployment_errors(sent) == [
        "$.properties.provisioningState: read-only: the service sets it, a request must not send it"
    ]
    assert azure_models.response_errors("GET", DEPLOYMENT_URL, 200, sent) == []


def test_enums_are_the_generated_ones() -> None:
    assert deployment_errors(changed(DEPLOYMENT, "properties.egressPublicNetworkAccess", "enabled")) == [
        "$.properties.egressPublicNetworkAccess: 'enabled' is not one of Enabled, Disabled"
    ]
    answer = {"name": "j", "properties": {**JOB["properties"], "status": "Complete"}}
    errors = azure_models.response_errors("GET", JOB_URL, 200, answer)
    assert len(errors) == 1 and errors[0].startswith(
        "$.properties.status: 'Complete' is not one of NotStarted"
    )


def test_constraints_durations_nulls_and_flattened_keys() -> None:
    job = changed(JOB, "properties.command", "")
    assert azure_models.request_errors("PUT", JOB_URL, job, PARAMS) == [
        "$.properties.command: '' violates min_length 1",
        "$.properties.command: '' violates pattern '[a-zA-Z0-9_]'",
    ]
    job = changed(JOB, "properties.limits.timeout", "90 minutes")
    assert azure_models.request_errors("PUT", JOB_URL, job, PARAMS) == [
        "$.properties.limits.timeout: '90 minutes' is not an ISO 8601 duration"
    ]
    assert deployment_errors(changed(DEPLOYMENT, "kind", None)) == ["$.kind: null (omit the key instead)"]
    # Workspace flattens its properties ("properties.discoveryUrl"): nested keys are checked too
    workspace = {
        "name": "ws-ml",
        "location": "westeurope",
        "properties": {"discoveryUrl": "https://x", "dicoveryUrl": 1},
    }
    errors = azure_models.response_errors("GET", f"{ARM}{WSID}", 200, workspace)
    assert errors == ["$.properties.dicoveryUrl: unknown key (did you mean 'discoveryUrl'?)"]


def test_urls_query_and_statuses_follow_the_operations() -> None:
    bad_name = f"{ARM}{WSID}/onlineEndpoints/-x/deployments/green-v1"
    assert azure_models.request_errors("PUT", bad_name, DEPLOYMENT, PARAMS) == [
        "path parameter endpointName='-x' violates pattern '^[a-zA-Z0-9][a-zA-Z0-9\\\\-_]{0,254}$'"
    ]
    assert azure_models.request_errors("PUT", DEPLOYMENT_URL, DEPLOYMENT, {"api-version": "2024-04-01"}) == [
        f"api-version '2024-04-01', the description validated against is {API_VERSION}"
    ]
    assert azure_models.request_errors("PATCH", f"{ARM}{WSID}/jobs/j", {}, PARAMS) == [
        "no operation of api-version 2023-10-01 is PATCH on this path (methods: GET, PUT)"
    ]
    assert azure_models.response_errors("PUT", DEPLOYMENT_URL, 202, None) == [
        "status 202: build_create_or_update_request accepts [200, 201]"
    ]
    assert azure_models.response_errors("GET", DEPLOYMENT_URL, 404, None) == [
        "HTTP 404 without the ARM error body"
    ]
    error = {"error": {"code": "NotFound", "message": "m", "detail": "x"}}
    assert azure_models.response_errors("GET", DEPLOYMENT_URL, 404, error) == [
        "$.error.detail: unknown key (did you mean 'details'?)"
    ]


def metric(**changes: Any) -> dict[str, Any]:
    base = {
        "metric": "roc_auc",
        "namespace": "MLOps",
        "dimNames": ["pipeline", "ds"],
        "series": [{"dimValues": ["p", "2026-01-05"], "min": 1, "max": 1, "sum": 1, "count": 1}],
    }
    base.update(changes)
    return {"time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "data": {"baseData": base}}


def test_custom_metrics_follow_the_documented_schema() -> None:
    url = f"https://westeurope.monitoring.azure.com{WSID}/metrics"
    assert azure_models.request_errors("POST", url, metric()) == []
    assert azure_models.request_errors("POST", url, metric(units="ms"))[0].startswith(
        "$.data.baseData: Additional properties are not allowed ('units'"
    )
    short = metric(series=[{"dimValues": ["p"], "min": 1, "max": 1, "sum": 1, "count": 1}])
    assert azure_models.request_errors("POST", url, short) == [
        "$.data.baseData.series[0].dimValues: 1 values for 2 dimNames"
    ]
    many = metric(dimNames=[f"d{i}" for i in range(11)])
    assert any("is too long" in e for e in azure_models.request_errors("POST", url, many))
    old = metric()
    old["time"] = (datetime.now(UTC) - timedelta(minutes=30)).isoformat()
    assert azure_models.request_errors("POST", url, old)[0].endswith(
        "outside the accepted window (20 min past, 5 min future)"
    )


def test_scoring_follows_the_documented_mlflow_input_format() -> None:
    url = "https://mlops-x.westeurope.inference.ml.azure.com/score"
    good = {"input_data": {"columns": ["a"], "data": [[1.0]]}}
    assert azure_models.request_errors("POST", url, good) == []
    assert azure_models.request_errors("POST", url, {"inputs": {"a": [1.0]}})[0].startswith(
        "$: 'input_data' is a required property"
    )
    assert azure_models.response_errors("POST", url, 200, [0, 1]) == []
    assert azure_models.response_errors("POST", url, 200, {"predictions": [0, 1]}) != []


def test_the_token_request_is_a_client_credentials_grant() -> None:
    url = "https://login.microsoftonline.com/tenant-1/oauth2/v2.0/token"
    form = "client_id=c&client_secret=s&grant_type=client_credentials&scope=https%3A%2F%2Fmanagement.azure.com%2F.default"
    assert azure_models.request_errors("POST", url, form) == []
    assert azure_models.request_errors("POST", url, form.replace("%2F.default", "%2Fuser_impersonation")) == [
        "scope 'https://management.azure.com/user_impersonation': client credentials take '<resource>/.default' scopes"
    ]
