"""Deployment targets behind one interface: deploy, smoke test, roll back.

``local`` (this package's default) is implemented in :mod:`mlops_core.deploy.local`; endpoint
targets (SageMaker, Vertex AI, Azure ML) plug in behind the same :class:`DeploymentTarget`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec


@dataclass
class Deployment:
    """What a deploy did: enough to smoke-test it and to undo it."""

    target: str
    model_name: str
    version: str
    previous_version: str | None
    endpoint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SmokeResult:
    passed: bool
    rows: int
    mismatches: int
    max_abs_diff: float
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SmokeTestFailed(Exception):
    """The deployed model disagrees with the offline predictions; traffic was rolled back."""

    def __init__(self, result: SmokeResult, deployment: Deployment):
        self.result, self.deployment = result, deployment
        prev = (
            f"v{deployment.previous_version}" if deployment.previous_version else "no champion (first deploy)"
        )
        super().__init__(
            f"smoke test of {deployment.model_name} v{deployment.version} failed: {result.detail}; rolled back to {prev}"
        )


class DeploymentTarget(Protocol):
    name: str

    def deploy(self, spec: PipelineSpec, version: str) -> Deployment: ...

    def smoke_test(
        self, spec: PipelineSpec, deployment: Deployment, holdout_uri: str, expected_uri: str
    ) -> SmokeResult: ...

    def rollback(self, spec: PipelineSpec, deployment: Deployment) -> None: ...


def get_target(name: str) -> DeploymentTarget:
    if name == "local":
        from mlops_core.deploy.local import LocalTarget

        return LocalTarget()
    raise ValueError(f"deployment target {name!r} is not available; this build supports: local")
