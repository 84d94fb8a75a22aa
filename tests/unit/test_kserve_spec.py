"""The ``kserve`` target's spec, names, storage URIs and V2 encoding: what is decided before any request."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from mlops_core.clouds.kubernetes.deploy import KServeTarget
from mlops_core.clouds.kubernetes.inference import kserve_storage_uri, v2_predictions, v2_request
from mlops_core.spec import SpecError
from mlops_core.spec.profiles import CloudProfile
from tests.helpers import example_spec

pytestmark = pytest.mark.unit


def kserve(**deployment: Any) -> Any:
    return example_spec(cloud="aws", deployment={"target": "kserve", **deployment})


def test_the_kserve_block_and_its_bounds() -> None:
    spec = kserve(
        strategy="canary",
        kserve={
            "cpu": "500m",
            "memory": "1Gi",
            "cpu_limit": "1",
            "memory_limit": "1.5Gi",
            "runtime": "kserve-mlserver",
        },
    )
    assert spec.deployment.target == "kserve"
    assert spec.deployment.kserve.memory_limit == "1.5Gi"
    assert kserve().deployment.kserve is None  # optional: the ServingRuntime's defaults


@pytest.mark.parametrize(
    ("deployment", "message"),
    [
        ({"kserve": {"cpu": "lots"}}, "deployment.kserve.cpu"),
        ({"kserve": {"memory": "1Gi; rm -rf /"}}, "deployment.kserve.memory"),
        ({"kserve": {"runtime": "Kserve_MLServer"}}, "deployment.kserve.runtime"),
        ({"kserve": {"gpu": 1}}, "gpu"),
        (
            {"autoscaling": {"max_instances": 4, "target_invocations_per_instance": 100}},
            "is SageMaker's; kserve scales on CPU",
        ),
    ],
)
def test_refused(deployment: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as err:
        kserve(**deployment)
    assert message in str(err.value)


def test_the_kserve_block_belongs_to_the_kserve_target() -> None:
    with pytest.raises(SpecError, match="target 'sagemaker' does not read it"):
        example_spec(cloud="aws", deployment={"target": "sagemaker", "kserve": {"cpu": "1"}})
    assert example_spec(
        cloud="aws", deployment={"target": "auto", "kserve": {"cpu": "1"}}
    )  # the profile may say kserve


def test_the_profile_may_name_kserve_as_its_deploy_target(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_core.spec import profiles as clouds
    from mlops_core.targets import get_target, resolve_target_name

    monkeypatch.setenv("MLOPS_AWS_DEPLOY_TARGET", "kserve")
    profile = clouds.resolve("aws")
    assert profile.deploy_target == "kserve"
    assert profile.settings["kubernetes_conn_id"] == "kubernetes_default"
    assert profile.settings["kserve_namespace"] == "mlops"
    spec = example_spec(cloud="aws")
    assert resolve_target_name(spec, profile) == "kserve"
    target = get_target("kserve", profile, lambda service: None)
    assert isinstance(target, KServeTarget) and target.namespace == "mlops"


def test_names_fit_knatives_dns_labels() -> None:
    assert KServeTarget.isvc_name(example_spec()) == "mlops-breast-cancer"
    long = example_spec(name="a" * 60)
    name = KServeTarget.isvc_name(long)
    assert (
        len(name) <= 45
        and name.startswith("mlops-aaaa")
        and name != KServeTarget.isvc_name(example_spec(name="a" * 59))
    )
    assert len(f"latest-{name}-predictor") <= 63


@pytest.mark.parametrize(
    ("uri", "account", "want"),
    [
        ("s3://lake/x/models/v2/model", None, "s3://lake/x/models/v2/model"),
        ("s3a://lake/x", None, "s3://lake/x"),
        ("gs://lake/x", None, "gs://lake/x"),
        ("gcs://lake/x", None, "gs://lake/x"),
        (
            "abfs://mlops-lake/lake/x/model",
            "acct1",
            "https://acct1.blob.core.windows.net/mlops-lake/lake/x/model",
        ),
        ("abfss://c@acct2.dfs.core.windows.net/lake/x", None, "https://acct2.blob.core.windows.net/c/lake/x"),
    ],
)
def test_storage_uris_as_the_storage_initializer_reads_them(uri: str, account: str | None, want: str) -> None:
    assert kserve_storage_uri(uri, account) == want


@pytest.mark.parametrize(
    ("uri", "message"),
    [("file:///tmp/lake/x", "needs the lake on s3://"), ("abfs://c/x", "names no storage account")],
)
def test_storage_uris_the_cluster_cannot_read(uri: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        kserve_storage_uri(uri)


def test_storage_uri_of_a_version_is_the_lakes_model_folder() -> None:
    profile = CloudProfile(
        "azure", "abfs://mlops-lake/lake", "abfs://mlops-lake/landing", None, "azureml", "kserve", "none",
        {"storage_account": "mlopsacct"},
    )  # fmt: skip
    target = KServeTarget(profile, lambda service: None)
    assert target.storage_uri(example_spec(), "3") == (
        "https://mlopsacct.blob.core.windows.net/mlops-lake/lake/breast_cancer/models/v3/model"
    )


def test_v2_request_encodes_each_column_as_a_typed_tensor() -> None:
    import numpy as np
    import pandas as pd

    frame = pd.DataFrame(
        {
            "radius": [1.5, np.nan],
            "count": [3, 4],
            "flag": [True, False],
            "kind": ["a", None],
            "day": pd.to_datetime(["2026-01-05", "2026-01-06"]),
            "maybe": pd.array([1, None], dtype="Int64"),
        }
    )
    assert v2_request(frame) == {
        "parameters": {"content_type": "pd"},
        "inputs": [
            {"name": "radius", "shape": [2, 1], "datatype": "FP64", "data": [1.5, None]},
            {"name": "count", "shape": [2, 1], "datatype": "INT64", "data": [3, 4]},
            {"name": "flag", "shape": [2, 1], "datatype": "BOOL", "data": [True, False]},
            {
                "name": "kind",
                "shape": [2, 1],
                "datatype": "BYTES",
                "data": ["a", None],
                "parameters": {"content_type": "str"},
            },
            {
                "name": "day",
                "shape": [2, 1],
                "datatype": "BYTES",
                "data": ["2026-01-05T00:00:00", "2026-01-06T00:00:00"],
                "parameters": {"content_type": "str"},
            },
            {"name": "maybe", "shape": [2, 1], "datatype": "FP64", "data": [1.0, None]},
        ],
    }


def test_v2_predictions_read_the_first_output_row_major() -> None:
    from mlops_core.deploy import DeploymentFailed

    answer = {
        "model_name": "m",
        "outputs": [{"name": "output-1", "shape": [2, 1], "datatype": "INT64", "data": [[1], [0]]}],
    }
    assert v2_predictions(answer, "here") == [1, 0]
    with pytest.raises(DeploymentFailed, match="did not answer a V2 InferenceResponse"):
        v2_predictions({"predictions": [1, 0]}, "here")  # MLflow's /invocations format, not V2


def test_the_kserve_module_imports_nothing_heavy() -> None:
    code = "import sys, mlops_core.clouds.kubernetes.deploy; print(' '.join(sys.modules))"
    mods = set(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert {"kubernetes", "pandas", "numpy", "requests", "mlflow", "airflow"} & mods == set()


def test_target_auto_with_invocations_per_instance_is_refused_at_deploy() -> None:
    spec = example_spec(
        cloud="aws",
        deployment={"autoscaling": {"max_instances": 4, "target_invocations_per_instance": 100}},
    )  # target auto: the spec cannot know the profile picks kserve
    profile = CloudProfile("aws", "s3://l/lake", "s3://l/landing", None, "sagemaker", "kserve", "none")
    with pytest.raises(ValueError, match="is SageMaker's; KServe scales on CPU"):
        KServeTarget(profile, lambda service: None).deploy(spec, "1")
