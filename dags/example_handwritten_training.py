"""A hand-written DAG built from the package's operators, without the YAML builder.

Shows that every step is a reusable operator: here the diabetes pipeline is trained monthly on a
30-day window with an extra reporting task, wired by hand. Nothing heavy is imported at parse time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.sdk import DAG, chain, task

from mlops_airflow.operators.data import IngestOperator, ValidateOperator
from mlops_airflow.operators.deploy import DeployOperator, SmokeTestOperator
from mlops_airflow.operators.model import EvaluateOperator, GateOperator, RegisterOperator, TrainOperator

PIPELINE = str(Path(__file__).parent / "pipelines" / "diabetes.yaml")

with DAG(
    dag_id="example_handwritten_diabetes",
    description="Hand-wired lifecycle of the diabetes pipeline (operators used directly)",
    schedule="@monthly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"owner": "ml-platform", "retries": 1, "retry_delay": timedelta(minutes=1)},
    tags=["mlops", "example", "handwritten"],
    doc_md=__doc__,
    render_template_as_native_obj=True,
):
    ingest = IngestOperator(task_id="ingest", pipeline=PIPELINE, lookback_days=30)
    validate = ValidateOperator(task_id="validate", pipeline=PIPELINE, data=ingest.output)
    train = TrainOperator(
        task_id="train", pipeline=PIPELINE, data=ingest.output, extra_tags={"trigger": "monthly"}
    )
    evaluate = EvaluateOperator(task_id="evaluate", pipeline=PIPELINE, trained=train.output)
    gate = GateOperator(
        task_id="gate", pipeline=PIPELINE, trained=train.output, evaluation=evaluate.output, retries=0
    )
    register = RegisterOperator(
        task_id="register", pipeline=PIPELINE, trained=train.output, decision=gate.output
    )
    # The gate's decision goes to deploy too: a rejection skips it early. Deploy re-reads the
    # decision recorded on the registered version anyway and never ships one the gate rejected.
    deploy = DeployOperator(
        task_id="deploy", pipeline=PIPELINE, registered=register.output, decision=gate.output
    )
    smoke = SmokeTestOperator(
        task_id="smoke_test",
        pipeline=PIPELINE,
        deployment=deploy.output,
        trained=train.output,
        evaluation=evaluate.output,
    )

    @task
    def report(decision: dict[str, Any]) -> str:
        """A custom step between the package's operators: summarise the gate decision."""
        return f"{decision['outcome']}: " + "; ".join(decision["reasons"])

    chain(ingest, validate, train, evaluate, gate, [register, report(gate.output)])  # type: ignore[arg-type]
    chain(register, deploy, smoke)
