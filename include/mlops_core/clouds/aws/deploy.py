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
``<lake>/<name>/capture/``. The verdict reads a day's capture back (:mod:`mlops_core.clouds.aws.shadow`)
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

from mlops_core.clouds.aws import shadow as shadow_mode
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


class SageMakerTarget(EndpointTarget):
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

    # -- deployment.shadow: a shadow-mode inference experiment (mlops_core.clouds.aws.shadow) ------

    mirrors_traffic = True
    already_exists = staticmethod(_is_existing)

    def now(self) -> Any:
        """The clock the experiment's schedule starts from (a contract test pins it)."""
        from datetime import UTC, datetime

        return datetime.now(UTC)

    def deploy_shadow(self, spec: PipelineSpec, version: str, champion: str) -> Deployment:
        return shadow_mode.start(self, spec, version, champion)

    def rollback_shadow(self, spec: PipelineSpec, deployment: Deployment) -> None:
        shadow_mode.take_out(self, spec, deployment)

    def shadow_traffic(self, spec: PipelineSpec, ds: str) -> list[shadow_mode.Pair]:
        return shadow_mode.traffic(self, spec, ds)

    def promote_shadow(self, spec: PipelineSpec, version: str, champion: str) -> Deployment:
        return shadow_mode.stop(self, spec, version, champion, promote=True)

    def reject_shadow(self, spec: PipelineSpec, version: str, champion: str) -> None:
        shadow_mode.stop(self, spec, version, champion, promote=False)

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
            return shadow_mode.status(self, deployment)
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
            return shadow_mode.promote(self, deployment)
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
