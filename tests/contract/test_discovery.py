"""The discovery-document validator can fail: each kind of mistake it exists to catch is caught.

The Vertex AI contract tests and the loopback Vertex AI API trust :mod:`tests.contract.discovery`
to refuse what Google's API would refuse; a validator that passes everything would make them
prove nothing. Each test here sends one deliberate mistake (and the valid request beside it
passes, so the failure is the mistake's and nothing else's).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.contract import discovery

pytestmark = pytest.mark.contract

ROOT = "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4"
EP = f"{ROOT}/endpoints/555"

DEPLOY = {
    "deployedModel": {
        "model": "projects/p/locations/europe-west4/models/9",
        "dedicatedResources": {"machineSpec": {"machineType": "n1-standard-2"}, "minReplicaCount": 1},
    },
    "trafficSplit": {"0": 100},
}
JOB = {
    "displayName": "train",
    "jobSpec": {
        "workerPoolSpecs": [
            {
                "machineSpec": {"machineType": "n1-standard-4"},
                "replicaCount": "1",
                "containerSpec": {"imageUri": "img", "env": [{"name": "A", "value": "1"}]},
            }
        ],
        "scheduling": {"timeout": "7200s"},
    },
}


def errors(method: str, url: str, body: Any = None, params: dict[str, Any] | None = None) -> list[str]:
    return discovery.request_errors(method, url, body, params)


def changed(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``body`` with the dotted ``path`` set to ``value`` (or removed, for ``...``)."""
    import copy

    out = copy.deepcopy(body)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return out


def test_the_valid_requests_pass() -> None:
    assert errors("POST", f"{EP}:deployModel", DEPLOY) == []
    assert errors("POST", f"{ROOT}/customJobs", JOB) == []
    assert errors("GET", f"{ROOT}/models", params={"filter": 'display_name="x"', "pageToken": "t"}) == []
    assert errors("PATCH", EP, {"trafficSplit": {"1": 100}}, {"updateMask": "traffic_split"}) == []


def test_a_wrong_field_name_fails_and_names_the_path() -> None:
    bad = changed(DEPLOY, "deployedModel.dedicatedResources.minReplicas", 1)
    assert errors("POST", f"{EP}:deployModel", bad) == [
        "aiplatform.projects.locations.endpoints.deployModel request body "
        "$.deployedModel.dedicatedResources.minReplicas: unknown field of "
        "GoogleCloudAiplatformV1DedicatedResources (did you mean 'minReplicaCount'?)"
    ]


def test_a_snake_case_field_name_is_unknown() -> None:
    bad = {"displayName": "e", "traffic_split": {}}
    (problem,) = errors("POST", f"{ROOT}/endpoints", bad)
    assert "$.traffic_split: unknown field" in problem and "did you mean 'trafficSplit'" in problem


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("deployedModel.dedicatedResources.minReplicaCount", "1", "expected an integer (int32), got str"),
        ("trafficSplit", {"0": "100"}, "$.trafficSplit['0']: expected an integer"),
        ("deployedModel.model", ["m"], "$.deployedModel.model: expected a string"),
        ("deployedModel.disableExplanations", "yes", "expected a boolean"),
        ("deployedModel.dedicatedResources", [], "expected an object"),
    ],
)
def test_a_wrong_type_fails(path: str, value: Any, message: str) -> None:
    (problem,) = errors("POST", f"{EP}:deployModel", changed(DEPLOY, path, value))
    assert message in problem


def test_int64_is_a_json_string() -> None:
    (problem,) = errors(
        "POST", f"{ROOT}/customJobs", changed(JOB, "jobSpec.workerPoolSpecs.0.replicaCount", 1)
    )
    assert "$.jobSpec.workerPoolSpecs[0].replicaCount: int64 is a JSON string" in problem
    (problem,) = errors(
        "POST", f"{ROOT}/customJobs", changed(JOB, "jobSpec.workerPoolSpecs.0.replicaCount", "one")
    )
    assert "expected a decimal int64 string" in problem


def test_durations_timestamps_and_enums_are_checked() -> None:
    (problem,) = errors("POST", f"{ROOT}/customJobs", changed(JOB, "jobSpec.scheduling.timeout", "2h"))
    assert "$.jobSpec.scheduling.timeout: expected a duration" in problem
    series = {
        "metric": {"type": "custom.googleapis.com/x"},
        "resource": {"type": "global", "labels": {"project_id": "p"}},
        "metricKind": "GUAGE",
        "points": [{"interval": {"endTime": "2026-01-05 12:00"}, "value": {"doubleValue": 1.0}}],
    }
    found = errors(
        "POST", "https://monitoring.googleapis.com/v3/projects/p/timeSeries", {"timeSeries": [series]}
    )
    assert any("$.timeSeries[0].metricKind: 'GUAGE' is not one of" in p for p in found)
    assert any("$.timeSeries[0].points[0].interval.endTime: expected an RFC 3339" in p for p in found)
    assert len(found) == 2


