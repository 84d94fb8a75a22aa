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

CHALLENGER_TAG = "mlops.challenger"  # live | promoted | rolled_back | replaced (deployment.challenger)
CHALLENGER_REASON_TAG = "mlops.challenger_reasons"
SHADOW_TAG = "mlops.shadow"  # live | promoted | rejected | replaced | rolled_back (deployment.shadow)
SHADOW_VERDICT_TAG = "mlops.shadow_verdict"  # the verdict in one line (the Models view, the model card)


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
        keeps serving. A shadow already in place is replaced (tagged ``mlops.shadow=replaced``)."""
        name = spec.registered_model_name
        old = registry.alias_version(name, registry.SHADOW)
        registry.set_alias_checked(name, registry.SHADOW, version, old)
        if old not in (None, version):
            registry.set_tags(
                name,
                old,
                {SHADOW_TAG: "replaced", SHADOW_VERDICT_TAG: f"replaced by v{version} before a verdict"},
            )
        registry.set_tags(
            name, version, {SHADOW_TAG: "live", SHADOW_VERDICT_TAG: f"in shadow beside champion v{champion}"}
        )
        log.info("v%s of %s is the shadow beside champion v%s (scored on every row)", version, name, champion)
        return Deployment(
            "local", name, version, champion, f"models:/{name}@{registry.SHADOW}", extra={"shadow": True}
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
        alias = registry.CHAMPION
        if deployment.extra.get("challenger"):
            alias = registry.LIVE_CHALLENGER
        elif deployment.extra.get("shadow"):
            alias = registry.SHADOW
        served_version = registry.alias_version(deployment.model_name, alias)
        if served_version != deployment.version:
            return SmokeResult(
                False,
                len(features),
                len(features),
                float("nan"),
                f"alias {alias} points at v{served_version}, not v{deployment.version}",
            )
        return compare(spec, got, want, len(features))

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
            name = deployment.model_name
            if registry.alias_version(name, registry.SHADOW) == deployment.version:
                registry.set_alias_checked(name, registry.SHADOW, None, deployment.version)
            registry.set_tags(
                name, deployment.version, {SHADOW_TAG: "rolled_back", "mlops.rolled_back": "true"}
            )
            log.warning("shadow v%s of %s taken out", deployment.version, spec.name)
            return
        registry.restore(deployment.model_name, deployment.version, deployment.previous_version)
        log.warning("rolled %s back to %s", spec.name, deployment.previous_version or "no champion")
