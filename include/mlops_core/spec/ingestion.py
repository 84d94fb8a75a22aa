"""The ``ingestion`` section: a managed job (AWS Glue, Dataflow, Azure Data Factory) that lands
the day's data before ``ingest`` reads it."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from mlops_core.spec.common import SpecModel

_JOB_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,254}$"
_JOB_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,127}$")
JobParameter = Annotated[str, Field(max_length=2048)] | int | float | bool
IngestionDag = Literal["training", "batch_scoring", "monitoring"]
INGESTION_DAGS: tuple[IngestionDag, ...] = ("training", "batch_scoring", "monitoring")


def _check_job_parameters(value: dict[str, Any]) -> dict[str, Any]:
    """Names a job can take; values are data (``{ds}`` is the only placeholder), never templates."""
    if len(value) > 50:
        raise ValueError(f"at most 50 parameters (got {len(value)})")
    for name, item in value.items():
        if not _JOB_PARAM.match(name.removeprefix("--")):
            raise ValueError(f"parameter name {name!r} is not a plain identifier (letters, digits, _ . -)")
        if isinstance(item, str) and ("{{" in item or "{%" in item):
            raise ValueError(
                f"parameter {name!r}: Jinja markup is not evaluated in a pipeline YAML; use {{ds}} for the data day"
            )
    return value


class GlueIngestion(SpecModel):
    """An AWS Glue job (defined beforehand, by Terraform, CDK or the console), run once per data day
    through the amazon provider's ``GlueJobOperator`` (deferrable and durable: a retry attaches to
    the run its first try started). ``arguments`` become the run's ``--name`` arguments."""

    job_name: str = Field(pattern=_JOB_NAME)
    arguments: dict[str, JobParameter] = {}
    conn_id: str | None = Field(None, min_length=1, max_length=250)  # default: the cloud profile's
    region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")

    _params = field_validator("arguments")(classmethod(lambda cls, v: _check_job_parameters(v)))


class DataflowIngestion(SpecModel):
    """A Dataflow flex template (a Beam pipeline packaged as a container) launched once per data day
    through the google provider's ``DataflowStartFlexTemplateOperator`` (deferrable). The job is
    named after the pipeline, the day and the Airflow run, so a retry finds the job its first try
    launched instead of starting a second one."""

    template: str = Field(max_length=1024)  # the flex template's spec file: containerSpecGcsPath
    parameters: dict[str, JobParameter] = {}
    location: str = Field("us-central1", pattern=r"^[a-z]+-[a-z]+\d+$")
    project_id: str | None = Field(None, pattern=r"^[a-z][a-z0-9\-]{4,28}[a-z0-9]$")
    conn_id: str | None = Field(None, min_length=1, max_length=250)  # default: the cloud profile's
    max_workers: int | None = Field(None, ge=1, le=1000)
    service_account_email: str | None = Field(
        None, pattern=r"^[^@\s]+@[a-z0-9\-]+\.iam\.gserviceaccount\.com$"
    )

    _params = field_validator("parameters")(classmethod(lambda cls, v: _check_job_parameters(v)))

    @field_validator("template")
    @classmethod
    def _template(cls, value: str) -> str:
        if not re.match(r"^gs://[a-z0-9][a-z0-9._\-]{1,221}[a-z0-9]/[^\s]+\.json$", value) or ".." in value:
            raise ValueError(
                "template is the flex template's spec file in Cloud Storage, e.g. "
                "gs://my-bucket/templates/export.json (built by `gcloud dataflow flex-template build`)"
            )
        return value


class DataFactoryIngestion(SpecModel):
    """An Azure Data Factory pipeline run once per data day through the microsoft-azure provider's
    ``AzureDataFactoryRunPipelineOperator`` (deferrable). The pipeline must declare two string
    parameters: the data day (``ds_parameter``) and ``mlops_run_key``, by which a retry finds the
    run its first try started."""

    pipeline_name: str = Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_\-. ]{0,259}$")
    resource_group_name: str = Field(pattern=r"^[A-Za-z0-9_\-.()]{1,90}$")
    factory_name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9\-]{1,61}[A-Za-z0-9]$")
    parameters: dict[str, JobParameter] = {}
    conn_id: str = Field("azure_data_factory_default", min_length=1, max_length=250)

    _params = field_validator("parameters")(classmethod(lambda cls, v: _check_job_parameters(v)))


class IngestionSpec(SpecModel):
    """A managed job that lands the day's data before ``ingest`` reads it: exactly one of ``glue``,
    ``dataflow`` or ``data_factory``. The job gets the data day as parameter ``ds_parameter``
    (Glue: ``--<ds_parameter>``), and ``{ds}`` in any parameter value is replaced by it; it must
    write where ``source.uri`` reads (typically ``partition.mode: files`` with ``{ds}`` in the URI).
    ``dags``: which of the pipeline's DAGs run it before their ``ingest``."""

    glue: GlueIngestion | None = None
    dataflow: DataflowIngestion | None = None
    data_factory: DataFactoryIngestion | None = None
    ds_parameter: str = Field("ds", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
    timeout_minutes: int = Field(120, ge=1, le=2 * 24 * 60)
    poll_seconds: int = Field(60, ge=5, le=3600)
    dags: list[IngestionDag] = Field(list(INGESTION_DAGS), min_length=1, max_length=3)

    @model_validator(mode="after")
    def _exactly_one(self) -> IngestionSpec:
        given = [k for k in ("glue", "dataflow", "data_factory") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                f"exactly one of glue, dataflow or data_factory is needed (got {', '.join(given) or 'none'})"
            )
        job = getattr(self, given[0])
        params = job.arguments if given[0] == "glue" else job.parameters
        reserved = {self.ds_parameter, "mlops_run_key", "airflow_task_uuid"}
        clash = sorted(n for n in params if n.removeprefix("--") in reserved)
        if clash:
            raise ValueError(
                f"ingestion.{given[0]}: {clash} are set by the package (the data day is "
                f"{self.ds_parameter!r}, the run key 'mlops_run_key'); remove them"
            )
        return self

    @property
    def kind(self) -> str:
        return next(k for k in ("glue", "dataflow", "data_factory") if getattr(self, k) is not None)
