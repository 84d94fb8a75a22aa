"""Which deployment target a pipeline uses, and the target object for it.

Above every cloud package (:mod:`mlops_core.clouds`) and the target interface
(:mod:`mlops_core.deploy`): the one place that knows all targets by name, so the interface and the
clouds never import each other's siblings. Targets are imported when asked for (a cloud's SDK is
never loaded for a pipeline that does not deploy there).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlops_core.deploy import DeploymentTarget
    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory, CloudProfile


def resolve_target_name(spec: PipelineSpec, profile: CloudProfile | None) -> str:
    if spec.deployment.target != "auto":
        return spec.deployment.target
    return profile.deploy_target if profile is not None else "local"


def get_target(
    name: str, profile: CloudProfile | None = None, clients: ClientFactory | None = None
) -> DeploymentTarget:
    """The target called ``name``; endpoint targets need the resolved profile and its clients."""
    if name == "local":
        from mlops_core.deploy.local import LocalTarget

        return LocalTarget()
    if profile is None or clients is None:
        raise ValueError(f"deployment target {name!r} needs a cloud profile and its clients")
    if name == "sagemaker":
        from mlops_core.clouds.aws.deploy import SageMakerTarget

        return SageMakerTarget(profile, clients)
    if name == "vertex":
        from mlops_core.clouds.gcp.deploy import VertexTarget

        return VertexTarget(profile, clients)
    if name == "azureml":
        from mlops_core.clouds.azure.deploy import AzureMLTarget

        return AzureMLTarget(profile, clients)
    if name == "kserve":
        from mlops_core.clouds.kubernetes.deploy import KServeTarget

        return KServeTarget(profile, clients)
    raise ValueError(f"deployment target {name!r} is not one of: local, sagemaker, vertex, azureml, kserve")
