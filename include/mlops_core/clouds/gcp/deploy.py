"""Vertex AI endpoints: one endpoint per pipeline, one deployed model per MLflow model version.

``deploy`` uploads the MLflow model folder (``.../models/v<version>/model/``, see
:func:`~mlops_core.deploy.package_model`) as a Vertex AI Model served by the profile's
``serving_image`` (an MLflow scoring server: ``/invocations`` and ``/ping`` on port 8080, loading
the model Vertex copies to ``$AIP_STORAGE_URI``), finds or creates the endpoint
``mlops-<pipeline>`` and starts ``deployModel`` with the traffic split of the strategy:

* ``canary``: ``canary_percent`` to the new model, the rest to the model serving now;
* ``all_at_once`` / ``blue_green``: 100 % to the new model, the old one stays deployed (idle)
  until ``promote`` undeploys it, so ``rollback`` only moves traffic back: instant.

``status`` polls the deploy operation once. ``promote`` moves all traffic to the new deployed
model, undeploys the previous one and moves the MLflow ``champion`` alias; ``rollback`` restores
the traffic split from before the deploy, undeploys the new model and restores the alias.

Deployed model ids are only known once the deploy operation is done, so ``predict``, ``promote``
and ``rollback`` read the endpoint and find the new deployed model by its Model resource.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mlops_core.clouds.gcp.client import VertexClient, label
from mlops_core.deploy import READY, UPDATING, Deployment, DeploymentFailed, EndpointTarget, package_model
from mlops_core.runs import registry

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import ClientFactory, CloudProfile

log = logging.getLogger(__name__)
# the one autoscaling metric Vertex AI supports for CPU serving (plus accelerator duty cycle)
VERTEX_CPU_METRIC = "aiplatform.googleapis.com/prediction/online/cpu/utilization"

SERVING_PORT = 8080  # MLflow's scoring server in the images `mlflow models build-docker` makes


def _model_id(resource: str) -> str:
    """``projects/p/locations/l/models/123@2`` -> ``123`` (project ids and numbers both name a model)."""
    return resource.rsplit("/models/", 1)[-1].split("@", 1)[0]


def _split(endpoint: dict[str, Any]) -> dict[str, int]:
    return {str(k): int(v) for k, v in (endpoint.get("trafficSplit") or {}).items()}


def _deployed(endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    return list(endpoint.get("deployedModels") or [])


def _deployed_id(endpoint: dict[str, Any], model: str) -> str | None:
    """Id of the deployed model on ``endpoint`` that serves Model ``model``, if any."""
    for deployed in _deployed(endpoint):
        if _model_id(str(deployed.get("model", ""))) == _model_id(model):
            return str(deployed["id"])
    return None


def _serving_id(endpoint: dict[str, Any], exclude: str | None = None) -> str | None:
    """The deployed model with the largest share of traffic (ignoring ``exclude``), if any has traffic."""
    shares = [(pct, dm) for dm, pct in _split(endpoint).items() if dm != exclude and pct > 0]
    return max(shares)[1] if shares else None


class VertexTarget(EndpointTarget):
    """Deploy MLflow model versions to a Vertex AI endpoint through the v1 REST API."""

    name = "vertex"
    poll_seconds: float = 5.0  # between polls of the quick operations deploy waits for
    max_polls: int = 60  # (model upload, endpoint creation): 5 minutes at most
    smoke_miss_probability: float = 1e-3  # canary: chance that no smoke request reaches the new model
    max_smoke_requests: int = 1000

    def __init__(self, profile: CloudProfile, clients: ClientFactory):
        super().__init__(profile, clients)
        self._vertex: VertexClient | None = None

    @property
    def vertex(self) -> VertexClient:
        if self._vertex is None:
            self._vertex = VertexClient.for_profile(self.profile, self.clients)
        return self._vertex

    # -- deploy

    def package(self, spec: PipelineSpec, version: str) -> str:
        """The lake URI of ``.../v<version>/model.tar.gz`` (the unpacked ``model/`` folder lies beside it)."""
        return package_model(spec, version, self.profile.lake)

    @staticmethod
    def model_display_name(spec: PipelineSpec, version: str) -> str:
        return f"{spec.name}-v{version}"

    def deploy(self, spec: PipelineSpec, version: str) -> Deployment:
        """Upload (or find) the model, find or create the endpoint and start deploying onto it.

        A retry finds the uploaded model by display name and, when it is already deployed on the
        endpoint, starts nothing; ``extra["operation"]`` is then ``None``.
        """
        model = self._model(spec, version)
        endpoint = self._endpoint(spec)
        mine = _deployed_id(endpoint, model)
        if mine is None:
            previous = _serving_id(endpoint)
            previous_split = _split(endpoint)
            traffic = self._traffic(spec, previous)
            op = self.vertex.deploy_model(
                endpoint["name"], self._deployed_model(spec, version, model), traffic
            )
            operation: str | None = str(op["name"])
            log.info("deploying %s to %s with traffic %s (%s)", model, endpoint["name"], traffic, operation)
        else:
            previous = _serving_id(endpoint, exclude=mine) or self._other_deployed(endpoint, mine)
            previous_split = {previous: 100} if previous else {}
            operation = None
            log.info(
                "%s is already deployed on %s as %s; not deploying it again", model, endpoint["name"], mine
            )
        return Deployment(
            self.name,
            spec.registered_model_name,
            version,
            registry.alias_version(spec.registered_model_name, registry.CHAMPION),
            str(endpoint["name"]),
            strategy=spec.deployment.strategy,
            state=UPDATING,
            extra={
                "endpoint": str(endpoint["name"]),
                "model": model,
                "operation": operation,
                "previous_deployed_model_id": previous,
                "previous_traffic_split": previous_split,
            },
        )

    @staticmethod
    def _other_deployed(endpoint: dict[str, Any], mine: str) -> str | None:
        """On a retry of blue/green the old model is deployed without traffic: the latest other one."""
        others = sorted(
            (d for d in _deployed(endpoint) if str(d.get("id")) != mine),
            key=lambda d: str(d.get("createTime", "")),
        )
        return str(others[-1]["id"]) if others else None

    def _traffic(self, spec: PipelineSpec, previous: str | None) -> dict[str, int]:
        if spec.deployment.strategy == "canary" and previous is not None:
            pct = spec.deployment.canary_percent
            return {"0": pct, previous: 100 - pct}
        return {"0": 100}

    def _deployed_model(self, spec: PipelineSpec, version: str, model: str) -> dict[str, Any]:
        machine = spec.deployment.instance_type or self.profile.setting("machine_type")
        count = spec.deployment.instance_count
        resources: dict[str, Any] = {
            "machineSpec": {"machineType": machine},
            "minReplicaCount": count,
            "maxReplicaCount": count,
        }
        scaling = spec.deployment.autoscaling
        if scaling is not None:  # Vertex AI scales the replicas itself between the two counts
            resources["minReplicaCount"] = scaling.min_instances
            resources["maxReplicaCount"] = scaling.max_instances
            if scaling.target_invocations_per_instance is not None:
                raise ValueError(
                    "deployment.autoscaling.target_invocations_per_instance is SageMaker's; Vertex AI "
                    "scales on CPU: set target_cpu_percent"
                )
            if scaling.target_cpu_percent is not None:
                resources["autoscalingMetricSpecs"] = [
                    {"metricName": VERTEX_CPU_METRIC, "target": scaling.target_cpu_percent}
                ]
        return {
            "model": model,
            "displayName": self.model_display_name(spec, version),
            "dedicatedResources": resources,
        }

    def _model(self, spec: PipelineSpec, version: str) -> str:
        """Resource name of the Vertex AI Model of ``version``: found by display name, else uploaded."""
        display = self.model_display_name(spec, version)
        found = self.vertex.find_models(display)
        if found:
            log.info("model %s already uploaded as %s", display, found[0]["name"])
            return str(found[0]["name"])
        artifact = self.package(spec, version).removesuffix("/model.tar.gz") + "/model"
        body = {
            "displayName": display,
            "description": f"MLflow model {spec.registered_model_name} version {version}",
            "artifactUri": artifact,
            "containerSpec": {
                "imageUri": self.profile.setting("serving_image"),
                "predictRoute": "/invocations",
                "healthRoute": "/ping",
                "ports": [{"containerPort": SERVING_PORT}],
            },
            "labels": {
                "mlops-pipeline": label(spec.name),
                "mlflow-model": label(spec.registered_model_name),
                "mlflow-version": label(version),
            },
        }
        done = self._wait(self.vertex.upload_model(body), f"upload of model {display}")
        return str(done["response"]["model"])

    def _endpoint(self, spec: PipelineSpec) -> dict[str, Any]:
        """The pipeline's endpoint (deployed models and traffic split included); created when missing."""
        display = self.endpoint_name(spec)
        found = self.vertex.find_endpoints(display)
        if found:
            if len(found) > 1:
                log.warning("%d endpoints are named %s; using %s", len(found), display, found[0]["name"])
            return self.vertex.get_endpoint(str(found[0]["name"]))
        op = self.vertex.create_endpoint(
            {"displayName": display, "labels": {"mlops-pipeline": label(spec.name)}}
        )
        done = self._wait(op, f"creation of endpoint {display}")
        endpoint = dict(done.get("response") or {})
        endpoint.setdefault("name", str(op["name"]).split("/operations/", 1)[0])
        return endpoint

    def _wait(self, op: dict[str, Any], what: str) -> dict[str, Any]:
        """Poll a quick operation until done (bounded by ``max_polls``); its final state."""
        for _ in range(self.max_polls):
            if op.get("done"):
                break
            time.sleep(self.poll_seconds)
            op = self.vertex.get_operation(str(op["name"]))
        if not op.get("done"):
            raise DeploymentFailed(
                f"{what} still runs after {self.max_polls * self.poll_seconds:.0f} s (operation {op['name']}); "
                "retry the task: it finds what this try started"
            )
        if op.get("error"):
            raise DeploymentFailed(f"Vertex AI {what} failed: {op['error'].get('message', op['error'])}")
        return op

    # -- wait

    def status(self, deployment: Deployment) -> str:
        """``updating`` while the deploy operation runs, ``ready`` when done; :class:`DeploymentFailed` on error."""
        operation = deployment.extra.get("operation")
        if not operation:  # a retry found the model deployed already
            endpoint = self.vertex.get_endpoint(deployment.endpoint)
            if _deployed_id(endpoint, deployment.extra["model"]) is None:
                raise DeploymentFailed(
                    f"{deployment.model_name} v{deployment.version} is not deployed on {deployment.endpoint} "
                    "any more; deploy it again"
                )
            return READY
        op = self.vertex.get_operation(str(operation))
        if not op.get("done"):
            return UPDATING
        if op.get("error"):
            error = op["error"]
            raise DeploymentFailed(
                f"Vertex AI could not deploy {deployment.model_name} v{deployment.version} to "
                f"{deployment.endpoint}: {error.get('message', error)} (operation {operation}); "
                "see the endpoint's logs in Cloud Logging"
            )
        return READY

    # -- smoke test

    def predict(self, deployment: Deployment, features: pd.DataFrame) -> np.ndarray:
        """Predictions of the *new* deployed model for ``features``, through ``endpoints.predict``.

        Vertex AI's public endpoints cannot route one request to a chosen deployed model, but a
        request is served whole by one deployed model and the answer names it
        (``deployedModelId``). Under a canary split the request is therefore repeated until the
        new model answers: enough times that it is missed with probability at most
        ``smoke_miss_probability`` (~66 requests at 10 %), capped at ``max_smoke_requests``.
        Answers from the old model are discarded, never compared.
        """
        import numpy as np

        endpoint = self.vertex.get_endpoint(deployment.endpoint)
        mine = self._require_deployed(endpoint, deployment)
        share = _split(endpoint).get(mine, 0)
        if share <= 0:
            raise DeploymentFailed(
                f"{deployment.model_name} v{deployment.version} (deployed model {mine}) gets no traffic on "
                f"{deployment.endpoint}; the smoke test cannot reach it"
            )
        instances = json.loads(features.to_json(orient="records", date_format="iso"))
        attempts = self._smoke_attempts(share)
        for _ in range(attempts):
            answer = self.vertex.predict(deployment.endpoint, instances)
            served = answer.get("deployedModelId")
            if served == mine or (served is None and share == 100):
                return np.asarray(self._predictions(answer))
        raise DeploymentFailed(
            f"{attempts} predict requests to {deployment.endpoint} were all served by other deployed models "
            f"than {mine} ({share} % of traffic); the smoke test could not reach v{deployment.version}"
        )

    def _smoke_attempts(self, share: int) -> int:
        if share >= 100:
            return 1
        needed = math.ceil(math.log(self.smoke_miss_probability) / math.log(1 - share / 100))
        return max(1, min(self.max_smoke_requests, needed))

    @staticmethod
    def _predictions(answer: dict[str, Any]) -> list[Any]:
        predictions = answer.get("predictions")
        if not isinstance(predictions, list):
            raise DeploymentFailed(
                "the endpoint answered without a 'predictions' list; the serving image must be an MLflow "
                f"scoring server answering /invocations with {{'predictions': [...]}} (got keys {sorted(answer)})"
            )
        return [next(iter(p.values())) if isinstance(p, dict) and len(p) == 1 else p for p in predictions]

    # -- promote / roll back

    def _require_deployed(self, endpoint: dict[str, Any], deployment: Deployment) -> str:
        mine = _deployed_id(endpoint, deployment.extra["model"])
        if mine is None:
            raise DeploymentFailed(
                f"{deployment.model_name} v{deployment.version} ({deployment.extra['model']}) is not deployed "
                f"on {deployment.endpoint}; was the deploy operation successful?"
            )
        return mine

    def promote(self, spec: PipelineSpec, deployment: Deployment) -> Deployment:
        """All traffic to the new deployed model, undeploy the previous one, move ``champion``."""
        endpoint = self.vertex.get_endpoint(deployment.endpoint)
        mine = self._require_deployed(endpoint, deployment)
        if _split(endpoint) != {mine: 100}:
            self.vertex.set_traffic(deployment.endpoint, {mine: 100})
        previous = deployment.extra.get("previous_deployed_model_id")
        live = {str(d.get("id")) for d in _deployed(endpoint)}
        if previous and previous != mine and previous in live:
            self.vertex.undeploy_model(deployment.endpoint, previous)
            log.info("undeployed the previous model %s from %s", previous, deployment.endpoint)
        registry.promote(deployment.model_name, deployment.version)
        return replace(deployment, state=READY, extra={**deployment.extra, "deployed_model_id": mine})

    def rollback(self, spec: PipelineSpec, deployment: Deployment) -> None:
        """Traffic back to the split from before the deploy, undeploy the new model, restore ``champion``."""
        endpoint = self.vertex.get_endpoint(deployment.endpoint)
        mine = _deployed_id(endpoint, deployment.extra["model"])
        live = {str(d.get("id")) for d in _deployed(endpoint)}
        restore = self._restored_split(deployment, live - {mine} if mine else live)
        if restore != _split(endpoint) and (restore or (mine and len(live) > 1)):
            self.vertex.set_traffic(deployment.endpoint, restore)
        if mine is not None:
            self.vertex.undeploy_model(deployment.endpoint, mine)
            log.warning(
                "undeployed %s v%s (%s) from %s",
                deployment.model_name,
                deployment.version,
                mine,
                deployment.endpoint,
            )
        else:
            self._cancel(deployment)
        registry.restore(deployment.model_name, deployment.version, deployment.previous_version)
        log.warning("rolled %s back to %s", spec.name, deployment.previous_version or "no champion")

    @staticmethod
    def _restored_split(deployment: Deployment, live: set[str]) -> dict[str, int]:
        """The split from before the deploy, if its deployed models are all still there; else all to the previous."""
        before = {str(k): int(v) for k, v in (deployment.extra.get("previous_traffic_split") or {}).items()}
        if before and set(before) <= live and sum(before.values()) == 100:
            return before
        previous = deployment.extra.get("previous_deployed_model_id")
        return {previous: 100} if previous in live else {}

    def _cancel(self, deployment: Deployment) -> None:
        """Rolled back before the deploy finished: cancel it so the model does not appear afterwards."""
        operation = deployment.extra.get("operation")
        if not operation:
            return
        if not self.vertex.get_operation(str(operation)).get("done"):
            self.vertex.cancel_operation(str(operation))
            log.warning("cancelled the unfinished deploy operation %s", operation)
