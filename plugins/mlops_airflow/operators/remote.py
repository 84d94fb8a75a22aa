"""Start-or-attach and the trigger of a job on a cloud's ML service, shared by ``train`` and ``search``.

SageMaker through the amazon provider's ``SageMakerHook`` and ``SageMakerTrigger`` (what its
``SageMakerTrainingOperator`` and ``SageMakerTuningOperator`` use), Vertex AI through
:class:`~mlops_airflow.triggers.cloud.RemoteJobTrigger`, Azure ML through
:class:`~mlops_airflow.triggers.azureml.AzureMLJobTrigger`. Job names derive from pipeline, day, Airflow run
and try (:func:`mlops_core.model.remote.job_name`), so a resumed try attaches to the job it started.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_airflow.operators.base import MlopsStep

# a name SageMaker does not know: DescribeTrainingJob says ValidationException, DescribeHyperParameterTuningJob ResourceNotFound
_NOT_FOUND = ("ValidationException", "ResourceNotFound")


def _attempts(step: Any, timeout: float) -> int:
    return max(1, int(timeout // max(step.poll_seconds, 1)))


def sagemaker(step: MlopsStep, kind: str, name: str, config: dict[str, Any], timeout: float) -> Any:
    """Create the SageMaker ``kind`` job (``training`` or ``tuning``) ``name`` unless it exists; its trigger."""
    from airflow.providers.amazon.aws.hooks.sagemaker import SageMakerHook
    from airflow.providers.amazon.aws.triggers.sagemaker import SageMakerTrigger
    from botocore.exceptions import ClientError

    region = step.profile.settings.get("region")
    hook = SageMakerHook(aws_conn_id=step.profile.conn_id, region_name=region)
    describe = hook.describe_training_job if kind == "training" else hook.describe_tuning_job
    try:
        describe(name)
        step.log.info("SageMaker %s job %s exists (a resumed try): waiting for it", kind, name)  # type: ignore[attr-defined]
    except ClientError as err:
        if not str(err.response.get("Error", {}).get("Code", "")).startswith(_NOT_FOUND):
            raise
        if kind == "training":
            hook.create_training_job(config, wait_for_completion=False)
        else:
            # the hook's create_tuning_job first checks TrainingJobDefinition.InputDataConfig, which
            # a trial (it reads the lake itself) has none of: the same call, without that check
            hook.get_conn().create_hyper_parameter_tuning_job(**config)
    return SageMakerTrigger(
        job_name=name,
        job_type=kind,
        waiter_delay=int(step.poll_seconds),  # type: ignore[attr-defined]
        waiter_max_attempts=_attempts(step, timeout),
        aws_conn_id=step.profile.conn_id,
        region_name=region,
    )


def vertex(step: MlopsStep, handle: dict[str, Any], timeout: float) -> Any:
    """The trigger polling the Vertex AI job of ``handle`` (a custom or a tuning job)."""
    from mlops_airflow.triggers.cloud import RemoteJobTrigger

    return RemoteJobTrigger("gcp", handle, step.poll_seconds, timeout)  # type: ignore[attr-defined]


def azureml(step: MlopsStep, name: str, timeout: float) -> Any:
    """The trigger polling Azure ML job ``name`` in the profile's workspace (not the connection's extras)."""
    from mlops_airflow.triggers.azureml import AzureMLJobTrigger

    profile = step.profile
    return AzureMLJobTrigger(
        job_name=name,
        azure_ml_conn_id=profile.setting("ml_conn_id"),
        poke_interval=step.poll_seconds,  # type: ignore[attr-defined]
        max_attempts=_attempts(step, timeout),
        subscription_id=profile.setting("subscription_id"),
        resource_group=profile.setting("resource_group"),
        workspace=profile.setting("workspace"),
        api_root=profile.settings.get("api_endpoint") or None,
    )


def azureml_clients(step: MlopsStep) -> Any:
    from mlops_airflow.hooks.azureml import AzureMLHook

    return AzureMLHook(azure_ml_conn_id=step.profile.setting("ml_conn_id")).clients
