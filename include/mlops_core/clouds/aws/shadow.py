"""``deployment.shadow`` on SageMaker: a shadow-mode inference experiment on the pipeline's endpoint.

* :func:`start` (the deploy of a version in shadow): ``CreateInferenceExperiment`` of type
  ``ShadowMode``: the champion's variant (``AllTraffic``) keeps all traffic, the shadow variant
  (``Shadow``, the version's SageMaker model) gets a copy of every request (``SamplingPercentage``
  100), and both variants' requests and answers are captured (``DataStorageConfig``) to
  ``<lake>/<name>/capture/``; then the alias ``shadow``. :func:`status`: ready once ``Running``.
* :func:`traffic` (each verdict): the day's capture files of both variants, each request paired
  with its copy (the same request body), for :func:`mlops_core.shadow.judge` to compare.
* :func:`stop` (the verdict acts): ``StopInferenceExperiment`` with the shadow variant's action
  ``Promote`` (the champion's ``Remove``: SageMaker makes the shadow the production variant;
  :func:`status` waits for ``Completed`` and the endpoint InService, :func:`promote` checks it serves
  the shadow's model and moves ``champion``) or ``Remove`` (the champion's ``Retain``).

The functions take the :class:`~mlops_core.clouds.aws.deploy.SageMakerTarget` (its clients, names and
model creation), which calls them from its shadow methods.
"""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mlops_core.deploy import READY, UPDATING, Deployment, DeploymentFailed
from mlops_core.runs import registry

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec

# the SageMakerTarget calling these (its clients, names and model creation); not imported: it imports this
SageMakerTarget = Any

log = logging.getLogger(__name__)

PRODUCTION, SHADOW = "AllTraffic", "Shadow"  # the variants (AllTraffic: the target's own variant name)
MAX_EXPERIMENT_DAYS = 30  # SageMaker's longest inference experiment
_BUSY = {"Creating", "Created", "Updating", "Starting", "Stopping"}
_OVER = {"Completed", "Cancelled", "Stopping"}

# (the request's rows as records, the champion's predictions, the shadow's)
Pair = tuple[list[dict[str, Any]], list[Any], list[Any]]


def experiment_name(target: SageMakerTarget, spec: PipelineSpec, version: str) -> str:
    """``mlops-breast-cancer-shadow-v3`` (cut to SageMaker's 63 characters, keeping the suffix)."""
    suffix = f"-shadow-v{version}"
    return target.endpoint_name(spec)[: 63 - len(suffix)].rstrip("-") + suffix


def capture_uri(target: SageMakerTarget, spec: PipelineSpec) -> str:
    """Where the experiment captures both variants' requests and answers."""
    from mlops_core.data import filesystems

    return filesystems.join(target.profile.lake, spec.name, "capture")


def variant_config(
    target: SageMakerTarget, spec: PipelineSpec, model_name: str, variant: str
) -> dict[str, Any]:
    """A ``ModelVariantConfig``: the model on the spec's instance type and count."""
    return {
        "ModelName": model_name,
        "VariantName": variant,
        "InfrastructureConfig": {
            "InfrastructureType": "RealTimeInference",
            "RealTimeInferenceConfig": {
                "InstanceType": spec.deployment.instance_type or target.profile.setting("instance_type"),
                "InstanceCount": spec.deployment.initial_instances,
            },
        },
    }


