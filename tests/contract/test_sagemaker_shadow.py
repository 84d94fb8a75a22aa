"""SageMaker ``deployment.shadow``: a shadow-mode inference experiment, its captured traffic, its verdict.

moto has no inference experiments, so, as in tests/contract/test_sagemaker.py (whose Stubber
clients, registry and target these tests reuse), ``botocore.stub.Stubber`` holds every request to
the service model and to the exact parameters expected: ``CreateInferenceExperiment`` (the
champion's variant keeps the traffic, the shadow variant gets a copy of all of it, both captured to
the lake), ``StopInferenceExperiment`` with the verdict (``Promote`` / ``Remove``), and the smoke
test through ``InvokeEndpoint`` before ``champion`` moves. The captured JSON lines are read from a
``file://`` lake (the same fsspec calls read ``s3://``; the S3 side of the lake is tested on moto in
tests/emulators/test_moto_aws.py).
"""

from __future__ import annotations

import io
import json
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import pytest
from botocore.response import StreamingBody

from mlops_core import shadow
from mlops_core.deploy import READY, UPDATING
from mlops_core.monitor import shadow as compare_shadow
from mlops_core.runs import registry
from tests.contract.shadow_verdict import DAY, aliases, force_verdict, holdout, in_shadow
from tests.contract.test_sagemaker import (  # noqa: F401 (fixtures)
    ACCOUNT,
    ENDPOINT,
    IMAGE,
    LAKE,
    NAME,
    NOW,
    REGION,
    ROLE,
    StubbedClients,
    Target,
    aws,
    aws_profile,
    endpoint,
    names,
    versions,
)
from tests.helpers import example_spec

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.contract

EXPERIMENT = "mlops-breast-cancer-shadow-v2"
EXPERIMENT_ARN = f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:inference-experiment/{EXPERIMENT}"


class ShadowTarget(Target):
    def now(self) -> Any:
        return NOW


def spec_for(**shadow_cfg: Any) -> Any:
    return example_spec(
        NAME, cloud="aws", deployment={"target": "sagemaker", "strategy": "canary", "shadow": shadow_cfg}
    )


def variant(model: str, name: str) -> dict[str, Any]:
    return {
        "ModelName": model,
        "VariantName": name,
        "InfrastructureConfig": {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        },
    }


def experiment(status: str) -> dict[str, Any]:
    """A valid DescribeInferenceExperiment response."""
    return {
        "Arn": EXPERIMENT_ARN,
        "Name": EXPERIMENT,
        "Type": "ShadowMode",
        "Status": status,
        "EndpointMetadata": {"EndpointName": ENDPOINT},
        "ModelVariants": [
            {**variant("mlops-breast-cancer-v1", "AllTraffic"), "Status": "InService"},
            {**variant("mlops-breast-cancer-v2", "Shadow"), "Status": "InService"},
        ],
    }


def test_deploy_starts_a_shadow_mode_experiment_and_the_endpoint_keeps_the_champion(
    aws: StubbedClients, versions: list[str]
) -> None:
    in_shadow(NAME, "1", "1")  # (the shadow alias is the deploy's to set: cleared below)
    registry.client().delete_registered_model_alias(NAME, registry.SHADOW)
    model = "mlops-breast-cancer-v2"
    aws.sm(
        "create_model",
        {"ModelArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:model/{model}"},
        {
            "ModelName": model,
            "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {
                "Image": IMAGE,
                "ModelDataUrl": f"{LAKE}/{NAME}/models/v2/model.tar.gz",
                "Environment": {
                    "MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function",
                    "SERVING_ENVIRONMENT": "SageMaker",
                },
            },
            "Tags": [{"Key": "mlops:pipeline", "Value": NAME}, {"Key": "mlops:model-version", "Value": "2"}],
        },
    )
    aws.sm(
        "create_inference_experiment",
        {"InferenceExperimentArn": EXPERIMENT_ARN},
        {
            "Name": EXPERIMENT,
            "Type": "ShadowMode",
            "Schedule": {"EndTime": NOW + timedelta(days=9)},  # shadow.days 7 + 2
            "Description": f"{NAME} v2 in shadow beside champion v1",
            "RoleArn": ROLE,
            "EndpointName": ENDPOINT,
            "ModelVariants": [variant("mlops-breast-cancer-v1", "AllTraffic"), variant(model, "Shadow")],
            "DataStorageConfig": {
                "Destination": f"{LAKE}/{NAME}/capture",
                "ContentType": {"JsonContentTypes": ["application/json"]},
            },
            "ShadowModeConfig": {
                "SourceModelVariantName": "AllTraffic",
                "ShadowModelVariants": [{"ShadowModelVariantName": "Shadow", "SamplingPercentage": 100}],
            },
            "Tags": [{"Key": "mlops:pipeline", "Value": NAME}],
        },
    )
    target = ShadowTarget(aws_profile(), aws)
    dep = target.deploy_shadow(spec_for(), "2", "1")

    assert aws.calls == ["sagemaker.CreateModel", "sagemaker.CreateInferenceExperiment"]
    assert (dep.state, dep.endpoint, dep.extra["experiment"], dep.extra["shadow"]) == (
        UPDATING, ENDPOINT, EXPERIMENT, True,
    )  # fmt: skip
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": "2"}
    aws.sm("describe_inference_experiment", experiment("Starting"), {"Name": EXPERIMENT})
    aws.sm("describe_inference_experiment", experiment("Running"), {"Name": EXPERIMENT})
    assert [target.status(dep), target.status(dep)] == [UPDATING, READY]


