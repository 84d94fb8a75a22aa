"""Managed ingestion: the providers' own operators run the day's Glue job, Dataflow flex template or
Azure Data Factory pipeline before ``ingest`` reads what it wrote.

Each operator (one module per provider: :mod:`.glue`, :mod:`.dataflow`, :mod:`.data_factory`, so a
pipeline imports only its own provider) is the provider's operator with three things added: the
job's parameters are computed when the task runs (the data day of
:func:`mlops_airflow.operators.base.data_day`, ``{ds}`` replaced, ``${MLOPS_*}`` expanded inside the
pipeline's cloud profile, never Jinja-rendered from the YAML), the connection defaults to the
cloud profile's, and a retry attaches to the job run its first try started instead of starting a
second one:

- Glue: the provider's ``durable`` mode (its ``--airflow_task_uuid`` argument, found again by a
  scan of ``GetJobRuns``);
- Dataflow: the job's name is derived from the pipeline, the day and the Airflow run, and looked
  up (``jobs.list?name=``) before a launch;
- Data Factory: the run carries the parameter ``mlops_run_key``, and ``queryPipelineRuns`` finds it.

All three defer (the providers' triggers wait in the triggerer, not in a worker slot).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from mlops_airflow.operators.base import Datasets, MlopsStep
    from mlops_core.spec import IngestionSpec, PipelineSpec

TASK_ID = "managed_ingestion"
_OPERATORS = {
    "glue": ("mlops_airflow.operators.ingestion.glue", "GlueIngestionOperator"),
    "dataflow": ("mlops_airflow.operators.ingestion.dataflow", "DataflowIngestionOperator"),
    "data_factory": ("mlops_airflow.operators.ingestion.data_factory", "DataFactoryIngestionOperator"),
}


def load(pipeline: PipelineSpec | str, kind: str) -> tuple[PipelineSpec, IngestionSpec]:
    """The spec and its ingestion section, which must be of ``kind``."""
    if isinstance(pipeline, str):
        from mlops_core.spec import load_spec

        spec = load_spec(pipeline)
    else:
        spec = pipeline
    if spec.ingestion is None:
        raise ValueError(f"pipeline {spec.name!r} has no ingestion: section")
    if spec.ingestion.kind != kind:
        raise ValueError(f"pipeline {spec.name!r}: ingestion is {spec.ingestion.kind}, not {kind}")
    return spec, spec.ingestion


def job_inputs(step: MlopsStep, context: Context) -> tuple[str, dict[str, Any]]:
    """The data day and the day's job parameters (run inside the cloud profile: roots expand to it)."""
    from mlops_core.data.ingestion import job_parameters, run_key

    ti = context["ti"]
    day = step.partition(context)
    assert step.spec.ingestion is not None
    return day, job_parameters(step.spec.ingestion, day, run_key(ti.dag_id, ti.run_id, day))


def landed(step: MlopsStep, context: Context) -> Datasets:
    """OpenLineage: what the job writes is what ``ingest`` reads for the day, the source file of the
    day (``files`` mode: the one with the day in its name), or the source URI. What the job itself
    reads is its own business (its script, its connections): no input is named."""
    from mlops_airflow import lineage
    from mlops_core.base import settings

    return [], lineage.source_datasets(step.spec, step.partition(context), settings.expand, lookback_days=1)


def managed_ingestion(spec: PipelineSpec, dag: str, **kwargs: Any) -> BaseOperator | None:
    """The ``managed_ingestion`` task of DAG kind ``dag`` (``training``, ``batch_scoring``,
    ``monitoring``), or None when the spec has none or does not run it there."""
    ing = spec.ingestion
    if ing is None or dag not in ing.dags:
        return None
    module, name = _OPERATORS[ing.kind]
    operator = getattr(import_module(module), name)
    return operator(task_id=TASK_ID, pipeline=spec, **kwargs)