def start(target: SageMakerTarget, spec: PipelineSpec, version: str, champion: str) -> Deployment:
    """Start (or find) the experiment of ``version`` beside ``champion``; then the alias ``shadow``."""
    from datetime import timedelta

    from mlops_core.deploy import put_in_shadow

    endpoint, name = target.endpoint_name(spec), experiment_name(target, spec, version)
    model_name = target.model_resource_name(endpoint, version)
    target._create_model(spec, version, model_name, target.package(spec, version))
    cfg = spec.deployment.shadow
    days = min(
        (cfg.days if cfg is not None else 7) + 2, MAX_EXPERIMENT_DAYS
    )  # the verdict's day, and one more
    try:
        target.clients("sagemaker").create_inference_experiment(
            Name=name,
            Type="ShadowMode",
            Schedule={"EndTime": target.now() + timedelta(days=days)},
            Description=f"{spec.registered_model_name} v{version} in shadow beside champion v{champion}",
            RoleArn=target.profile.setting("role_arn"),
            EndpointName=endpoint,
            ModelVariants=[
                variant_config(target, spec, target.model_resource_name(endpoint, champion), PRODUCTION),
                variant_config(target, spec, model_name, SHADOW),
            ],
            DataStorageConfig={
                "Destination": capture_uri(target, spec),
                "ContentType": {"JsonContentTypes": ["application/json"]},
            },
            ShadowModeConfig={
                "SourceModelVariantName": PRODUCTION,
                "ShadowModelVariants": [{"ShadowModelVariantName": SHADOW, "SamplingPercentage": 100}],
            },
            Tags=[{"Key": "mlops:pipeline", "Value": spec.name}],
        )
        log.info("started inference experiment %s: v%s shadows v%s on %s", name, version, champion, endpoint)
    except Exception as exc:
        if not target.already_exists(exc):
            raise
        log.info("inference experiment %s already exists; attaching to it", name)
    dep = put_in_shadow(spec, version, champion, target.name)
    return replace(
        dep,
        target=target.name,
        endpoint=endpoint,
        state=UPDATING,
        extra={**dep.extra, "experiment": name, "model_name": model_name},
    )


def status(target: SageMakerTarget, deployment: Deployment) -> str:
    """A shadow's start: ready once the experiment runs. Its promotion: once the experiment completed
    and the endpoint is InService again. :class:`DeploymentFailed` on any other end."""
    sm = target.clients("sagemaker")
    found = sm.describe_inference_experiment(Name=deployment.extra["experiment"])
    state = str(found.get("Status"))
    promoting = bool(deployment.extra.get("promoting"))
    wanted = "Completed" if promoting else "Running"
    if state in _BUSY:
        return UPDATING
    if state != wanted:
        raise DeploymentFailed(
            f"inference experiment {deployment.extra['experiment']} is {state}, not {wanted}: "
            f"{found.get('StatusReason') or 'no reason given'}"
        )
    if (
        promoting
        and sm.describe_endpoint(EndpointName=deployment.endpoint).get("EndpointStatus") != "InService"
    ):
        return UPDATING
    return READY


def stop(
    target: SageMakerTarget, spec: PipelineSpec, version: str, champion: str, *, promote: bool
) -> Deployment:
    """End the experiment as the verdict says: the shadow variant promoted (the champion's removed) or
    removed (the champion's retained). The promotion's :class:`Deployment` (state ``updating``)."""
    endpoint, name = target.endpoint_name(spec), experiment_name(target, spec, version)
    model_name = target.model_resource_name(endpoint, version)
    if promote:
        _stop(target, name, {PRODUCTION: "Remove", SHADOW: "Promote"}, f"mlops shadow verdict: v{version} "
              f"promoted over v{champion}", [variant_config(target, spec, model_name, SHADOW)])  # fmt: skip
    else:
        _stop(
            target,
            name,
            {PRODUCTION: "Retain", SHADOW: "Remove"},
            f"mlops shadow verdict: v{version} rejected",
        )
    champion_model = target.model_resource_name(endpoint, champion)
    return Deployment(
        target=target.name,
        model_name=spec.registered_model_name,
        version=str(version),
        previous_version=champion,
        endpoint=endpoint,
        strategy=spec.deployment.strategy,
        state=UPDATING,
        extra={
            "experiment": name,
            "promoting": promote,
            "model_name": model_name,
            # the champion's own config (this package deployed it): where a rollback sends the endpoint
            "previous_endpoint_config": target.endpoint_config_name(
                champion_model, target.variant(spec, champion_model)
            ),
        },
    )


def _stop(
    target: SageMakerTarget, name: str, actions: dict[str, str], reason: str, desired: list[Any] | None = None
) -> None:
    """``StopInferenceExperiment`` unless it is over already (a retried verdict attaches to it)."""
    sm = target.clients("sagemaker")
    state = str(sm.describe_inference_experiment(Name=name).get("Status"))
    if state in _OVER:
        log.info("inference experiment %s is %s already; not stopping it again", name, state)
        return
    promoted = actions.get(SHADOW) == "Promote"
    sm.stop_inference_experiment(
        Name=name,
        ModelVariantActions=actions,
        **({"DesiredModelVariants": desired} if desired else {}),
        DesiredState="Completed" if promoted else "Cancelled",
        Reason=reason[:1024],
    )
    log.info("stopping inference experiment %s: %s", name, actions)


