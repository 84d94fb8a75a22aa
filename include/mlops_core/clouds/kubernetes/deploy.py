"""KServe on Kubernetes (EKS, GKE, AKS): one InferenceService per pipeline, canary by revisions.

``deploy`` points the InferenceService ``mlops-<pipeline>`` (``serving.kserve.io/v1beta1``) at
the MLflow model folder :func:`~mlops_core.deploy.package_model` wrote to the lake
(``.../models/v<version>/model/``): ``modelFormat: {name: mlflow}`` on the V2 inference protocol
(``protocolVersion: v2``, served by MLServer's MLflow runtime, which loads it with
``mlflow.pyfunc``). The storage initializer reads the folder with the service account of the
profile's ``kserve_service_account`` (IRSA on EKS, Workload Identity on GKE and AKS).

In Serverless mode (Knative) every spec change is a new revision, and KServe splits the traffic
between the latest revision and the last one that had all of it (``latestRolledoutRevision``)
with ``spec.predictor.canaryTrafficPercent``:

* ``canary``: ``canary_percent`` to the new revision, the rest to the serving one;
* ``blue_green``: 0 % to the new revision (it stands beside the old one, reachable only by its
  ``latest`` tag URL, which the smoke test calls), then all of it at promotion;
* ``all_at_once``: no split: the new revision takes all traffic once it is ready;
* a first deploy (nothing to split with) takes all traffic whatever the strategy.

``promote`` removes ``canaryTrafficPercent`` (all traffic to the latest revision) and moves the
MLflow ``champion`` alias. ``rollback`` pins the traffic on the previous revision
(``canaryTrafficPercent: 0``; KServe sends an all-at-once revision's traffic back to
``previousRolledoutRevision``), waits until KServe has moved it, then points ``storageUri`` back
at the previous model so the spec says what serves (and a later deploy never routes to the failed
revision while its own revision starts); a first deploy's InferenceService is deleted. The
``champion`` alias is restored either way.

Every write is create-or-update: the InferenceService carries the version it serves and what
served before it (annotations ``mlops/*``), so a retried deploy finds what the first try made
and writes nothing. Patches are JSON merge patches (``null`` removes a field) carrying the
``resourceVersion`` they were computed from: a concurrent change fails with 409 instead of being
overwritten. The Kubernetes client (``kubernetes.client.CustomObjectsApi``) comes from
``clients("kubernetes")``; this module never reads a credential and imports no Kubernetes code.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mlops_core.clouds.kubernetes.inference import kserve_storage_uri, v2_predictions, v2_request
from mlops_core.clouds.kubernetes.isvc import (
    API_VERSION,
    DEPLOYMENT_MODE,
    GROUP,
    HPA_CLASS,
    INSTANCE_TYPE,
    KNATIVE_CLASS,
    MAX_NAME,
    MODEL_ANN,
    PIPELINE_LABEL,
    PLURAL,
    PREVIOUS_URI_ANN,
    PREVIOUS_VERSION_ANN,
    RAW_MODES,
    TAG_ROUTING,
    VERSION_ANN,
    _annotations,
    _api_error,
    _api_status,
    _condition,
    _drop_none,
    _failure,
    _is_raw,
    _meta,
    _observed,
    _predictor,
    _predictor_status,
    _rolled_out,
    _status,
    _storage_uri,
    _traffic_off,
)
from mlops_core.data import filesystems
from mlops_core.deploy import READY, UPDATING, Deployment, DeploymentFailed, EndpointTarget, package_model
from mlops_core.runs import registry

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_core.spec import KServeSpec, PipelineSpec

log = logging.getLogger(__name__)

ROWS_PER_REQUEST = 1000


class KServeTarget(EndpointTarget):
    """Deploy to a KServe InferenceService; client: ``clients("kubernetes")``, a ``CustomObjectsApi``.

    Profile settings: ``kserve_namespace`` (default ``default``), ``kserve_service_account`` (what
    the storage initializer reads the lake as), ``kserve_ingress_url`` (where the smoke test
    sends its requests, with the InferenceService's host in ``Host``; default: the status URLs
    themselves), ``kserve_deployment_mode`` (``Serverless`` or ``RawDeployment`` for a new
    InferenceService; default: the cluster's) and, for the Airflow layer, ``kubernetes_conn_id``.
    """

    name = "kserve"
    poll_seconds: float = 2.0  # rollback: between reads while KServe moves the traffic (a route update)
    max_polls: int = 60  # 2 minutes at most; then the rollback fails and lifecycle.rollback retries it
    request_timeout: float = 60.0  # one V2 inference request of the smoke test

    # -- names and settings -------------------------------------------------------------------

    @classmethod
    def isvc_name(cls, spec: PipelineSpec) -> str:
        """``mlops-<pipeline>``, at most 45 characters (a long name keeps a hash of the full one)."""
        name = cls.endpoint_name(spec).rstrip("-")
        if len(name) <= MAX_NAME:
            return name
        return name[:36].rstrip("-") + "-" + hashlib.sha256(spec.name.encode()).hexdigest()[:8]

    @property
    def namespace(self) -> str:
        return self.profile.settings.get("kserve_namespace") or "default"

    @property
    def api(self) -> Any:
        return self.clients("kubernetes")

    def storage_uri(self, spec: PipelineSpec, version: str) -> str:
        """Where the storage initializer reads version ``version``: the lake's ``.../v<version>/model``."""
        folder = filesystems.join(self.profile.lake, spec.name, "models", f"v{version}", "model")
        return kserve_storage_uri(folder, self.profile.settings.get("storage_account"))

    def package(self, spec: PipelineSpec, version: str) -> str:
        """Copy the MLflow version to the lake (``.../v<version>/model/``); the seam tests override."""
        return package_model(spec, version, self.profile.lake)

    # -- the manifest -------------------------------------------------------------------------

    @staticmethod
    def canary_for(spec: PipelineSpec, has_previous: bool) -> int | None:
        """``canaryTrafficPercent`` of a deploy: None (no split) when nothing serves yet."""
        if not has_previous or spec.deployment.strategy == "all_at_once":
            return None
        return spec.deployment.canary_percent if spec.deployment.strategy == "canary" else 0

    def predictor(self, spec: PipelineSpec, storage_uri: str, canary: int | None) -> dict[str, Any]:
        """``spec.predictor`` with every field this target manages; ``None`` means absent."""
        dep, pod = spec.deployment, spec.deployment.kserve
        scaling = dep.autoscaling
        cpu_target = scaling.target_cpu_percent if scaling is not None else None
        return {
            "serviceAccountName": self.profile.settings.get("kserve_service_account") or None,
            "minReplicas": scaling.min_instances if scaling is not None else dep.instance_count,
            "maxReplicas": scaling.max_instances if scaling is not None else dep.instance_count,
            "scaleMetric": "cpu" if cpu_target is not None else None,
            "scaleTarget": cpu_target,
            "canaryTrafficPercent": canary,
            "nodeSelector": {INSTANCE_TYPE: dep.instance_type} if dep.instance_type else None,
            "model": {
                "modelFormat": {"name": "mlflow"},
                "protocolVersion": "v2",
                "runtime": pod.runtime if pod else None,
                "storageUri": storage_uri,
                "resources": _resources(pod),
            },
        }

    def annotations(
        self, spec: PipelineSpec, version: str, previous_uri: str | None, previous_version: str | None
    ) -> dict[str, str | None]:
        scaling = spec.deployment.autoscaling
        return {
            TAG_ROUTING: "true",
            KNATIVE_CLASS: HPA_CLASS if scaling is not None and scaling.target_cpu_percent else None,
            MODEL_ANN: spec.registered_model_name,
            VERSION_ANN: str(version),
            PREVIOUS_VERSION_ANN: previous_version,
            PREVIOUS_URI_ANN: previous_uri,
        }

    def manifest(self, spec: PipelineSpec, version: str, storage_uri: str) -> dict[str, Any]:
        """The InferenceService a first deploy creates (all traffic to it: nothing to split with)."""
        annotations = self.annotations(spec, version, None, None)
        annotations[DEPLOYMENT_MODE] = self.profile.settings.get("kserve_deployment_mode") or None
        return _drop_none(
            {
                "apiVersion": f"{GROUP}/{API_VERSION}",
                "kind": "InferenceService",
                "metadata": {
                    "name": self.isvc_name(spec),
                    "namespace": self.namespace,
                    "labels": {PIPELINE_LABEL: _label(spec.name)},
                    "annotations": annotations,
                },
                "spec": {"predictor": self.predictor(spec, storage_uri, None)},
            }
        )

    # -- Kubernetes API calls -----------------------------------------------------------------

    def _get(self, name: str) -> dict[str, Any] | None:
        try:
            return dict(
                self.api.get_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, name)
            )
        except Exception as exc:
            if _api_status(exc) == 404:
                return None
            raise _api_error(exc, f"reading InferenceService {self.namespace}/{name}") from exc

    def _create(self, body: dict[str, Any]) -> dict[str, Any]:
        name = body["metadata"]["name"]
        try:
            return dict(
                self.api.create_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, body)
            )
        except Exception as exc:
            raise _api_error(exc, f"creating InferenceService {self.namespace}/{name}") from exc

    def _patch(self, name: str, body: dict[str, Any], doing: str) -> dict[str, Any]:
        """A JSON merge patch (the client's content type for a dict body): ``None`` deletes a field."""
        try:
            return dict(
                self.api.patch_namespaced_custom_object(
                    GROUP, API_VERSION, self.namespace, PLURAL, name, body
                )
            )
        except Exception as exc:
            raise _api_error(exc, f"{doing} of InferenceService {self.namespace}/{name}") from exc

    def _delete(self, name: str) -> None:
        try:
            self.api.delete_namespaced_custom_object(GROUP, API_VERSION, self.namespace, PLURAL, name)
        except Exception as exc:
            if _api_status(exc) != 404:
                raise _api_error(exc, f"deleting InferenceService {self.namespace}/{name}") from exc

    def _require(self, deployment: Deployment) -> dict[str, Any]:
        """The InferenceService, still serving this deployment's model; else :class:`DeploymentFailed`."""
        name = deployment.extra["name"]
        isvc = self._get(name)
        if isvc is None:
            raise DeploymentFailed(
                f"InferenceService {deployment.endpoint} does not exist (deleted while deploying "
                f"v{deployment.version}?); run the deployment again"
            )
        serving = _storage_uri(isvc)
        if serving != deployment.extra["storage_uri"]:
            raise DeploymentFailed(
                f"InferenceService {deployment.endpoint} now serves {serving}, not "
                f"{deployment.extra['storage_uri']} (v{deployment.version}): another deploy or a person "
                "changed it meanwhile"
            )
        return isvc

    # -- the DeploymentTarget interface -------------------------------------------------------

    def deploy(self, spec: PipelineSpec, version: str) -> Deployment:
        """Create or update the InferenceService to serve ``version``; returns at once, ``updating``."""
        scaling = spec.deployment.autoscaling
        if scaling is not None and scaling.target_invocations_per_instance is not None:
            # the spec refuses it for target: kserve; target: auto reaches here with it
            raise ValueError(
                "deployment.autoscaling.target_invocations_per_instance is SageMaker's; KServe scales on "
                "CPU here: set target_cpu_percent"
            )
        name = self.isvc_name(spec)
        uri = self.storage_uri(spec, str(version))
        champion = registry.alias_version(spec.registered_model_name, registry.CHAMPION)
        current = self._get(name)
        canary: int | None
        if current is not None and _storage_uri(current) == uri:
            # a retry (or a redeploy of what serves): the first try's annotations say what came before
            ann = _annotations(current)
            previous_uri, previous_version = ann.get(PREVIOUS_URI_ANN), ann.get(PREVIOUS_VERSION_ANN)
            canary, written = _predictor(current).get("canaryTrafficPercent"), current
            log.info(
                "InferenceService %s/%s already serves %s; not writing it again", self.namespace, name, uri
            )
        elif current is None:
            self.package(spec, str(version))
            previous_uri = previous_version = canary = None
            written = self._create(self.manifest(spec, str(version), uri))
            log.info("created InferenceService %s/%s serving %s", self.namespace, name, uri)
        else:
            previous_uri, previous_version, canary, written = self._update(
                spec, name, str(version), uri, (current, champion)
            )
        return Deployment(
            target=self.name,
            model_name=spec.registered_model_name,
            version=str(version),
            previous_version=champion,
            endpoint=f"{self.namespace}/{name}",
            strategy=spec.deployment.strategy,
            state=UPDATING,
            extra={
                "namespace": self.namespace,
                "name": name,
                "storage_uri": uri,
                "previous_storage_uri": previous_uri,
                "previous_model_version": previous_version,
                "canary_percent": canary,
                "generation": int(_meta(written).get("generation") or 0),
            },
        )

    def _update(
        self,
        spec: PipelineSpec,
        name: str,
        version: str,
        uri: str,
        found: tuple[dict[str, Any], str | None],
    ) -> tuple[str | None, str | None, int | None, dict[str, Any]]:
        """Patch InferenceService ``name`` to serve ``version`` at ``uri`` (``found``: the
        InferenceService as read, the champion version); (previous storage URI, previous version,
        canary percent, the InferenceService written)."""
        current, champion = found
        mode = _status(current).get("deploymentMode")
        if mode in RAW_MODES and spec.deployment.strategy != "all_at_once":
            raise DeploymentFailed(
                f"InferenceService {self.namespace}/{name} runs in {mode} mode, which cannot split "
                f"traffic between revisions; deployment.strategy {spec.deployment.strategy} needs "
                "Serverless mode (Knative): use strategy all_at_once on this cluster"
            )
        previous_uri, previous_version = _rolled_out(current, champion)
        canary = self.canary_for(spec, previous_uri is not None)
        self.package(spec, version)
        body = self.update_body(spec, version, uri, canary, current, (previous_uri, previous_version))
        written = self._patch(name, body, "the update")
        log.info(
            "updating InferenceService %s/%s: %s -> %s (%s, canary %s)",
            self.namespace, name, previous_uri, uri, spec.deployment.strategy, canary,
        )  # fmt: skip
        return previous_uri, previous_version, canary, written

    def update_body(
        self,
        spec: PipelineSpec,
        version: str,
        uri: str,
        canary: int | None,
        current: dict[str, Any],
        previous: tuple[str | None, str | None],
    ) -> dict[str, Any]:
        """The merge patch of an update: the whole managed predictor, and the model it replaces
        (``previous``: storage URI, version) recorded for a retry and the rollback."""
        previous_uri, previous_version = previous
        return {
            "metadata": {
                "resourceVersion": _meta(current).get("resourceVersion"),
                "labels": {PIPELINE_LABEL: _label(spec.name)},
                "annotations": self.annotations(spec, version, previous_uri, previous_version),
            },
            "spec": {"predictor": self.predictor(spec, uri, canary)},
        }

    def status(self, deployment: Deployment) -> str:
        """``ready`` once KServe reconciled the new spec and its revision is ready; else ``updating``.

        Raises :class:`DeploymentFailed` with KServe's reason when the new revision or its model
        failed, or when the InferenceService no longer serves this deployment's model.
        """
        isvc = self._require(deployment)
        if not _observed(isvc, int(deployment.extra.get("generation") or 0)):
            return UPDATING
        failure = _failure(isvc)
        if failure:
            raise DeploymentFailed(
                f"KServe could not deploy {deployment.model_name} v{deployment.version} to InferenceService "
                f"{deployment.endpoint}: {failure}; see kubectl describe inferenceservice -n "
                f"{deployment.extra['namespace']} {deployment.extra['name']} and the predictor pod's logs"
            )
        if _condition(isvc, "Ready").get("status") != "True":
            return UPDATING
        predictor = _predictor_status(isvc)
        created = predictor.get("latestCreatedRevision")
        if created and created != predictor.get("latestReadyRevision"):
            return UPDATING  # the old revision is ready, the new one not yet
        return READY

    # -- smoke test ---------------------------------------------------------------------------

    def inference_url(self, deployment: Deployment, isvc: dict[str, Any]) -> str:
        """The URL that reaches the *new* revision: its ``latest`` tag URL, else the predictor's own.

        Under a split (canary, blue/green) only the tag URL is certain to reach the new revision;
        KServe gives it with ``serving.kserve.io/enable-tag-routing``, which every deploy sets.
        """
        predictor, status = _predictor_status(isvc), _status(isvc)
        traffic = predictor.get("traffic") or []
        tagged = next((t["url"] for t in traffic if t.get("tag") == "latest" and t.get("url")), None)
        if tagged:
            return str(tagged)
        if any(not t.get("latestRevision") and int(t.get("percent") or 0) > 0 for t in traffic):
            raise DeploymentFailed(
                f"InferenceService {deployment.endpoint} splits traffic between revisions and shows no "
                f"'latest' tag URL (annotation {TAG_ROUTING}); the smoke test cannot reach "
                f"v{deployment.version}"
            )
        url = predictor.get("url") or status.get("url") or (status.get("address") or {}).get("url")
        if not url:
            raise DeploymentFailed(f"InferenceService {deployment.endpoint} has no URL in its status yet")
        return str(url)

    def predict(self, deployment: Deployment, features: pd.DataFrame) -> np.ndarray:
        """Predictions of the new revision: ``POST <url>/v2/models/<name>/infer`` (V2 protocol).

        With ``kserve_ingress_url`` the request goes to the ingress gateway with the revision's
        host in ``Host`` (the usual way into a cluster whose domain has no DNS record).
        """
        import numpy as np
        import requests

        url = self.inference_url(deployment, self._require(deployment))
        ingress = self.profile.settings.get("kserve_ingress_url")
        base, headers = (
            (ingress.rstrip("/"), {"Host": urlsplit(url).netloc}) if ingress else (url.rstrip("/"), {})
        )
        endpoint = f"{base}/v2/models/{deployment.extra['name']}/infer"
        out: list[Any] = []
        for start in range(0, max(len(features), 1), ROWS_PER_REQUEST):
            chunk = features.iloc[start : start + ROWS_PER_REQUEST]
            response = requests.post(
                endpoint, json=v2_request(chunk), headers=headers, timeout=self.request_timeout
            )
            where = f"{endpoint} (Host {headers['Host']})" if headers else endpoint
            if response.status_code != 200:
                raise DeploymentFailed(f"{where} answered HTTP {response.status_code}: {response.text[:300]}")
            out.extend(v2_predictions(response.json(), where))
        return np.asarray(out)

    # -- promote / roll back ------------------------------------------------------------------

    def promote(self, spec: PipelineSpec, deployment: Deployment) -> Deployment:
        """All traffic to the new revision (``canaryTrafficPercent`` removed), then move ``champion``."""
        isvc = self._require(deployment)
        if _predictor(isvc).get("canaryTrafficPercent") is not None:
            self._patch(
                deployment.extra["name"],
                {
                    "metadata": {"resourceVersion": _meta(isvc).get("resourceVersion")},
                    "spec": {"predictor": {"canaryTrafficPercent": None}},
                },
                "the promotion",
            )
            log.info("InferenceService %s: all traffic to v%s", deployment.endpoint, deployment.version)
        registry.promote(deployment.model_name, deployment.version)
        return replace(deployment, state=READY)

    def rollback(self, spec: PipelineSpec, deployment: Deployment) -> None:
        """Traffic back to the previous model (a first deploy is deleted); restore champion."""
        isvc = self._get(deployment.extra["name"])
        serving = _storage_uri(isvc) if isvc is not None else None
        previous = deployment.extra.get("previous_storage_uri")
        if isvc is None:
            log.info("InferenceService %s does not exist; nothing to roll back", deployment.endpoint)
        elif serving != deployment.extra["storage_uri"]:
            log.warning(
                "InferenceService %s serves %s (not the failed %s): leaving it",
                deployment.endpoint, serving, deployment.extra["storage_uri"],
            )  # fmt: skip
        elif previous is None:
            self._delete(deployment.extra["name"])
            log.warning(
                "deleted InferenceService %s (first deploy of %s failed)", deployment.endpoint, spec.name
            )
        else:
            self._send_back(deployment, isvc, previous)
        registry.restore(deployment.model_name, deployment.version, deployment.previous_version)

    def _send_back(self, deployment: Deployment, isvc: dict[str, Any], previous: str) -> None:
        """Pin the traffic on the previous revision, wait for it, then point the spec at the previous model.

        In that order: a new revision created while KServe moves ``latestRolledoutRevision`` back
        would stop the move (KServe moves it only while the latest revision is the latest created).
        """
        name = deployment.extra["name"]
        back: dict[str, Any] = {
            "metadata": {
                "annotations": {
                    VERSION_ANN: deployment.extra.get("previous_model_version"),
                    PREVIOUS_VERSION_ANN: None,
                    PREVIOUS_URI_ANN: None,
                }
            },
            "spec": {"predictor": {"canaryTrafficPercent": 0, "model": {"storageUri": previous}}},
        }
        if _is_raw(isvc):  # a plain Deployment rolls back by rolling forward to the previous model
            back["spec"]["predictor"]["canaryTrafficPercent"] = None
        else:
            if _predictor(isvc).get("canaryTrafficPercent") != 0:
                isvc = self._patch(
                    name,
                    {
                        "metadata": {"resourceVersion": _meta(isvc).get("resourceVersion")},
                        "spec": {"predictor": {"canaryTrafficPercent": 0}},
                    },
                    "pinning the traffic on the previous revision",
                )
            isvc = self._wait_off(name, isvc)
        back["metadata"]["resourceVersion"] = _meta(isvc).get("resourceVersion")
        self._patch(name, back, "the rollback")
        log.warning("rolled InferenceService %s back to %s", deployment.endpoint, previous)

    def _wait_off(self, name: str, isvc: dict[str, Any]) -> dict[str, Any]:
        """Read until KServe sends all traffic to revisions other than the failed one (bounded).

        The failed revision is the latest created one once KServe observed the pin: the pin
        changes traffic only, so no revision is created after the failed deploy's own.
        """
        generation = int(_meta(isvc).get("generation") or 0)
        failed = None
        for _ in range(self.max_polls):
            if _observed(isvc, generation):
                failed = _predictor_status(isvc).get("latestCreatedRevision")
                if _traffic_off(isvc, failed):
                    return isvc
            time.sleep(self.poll_seconds)
            isvc = self._get(name) or {}
        raise RuntimeError(
            f"KServe still routes traffic to {failed} of InferenceService {self.namespace}/{name} after "
            f"{self.max_polls * self.poll_seconds:.0f} s with canaryTrafficPercent 0 (traffic: "
            f"{_predictor_status(isvc).get('traffic')}); without a previousRolledoutRevision it cannot pin "
            "the previous one: set spec.predictor.model.storageUri back by hand"
        )


def _resources(pod: KServeSpec | None) -> dict[str, dict[str, str]] | None:
    """The model container's requests and limits (limits default to the requests); None: the runtime's."""
    if pod is None:
        return None
    requests = _drop_none({"cpu": pod.cpu, "memory": pod.memory})
    limits = _drop_none({"cpu": pod.cpu_limit or pod.cpu, "memory": pod.memory_limit or pod.memory})
    found = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    return found or None


def _label(value: str) -> str:
    """A Kubernetes label value: letters, digits, ``-_.``, alphanumeric at both ends, at most 63."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", value)[:63].strip("-_.") or "pipeline"
