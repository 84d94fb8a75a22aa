"""The SageMaker target: one real-time endpoint per pipeline, updated blue/green by SageMaker itself.

``deploy`` copies the MLflow model version to the lake as ``model.tar.gz`` (the layout of
MLflow's SageMaker serving image, ``mlflow sagemaker build-and-push-container``), creates a
SageMaker model and an endpoint config for it, then creates the endpoint or updates it with a
blue/green ``DeploymentConfig``:

* ``all_at_once``: all traffic moves to the new fleet at once, the old fleet goes right away;
* ``blue_green``: all traffic moves at once, the old fleet is kept ``canary_wait_minutes``
  (the baking period) so an alarm can still send the traffic back;
* ``canary``: ``canary_percent`` of the capacity takes traffic first, for
  ``canary_wait_minutes``, then the rest.

Updates carry an ``AutoRollbackConfiguration`` on the CloudWatch alarm ``<endpoint>-5xx``
(``Invocation5XXErrors`` > 0 in a minute): SageMaker rolls back on its own while the alarm
fires. :meth:`SageMakerTarget.status` and :meth:`SageMakerTarget.promote` notice when it did.

Every step is create-or-reuse: names derive from the endpoint, the version and the variant
settings, so a retried task finds what the first try made and never starts a second update.

``deployment.shadow`` is a shadow-mode inference experiment (``CreateInferenceExperiment``): the
endpoint keeps serving the champion's variant, SageMaker sends the shadow variant a copy of every
request, and both variants' requests and answers are captured as JSON lines under
``<lake>/<name>/capture/``. The verdict reads a day's capture back (:meth:`SageMakerTarget.shadow_traffic`)
and ends the experiment (``StopInferenceExperiment``) with the shadow variant promoted (action
``Promote``: it becomes the production variant) or removed (``Remove``; the champion's is retained).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mlops_core.deploy import (
    READY,
    UPDATING,
    Deployment,
    DeploymentFailed,
    EndpointTarget,
    package_model,
)
from mlops_core.runs import registry

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

VARIANT = "AllTraffic"
SHADOW_VARIANT = "Shadow"  # the shadow variant of an inference experiment (deployment.shadow)
MAX_EXPERIMENT_DAYS = 30  # SageMaker's longest inference experiment
MAX_NAME = 63  # SageMaker model, endpoint config and endpoint names
# What MLflow's serving image reads (mlflow.sagemaker._get_deployment_config): the flavor to
# serve and that it runs on SageMaker (port 8080, /invocations and /ping).
SERVING_ENV = {"MLFLOW_DEPLOYMENT_FLAVOR_NAME": "python_function", "SERVING_ENVIRONMENT": "SageMaker"}
PREVIOUS_TAG = "mlops:previous-endpoint-config"
ROWS_PER_REQUEST = 1000  # keeps an InvokeEndpoint body well under SageMaker's 6 MB limit

SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
_BUSY = {"Creating", "Updating", "SystemUpdating", "RollingBack", "Deleting"}
_FAILED = {"Failed", "RollingBack", "UpdateRollbackFailed", "OutOfService", "Deleting"}


def _name(stem: str, suffix: str) -> str:
    """``<stem><suffix>`` cut to SageMaker's 63 characters, keeping the suffix (the unique part)."""
    return stem[: MAX_NAME - len(suffix)].rstrip("-") + suffix


def _is_missing(exc: Exception) -> bool:
    """SageMaker's answer for an unknown resource: ValidationException "Could not find ..."."""
    return _code(exc) == "ValidationException" and "could not find" in str(exc).lower()


def _is_existing(exc: Exception) -> bool:
    """SageMaker's answer for a name taken: ValidationException "Cannot create already existing ..."."""
    return _code(exc) == "ValidationException" and "already exist" in str(exc).lower()


