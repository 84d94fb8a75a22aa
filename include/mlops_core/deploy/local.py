"""The local target: the MLflow alias ``champion`` *is* the deployment.

Batch scoring reads ``models:/<name>@champion``; an online endpoint is
``mlflow models serve -m models:/<name>@champion``. The smoke test loads exactly that URI through
pyfunc (what a server would load) and compares its predictions with the offline ones.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mlops_core.deploy import (
    READY,
    SHADOW_TAG,
    SHADOW_VERDICT_TAG,
    Deployment,
    SmokeResult,
    offline_smoke_test,
    put_in_shadow,
    take_out_of_shadow,
)
from mlops_core.runs import registry

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

CHALLENGER_TAG = "mlops.challenger"  # live | promoted | rolled_back | replaced (deployment.challenger)
CHALLENGER_REASON_TAG = "mlops.challenger_reasons"
__all__ = ["CHALLENGER_REASON_TAG", "CHALLENGER_TAG", "SHADOW_TAG", "SHADOW_VERDICT_TAG", "LocalTarget"]


class LocalTarget:
    name = "local"

    def deploy(self, spec: PipelineSpec, version: str) -> Deployment:
        ch = spec.deployment.challenger
        champion = registry.alias_version(spec.registered_model_name, registry.CHAMPION)
        if ch is not None and ch.enabled and champion not in (None, version):
            return self._deploy_challenger(spec, version, champion)
        if spec.deployment.shadow_on and champion not in (None, version):
            return self._deploy_shadow(spec, version, champion)
        previous = registry.promote(spec.registered_model_name, version)
        log.info("champion of %s -> v%s (previous: %s)", spec.name, version, previous)
        return Deployment(
            "local",
            spec.registered_model_name,
            version,
            previous,
            f"models:/{spec.registered_model_name}@champion",
        )

    def _deploy_challenger(self, spec: PipelineSpec, version: str, champion: str) -> Deployment:
        """``deployment.challenger``: the version goes live on the canary split; champion stays.

        A challenger already live is replaced (its test ends, tagged ``mlops.challenger=replaced``).
        """
        name = spec.registered_model_name
        old = registry.alias_version(name, registry.LIVE_CHALLENGER)
        registry.set_live_challenger(name, version, old)
        if old not in (None, version):
            registry.set_tags(
                name, old, {CHALLENGER_TAG: "replaced", CHALLENGER_REASON_TAG: f"replaced by v{version}"}
            )
        registry.set_tags(name, version, {CHALLENGER_TAG: "live"})
        log.info("v%s of %s is the live challenger (%d%% of rows) beside champion v%s", version, name,
                 spec.deployment.challenger.split_percent if spec.deployment.challenger else 0, champion)  # fmt: skip
        return Deployment(
            "local",
            name,
            version,
            champion,
            f"models:/{name}@{registry.LIVE_CHALLENGER}",
            extra={"challenger": True},
        )

    def _deploy_shadow(self, spec: PipelineSpec, version: str, champion: str) -> Deployment:
        """``deployment.shadow``: the version is scored beside the champion on every row; the champion
        keeps serving (:func:`mlops_core.deploy.put_in_shadow`)."""
        return put_in_shadow(spec, version, champion, "local")

    def smoke_test(
        self, spec: PipelineSpec, deployment: Deployment, holdout_uri: str, expected_uri: str
    ) -> SmokeResult:
        return offline_smoke_test(spec, deployment, holdout_uri, expected_uri)

    def status(self, deployment: Deployment) -> str:
        return READY  # moving an alias is instant

    def promote(self, spec: PipelineSpec, deployment: Deployment) -> Deployment:
        return deployment  # the alias moved at deploy: there is no traffic to shift

    def rollback(self, spec: PipelineSpec, deployment: Deployment) -> None:
        if deployment.extra.get("challenger"):  # the champion never moved: take the challenger off the split
            name = deployment.model_name
            if registry.alias_version(name, registry.LIVE_CHALLENGER) == deployment.version:
                registry.set_live_challenger(name, None, deployment.version)
            registry.set_tags(
                name, deployment.version, {CHALLENGER_TAG: "rolled_back", "mlops.rolled_back": "true"}
            )
            log.warning("live challenger v%s of %s taken off the split", deployment.version, spec.name)
            return
        if deployment.extra.get("shadow"):  # the champion never moved: take the shadow out
            take_out_of_shadow(spec, deployment)
            return
        registry.restore(deployment.model_name, deployment.version, deployment.previous_version)
        log.warning("rolled %s back to %s", spec.name, deployment.previous_version or "no champion")
