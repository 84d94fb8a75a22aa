"""The local target: the MLflow alias ``champion`` *is* the deployment.

Batch scoring reads ``models:/<name>@champion``; an online endpoint is
``mlflow models serve -m models:/<name>@champion``. The smoke test loads exactly that URI through
pyfunc (what a server would load) and compares its predictions with the offline ones.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mlops_core.deploy import READY, Deployment, SmokeResult, compare, smoke_frames
from mlops_core.runs import registry, run_artifacts

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)


class LocalTarget:
    name = "local"

    def deploy(self, spec: PipelineSpec, version: str) -> Deployment:
        previous = registry.promote(spec.registered_model_name, version)
        log.info("champion of %s -> v%s (previous: %s)", spec.name, version, previous)
        return Deployment(
            "local",
            spec.registered_model_name,
            version,
            previous,
            f"models:/{spec.registered_model_name}@champion",
        )

    def smoke_test(
        self, spec: PipelineSpec, deployment: Deployment, holdout_uri: str, expected_uri: str
    ) -> SmokeResult:
        import numpy as np

        from mlops_core.runs import tracking

        tracking.configure()
        features, want = smoke_frames(spec, holdout_uri, expected_uri)
        # what the alias serves, loaded only after its files matched the registered digest
        served = run_artifacts.load_verified(
            deployment.model_name, deployment.version, allow_pickle=spec.model.allow_pickle
        )
        got = np.asarray(served.predict(features))
        served_version = registry.alias_version(deployment.model_name, registry.CHAMPION)
        if served_version != deployment.version:
            return SmokeResult(
                False,
                len(features),
                len(features),
                float("nan"),
                f"alias champion points at v{served_version}, not v{deployment.version}",
            )
        return compare(spec, got, want, len(features))

    def status(self, deployment: Deployment) -> str:
        return READY  # moving an alias is instant

    def promote(self, spec: PipelineSpec, deployment: Deployment) -> Deployment:
        return deployment  # the alias moved at deploy: there is no traffic to shift

    def rollback(self, spec: PipelineSpec, deployment: Deployment) -> None:
        registry.restore(deployment.model_name, deployment.version, deployment.previous_version)
        log.warning("rolled %s back to %s", spec.name, deployment.previous_version or "no champion")
