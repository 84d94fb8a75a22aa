"""The local target: the MLflow alias ``champion`` *is* the deployment.

Batch scoring reads ``models:/<name>@champion``; an online endpoint is
``mlflow models serve -m models:/<name>@champion``. The smoke test loads exactly that URI through
pyfunc (what a server would load) and compares its predictions with the offline ones.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mlops_core import registry
from mlops_core.deploy import Deployment, SmokeResult

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
        import mlflow
        import numpy as np

        from mlops_core import storage, tracking

        tracking.configure()
        hold = storage.read_frame(holdout_uri).head(spec.deployment.smoke_rows)
        expected = storage.read_frame(expected_uri, name="predictions").head(len(hold))
        served = mlflow.pyfunc.load_model(deployment.endpoint)
        got = np.asarray(served.predict(hold.drop(columns=[spec.target])))
        want = expected["prediction"].to_numpy()
        served_version = registry.alias_version(deployment.model_name, registry.CHAMPION)
        if served_version != deployment.version:
            return SmokeResult(
                False,
                len(hold),
                len(hold),
                float("nan"),
                f"alias champion points at v{served_version}, not v{deployment.version}",
            )
        if spec.problem_type == "regression":
            diff = np.abs(got.astype(float) - want.astype(float))
            bad = int((diff > spec.deployment.tolerance).sum())
            max_diff = float(diff.max()) if len(diff) else 0.0
        else:
            bad = int((got.astype(str) != want.astype(str)).sum())
            max_diff = float(bad)
        detail = f"{bad}/{len(hold)} rows differ from offline predictions (tolerance {spec.deployment.tolerance:g})"
        return SmokeResult(bad == 0, len(hold), bad, max_diff, detail)

    def rollback(self, spec: PipelineSpec, deployment: Deployment) -> None:
        registry.restore(deployment.model_name, deployment.version, deployment.previous_version)
        log.warning("rolled %s back to %s", spec.name, deployment.previous_version or "no champion")
