"""A deferrable operator running an Azure ML command job.

Built to the standard of the Amazon provider's ``SageMakerTrainingOperator``: create-or-attach by
job name, ``deferrable`` defaulting to ``[operators] default_deferrable``, polling in the
triggerer (:class:`~mlops_airflow.triggers.azureml.AzureMLJobTrigger`), ``execute_complete``
failing with the platform's message. The connection is the ``azure_ml`` one of
:class:`~mlops_airflow.hooks.azureml.AzureMLHook`. With the OpenLineage provider, its events name
the job's declared inputs and outputs (those with a ``uri``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, conf
from airflow.sdk.exceptions import AirflowException

from mlops_airflow.hooks.azureml import AzureMLHook
from mlops_airflow.triggers.azureml import AzureMLJobTrigger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context


class AzureMLCommandJobOperator(BaseOperator):
    """Run an Azure ML command job and wait for it (deferrable).

    The job is PUT under ``job_name`` unless a job of that name exists, in which case the task
    attaches to it: a retried or resumed task never starts a second job. Returns
    ``{"job_name", "status"}``.

    :param job_name: the Azure ML job name (templated); choose it per run and try, e.g.
        ``"train-{{ ds_nodash }}-t{{ ti.try_number }}"``.
    :param body: the job resource (``{"properties": {"jobType": "Command", ...}}``; templated);
        see :func:`mlops_core.clouds.azure.client.command_job_body`.
    :param azure_ml_conn_id: the ``azure_ml`` connection.
    :param subscription_id/resource_group/workspace: override the connection's extras.
    :param wait_for_completion: wait until the job ends (else return once it is submitted).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poke_interval: seconds between status polls.
    :param max_attempts: polls before giving up.
    """

    template_fields: Sequence[str] = ("job_name", "body")
    template_fields_renderers = {"body": "json"}
    ui_color = "#0078d4"

    def __init__(
        self,
        *,
        job_name: str,
        body: dict[str, Any],
        azure_ml_conn_id: str = AzureMLHook.default_conn_name,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        workspace: str | None = None,
        api_root: str | None = None,
        wait_for_completion: bool = True,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 30.0,
        max_attempts: int = 480,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_name, self.body, self.azure_ml_conn_id = job_name, body, azure_ml_conn_id
        self.subscription_id, self.resource_group, self.workspace = subscription_id, resource_group, workspace
        self.api_root = api_root
        self.wait_for_completion, self.deferrable = wait_for_completion, deferrable
        self.poke_interval, self.max_attempts = poke_interval, max_attempts

    @property
    def hook(self) -> AzureMLHook:
        return AzureMLHook(
            self.azure_ml_conn_id,
            subscription_id=self.subscription_id,
            resource_group=self.resource_group,
            workspace=self.workspace,
            api_root=self.api_root,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core.clouds.azure.client import job_state_of
        from mlops_core.model.remote import SUCCEEDED, RemoteJobFailed

        client = self.hook.get_client()
        job = client.submit_job(self.job_name, self.body)
        self.log.info(
            "Azure ML job %s: %s", self.job_name, job.get("properties", {}).get("status", "submitted")
        )
        if not self.wait_for_completion:
            return {"job_name": self.job_name, "status": "submitted"}
        try:
            if job_state_of(self.job_name, job) == SUCCEEDED:
                return {"job_name": self.job_name, "status": "Completed"}
            if self.deferrable:
                self.defer(
                    trigger=AzureMLJobTrigger(
                        job_name=self.job_name,
                        azure_ml_conn_id=self.azure_ml_conn_id,
                        poke_interval=self.poke_interval,
                        max_attempts=self.max_attempts,
                        subscription_id=self.subscription_id,
                        resource_group=self.resource_group,
                        workspace=self.workspace,
                        api_root=self.api_root,
                    ),
                    method_name="execute_complete",
                )
            for _ in range(self.max_attempts):
                time.sleep(self.poke_interval)
                if client.job_state(self.job_name) == SUCCEEDED:
                    return {"job_name": self.job_name, "status": "Completed"}
        except RemoteJobFailed as exc:
            raise AirflowException(str(exc)) from None
        raise AirflowException(
            f"Azure ML job {self.job_name} still running after {self.max_attempts} polls; "
            "raise max_attempts or use deferrable=True"
        )

    # --- OpenLineage (docs/lineage.md): the data the job resource declares, for every event ------

    def get_openlineage_facets_on_start(self) -> Any:
        from mlops_airflow import lineage

        return lineage.operator_lineage(*lineage.job_datasets(self.body))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        return self.get_openlineage_facets_on_start()

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """Resume after the trigger: fail with the platform's message, or return the job's result."""
        if event is None:
            raise AirflowException(f"the trigger of Azure ML job {self.job_name} returned no event")
        if event.get("status") != "success":
            raise AirflowException(str(event.get("message") or f"Azure ML job failed: {event}"))
        self.log.info("Azure ML job %s completed", event.get("job_name"))
        return {"job_name": event.get("job_name", self.job_name), "status": "Completed"}
