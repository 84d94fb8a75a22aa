"""``deployment.autoscaling``: the bounds and the combinations each platform refuses, at parse."""

from __future__ import annotations

from typing import Any

import pytest

from mlops_core.spec import SpecError
from tests.helpers import example_spec

pytestmark = pytest.mark.unit


def scaled(target: str = "sagemaker", **autoscaling: Any) -> Any:
    cloud = {"sagemaker": "aws", "vertex": "gcp", "azureml": "azure", "local": "local"}[target]
    return example_spec(
        cloud=cloud, deployment={"target": target, "autoscaling": {"max_instances": 4, **autoscaling}}
    )


def test_a_valid_range_starts_at_min_instances() -> None:
    spec = scaled(min_instances=2, target_invocations_per_instance=300)
    assert spec.deployment.initial_instances == 2
    assert example_spec().deployment.initial_instances == 1


@pytest.mark.parametrize(
    ("target", "autoscaling", "message"),
    [
        ("sagemaker", {"min_instances": 5}, "min_instances (5) is above max_instances (4)"),
        (
            "sagemaker",
            {"target_cpu_percent": 50, "target_invocations_per_instance": 10},
            "scale on one target",
        ),
        ("sagemaker", {"max_instances": 101}, "max_instances"),
        ("sagemaker", {"target_cpu_percent": 0}, "target_cpu_percent"),
        ("local", {}, "needs an endpoint target"),
        ("azureml", {"target_invocations_per_instance": 10}, "is SageMaker's; azureml scales on CPU"),
    ],
)
def test_refused(target: str, autoscaling: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError) as err:
        scaled(target, **autoscaling)
    assert message in str(err.value)


def test_instance_count_and_autoscaling_do_not_mix() -> None:
    with pytest.raises(SpecError, match="set autoscaling.min_instances instead"):
        example_spec(
            cloud="aws",
            deployment={"target": "sagemaker", "instance_count": 3, "autoscaling": {"max_instances": 4}},
        )
