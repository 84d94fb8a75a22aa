"""Managed ingestion jobs (Glue, Dataflow, Data Factory): what each is asked to do for one data day.

Pure functions of the spec, the day and the Airflow run: the parameters a job gets, the name a
Dataflow job carries and the key an Azure Data Factory run is found by again. The Airflow layer
(:mod:`mlops_airflow.operators.ingestion`) hands them to the providers' operators.
"""

from __future__ import annotations

import hashlib
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mlops_core.spec import IngestionSpec, PipelineSpec


def _value(value: Any, ds: str) -> Any:
    """``${MLOPS_*}`` expanded (the profile's roots inside ``clouds.using``), ``{ds}`` replaced."""
    if not isinstance(value, str):
        return value
    from mlops_core.base.settings import expand

    return expand(value).replace("{ds}", ds)


def job_parameters(ingestion: IngestionSpec, ds: str, run_key: str) -> dict[str, Any]:
    """The parameters of the day's job run: the YAML's, the data day and (Data Factory) the run key.

    Glue takes ``--name`` strings; Dataflow's flex templates take strings; Data Factory takes the
    pipeline's declared types (its values are passed as written).
    """
    if ingestion.glue is not None:
        args = {
            (k if k.startswith("--") else f"--{k}"): str(_value(v, ds))
            for k, v in ingestion.glue.arguments.items()
        }
        return {**args, f"--{ingestion.ds_parameter}": ds}
    if ingestion.dataflow is not None:
        params = {k: str(_value(v, ds)) for k, v in ingestion.dataflow.parameters.items()}
        return {**params, ingestion.ds_parameter: ds}
    assert ingestion.data_factory is not None
    params = {k: _value(v, ds) for k, v in ingestion.data_factory.parameters.items()}
    return {**params, ingestion.ds_parameter: ds, "mlops_run_key": run_key}


def run_key(dag_id: str, run_id: str, ds: str) -> str:
    """What identifies the day's job across the tries of one Airflow task: the DAG, the run, the day."""
    return f"{dag_id}:{run_id}:{ds}"


def dataflow_job_name(spec: PipelineSpec, dag_id: str, run_id: str, ds: str) -> str:
    """``mlops-<name>-<ds>-<hash of dag and run>``: Dataflow's rules (lowercase, digits, ``-``), at
    most 63 characters, the same for every try of one task, different for every run."""
    digest = hashlib.sha256(run_key(dag_id, run_id, ds).encode()).hexdigest()[:10]
    base = re.sub(r"[^a-z0-9-]", "-", f"mlops-{spec.name}".lower())[:40].rstrip("-")
    return f"{base}-{ds.replace('-', '')}-{digest}"
