"""``ingestion.glue``: the day's AWS Glue job run through the amazon provider's ``GlueJobOperator``."""

from __future__ import annotations

import inspect
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.amazon.aws.operators.glue import GlueJobOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_airflow.operators.base import MlopsStep, in_cloud_profile
from mlops_airflow.operators.ingestion import job_inputs, landed, load

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from mlops_airflow.operators.base import Datasets
    from mlops_core.spec import PipelineSpec


def _reattach_on_retry() -> dict[str, Any]:
    """A retry attaches to the run its first try started: the provider's ``durable`` (amazon 9.35+),
    or before it ``resume_glue_job_on_retry`` (9.24+: the same ``--airflow_task_uuid`` scan)."""
    accepted = inspect.signature(GlueJobOperator.__init__).parameters
    return {"durable": True} if "durable" in accepted else {"resume_glue_job_on_retry": True}


class GlueIngestionOperator(MlopsStep, GlueJobOperator):
    """Run the spec's Glue job for the data day (``GlueJobOperator``, deferrable, durable).

    :param pipeline: the spec, or the path of its YAML.
    :param partition_date: the data day (``YYYY-MM-DD``, templated); default the run's.
    """

    template_fields: Sequence[str] = (*GlueJobOperator.template_fields, "partition_date")

    def __init__(self, *, pipeline: PipelineSpec | str, partition_date: str | None = None, **kwargs: Any):
        spec, ing = load(pipeline, "glue")
        glue = ing.glue
        assert glue is not None  # load() checked the kind
        kwargs.setdefault("execution_timeout", timedelta(minutes=ing.timeout_minutes + 10))
        super().__init__(
            job_name=glue.job_name,
            aws_conn_id=glue.conn_id or "aws_default",
            region_name=glue.region,
            deferrable=True,
            **_reattach_on_retry(),
            stop_job_run_on_kill=True,
            waiter_delay=ing.poll_seconds,
            waiter_max_attempts=max(1, ing.timeout_minutes * 60 // ing.poll_seconds),
            **kwargs,
        )
        self.pipeline, self.partition_date = pipeline, partition_date
        self._conn_from_profile = glue.conn_id is None

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """OpenLineage: the day's source file the job lands (:func:`~mlops_airflow.operators.ingestion.landed`)."""
        return landed(self, context)

    @in_cloud_profile
    def execute(self, context: Context) -> str | None:
        if self._conn_from_profile and self.profile.conn_id:
            self.aws_conn_id = self.profile.conn_id
        day, self.script_args = job_inputs(self, context)
        # The provider would create a missing job from script_location; this package only runs
        # jobs defined elsewhere (IaC), so a missing one is a configuration error, not a retry.
        if not self.hook.has_job(self.job_name):
            raise AirflowFailException(
                f"Glue job {self.job_name!r} does not exist in {self.hook.conn_region_name}: create it "
                "(Terraform, CDK or the console) or fix ingestion.glue.job_name"
            )
        self.log.info("Glue job %s for %s with arguments %s", self.job_name, day, sorted(self.script_args))
        return super().execute(context)
