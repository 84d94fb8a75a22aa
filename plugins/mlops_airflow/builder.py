"""YAML spec -> Airflow DAGs. Cheap: imports the SDK and the spec only (no pandas, sklearn, mlflow...)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Param, chain

from mlops_airflow.operators import (
    BatchScoreOperator,
    DeployOperator,
    EvaluateOperator,
    GateOperator,
    IngestOperator,
    RegisterOperator,
    SmokeTestOperator,
    TrainOperator,
    ValidateOperator,
)
from mlops_core.catalog import METRICS

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec

PARTITION = "{{ params.partition_date or ds }}"


def _default_args(spec: PipelineSpec) -> dict[str, Any]:
    return {
        "owner": spec.owner,
        "retries": spec.retries,
        "retry_delay": timedelta(minutes=spec.retry_delay_minutes),
    }


def _start(spec: PipelineSpec) -> datetime:
    return datetime(spec.start_date.year, spec.start_date.month, spec.start_date.day, tzinfo=UTC)


def _partition_param() -> Param:
    return Param(
        None,
        type=["null", "string"],
        format="date",
        title="Partition date",
        description="Use the data of this date (YYYY-MM-DD) instead of the run's logical date.",
    )


def training_params() -> dict[str, Param]:
    """The trigger form of every ``<name>_training`` DAG."""
    return {
        "force_promote": Param(
            False,
            type="boolean",
            title="Force promote",
            description="Promote the challenger even if the gate rejects it. Requires a reason; recorded on the model version.",
        ),
        "reason": Param(
            "",
            type="string",
            title="Reason",
            maxLength=500,
            description="Why the override (required with force_promote).",
        ),
        "partition_date": _partition_param(),
    }


def doc_md(spec: PipelineSpec) -> str:
    """Human documentation of a pipeline, shown on the DAG's page in the UI."""
    ev = spec.evaluation
    floors = (
        ", ".join(
            f"`{k}` {'>=' if METRICS[k].higher_is_better else '<='} {v:g}" for k, v in ev.floors.items()
        )
        or "none"
    )
    expectations = (
        "\n".join(f"- `{e.type}` {dict(e.kwargs)}" for e in spec.expectations) or "- (structural checks only)"
    )
    src = spec.source
    return f"""
### {spec.name}

{spec.description or ""}

| | |
|---|---|
| owner | {spec.owner} |
| problem | {spec.problem_type}, target `{spec.target}` |
| source | `{src.uri}` ({src.format}, partition mode `{src.partition.mode}`, lookback {src.partition.lookback_days} d) |
| model | `{spec.model.family}` {dict(spec.model.params)} seed {spec.model.seed} |
| gate | primary `{ev.primary_metric}`; floors: {floors}; challenger must beat the champion: lower end of the {ev.bootstrap.confidence:.0%} paired-bootstrap interval > {ev.min_improvement:g} |
| deployment | `{spec.deployment.target}` ({spec.deployment.strategy}); smoke test on {spec.deployment.smoke_rows} held-out rows |

**Expectations (Great Expectations)**

{expectations}

**Flow**: ingest -> validate -> train -> evaluate -> gate -> register -> deploy -> smoke_test.
A rejected challenger skips register/deploy; the run stays green and the reasons are in the gate task's log and XCom.

**Trigger**: UI "Trigger" (form: force_promote, reason, partition_date) or
`airflow dags trigger {spec.name}_training -c '{{"partition_date": "2026-01-31"}}'`.
"""


def build_training_dag(spec: PipelineSpec, *, fileloc: str | None = None) -> DAG:
    """``<name>_training``: ingest -> validate -> train -> evaluate -> gate -> register -> deploy -> smoke_test."""
    with DAG(
        dag_id=f"{spec.name}_training",
        description=(spec.description or f"Train and promote {spec.name}")[:200],
        schedule=spec.schedule,
        start_date=_start(spec),
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(spec),
        params=training_params(),
        tags=spec.tag_list() + ["training"],
        doc_md=doc_md(spec),
        render_template_as_native_obj=True,
    ) as dag:
        ingest = IngestOperator(task_id="ingest", partition_date=PARTITION, pipeline=spec)
        validate = ValidateOperator(
            task_id="validate", data=ingest.output, partition_date=PARTITION, pipeline=spec
        )
        train = TrainOperator(task_id="train", data=ingest.output, partition_date=PARTITION, pipeline=spec)
        evaluate = EvaluateOperator(
            task_id="evaluate", trained=train.output, partition_date=PARTITION, pipeline=spec
        )
        gate = GateOperator(
            task_id="gate",
            trained=train.output,
            evaluation=evaluate.output,
            force_promote="{{ params.force_promote }}",
            reason="{{ params.reason }}",
            retries=0,
            pipeline=spec,
        )
        register = RegisterOperator(
            task_id="register", trained=train.output, decision=gate.output, pipeline=spec
        )
        deploy = DeployOperator(task_id="deploy", registered=register.output, pipeline=spec)
        smoke = SmokeTestOperator(
            task_id="smoke_test",
            deployment=deploy.output,
            trained=train.output,
            evaluation=evaluate.output,
            pipeline=spec,
        )
        chain(ingest, validate, train, evaluate, gate, register, deploy, smoke)
    if fileloc:
        dag.fileloc = fileloc
    return dag


def build_batch_scoring_dag(spec: PipelineSpec, *, fileloc: str | None = None) -> DAG:
    """``<name>_batch_scoring``: ingest the scoring window -> validate features -> score with the champion."""
    with DAG(
        dag_id=f"{spec.name}_batch_scoring",
        description=f"Score {spec.name} data with the champion model",
        schedule=spec.scoring.schedule,
        start_date=_start(spec),
        catchup=False,
        max_active_runs=1,
        default_args=_default_args(spec),
        params={"partition_date": _partition_param()},
        tags=spec.tag_list() + ["scoring"],
        doc_md=f"Scores `{spec.name}` rows of the last {spec.scoring.lookback_days} day(s) with `models:/{spec.name}@champion`; "
        f"writes `<lake>/{spec.name}/predictions/ds=<date>/` with the model version in every row.",
        render_template_as_native_obj=True,
    ) as dag:
        ingest = IngestOperator(
            task_id="ingest",
            stage="batch",
            lookback_days=spec.scoring.lookback_days,
            pipeline=spec,
            partition_date=PARTITION,
        )
        validate = ValidateOperator(
            task_id="validate",
            data=ingest.output,
            with_target=False,
            stage="batch_validation",
            pipeline=spec,
            partition_date=PARTITION,
        )
        score = BatchScoreOperator(
            task_id="score", data=ingest.output, pipeline=spec, partition_date=PARTITION
        )
        chain(ingest, validate, score)
    if fileloc:
        dag.fileloc = fileloc
    return dag


def build_dags(spec: PipelineSpec) -> list[DAG]:
    return [build_training_dag(spec), build_batch_scoring_dag(spec)]
