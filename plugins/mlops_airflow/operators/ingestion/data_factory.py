"""``ingestion.data_factory``: the day's Azure Data Factory pipeline run through the microsoft-azure
provider's ``AzureDataFactoryRunPipelineOperator``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.microsoft.azure.operators.data_factory import AzureDataFactoryRunPipelineOperator

from mlops_airflow.operators.base import MlopsStep, in_cloud_profile
from mlops_airflow.operators.ingestion import job_inputs, landed, load

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from mlops_airflow.operators.base import Datasets
    from mlops_core.spec import PipelineSpec


class DataFactoryIngestionOperator(MlopsStep, AzureDataFactoryRunPipelineOperator):
    """Run the spec's Azure Data Factory pipeline for the data day (deferrable); a retry finds the run
    its first try started by the ``mlops_run_key`` parameter and waits for that one.

    :param pipeline: the spec, or the path of its YAML.
    :param partition_date: the data day (``YYYY-MM-DD``, templated); default the run's.
    """

    template_fields: Sequence[str] = (*AzureDataFactoryRunPipelineOperator.template_fields, "partition_date")
    ALIVE = frozenset({"Queued", "InProgress", "Succeeded"})
    LOOK_BACK = timedelta(days=7)  # how far back a retry looks for its first try's run

    def __init__(self, *, pipeline: PipelineSpec | str, partition_date: str | None = None, **kwargs: Any):
        spec, ing = load(pipeline, "data_factory")
        adf = ing.data_factory
        assert adf is not None  # load() checked the kind
        kwargs.setdefault("execution_timeout", timedelta(minutes=ing.timeout_minutes + 10))
        super().__init__(
            pipeline_name=adf.pipeline_name,
            resource_group_name=adf.resource_group_name,
            factory_name=adf.factory_name,
            azure_data_factory_conn_id=adf.conn_id,
            deferrable=True,
            timeout=ing.timeout_minutes * 60,
            check_interval=ing.poll_seconds,
            **kwargs,
        )
        self.pipeline, self.partition_date = pipeline, partition_date

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """OpenLineage: the day's source file the job lands (:func:`~mlops_airflow.operators.ingestion.landed`)."""
        return landed(self, context)

    @in_cloud_profile
    def execute(self, context: Context) -> None:
        day, self.parameters = job_inputs(self, context)
        existing = self._existing_run(str(self.parameters["mlops_run_key"]))
        if existing is None:
            self.log.info("Data Factory pipeline %s for %s", self.pipeline_name, day)
            return super().execute(context)
        return self._attach(context, existing)

    def _existing_run(self, key: str) -> Any:
        """The run this task already started (found by its ``mlops_run_key``), unless it failed."""
        from azure.mgmt.datafactory.models import RunFilterParameters, RunQueryFilter

        now = datetime.now(UTC)
        query = RunFilterParameters(
            last_updated_after=now - self.LOOK_BACK,
            last_updated_before=now + timedelta(hours=1),
            filters=[
                RunQueryFilter(
                    operand="PipelineName", operator="Equals", values_property=[self.pipeline_name]
                )
            ],
        )
        runs = self.hook.get_conn().pipeline_runs
        for _ in range(20):  # pages of up to 100 runs
            page = runs.query_by_factory(self.resource_group_name, self.factory_name, query)
            for run in page.value or []:
                if (run.parameters or {}).get("mlops_run_key") == key and run.status in self.ALIVE:
                    return run
            if not page.continuation_token:
                return None
            query.continuation_token = page.continuation_token
        return None

    def _attach(self, context: Context, run: Any) -> None:
        from airflow.providers.microsoft.azure.triggers.data_factory import AzureDataFactoryTrigger

        self.run_id = run.run_id
        context["ti"].xcom_push(key="run_id", value=self.run_id)
        self.log.info("Data Factory run %s (%s) was started by an earlier try", self.run_id, run.status)
        if run.status == "Succeeded":
            return
        self.defer(
            timeout=self.execution_timeout,
            trigger=AzureDataFactoryTrigger(
                azure_data_factory_conn_id=self.azure_data_factory_conn_id,
                run_id=self.run_id,
                wait_for_termination=True,
                resource_group_name=self.resource_group_name,
                factory_name=self.factory_name,
                check_interval=self.check_interval,
                end_time=datetime.now(UTC).timestamp() + self.timeout,
            ),
            method_name="execute_complete",
        )