def take_out(target: SageMakerTarget, spec: PipelineSpec, deployment: Deployment) -> None:
    """A shadow's deploy or smoke test failed: end the experiment with it removed, then the alias."""
    from mlops_core.deploy import take_out_of_shadow

    _stop(target, deployment.extra["experiment"], {PRODUCTION: "Retain", SHADOW: "Remove"},
          "the shadow's deploy or smoke test failed")  # fmt: skip
    take_out_of_shadow(spec, deployment)


def promote(target: SageMakerTarget, deployment: Deployment) -> Deployment:
    """The endpoint serves the promoted shadow's model alone (checked): move ``champion``."""
    sm = target.clients("sagemaker")
    described = sm.describe_endpoint(EndpointName=deployment.endpoint)
    config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
    models = [v.get("ModelName") for v in config.get("ProductionVariants", [])]
    if described.get("EndpointStatus") != "InService" or models != [deployment.extra["model_name"]]:
        raise DeploymentFailed(
            f"SageMaker endpoint {deployment.endpoint} is {described.get('EndpointStatus')} serving {models}, "
            f"not {deployment.extra['model_name']} alone, after inference experiment "
            f"{deployment.extra['experiment']} promoted it"
        )
    registry.promote(deployment.model_name, deployment.version)
    log.info("SageMaker endpoint %s serves the promoted shadow v%s; champion moved", deployment.endpoint,
             deployment.version)  # fmt: skip
    return replace(deployment, state=READY)


# -- the captured traffic ------------------------------------------------------------------------


def traffic(target: SageMakerTarget, spec: PipelineSpec, ds: str) -> list[Pair]:
    """The day's requests answered by both variants, paired request by request: a request and its
    copy carry the same body (in capture order among equal bodies; a request the shadow missed, or
    answered with another number of predictions, is left out)."""
    endpoint, root = target.endpoint_name(spec), capture_uri(target, spec)
    waiting: dict[str, list[list[Any]]] = {}
    for body, _, predictions in captured(root, endpoint, SHADOW, ds):
        waiting.setdefault(body, []).append(predictions)
    pairs: list[Pair] = []
    for body, rows, predictions in captured(root, endpoint, PRODUCTION, ds):
        if waiting.get(body):
            theirs = waiting[body].pop(0)
            if len(theirs) == len(predictions) == len(rows):
                pairs.append((rows, predictions, theirs))
    log.info("%d request(s) of %s captured on both variants on %s", len(pairs), endpoint, ds)
    return pairs


def captured(root: str, endpoint: str, variant: str, ds: str) -> list[tuple[str, list[Any], list[Any]]]:
    """(request body, its rows as records, the answer's predictions) of each request ``variant``
    answered on day ``ds``, from SageMaker's capture files ``<root>/<endpoint>/<variant>/YYYY/MM/DD/HH/*.jsonl``
    (JSON lines: ``captureData.endpointInput`` / ``endpointOutput``, each ``data`` JSON or BASE64)."""
    import base64

    from mlops_core.data import filesystems

    fs, base = filesystems.filesystem(filesystems.join(root, endpoint, variant, *ds.split("-")))
    out: list[tuple[str, list[Any], list[Any]]] = []
    for path in sorted(fs.glob(f"{base}/*/*.jsonl")):
        for line in fs.cat_file(path).decode().splitlines():
            if not line.strip():
                continue
            data = json.loads(line)["captureData"]
            sides = []
            for side in ("endpointInput", "endpointOutput"):
                raw = data[side]["data"]
                if data[side].get("encoding") == "BASE64":
                    raw = base64.b64decode(raw).decode()
                sides.append(raw)
            split = json.loads(sides[0]).get("dataframe_split") or {}
            answer = json.loads(sides[1])
            predictions = answer.get("predictions") if isinstance(answer, dict) else answer
            columns = list(split.get("columns", []))
            rows = [dict(zip(columns, r, strict=True)) for r in split.get("data", [])]
            out.append((sides[0], rows, list(predictions or [])))
    return out