def _rows_answered(
    path: Path, variant_name: str, requests: list[tuple[list[list[float]], list[str]]]
) -> None:
    """Capture files as SageMaker writes them: one JSON line per request, under the variant and hour."""
    lines = []
    for i, (rows, answer) in enumerate(requests):
        body = {"dataframe_split": {"columns": ["mean_radius", "mean_texture"], "data": rows}}
        lines.append(json.dumps({
            "captureData": {
                "endpointInput": {"observedContentType": "application/json", "mode": "INPUT",
                                  "data": json.dumps(body), "encoding": "JSON"},
                "endpointOutput": {"observedContentType": "application/json", "mode": "OUTPUT",
                                   "data": json.dumps({"predictions": answer}), "encoding": "JSON"},
            },
            "eventMetadata": {"eventId": f"{variant_name}-{i}", "inferenceTime": f"{DAY}T10:00:0{i}Z"},
            "eventVersion": "0",
        }))  # fmt: skip
    folder = path / NAME / "capture" / ENDPOINT / variant_name / "2026" / "01" / "05" / "10"
    folder.mkdir(parents=True)
    (folder / "capture-1.jsonl").write_text("\n".join(lines) + "\n")


def test_the_verdict_reads_both_variants_captured_answers_paired_request_by_request(
    aws: StubbedClients, versions: list[str], tmp_path: Path
) -> None:
    lake = tmp_path.as_uri()
    first, second = [[10.0, 12.0], [20.0, 25.0]], [[21.0, 26.0]]
    _rows_answered(tmp_path, "AllTraffic", [(first, ["benign", "malignant"]), (second, ["malignant"])])
    # the shadow missed no request but disagrees on one row; the copy of `second` came first
    _rows_answered(tmp_path, "Shadow", [(second, ["malignant"]), (first, ["benign", "benign"])])
    target = ShadowTarget(aws_profile(lake=lake), aws)
    pairs = target.shadow_traffic(spec_for(), DAY)
    assert [(len(rows), served, mirrored) for rows, served, mirrored in pairs] == [
        (2, ["benign", "malignant"], ["benign", "benign"]), (1, ["malignant"], ["malignant"]),
    ]  # fmt: skip
    shadow.write_traffic(spec_for(), lake, DAY, pairs, ("1", "2"))

    paired = compare_shadow.collect(spec_for(), lake, "2", "1", DAY, traffic=True)
    assert paired.days == [DAY] and paired.rows == 3
    got = compare_shadow.compare(spec_for(), paired, None)
    assert got.disagreement == pytest.approx(1 / 3)
    assert got.score_shift is None  # MLflow's scoring server answers labels only: no scores to compare
    assert aws.calls == []  # reading the capture is the lake's business


def _invoke(aws: StubbedClients, answer: list[str]) -> None:
    raw = json.dumps({"predictions": answer}).encode()
    aws.stubs["sagemaker-runtime"].add_response(
        "invoke_endpoint",
        {"Body": StreamingBody(io.BytesIO(raw), len(raw)), "ContentType": "application/json"},
        {
            "EndpointName": ENDPOINT,
            "ContentType": "application/json",
            "Accept": "application/json",
            "Body": json.dumps({"dataframe_split": {"columns": ["mean_radius", "mean_texture"],
                                                    "data": [[10.5, 12.5], [20.5, 25.0]]}}),
        },
    )  # fmt: skip