def _code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _json_value(value: Any) -> Any:
    """A cell as JSON: numpy scalars as Python numbers, NaN as null, dates as ISO text."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def experiment_name(endpoint: str, version: str) -> str:
    """The shadow-mode inference experiment of ``version``: ``mlops-breast-cancer-shadow-v3``."""
    return _name(endpoint, f"-shadow-v{version}")


_EXPERIMENT_BUSY = {"Creating", "Created", "Updating", "Starting", "Stopping"}


class _ShadowMode:
    """``deployment.shadow`` on SageMaker: a shadow-mode inference experiment (mixed into the target)."""

    name = "sagemaker"
    mirrors_traffic = True
    profile: Any
    clients: Any

    def capture_uri(self, spec: PipelineSpec) -> str:
        """Where the experiment captures both variants' requests and answers."""
        from mlops_core.data import filesystems

        return filesystems.join(self.profile.lake, spec.name, "capture")

    def _variant_config(self, spec: PipelineSpec, model_name: str, variant: str) -> dict[str, Any]:
        return {
            "ModelName": model_name,
            "VariantName": variant,
            "InfrastructureConfig": {
                "InfrastructureType": "RealTimeInference",
                "RealTimeInferenceConfig": {
                    "InstanceType": spec.deployment.instance_type or self.profile.setting("instance_type"),
                    "InstanceCount": spec.deployment.initial_instances,
                },
            },
        }

    def now(self) -> Any:
        from datetime import UTC, datetime

        return datetime.now(UTC)

    def deploy_shadow(self, spec: PipelineSpec, version: str, champion: str) -> Deployment:
        """Start (or find) the experiment: the champion's variant keeps all traffic, the shadow variant
        of ``version`` gets a copy of every request, both captured; then the alias ``shadow``."""
        from datetime import timedelta

        from mlops_core.deploy.local import LocalTarget

        target: Any = self
        endpoint = target.endpoint_name(spec)
        name = experiment_name(endpoint, version)
        model_name = target.model_resource_name(endpoint, version)
        target._create_model(spec, version, model_name, target.package(spec, version))
        champion_model = target.model_resource_name(endpoint, champion)
        days = min(spec.deployment.shadow.days + 2 if spec.deployment.shadow else 9, MAX_EXPERIMENT_DAYS)
        sm = self.clients("sagemaker")
        try:
            sm.create_inference_experiment(
                Name=name,
                Type="ShadowMode",
                Schedule={"EndTime": self.now() + timedelta(days=days)},
                Description=f"{spec.registered_model_name} v{version} in shadow beside champion v{champion}",
                RoleArn=self.profile.setting("role_arn"),
                EndpointName=endpoint,
                ModelVariants=[
                    self._variant_config(spec, champion_model, VARIANT),
                    self._variant_config(spec, model_name, SHADOW_VARIANT),
                ],
                DataStorageConfig={"Destination": self.capture_uri(spec), "ContentType": {
                    "JsonContentTypes": ["application/json"]}},
                ShadowModeConfig={
                    "SourceModelVariantName": VARIANT,
                    "ShadowModelVariants": [{"ShadowModelVariantName": SHADOW_VARIANT, "SamplingPercentage": 100}],
                },
                Tags=[{"Key": "mlops:pipeline", "Value": spec.name}],
            )  # fmt: skip
            log.info(
                "started inference experiment %s: v%s shadows v%s on %s", name, version, champion, endpoint
            )
        except Exception as exc:
            if not _is_existing(exc):
                raise
            log.info("inference experiment %s already exists; attaching to it", name)
        dep = LocalTarget()._deploy_shadow(spec, version, champion)
        return replace(
            dep,
            target=self.name,
            endpoint=endpoint,
            state=UPDATING,
            extra={**dep.extra, "experiment": name, "model_name": model_name},
        )

    def _experiment_status(self, deployment: Deployment) -> tuple[str, str]:
        found = self.clients("sagemaker").describe_inference_experiment(Name=deployment.extra["experiment"])
        return str(found.get("Status")), str(found.get("StatusReason") or "no reason given")

    def experiment_status(self, deployment: Deployment) -> str:
        """A shadow's deploy: ready once the experiment runs; its promotion: once it completed and the
        endpoint is InService again."""
        state, reason = self._experiment_status(deployment)
        wanted = "Completed" if deployment.extra.get("promoting") else "Running"
        if state in _EXPERIMENT_BUSY:
            return UPDATING
        if state != wanted:
            raise DeploymentFailed(
                f"inference experiment {deployment.extra['experiment']} is {state}, not {wanted}: {reason}"
            )
        if deployment.extra.get("promoting"):  # the shadow variant became the production one
            described = self.clients("sagemaker").describe_endpoint(EndpointName=deployment.endpoint)
            if described.get("EndpointStatus") != "InService":
                return UPDATING
        return READY

    def rollback_shadow(self, spec: PipelineSpec, deployment: Deployment) -> None:
        """End the experiment with the shadow variant removed, then the alias."""
        from mlops_core.deploy.local import LocalTarget

        self._stop(deployment.extra["experiment"], "Remove", "the shadow's deploy or smoke test failed")
        LocalTarget().rollback(spec, deployment)

    def _stop(self, name: str, shadow_action: str, reason: str, desired: list[Any] | None = None) -> None:
        """``StopInferenceExperiment`` with the champion's variant retained (or removed on a promotion)."""
        sm = self.clients("sagemaker")
        state = str(sm.describe_inference_experiment(Name=name).get("Status"))
        if state in {"Completed", "Cancelled", "Stopping"}:
            log.info("inference experiment %s is %s already; not stopping it again", name, state)
            return
        actions = {
            VARIANT: "Remove" if shadow_action == "Promote" else "Retain",
            SHADOW_VARIANT: shadow_action,
        }
        sm.stop_inference_experiment(
            Name=name,
            ModelVariantActions=actions,
            **({"DesiredModelVariants": desired} if desired else {}),
            DesiredState="Completed" if shadow_action == "Promote" else "Cancelled",
            Reason=reason[:1024],
        )
        log.info("stopping inference experiment %s: %s", name, actions)

    def promote_shadow(self, spec: PipelineSpec, version: str, champion: str) -> Deployment:
        """End the experiment with the shadow variant promoted to the production variant."""
        target: Any = self
        endpoint = target.endpoint_name(spec)
        name = experiment_name(endpoint, version)
        model_name = target.model_resource_name(endpoint, version)
        self._stop(
            name,
            "Promote",
            f"mlops shadow verdict: v{version} promoted over v{champion}",
            [self._variant_config(spec, model_name, SHADOW_VARIANT)],
        )
        champion_model = target.model_resource_name(endpoint, champion)
        return Deployment(
            target=self.name,
            model_name=spec.registered_model_name,
            version=str(version),
            previous_version=champion,
            endpoint=endpoint,
            strategy=spec.deployment.strategy,
            state=UPDATING,
            extra={
                "experiment": name,
                "promoting": True,
                "model_name": model_name,
                # the champion's own config (deployed by this package): where a rollback sends the endpoint
                "previous_endpoint_config": target.endpoint_config_name(
                    champion_model, target.variant(spec, champion_model)
                ),
            },
        )

    def reject_shadow(self, spec: PipelineSpec, version: str, champion: str) -> None:
        """End the experiment with the shadow variant removed; the champion's variant stays as it is."""
        endpoint = self.endpoint_name(spec)  # type: ignore[attr-defined]
        self._stop(experiment_name(endpoint, version), "Remove", f"mlops shadow verdict: v{version} rejected")

    def _serves(self, endpoint: str, model_name: str) -> bool:
        """The endpoint is InService with ``model_name`` as its (only) production variant's model."""
        sm = self.clients("sagemaker")
        described = sm.describe_endpoint(EndpointName=endpoint)
        if described.get("EndpointStatus") != "InService":
            return False
        config = sm.describe_endpoint_config(EndpointConfigName=described["EndpointConfigName"])
        return [v.get("ModelName") for v in config.get("ProductionVariants", [])] == [model_name]

    def promote_experiment(self, spec: PipelineSpec, deployment: Deployment) -> Deployment:
        """The shadow variant is the endpoint's production variant now: move ``champion``."""
        if not self._serves(deployment.endpoint, deployment.extra["model_name"]):
            raise DeploymentFailed(
                f"SageMaker endpoint {deployment.endpoint} does not serve {deployment.extra['model_name']} "
                f"alone after inference experiment {deployment.extra['experiment']} promoted it"
            )
        registry.promote(deployment.model_name, deployment.version)
        log.info("SageMaker endpoint %s serves the promoted shadow v%s; champion moved", deployment.endpoint,
                 deployment.version)  # fmt: skip
        return replace(deployment, state=READY)

    # -- the captured traffic

    def shadow_traffic(self, spec: PipelineSpec, lake_root: str, ds: str, shadow: str, champion: str) -> None:
        """The day's captured requests answered by both variants, paired request by request (a request
        and its copy carry the same body), written as the partitions the verdict compares."""
        from mlops_core.monitor import shadow as compare_shadow

        endpoint = self.endpoint_name(spec)  # type: ignore[attr-defined]
        served = _captured(self.capture_uri(spec), endpoint, VARIANT, ds)
        mirrored = _captured(self.capture_uri(spec), endpoint, SHADOW_VARIANT, ds)
        pairs = _pair(served, mirrored)
        if not pairs:
            log.info("no request of %s captured on both variants on %s", endpoint, ds)
            return
        _write_traffic(spec, lake_root, ds, pairs, (champion, shadow), compare_shadow)


