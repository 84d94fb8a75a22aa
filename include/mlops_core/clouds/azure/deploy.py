"""Azure ML managed online endpoints: blue/green deployments named by model version.

One endpoint per pipeline (``mlops-<name>``, key auth). Version ``N`` is deployed as
``green-vN`` beside the deployment that carries the traffic now (*blue*):

1. ``deploy``: package the MLflow model (:func:`~mlops_core.deploy.package_model`), register
   it as Azure ML model version ``N`` (type ``mlflow_model``, so no scoring script or
   environment is needed), create the endpoint if it is missing, PUT ``green-vN`` with 0 %
   traffic. Every call is a PUT by name: a retry lands on the same resources.
2. ``status``: once ``green-vN`` is Succeeded, set the split (canary: ``canary_percent`` to green;
   blue/green and all-at-once: blue keeps 100 % and green is smoke-tested directly through the
   ``azureml-model-deployment`` header; first deploy: green 100 %). Ready when the endpoint
   reports that split. The split is recomputed from the endpoint each time, so the poll is
   stateless and can run in a trigger.
3. ``promote``: green 100 %, blue deleted, ``champion`` alias moved. ``rollback``: blue 100 %,
   green deleted, alias restored.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops_core.clouds.azure import shadow as shadow_mode
from mlops_core.clouds.azure.client import (
    PROVISION_FAILED,
    PROVISIONING,
    AzureMLClient,
    AzureMLError,
    client_for,
)
from mlops_core.deploy import READY, UPDATING, Deployment, DeploymentFailed, EndpointTarget, package_model
from mlops_core.runs import registry

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

ENDPOINT_NAME_MAX = 32  # Azure ML online endpoint names: 3-32 characters


def deployment_name(version: str) -> str:
    """``green-v<version>``: named by version, so a retried deploy PUTs the same deployment."""
    return f"green-v{version}"


def folder_of(package_uri: str) -> str:
    """``.../v3/model.tar.gz`` -> ``.../v3/model`` (the unpacked MLflow model beside the tarball)."""
    if package_uri.endswith("/model.tar.gz"):
        return package_uri.removesuffix(".tar.gz")
    return package_uri.rstrip("/")


def asset_uri(uri: str, storage_account: str | None) -> str:
    """A lake URI as a path Azure ML can read a model from.

    ``azureml://``, ``https://``, ``wasbs://`` and ``abfss://container@account...`` pass through;
    ``abfs://container/path`` (the lake's fsspec form, which has no account) becomes
    ``https://<account>.blob.core.windows.net/container/path`` with ``settings.storage_account``.
    """
    scheme, sep, rest = uri.partition("://")
    if scheme in {"abfs", "abfss", "az"} and sep and "@" not in rest.split("/", 1)[0]:
        if not storage_account:
            raise ValueError(
                f"cannot give Azure ML the model folder {uri}: the URI names no storage account; set "
                "settings.storage_account in the azure cloud profile (or use an azureml:// lake URI)"
            )
        return f"https://{storage_account}.blob.core.windows.net/{rest}"
    return uri


def previous_of(traffic: dict[str, Any], green: str) -> str | None:
    """The deployment serving now (the largest share other than ``green``), or None."""
    serving = {k: int(v) for k, v in traffic.items() if k != green and int(v) > 0}
    return max(serving, key=lambda k: serving[k]) if serving else None


def _split(traffic: dict[str, Any]) -> dict[str, int]:
    """A traffic map without its zero entries (ARM may list a deployment at 0 % or omit it)."""
    return {k: int(v) for k, v in (traffic or {}).items() if int(v) > 0}


class AzureMLTarget(EndpointTarget):
    """Blue/green deployments on one Azure ML managed online endpoint per pipeline."""

    name = "azureml"
    poll_seconds = 10.0  # between polls of a traffic update before deleting a deployment
    wait_minutes = 15.0

    def wait(self, client: AzureMLClient, url: str | None, what: str) -> None:
        """Block until the long-running operation ``url`` is done (promote/rollback are synchronous).

        A deployment cannot be deleted while the endpoint still routes traffic to it, so the
        traffic update must finish first.
        """
        import time

        if not url:
            return
        deadline = time.monotonic() + self.wait_minutes * 60
        while True:
            op = client.operation(url)
            if op.done:
                if op.state != "Succeeded":
                    raise DeploymentFailed(f"{what} ended {op.state}: {op.message or 'no reason reported'}")
                return
            if time.monotonic() > deadline:
                raise DeploymentFailed(
                    f"{what} still running after {self.wait_minutes:g} min; check the endpoint in Azure ML studio"
                )
            time.sleep(self.poll_seconds)

    @property
    def client(self) -> AzureMLClient:
        return client_for(self.profile, self.clients)

    @staticmethod
    def endpoint_name(spec: PipelineSpec) -> str:
        """``mlops-<pipeline>`` within Azure ML's documented endpoint name rules.

        Online endpoint names are 3-32 characters, a letter first, letters, digits and ``-``
        (https://learn.microsoft.com/azure/machine-learning/how-to-manage-quotas, "Azure Machine
        Learning online endpoints and batch endpoints"); a longer name keeps a hash of the full one.
        """
        import hashlib
        import re

        name = re.sub(r"[^a-z0-9-]", "-", EndpointTarget.endpoint_name(spec).lower())
        if len(name) <= ENDPOINT_NAME_MAX:
            return name
        return (
            name[: ENDPOINT_NAME_MAX - 9].rstrip("-")
            + "-"
            + hashlib.sha256(spec.name.encode()).hexdigest()[:8]
        )

    def package(self, spec: PipelineSpec, version: str) -> str:
        """The MLflow model as ``<lake>/<name>/models/v<version>/model.tar.gz`` (and ``model/`` beside it)."""
        return package_model(spec, version, self.profile.lake)

    # -- deploy ---------------------------------------------------------------------------------

    def deployment_body(
        self, model_id: str, instance_type: str | None, instance_count: int, autoscaling: Any = None
    ) -> dict[str, Any]:
        """A managed deployment of an MLflow model (no scoring script or environment needed).

        :param autoscaling: ``deployment.autoscaling``: ``TargetUtilization`` scale settings (CPU),
            starting at ``min_instances``; else a fixed ``instance_count``.
        """
        scale: dict[str, Any] = {"scaleType": "Default"}
        if autoscaling is not None:
            if autoscaling.target_invocations_per_instance is not None:
                raise ValueError(
                    "deployment.autoscaling.target_invocations_per_instance is SageMaker's; Azure ML "
                    "scales on CPU: set target_cpu_percent"
                )
            instance_count = autoscaling.min_instances
            scale = {
                "scaleType": "TargetUtilization",
                "minInstances": autoscaling.min_instances,
                "maxInstances": autoscaling.max_instances,
                "targetUtilizationPercentage": autoscaling.target_cpu_percent or 70,
                "pollingInterval": "PT1M",
            }
        return {
            "location": self.profile.setting("location"),
            "kind": "Managed",
            "sku": {"name": "Default", "capacity": int(instance_count)},
            "properties": {
                "endpointComputeType": "Managed",
                "model": model_id,
                "instanceType": instance_type or self.profile.setting("instance_type"),
                "scaleSettings": scale,
            },
        }

    def ensure_endpoint(self, client: AzureMLClient, spec: PipelineSpec) -> dict[str, Any]:
        """The pipeline's endpoint, created (key auth, no traffic) when it does not exist."""
        endpoint = self.endpoint_name(spec)
        found = client.get_endpoint(endpoint)
        if found is not None:
            return found
        log.info("creating Azure ML online endpoint %s", endpoint)
        body = {
            "location": self.profile.setting("location"),
            "identity": {"type": "SystemAssigned"},
            "tags": {"mlops.pipeline": spec.name},
            "properties": {"authMode": "Key", "description": f"mlops endpoint of {spec.name}"},
        }
        created, _ = client.put_endpoint(endpoint, body)
        return created or body

    def register(self, client: AzureMLClient, spec: PipelineSpec, version: str) -> str:
        """The packaged MLflow model as Azure ML model version ``version``; its id."""
        model_path = asset_uri(
            folder_of(self.package(spec, version)), self.profile.settings.get("storage_account")
        )
        return client.register_model(
            spec.registered_model_name,
            version,
            model_path,
            description=f"MLflow model {spec.registered_model_name} v{version}",
            tags={"mlops.pipeline": spec.name, "mlflow.version": str(version)},
        )

    # -- deployment.shadow: mirrored traffic with mirror_percent (mlops_core.clouds.azure.shadow) ----

    green = staticmethod(deployment_name)  # (for mlops_core.clouds.azure.shadow, which cannot import this)
    serving = staticmethod(previous_of)

    def mirrors(self, spec: PipelineSpec) -> bool:
        return shadow_mode.mirror_percent(spec) is not None

    def deploy_shadow(self, spec: PipelineSpec, version: str, champion: str) -> Deployment:
        if self.mirrors(spec):
            return shadow_mode.start(self, spec, version, champion)
        return super().deploy_shadow(spec, version, champion)

    def rollback_shadow(self, spec: PipelineSpec, deployment: Deployment) -> None:
        if deployment.extra.get("mirror"):
            return shadow_mode.take_out(self, spec, deployment)
        return super().rollback_shadow(spec, deployment)

    def shadow_traffic(self, spec: PipelineSpec, ds: str) -> list[shadow_mode.Pair]:
        return shadow_mode.traffic(self, spec, ds) if self.mirrors(spec) else []

    def promote_shadow(self, spec: PipelineSpec, version: str, champion: str) -> Deployment:
        if self.mirrors(spec):
            return shadow_mode.promote(self, spec, version, champion)
        return self.deploy(spec, version)

    def reject_shadow(self, spec: PipelineSpec, version: str, champion: str) -> None:
        if self.mirrors(spec):
            shadow_mode.reject(self, spec, version)

    def deploy(self, spec: PipelineSpec, version: str) -> Deployment:
        client = self.client
        model_id = self.register(client, spec, version)
        endpoint = self.endpoint_name(spec)
        green = deployment_name(version)
        traffic = dict(self.ensure_endpoint(client, spec).get("properties", {}).get("traffic") or {})
        blue = previous_of(traffic, green)
        operation = None
        try:
            body = self.deployment_body(
                model_id,
                spec.deployment.instance_type,
                spec.deployment.instance_count,
                spec.deployment.autoscaling,
            )
            _, operation = client.put_deployment(endpoint, green, body)
        except AzureMLError as exc:
            if exc.status != 409:
                raise
            # the endpoint is still being created: status() PUTs the deployment once it is ready
            log.info("endpoint %s is busy (%s); %s is created by the next status poll", endpoint, exc, green)
        log.info("deploying %s v%s to %s as %s (serving now: %s)", spec.name, version, endpoint, green, blue)
        return Deployment(
            self.name,
            spec.registered_model_name,
            version,
            registry.alias_version(spec.registered_model_name, registry.CHAMPION),
            endpoint,
            spec.deployment.strategy,
            UPDATING,
            {
                "endpoint": endpoint,
                "deployment": green,
                "previous_deployment": blue,
                "previous_traffic": {k: int(v) for k, v in traffic.items()},
                "operation": operation,
                "model_id": model_id,
                "canary_percent": spec.deployment.canary_percent,
                "instance_type": spec.deployment.instance_type,
                "instance_count": spec.deployment.instance_count,
                # (only when set: what status() needs to PUT a deployment a busy endpoint delayed)
                **(
                    {"autoscaling": spec.deployment.autoscaling.model_dump()}
                    if spec.deployment.autoscaling is not None
                    else {}
                ),
            },
        )

    # -- status ---------------------------------------------------------------------------------

    @staticmethod
    def wanted_traffic(deployment: Deployment) -> dict[str, int]:
        """The split while the new version is under test (see the module docstring)."""
        green, blue = deployment.extra["deployment"], deployment.extra.get("previous_deployment")
        if not blue:
            return {green: 100}
        if deployment.strategy == "canary":
            pct = int(deployment.extra.get("canary_percent") or 10)
            return {green: pct, blue: 100 - pct}
        return {blue: 100}

    def _recreate(self, client: AzureMLClient, deployment: Deployment) -> str:
        """Green is missing (its PUT met a busy endpoint): PUT it once the endpoint is Succeeded."""
        endpoint, green = deployment.extra["endpoint"], deployment.extra["deployment"]
        ep = client.get_endpoint(endpoint) or {}
        if ep.get("properties", {}).get("provisioningState") != "Succeeded":
            return UPDATING
        from mlops_core.spec import AutoscalingSpec

        scaling = deployment.extra.get("autoscaling")
        body = self.deployment_body(
            deployment.extra["model_id"],
            deployment.extra.get("instance_type"),
            int(deployment.extra.get("instance_count") or 1),
            AutoscalingSpec(**scaling) if scaling else None,
        )
        deployment.extra["operation"] = client.put_deployment(endpoint, green, body)[1]
        return UPDATING

    @staticmethod
    def _failure(client: AzureMLClient, deployment: Deployment) -> str:
        """Why the deployment failed: the error of the PUT's long-running operation.

        The deployment resource itself carries no error field (only ``provisioningState``); ARM
        reports the reason on the ``Azure-AsyncOperation`` URL the PUT answered with.
        """
        url = deployment.extra.get("operation")
        if url:
            try:
                op = client.operation(str(url))
            except AzureMLError as err:
                return f"no reason reported (reading the operation failed: {err})"
            if op.message:
                return op.message
        return "no reason reported"

    def status(self, deployment: Deployment) -> str:
        if deployment.extra.get("mirror"):  # a shadow's deployment, then its mirror
            return shadow_mode.status(self, deployment)
        client = self.client
        endpoint, green = deployment.extra["endpoint"], deployment.extra["deployment"]
        found = client.get_deployment(endpoint, green)
        if found is None:
            return self._recreate(client, deployment)
        ep = self.settled_endpoint(client, deployment, found)
        if ep is None:
            return UPDATING
        want = self.wanted_traffic(deployment)
        if _split(ep.get("properties", {}).get("traffic") or {}) == _split(want):
            deployment.state = READY
            return READY
        log.info("%s is up; setting traffic of %s to %s", green, endpoint, want)
        deployment.extra["operation"] = client.set_traffic(endpoint, want)
        return UPDATING

    def settled_endpoint(
        self, client: AzureMLClient, deployment: Deployment, found: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The endpoint once ``found`` (the deployment's GET) has Succeeded and the endpoint is not
        updating; None while either is being applied. A failed provisioning raises, naming the
        deployment, Azure's reason and the command that shows its logs."""
        endpoint, green = deployment.extra["endpoint"], deployment.extra["deployment"]
        state = str(found.get("properties", {}).get("provisioningState", ""))
        if state in PROVISION_FAILED:
            raise DeploymentFailed(
                f"Azure ML deployment {endpoint}/{green} is {state}: {self._failure(client, deployment)}; "
                "see its logs: az ml online-deployment get-logs "
                f"--endpoint-name {endpoint} --name {green}"
            )
        if state != "Succeeded":
            return None
        ep = client.get_endpoint(endpoint) or {}
        if ep.get("properties", {}).get("provisioningState") in PROVISIONING:
            return None  # a traffic update (ours or someone's) is being applied
        return ep

    # -- smoke test -----------------------------------------------------------------------------

    def predict(self, deployment: Deployment, features: pd.DataFrame) -> np.ndarray:
        """Score through the endpoint, routed to the green deployment whatever the split."""
        import numpy as np

        frame = features.astype(object).where(features.notna(), None)
        payload = {"input_data": {"columns": [str(c) for c in frame.columns], "data": frame.values.tolist()}}
        result = self.client.score(deployment.extra["endpoint"], deployment.extra["deployment"], payload)
        if isinstance(result, dict):
            result = result.get("predictions", result.get("outputs", result))
        if isinstance(result, list) and result and isinstance(result[0], dict):
            # a model with a named output answers [{"<output>": value}, ...]
            result = [next(iter(row.values())) for row in result]
        return np.asarray(result)

    # -- promote / rollback ---------------------------------------------------------------------

    def promote(self, spec: PipelineSpec, deployment: Deployment) -> Deployment:
        """All traffic to green, blue deleted, ``champion`` -> this version."""
        client = self.client
        endpoint, green = deployment.extra["endpoint"], deployment.extra["deployment"]
        blue = deployment.extra.get("previous_deployment")
        ep = client.get_endpoint(endpoint) or {}
        if _split(ep.get("properties", {}).get("traffic") or {}) != {green: 100}:
            self.wait(client, client.set_traffic(endpoint, {green: 100}), f"traffic of {endpoint} -> {green}")
        if blue and blue != green:
            client.delete_deployment(endpoint, blue)
        previous = registry.promote(deployment.model_name, deployment.version)
        deployment.previous_version = deployment.previous_version or previous
        deployment.state = READY
        log.info("promoted %s v%s on %s (removed %s)", spec.name, deployment.version, endpoint, blue)
        return deployment

    def rollback(self, spec: PipelineSpec, deployment: Deployment) -> None:
        """Traffic back to blue (none to set on a first deploy), green deleted, alias restored.

        On a first deploy the endpoint stays, empty: the next deploy reuses it.
        """
        client = self.client
        endpoint, green = deployment.extra["endpoint"], deployment.extra["deployment"]
        blue = deployment.extra.get("previous_deployment")
        ep = client.get_endpoint(endpoint)
        if ep is not None:
            current = _split(ep.get("properties", {}).get("traffic") or {})
            want = {blue: 100} if blue else {}
            if current != want:
                # a first deploy's green holds 100 %: clear it, Azure ML refuses to delete a deployment with traffic
                self.wait(
                    client, client.set_traffic(endpoint, want), f"traffic of {endpoint} -> {blue or 'none'}"
                )
            client.delete_deployment(endpoint, green)
        registry.restore(deployment.model_name, deployment.version, deployment.previous_version)
        log.warning("rolled %s back to %s on %s", spec.name, blue or "no deployment", endpoint)
