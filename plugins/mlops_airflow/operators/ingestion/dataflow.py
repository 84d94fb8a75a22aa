"""``ingestion.dataflow``: the day's Dataflow flex template through the google provider's
``DataflowStartFlexTemplateOperator``."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.google.cloud.operators.dataflow import DataflowStartFlexTemplateOperator

from mlops_airflow.operators.base import MlopsStep, in_cloud_profile
from mlops_airflow.operators.ingestion import job_inputs, landed, load

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from mlops_airflow.operators.base import Datasets
    from mlops_core.spec import PipelineSpec


class DataflowIngestionOperator(MlopsStep, DataflowStartFlexTemplateOperator):
    """Launch the spec's Dataflow flex template for the data day (deferrable); a retry finds the job
    its first try launched by its name (pipeline, day, Airflow run) and waits for that one.

    :param pipeline: the spec, or the path of its YAML.
    :param partition_date: the data day (``YYYY-MM-DD``, templated); default the run's.
    """

    template_fields: Sequence[str] = (*DataflowStartFlexTemplateOperator.template_fields, "partition_date")
    # states of a job that will not produce the day's data: launch a new one
    DEAD = frozenset({"JOB_STATE_FAILED", "JOB_STATE_CANCELLED", "JOB_STATE_CANCELLING", "JOB_STATE_DRAINED"})

    def __init__(self, *, pipeline: PipelineSpec | str, partition_date: str | None = None, **kwargs: Any):
        spec, ing = load(pipeline, "dataflow")
        flow = ing.dataflow
        assert flow is not None  # load() checked the kind
        if flow.project_id:  # else the connection's project (the provider's default)
            kwargs["project_id"] = flow.project_id
        kwargs.setdefault("execution_timeout", timedelta(minutes=ing.timeout_minutes + 10))
        super().__init__(
            body={},  # built in execute, from the run's data day
            location=flow.location,
            gcp_conn_id=flow.conn_id or "google_cloud_default",
            deferrable=True,
            append_job_name=False,
            cancel_on_kill=True,
            poll_sleep=ing.poll_seconds,
            **kwargs,
        )
        self.pipeline, self.partition_date = pipeline, partition_date
        self._conn_from_profile = flow.conn_id is None

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """OpenLineage: the day's source file the job lands (:func:`~mlops_airflow.operators.ingestion.landed`)."""
        return landed(self, context)

    @in_cloud_profile
    def execute(self, context: Context) -> Any:
        from mlops_core.data.ingestion import dataflow_job_name

        self._bind()
        day, parameters = job_inputs(self, context)
        ti = context["ti"]
        name = dataflow_job_name(self.spec, ti.dag_id, ti.run_id, day)
        existing = self._existing_job(name)
        if existing is not None:
            return self._attach(context, existing)
        flow = self.spec.ingestion.dataflow  # type: ignore[union-attr]
        assert flow is not None
        environment = {
            k: v
            for k, v in {
                "maxWorkers": flow.max_workers,
                "serviceAccountEmail": flow.service_account_email,
            }.items()
            if v is not None
        }
        self.body = {
            "launchParameter": {
                "jobName": name,
                "containerSpecGcsPath": flow.template,
                "parameters": parameters,
                **({"environment": environment} if environment else {}),
            }
        }
        self.log.info("Dataflow job %s for %s with parameters %s", name, day, sorted(parameters))
        return super().execute(context)

    def _bind(self) -> None:
        """The connection and project the job lives in: the YAML's, else the cloud profile's, else the
        connection's. Both ``execute`` and ``execute_complete`` (a new process after the deferral)
        need them."""
        if self._conn_from_profile and self.profile.conn_id:
            self.gcp_conn_id = self.profile.conn_id
        self.project_id = self.project_id or self.profile.settings.get("project") or self.hook.project_id

    @in_cloud_profile
    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, str]:
        self._bind()
        return super().execute_complete(context, event)

    def _existing_job(self, name: str) -> dict[str, Any] | None:
        """The job this task already launched under ``name``, unless it ended without the data."""
        jobs = (
            self.hook.get_conn()
            .projects()
            .locations()
            .jobs()
            .list(projectId=self.project_id, location=self.location, name=name, filter="ALL")
            .execute(num_retries=self.hook.num_retries)
        ).get("jobs", [])
        alive = [j for j in jobs if j.get("name") == name and j.get("currentState") not in self.DEAD]
        return alive[0] if alive else None

    def _attach(self, context: Context, job: dict[str, Any]) -> Any:
        from airflow.providers.google.cloud.triggers.dataflow import TemplateJobStartTrigger

        self.log.info(
            "Dataflow job %s (%s) was launched by an earlier try: waiting for it", job["name"], job["id"]
        )
        self.job = job
        context["task_instance"].xcom_push(key="job_id", value=job["id"])
        if job.get("currentState") == "JOB_STATE_DONE":
            return job
        self.defer(
            trigger=TemplateJobStartTrigger(
                project_id=self.project_id,
                job_id=job["id"],
                location=self.location,
                gcp_conn_id=self.gcp_conn_id,
                poll_sleep=self.poll_sleep,
                impersonation_chain=self.impersonation_chain,
                cancel_timeout=self.cancel_timeout,
                drain_pipeline=self.drain_pipeline,
                cancel_on_kill=self.cancel_on_kill,
            ),
            method_name="execute_complete",
        )