class SageMakerTarget(_ShadowMode, EndpointTarget):
    """Deploy to a SageMaker real-time endpoint; clients: ``sagemaker``, ``sagemaker-runtime``, ``cloudwatch``."""

    name = "sagemaker"

    # -- names and settings -------------------------------------------------------------------

    @staticmethod
    def model_resource_name(endpoint: str, version: str) -> str:
        """The SageMaker model of one MLflow version: ``mlops-breast-cancer-v3``."""
        return _name(endpoint, f"-v{version}")

    def variant(self, spec: PipelineSpec, model_name: str) -> dict[str, Any]:
        """The one production variant: the model on ``instance_count`` x ``instance_type``."""
        return {
            "VariantName": VARIANT,
            "ModelName": model_name,
            "InstanceType": spec.deployment.instance_type or self.profile.setting("instance_type"),
            "InitialInstanceCount": spec.deployment.initial_instances,
        }

    @staticmethod
    def endpoint_config_name(model_name: str, variant: dict[str, Any]) -> str:
        """``<model name>-<hash of the variant>``: a changed instance type makes a new config."""
        digest = hashlib.sha256(json.dumps(variant, sort_keys=True).encode()).hexdigest()[:8]
        return _name(model_name, f"-{digest}")

    @staticmethod
    def alarm_name(endpoint: str) -> str:
        return f"{endpoint}-5xx"

    def deployment_config(self, spec: PipelineSpec, alarm: str) -> dict[str, Any]:
        """The blue/green ``DeploymentConfig`` of an update (see the module docstring)."""
        strategy = spec.deployment.strategy
        wait = min(spec.deployment.canary_wait_minutes * 60, 3600)  # SageMaker's maximum
        routing: dict[str, Any]
        if strategy == "canary":
            routing = {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": spec.deployment.canary_percent},
                "WaitIntervalInSeconds": wait,
            }
            termination = 0
        else:
            routing = {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0}
            termination = wait if strategy == "blue_green" else 0
        # Provisioning a fleet takes minutes; allow 30 of them on top of the waits.
        timeout = max(600, min(routing["WaitIntervalInSeconds"] + termination + 1800, 28800))
        return {
            "BlueGreenUpdatePolicy": {
                "TrafficRoutingConfiguration": routing,
                "TerminationWaitInSeconds": termination,
                "MaximumExecutionTimeoutInSeconds": timeout,
            },
            "AutoRollbackConfiguration": {"Alarms": [{"AlarmName": alarm}]},
        }

    # -- autoscaling (Application Auto Scaling on the variant) ---------------------------------

    @staticmethod
    def scalable_target(endpoint: str) -> dict[str, str]:
        """The variant as Application Auto Scaling names it (every call's first three params)."""
        return {
            "ServiceNamespace": "sagemaker",
            "ResourceId": f"endpoint/{endpoint}/variant/{VARIANT}",
            "ScalableDimension": SCALABLE_DIMENSION,
        }

    def scaling_policy(self, spec: PipelineSpec, endpoint: str) -> dict[str, Any]:
        """The target-tracking configuration: invocations per instance, or the variant's CPU."""
        scaling = spec.deployment.autoscaling
        assert scaling is not None
        config: dict[str, Any] = {
            "ScaleInCooldown": scaling.scale_in_cooldown_seconds,
            "ScaleOutCooldown": scaling.scale_out_cooldown_seconds,
        }
        if scaling.target_cpu_percent is not None:
            config["TargetValue"] = float(scaling.target_cpu_percent)
            config["CustomizedMetricSpecification"] = {
                "MetricName": "CPUUtilization",
                "Namespace": "/aws/sagemaker/Endpoints",
                "Dimensions": [
                    {"Name": "EndpointName", "Value": endpoint},
                    {"Name": "VariantName", "Value": VARIANT},
                ],
                "Statistic": "Average",
                "Unit": "Percent",
            }
        else:  # SageMaker's own metric; 1000 invocations a minute per instance unless the spec says
            config["TargetValue"] = float(scaling.target_invocations_per_instance or 1000.0)
            config["PredefinedMetricSpecification"] = {
                "PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"
            }
        return config

    def apply_autoscaling(self, spec: PipelineSpec, endpoint: str) -> None:
        """Register the variant between min and max instances and put its policy (both idempotent)."""
        scaling = spec.deployment.autoscaling
        if scaling is None:
            return
        aas = self.clients("application-autoscaling")
        target = self.scalable_target(endpoint)
        aas.register_scalable_target(
            **target, MinCapacity=scaling.min_instances, MaxCapacity=scaling.max_instances
        )
        aas.put_scaling_policy(
            PolicyName=f"{endpoint}-target-tracking",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration=self.scaling_policy(spec, endpoint),
            **target,
        )
        log.info(
            "SageMaker endpoint %s scales between %d and %d instances",
            endpoint,
            scaling.min_instances,
            scaling.max_instances,
        )

    def _release_autoscaling(
        self, spec: PipelineSpec, endpoint: str, previous_config: str | None, variant: dict[str, Any]
    ) -> None:
        """SageMaker refuses an update that changes the instance type of a variant under autoscaling:
        deregister it first (a new model on the same instance type needs nothing). The promotion
        registers it again; a rollback of such an update leaves the variant unscaled until then."""
        if spec.deployment.autoscaling is None or previous_config is None:
            return
        old = self.clients("sagemaker").describe_endpoint_config(EndpointConfigName=previous_config)
        old_type = next(
            (
                v.get("InstanceType")
                for v in old.get("ProductionVariants", [])
                if v.get("VariantName") == VARIANT
            ),
            None,
        )
        if old_type == variant["InstanceType"]:
            return
        aas = self.clients("application-autoscaling")
        target = self.scalable_target(endpoint)
        found = aas.describe_scalable_targets(
            ServiceNamespace="sagemaker",
            ResourceIds=[target["ResourceId"]],
            ScalableDimension=SCALABLE_DIMENSION,
        )
        if found.get("ScalableTargets"):
            aas.deregister_scalable_target(**target)
            log.info(
                "deregistered %s from autoscaling: %s -> %s", endpoint, old_type, variant["InstanceType"]
            )

    # -- the seam a contract test overrides ---------------------------------------------------

    def package(self, spec: PipelineSpec, version: str) -> str:
        """Copy the MLflow version to ``<lake>/<name>/models/v<version>/model.tar.gz``; return its URI."""
        return package_model(spec, version, self.profile.lake)

    # -- SageMaker calls ----------------------------------------------------------------------

    def _describe(self, endpoint: str) -> dict[str, Any] | None:
        try:
            return dict(self.clients("sagemaker").describe_endpoint(EndpointName=endpoint))
        except Exception as exc:
            if _is_missing(exc):
                return None
            raise

    def _create_model(self, spec: PipelineSpec, version: str, model_name: str, model_data: str) -> None:
        try:
            self.clients("sagemaker").create_model(
                ModelName=model_name,
                ExecutionRoleArn=self.profile.setting("role_arn"),
                PrimaryContainer={
                    "Image": self.profile.setting("serving_image"),
                    "ModelDataUrl": model_data,
                    "Environment": dict(SERVING_ENV),
                },
                Tags=[
                    {"Key": "mlops:pipeline", "Value": spec.name},
                    {"Key": "mlops:model-version", "Value": str(version)},
                ],
            )
        except Exception as exc:
            if not _is_existing(exc):
                raise
            log.info("SageMaker model %s already exists; reusing it", model_name)

    def _create_config(
        self, spec: PipelineSpec, config_name: str, variant: dict[str, Any], previous: str | None
    ) -> None:
        try:
            self.clients("sagemaker").create_endpoint_config(
                EndpointConfigName=config_name,
                ProductionVariants=[variant],
                Tags=[
                    {"Key": "mlops:pipeline", "Value": spec.name},
                    # what the endpoint served before: a retried deploy that finds the update
                    # already done reads it back, so rollback still knows where to go
                    {"Key": PREVIOUS_TAG, "Value": previous or ""},
                ],
            )
        except Exception as exc:
            if not _is_existing(exc):
                raise
            log.info("SageMaker endpoint config %s already exists; reusing it", config_name)

    def _recorded_previous(self, config_name: str) -> str | None:
        """The previous config recorded on ``config_name`` by the deploy that created it."""
        sm = self.clients("sagemaker")
        arn = sm.describe_endpoint_config(EndpointConfigName=config_name)["EndpointConfigArn"]
        tags = sm.list_tags(ResourceArn=arn).get("Tags", [])
        return next((t["Value"] for t in tags if t["Key"] == PREVIOUS_TAG), "") or None

    def _put_alarm(self, endpoint: str) -> str:
        """Create or update the 5xx alarm that drives SageMaker's automatic rollback."""
        alarm = self.alarm_name(endpoint)
        self.clients("cloudwatch").put_metric_alarm(
            AlarmName=alarm,
            AlarmDescription=f"5xx errors of SageMaker endpoint {endpoint}: rolls a deployment back",
            Namespace="AWS/SageMaker",
            MetricName="Invocation5XXErrors",
            Dimensions=[
                {"Name": "EndpointName", "Value": endpoint},
                {"Name": "VariantName", "Value": VARIANT},
            ],
            Statistic="Sum",
            Period=60,
            EvaluationPeriods=1,
            Threshold=0.0,
            ComparisonOperator="GreaterThanThreshold",
            TreatMissingData="notBreaching",
        )
        return alarm

    # -- the DeploymentTarget interface -------------------------------------------------------

    def deploy(self, spec: PipelineSpec, version: str) -> Deployment:
        """Create-or-update the endpoint to serve ``version``; returns at once in state ``updating``."""
        endpoint = self.endpoint_name(spec)
        model_name = self.model_resource_name(endpoint, version)
        variant = self.variant(spec, model_name)
        config_name = self.endpoint_config_name(model_name, variant)
        previous_version = registry.alias_version(spec.registered_model_name, registry.CHAMPION)

        model_data = self.package(spec, version)
        current = self._describe(endpoint)
        previous_config = current.get("EndpointConfigName") if current else None
        pending = ((current or {}).get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        if config_name not in (previous_config, pending):
            # (an endpoint on or moving to this config proves both exist: a retry skips them)
            self._create_model(spec, version, model_name, model_data)
            self._create_config(spec, config_name, variant, previous_config)

        alarm: str | None = None
        sm = self.clients("sagemaker")
        if current is None:
            sm.create_endpoint(
                EndpointName=endpoint,
                EndpointConfigName=config_name,
                Tags=[{"Key": "mlops:pipeline", "Value": spec.name}],
            )
            log.info("creating SageMaker endpoint %s with %s", endpoint, config_name)
        else:
            previous_config, alarm = self._update(sm, spec, endpoint, current, (config_name, variant))
        return Deployment(
            target=self.name,
            model_name=spec.registered_model_name,
            version=str(version),
            previous_version=previous_version,
            endpoint=endpoint,
            strategy=spec.deployment.strategy,
            state=UPDATING,
            extra={
                "endpoint_config": config_name,
                "previous_endpoint_config": previous_config,
                "model_name": model_name,
                "model_data": model_data,
                "alarm": alarm,
            },
        )

    def _update(
        self,
        sm: Any,
        spec: PipelineSpec,
        endpoint: str,
        current: dict[str, Any],
        target: tuple[str, Any],
    ) -> tuple[str | None, str | None]:
        """Move the existing endpoint (``current``, as described) to ``target`` (its new config and
        variant) unless it is on it or moving to it already; (the config it served before, the
        alarm watching the update)."""
        config_name, variant = target
        previous_config = current.get("EndpointConfigName")
        pending = (current.get("PendingDeploymentSummary") or {}).get("EndpointConfigName")
        alarm: str | None = None
        status = current.get("EndpointStatus")
        if previous_config == config_name:
            # a retry after the update finished: the config remembers what came before
            previous_config = self._recorded_previous(config_name)
            log.info("endpoint %s already serves %s; not updating it again", endpoint, config_name)
        elif pending == config_name:
            log.info("endpoint %s is already moving to %s; not updating it again", endpoint, config_name)
        elif status == "Failed":
            raise DeploymentFailed(
                f"SageMaker endpoint {endpoint} is Failed ({current.get('FailureReason', 'no reason given')}) "
                f"and cannot be updated; delete it (aws sagemaker delete-endpoint --endpoint-name {endpoint}) "
                "and run the deployment again"
            )
        elif status in _BUSY:
            raise RuntimeError(
                f"SageMaker endpoint {endpoint} is {status} (moving to {pending or 'another config'}); "
                "wait for that to finish, then retry this task"
            )
        else:
            alarm = self._put_alarm(endpoint)
            self._release_autoscaling(spec, endpoint, previous_config, variant)
            sm.update_endpoint(
                EndpointName=endpoint,
                EndpointConfigName=config_name,
                DeploymentConfig=self.deployment_config(spec, alarm),
            )
            log.info(
                "updating SageMaker endpoint %s: %s -> %s (%s)",
                endpoint,
                previous_config,
                config_name,
                spec.deployment.strategy,
            )
        if alarm is None and previous_config is not None:
            alarm = self.alarm_name(endpoint)
        return previous_config, alarm

    def status(self, deployment: Deployment) -> str:
        """``ready`` once the endpoint is InService on the new config, ``updating`` before that.

        Raises :class:`DeploymentFailed` when SageMaker reports a failure or a rollback, or when
        the endpoint is InService on another config (SageMaker rolled the update back).
        """
        if deployment.extra.get("experiment"):  # deployment.shadow: the inference experiment's state
            return self.experiment_status(deployment)
        described = self._describe(deployment.endpoint)
        if described is None:
            raise DeploymentFailed(
                f"SageMaker endpoint {deployment.endpoint} does not exist (deleted while deploying "
                f"v{deployment.version}?); run the deployment again"
            )
        status = str(described.get("EndpointStatus"))
        reason = described.get("FailureReason") or "no reason given"
        if status == "InService":
            self._check_serving(deployment, described)
            return READY
        if status in {"Creating", "Updating", "SystemUpdating"}:
            return UPDATING
        if status in _FAILED:
            raise DeploymentFailed(
                f"SageMaker endpoint {deployment.endpoint} is {status} while deploying "
                f"{deployment.extra.get('endpoint_config')}: {reason}"
            )
        raise DeploymentFailed(f"SageMaker endpoint {deployment.endpoint} has unknown status {status!r}")

    def _check_serving(self, deployment: Deployment, described: dict[str, Any]) -> None:
        want = deployment.extra.get("endpoint_config")
        serving = described.get("EndpointConfigName")
        if serving != want:
            raise DeploymentFailed(
                f"SageMaker rolled the endpoint back (alarm {deployment.extra.get('alarm') or 'none'} fired "
                f"or the update failed): {deployment.endpoint} serves {serving}, not {want} "
                f"(v{deployment.version}); see the endpoint's events and the alarm's history"
            )

    def predict(self, deployment: Deployment, features: pd.DataFrame) -> np.ndarray:
        """Score ``features`` through the endpoint in MLflow's scoring format (``dataframe_split``)."""
        import numpy as np

        runtime = self.clients("sagemaker-runtime")
        out: list[Any] = []
        for start in range(0, max(len(features), 1), ROWS_PER_REQUEST):
            chunk = features.iloc[start : start + ROWS_PER_REQUEST]
            split = chunk.to_dict(orient="split", index=False)
            split["data"] = [[_json_value(v) for v in row] for row in split["data"]]
            body = json.dumps({"dataframe_split": split})
            response = runtime.invoke_endpoint(
                EndpointName=deployment.endpoint,
                ContentType="application/json",
                Accept="application/json",
                Body=body,
            )
            raw = response["Body"].read()
            parsed = json.loads(raw)
            predictions = parsed.get("predictions") if isinstance(parsed, dict) else parsed
            if not isinstance(predictions, list):
                raise DeploymentFailed(
                    f"SageMaker endpoint {deployment.endpoint} answered {raw[:200]!r}; expected "
                    '{"predictions": [...]} (is the serving image MLflow\'s?)'
                )
            out.extend(predictions)
        return np.asarray(out)

    def promote(self, spec: PipelineSpec, deployment: Deployment) -> Deployment:
        """SageMaker already shifted the traffic: check it kept the new config, then move ``champion``."""
        if deployment.extra.get("promoting"):  # a shadow the verdict promoted
            return self.promote_experiment(spec, deployment)
        described = self._describe(deployment.endpoint) or {}
        self._check_serving(deployment, described)
        self.apply_autoscaling(spec, deployment.endpoint)  # before champion moves: all of the spec or none
        registry.promote(deployment.model_name, deployment.version)
        log.info("SageMaker endpoint %s serves v%s; champion moved", deployment.endpoint, deployment.version)
        return replace(deployment, state=READY)

    def rollback(self, spec: PipelineSpec, deployment: Deployment) -> None:
        """Send the endpoint back to the previous config (or delete it on a first deploy); restore aliases.

        The previous config and model are never deleted; the new ones are kept too, so a rerun of
        the same version reuses them.
        """
        endpoint = deployment.endpoint
        previous = deployment.extra.get("previous_endpoint_config")
        sm = self.clients("sagemaker")
        described = self._describe(endpoint)
        if described is None:
            log.info("SageMaker endpoint %s does not exist; nothing to roll back", endpoint)
        elif previous is None:
            sm.delete_endpoint(EndpointName=endpoint)
            log.warning("deleted SageMaker endpoint %s (first deploy of %s failed)", endpoint, spec.name)
        elif described.get("EndpointStatus") == "RollingBack" or (
            described.get("EndpointConfigName") == previous and not described.get("PendingDeploymentSummary")
        ):
            log.info("SageMaker endpoint %s is back (or going back) on %s by itself", endpoint, previous)
        elif described.get("EndpointStatus") in _BUSY:
            raise RuntimeError(
                f"SageMaker endpoint {endpoint} is {described.get('EndpointStatus')} and cannot be sent back "
                f"to {previous} now; retry this task once the update has finished"
            )
        else:
            sm.update_endpoint(
                EndpointName=endpoint,
                EndpointConfigName=previous,
                RetainDeploymentConfig=False,
                DeploymentConfig={
                    "BlueGreenUpdatePolicy": {
                        "TrafficRoutingConfiguration": {"Type": "ALL_AT_ONCE", "WaitIntervalInSeconds": 0},
                        "TerminationWaitInSeconds": 0,
                        "MaximumExecutionTimeoutInSeconds": 1800,
                    }
                },
            )
            log.warning("rolling SageMaker endpoint %s back to %s", endpoint, previous)
        registry.restore(deployment.model_name, deployment.version, deployment.previous_version)


def _captured(root: str, endpoint: str, variant: str, ds: str) -> list[tuple[str, list[Any], list[Any]]]:
    """(request body, its rows, the answer's predictions) of each request ``variant`` answered on day
    ``ds``, from SageMaker's capture files ``<root>/<endpoint>/<variant>/YYYY/MM/DD/HH/*.jsonl``."""
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


def _pair(
    served: list[tuple[str, list[Any], list[Any]]], mirrored: list[tuple[str, list[Any], list[Any]]]
) -> list[tuple[list[Any], list[Any], list[Any]]]:
    """(rows, the champion's predictions, the shadow's) of each request both answered: matched by the
    request body, in capture order among equal bodies; a request the shadow missed is left out."""
    waiting: dict[str, list[list[Any]]] = {}
    for body, _, predictions in mirrored:
        waiting.setdefault(body, []).append(predictions)
    pairs = []
    for body, rows, predictions in served:
        if waiting.get(body):
            theirs = waiting[body].pop(0)
            if len(theirs) == len(predictions) == len(rows):
                pairs.append((rows, predictions, theirs))
    return pairs


def _write_traffic(
    spec: PipelineSpec,
    lake_root: str,
    ds: str,
    pairs: list[tuple[list[Any], list[Any], list[Any]]],
    versions: tuple[str, str],
    compare_shadow: Any,
) -> None:
    """Both answers as the sibling partitions :func:`mlops_core.monitor.shadow.collect` pairs (row keys:
    :func:`mlops_core.scoring.row_keys` of the request's rows, so labels join as on batch scoring)."""
    import pandas as pd

    from mlops_core import scoring
    from mlops_core.data import storage

    champion, shadow = versions
    rows = pd.DataFrame([r for p in pairs for r in p[0]])
    keys = pd.DataFrame({"row_key": scoring.row_keys(rows)})
    served = keys.assign(prediction=[v for p in pairs for v in p[1]], model_version=champion)
    written = storage.write_partition(
        {"data": served}, lake_root, spec.name, compare_shadow.TRAFFIC, ds, extra={"model_version": champion}
    )
    side = keys.assign(prediction=[v for p in pairs for v in p[2]], model_version=shadow)
    storage.write_partition(
        {"data": side},
        lake_root,
        spec.name,
        compare_shadow.TRAFFIC_STAGE,
        ds,
        extra={
            "shadow_version": shadow,
            "champion_version": champion,
            "served_uri": written.uri,
            "served_version": written.version,
        },
    )
    log.info(
        "%d mirrored row(s) of %s answered by v%s and v%s on %s", len(rows), spec.name, champion, shadow, ds
    )