def test_a_missing_required_field_fails() -> None:
    (problem,) = errors(
        "POST", f"{EP}:deployModel", changed(DEPLOY, "deployedModel.dedicatedResources.machineSpec", ...)
    )
    assert problem.endswith(
        "$.deployedModel.dedicatedResources.machineSpec: required field of "
        "GoogleCloudAiplatformV1DedicatedResources is missing"
    )
    (problem,) = errors(
        "POST", f"{ROOT}/customJobs", changed(JOB, "jobSpec.workerPoolSpecs.0.containerSpec.env.0.value", ...)
    )
    assert "containerSpec.env[0].value: required field of GoogleCloudAiplatformV1EnvVar" in problem
    assert errors("POST", f"{ROOT}/endpoints", {"labels": {}}) == [
        "aiplatform.projects.locations.endpoints.create request body $.displayName: "
        "required field of GoogleCloudAiplatformV1Endpoint is missing"
    ]


def test_an_output_only_field_in_a_request_fails() -> None:
    (problem,) = errors("POST", f"{ROOT}/customJobs", {**JOB, "state": "JOB_STATE_RUNNING"})
    assert "$.state: is output only in GoogleCloudAiplatformV1CustomJob" in problem


def test_an_unknown_or_mistyped_query_parameter_fails() -> None:
    (problem,) = errors("GET", f"{ROOT}/models", params={"display_name": "x"})
    assert problem.startswith(
        "aiplatform.projects.locations.models.list ?display_name: unknown query parameter"
    )
    assert "filter" in problem  # names what the method does take
    (problem,) = errors("GET", f"{ROOT}/models", params={"pageSize": "ten"})
    assert "?pageSize: expected an integer" in problem
    assert errors("GET", f"{ROOT}/models?alt=json&prettyPrint=false") == []  # the standard ones


def test_patch_checks_the_update_mask_against_the_body() -> None:
    url = EP
    misspelt = errors("PATCH", url, {"trafficSplit": {"1": 100}}, {"updateMask": "trafficSplt"})
    assert misspelt == [
        "aiplatform.projects.locations.endpoints.patch ?updateMask: 'trafficSplt' names no field of "
        "GoogleCloudAiplatformV1Endpoint ('trafficSplt' is unknown)",
        "aiplatform.projects.locations.endpoints.patch request body $.trafficSplit: not in updateMask "
        "'trafficSplt'; the API ignores it",
    ]
    (problem,) = errors(
        "PATCH", url, {"trafficSplit": {}, "labels": {"a": "b"}}, {"updateMask": "traffic_split"}
    )
    assert "$.labels: not in updateMask 'traffic_split'; the API ignores it" in problem
    # a partial resource: Endpoint.displayName is Required. but not masked, so not needed ...
    assert errors("PATCH", url, {"trafficSplit": {}}, {"updateMask": "trafficSplit"}) == []
    # ... unless the mask names it
    (problem,) = errors("PATCH", url, {}, {"updateMask": "display_name"})
    assert "$.displayName: required and in updateMask, but missing" in problem
    # no mask: a full replace, Required. applies
    (problem,) = errors("PATCH", url, {"trafficSplit": {}})
    assert "$.displayName: required field" in problem


def test_bodies_where_none_belongs_and_none_where_one_does() -> None:
    (problem,) = errors("GET", EP, {"name": "x"})
    assert "takes no request body" in problem
    (problem,) = errors("POST", f"{EP}:undeployModel", None)
    assert "needs a request body (GoogleCloudAiplatformV1UndeployModelRequest)" in problem


def test_a_path_no_method_answers_fails() -> None:
    assert errors("POST", f"{EP}:deploy", {}) == [
        f"no method of aiplatform.v1, monitoring.v3, bigquery.v2 answers POST {EP.split('.com', 1)[1]}:deploy"
    ]
    (problem,) = errors("PUT", EP, {})
    assert "no method" in problem


def test_answers_are_checked_too() -> None:
    op = f"{EP}/operations/7"
    done = {
        "name": "projects/1/locations/europe-west4/endpoints/555/operations/7",
        "done": True,
        "response": {
            "@type": "type.googleapis.com/google.cloud.aiplatform.v1.DeployModelResponse",
            "deployedModel": {"id": "222", "model": "projects/1/locations/europe-west4/models/9"},
        },
    }
    assert discovery.response_errors("GET", op, 200, done) == []
    untyped = {**done, "response": {"deployedModel": {"id": "222"}}}
    (problem,) = discovery.response_errors("GET", op, 200, untyped)
    assert "$.response: a google.protobuf.Any needs '@type'" in problem
    wrong = changed(done, "response.deployedModel.ident", "222")
    (problem,) = discovery.response_errors("GET", op, 200, wrong)
    assert "$.response.deployedModel.ident: unknown field of GoogleCloudAiplatformV1DeployedModel" in problem
    # Required. is for requests: an answer may leave fields out; Output only. belongs in answers
    assert (
        discovery.response_errors("GET", EP, 200, {"name": "e", "createTime": "2026-01-05T12:00:00Z"}) == []
    )
    assert (
        discovery.response_errors(
            "GET", EP, 403, {"error": {"code": 403, "message": "no", "status": "PERMISSION_DENIED"}}
        )
        == []
    )
    (problem,) = discovery.response_errors("GET", EP, 403, {"error": {"code": "Forbidden", "message": "no"}})
    assert "$.error.code: expected the HTTP status as an integer" in problem
