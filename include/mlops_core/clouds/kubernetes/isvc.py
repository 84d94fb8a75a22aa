"""Reading a KServe InferenceService (``serving.kserve.io/v1beta1``) and the Kubernetes API's refusals.

The names, annotations and labels :mod:`mlops_core.clouds.kubernetes.deploy` writes, and the
small readers it judges an InferenceService with: what it serves, what served before it, whether
KServe reconciled a spec, why a revision failed, where the traffic is. Plain dicts in, no
Kubernetes code imported.
"""

from __future__ import annotations

import json
from typing import Any

from mlops_core.deploy import DeploymentFailed

GROUP, API_VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
TAG_ROUTING = "serving.kserve.io/enable-tag-routing"  # a "latest" URL that reaches the new revision only
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
KNATIVE_CLASS = "autoscaling.knative.dev/class"
HPA_CLASS = "hpa.autoscaling.knative.dev"  # Knative's default autoscaler (KPA) cannot scale on CPU
INSTANCE_TYPE = "node.kubernetes.io/instance-type"  # set on the nodes of EKS, GKE and AKS alike
PIPELINE_LABEL = "mlops/pipeline"
MODEL_ANN = "mlops/model-name"
VERSION_ANN = "mlops/model-version"
PREVIOUS_VERSION_ANN = "mlops/previous-model-version"
PREVIOUS_URI_ANN = "mlops/previous-storage-uri"
RAW_MODES = {"RawDeployment", "Standard"}  # plain Deployments: no revisions, no traffic split
MAX_NAME = 45  # "latest-<name>-predictor" must stay one 63-character DNS label
_FAILED_MODEL = {"BlockedByFailedLoad", "InvalidSpec"}


def _meta(isvc: dict[str, Any]) -> dict[str, Any]:
    return dict(isvc.get("metadata") or {})


def _annotations(isvc: dict[str, Any]) -> dict[str, str]:
    return dict(_meta(isvc).get("annotations") or {})


def _predictor(isvc: dict[str, Any]) -> dict[str, Any]:
    return dict((isvc.get("spec") or {}).get("predictor") or {})


def _storage_uri(isvc: dict[str, Any]) -> str | None:
    return (_predictor(isvc).get("model") or {}).get("storageUri")


def _status(isvc: dict[str, Any]) -> dict[str, Any]:
    return dict(isvc.get("status") or {})


def _predictor_status(isvc: dict[str, Any]) -> dict[str, Any]:
    return dict((_status(isvc).get("components") or {}).get("predictor") or {})


def _condition(isvc: dict[str, Any], kind: str) -> dict[str, Any]:
    return next((dict(c) for c in _status(isvc).get("conditions") or [] if c.get("type") == kind), {})


def _is_raw(isvc: dict[str, Any]) -> bool:
    """RawDeployment mode, or a Serverless one without a revision yet: nothing to split or pin."""
    return _status(isvc).get("deploymentMode") in RAW_MODES or not _predictor_status(isvc).get(
        "latestCreatedRevision"
    )


def _observed(isvc: dict[str, Any], generation: int) -> bool:
    """KServe has reconciled the spec of ``generation`` (its status describes that spec or a later one)."""
    return int(_status(isvc).get("observedGeneration") or 0) >= generation


def _failure(isvc: dict[str, Any]) -> str | None:
    """Why the new revision failed, or None while it may still come up.

    Ready is False *during* a normal rollout too (KServe marks IngressReady False while the
    predictor is not ready), so only these count: the predictor's Ready condition False in
    Serverless mode (Knative sets it False only for a failed revision: crash loop, image pull,
    progress deadline) and a model KServe saw fail to load (``modelStatus``).
    """
    found: list[str] = []
    seen: set[tuple[Any, Any]] = set()
    serverless = _status(isvc).get("deploymentMode") not in RAW_MODES
    if serverless and _condition(isvc, "PredictorReady").get("status") == "False":
        for kind in ("Ready", "PredictorReady"):
            cond = _condition(isvc, kind)
            if cond.get("status") == "False" and (cond.get("reason"), cond.get("message")) not in seen:
                seen.add((cond.get("reason"), cond.get("message")))
                found.append(
                    f"{kind}=False ({cond.get('reason') or 'no reason'}): {cond.get('message') or '-'}"
                )
    model = dict(_status(isvc).get("modelStatus") or {})
    target_state = (model.get("states") or {}).get("targetModelState")
    if model.get("transitionStatus") in _FAILED_MODEL or target_state == "FailedToLoad":
        info = model.get("lastFailureInfo") or {}
        found.append(
            f"model {info.get('reason') or model.get('transitionStatus') or target_state}: "
            f"{info.get('message') or 'no message'}"
            + (f" (in {info['location']})" if info.get("location") else "")
        )
    return "; ".join(found) or None


def _traffic_off(isvc: dict[str, Any], revision: str | None) -> bool:
    """All traffic is on revisions other than ``revision``."""
    traffic = _predictor_status(isvc).get("traffic") or []
    return sum(int(t.get("percent") or 0) for t in traffic if t.get("revisionName") != revision) == 100


def _rolled_out(isvc: dict[str, Any], champion: str | None) -> tuple[str | None, str | None]:
    """(storage URI, model version) of what serves everyone now, the rollback target of a deploy.

    The spec's model, unless the InferenceService is in the middle of a canary (or blue/green)
    of a version that never became champion: then the revisions still serving the rest are the
    model recorded as that deploy's previous one.
    """
    ann = _annotations(isvc)
    uri, version = _storage_uri(isvc), ann.get(VERSION_ANN)
    unfinished = _predictor(isvc).get("canaryTrafficPercent") not in (None, 100)
    if unfinished and version != champion and ann.get(PREVIOUS_URI_ANN):
        return ann[PREVIOUS_URI_ANN], ann.get(PREVIOUS_VERSION_ANN)
    return uri, version


def _drop_none(value: Any) -> Any:
    """A manifest without the ``None`` of absent fields (a merge patch keeps them: they delete)."""
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    return value


def _api_status(exc: Exception) -> int | None:
    status = getattr(exc, "status", None)
    return int(status) if isinstance(status, int) else None


def _api_message(exc: Exception) -> str:
    """The ``message`` of the Kubernetes ``Status`` an ApiException carries (else its text)."""
    try:
        return str(json.loads(getattr(exc, "body", "") or "{}").get("message") or exc)[:500]
    except (TypeError, ValueError, AttributeError):
        return str(exc)[:500]


def _api_error(exc: Exception, doing: str) -> Exception:
    """A refusal the task cannot retry away is :class:`DeploymentFailed`; a conflict asks for a retry."""
    status = _api_status(exc)
    if status in (400, 403, 404, 422):
        hint = (
            " (the connection's identity needs get, create, patch and delete on inferenceservices."
            "serving.kserve.io in that namespace)"
            if status == 403
            else ""
        )
        return DeploymentFailed(f"Kubernetes refused {doing} (HTTP {status}): {_api_message(exc)}{hint}")
    if status == 409:
        return RuntimeError(
            f"{doing} conflicted with a change made meanwhile (HTTP 409: {_api_message(exc)}); "
            "retry the task: it reads the InferenceService again"
        )
    return exc