def test_a_promoting_verdict_promotes_the_shadow_variant_and_moves_champion_once(
    aws: StubbedClients, versions: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path.as_uri()
    moves = force_verdict(monkeypatch, shadow.PROMOTE)
    hold = holdout(lake, NAME, {"mean_radius": [10.5, 20.5], "mean_texture": [12.5, 25.0]}, "diagnosis",
                   ["benign", "malignant"])  # fmt: skip
    in_shadow(NAME, "1", "2", hold)
    aws.sm("describe_inference_experiment", experiment("Running"), {"Name": EXPERIMENT})
    aws.sm(
        "stop_inference_experiment",
        {"InferenceExperimentArn": EXPERIMENT_ARN},
        {
            "Name": EXPERIMENT,
            "ModelVariantActions": {"AllTraffic": "Remove", "Shadow": "Promote"},
            "DesiredModelVariants": [variant("mlops-breast-cancer-v2", "Shadow")],
            "DesiredState": "Completed",
            "Reason": "mlops shadow verdict: v2 promoted over v1",
        },
    )
    target = ShadowTarget(aws_profile(lake=lake), aws)
    result = shadow.judge(spec_for(), lake, DAY, target=target)

    assert result["status"] == shadow.PROMOTE and result["judged_on"] == "mirrored traffic"
    moving = result["deployment"]
    assert moving["state"] == UPDATING and moving["extra"]["promoting"]
    assert moves == [] and aliases(NAME)["champion"] == "1"  # nothing moves before the endpoint is ready

    # the trigger's polls: the experiment completes, the endpoint updates to the promoted variant
    aws.sm("describe_inference_experiment", experiment("Stopping"), {"Name": EXPERIMENT})
    aws.sm("describe_inference_experiment", experiment("Completed"), {"Name": EXPERIMENT})
    aws.sm("describe_endpoint", endpoint("InService", "generated-config"), {"EndpointName": ENDPOINT})
    from mlops_core.deploy import Deployment

    assert [target.status(Deployment(**moving)), target.status(Deployment(**moving))] == [UPDATING, READY]

    _invoke(aws, ["benign", "malignant"])
    aws.sm("describe_endpoint", endpoint("InService", "generated-config"), {"EndpointName": ENDPOINT})
    aws.sm(
        "describe_endpoint_config",
        {
            "EndpointConfigName": "generated-config",
            "EndpointConfigArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint-config/generated-config",
            "ProductionVariants": [{"VariantName": "Shadow", "ModelName": "mlops-breast-cancer-v2",
                                    "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}],
            "CreationTime": NOW,
        },
        {"EndpointConfigName": "generated-config"},
    )  # fmt: skip
    done = shadow.complete_promotion(spec_for(), moving, target, lake)

    assert done["state"] == READY
    assert moves == [(NAME, "2")]  # champion moved once, after the smoke test
    assert aliases(NAME) == {"champion": "2", "previous_champion": "1", "shadow": None}
    assert registry.client().get_model_version(NAME, "2").tags["mlops.shadow"] == "promoted"
    assert aws.calls[-3:] == [
        "sagemaker-runtime.InvokeEndpoint", "sagemaker.DescribeEndpoint", "sagemaker.DescribeEndpointConfig",
    ]  # fmt: skip


def test_a_rejecting_verdict_removes_the_shadow_variant_and_leaves_the_champion(
    aws: StubbedClients, versions: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path.as_uri()
    moves = force_verdict(monkeypatch, shadow.REJECT)
    in_shadow(NAME, "1", "2")
    aws.sm("describe_inference_experiment", experiment("Running"), {"Name": EXPERIMENT})
    aws.sm(
        "stop_inference_experiment",
        {"InferenceExperimentArn": EXPERIMENT_ARN},
        {
            "Name": EXPERIMENT,
            "ModelVariantActions": {"AllTraffic": "Retain", "Shadow": "Remove"},
            "DesiredState": "Cancelled",
            "Reason": "mlops shadow verdict: v2 rejected",
        },
    )
    result = shadow.judge(spec_for(), lake, DAY, target=ShadowTarget(aws_profile(lake=lake), aws))

    assert result["status"] == shadow.REJECT and "deployment" not in result
    assert moves == []
    assert aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": None}
    assert aws.calls == ["sagemaker.DescribeInferenceExperiment", "sagemaker.StopInferenceExperiment"]
    assert registry.client().get_model_version(NAME, "2").tags["mlops.shadow"] == "rejected"


def test_a_failed_smoke_test_of_the_promoted_shadow_rolls_the_endpoint_back(
    aws: StubbedClients, versions: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path.as_uri()
    moves = force_verdict(monkeypatch, shadow.PROMOTE)
    hold = holdout(lake, NAME, {"mean_radius": [10.5, 20.5], "mean_texture": [12.5, 25.0]}, "diagnosis",
                   ["benign", "malignant"])  # fmt: skip
    in_shadow(NAME, "1", "2", hold)
    target = ShadowTarget(aws_profile(lake=lake), aws)
    from mlops_core.deploy import Deployment

    _, champion_config, _ = names("1")
    dep = Deployment("sagemaker", NAME, "2", "1", ENDPOINT, "canary", READY,
                     {"experiment": EXPERIMENT, "promoting": True, "model_name": "mlops-breast-cancer-v2",
                      "previous_endpoint_config": champion_config})  # fmt: skip
    _invoke(aws, ["malignant", "malignant"])  # the endpoint disagrees with the model on row 1
    aws.sm("describe_endpoint", endpoint("InService", "generated-config"), {"EndpointName": ENDPOINT})
    aws.sm("update_endpoint", {"EndpointArn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:endpoint/{ENDPOINT}"}, {
        "EndpointName": ENDPOINT, "EndpointConfigName": champion_config, "RetainDeploymentConfig": False,
        "DeploymentConfig": {"BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
            "TerminationWaitInSeconds": 0, "MaximumExecutionTimeoutInSeconds": 1800}},
    })  # fmt: skip
    with pytest.raises(shadow.PromotionFailed, match="rolled back to champion v1"):
        shadow.complete_promotion(spec_for(), dep.to_dict(), target, lake)
    assert moves == [] and aliases(NAME) == {"champion": "1", "previous_champion": None, "shadow": None}
