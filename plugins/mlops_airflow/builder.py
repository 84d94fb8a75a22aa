"""YAML spec -> Airflow DAGs. Cheap: imports the SDK and the spec only (no pandas, sklearn, mlflow...)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG, Asset, AssetOrTimeSchedule, CronDataIntervalTimetable, Param, chain

from mlops_airflow.operators.data import IngestOperator, ValidateOperator
from mlops_airflow.operators.deploy import DeployOperator, SmokeTestOperator
from mlops_airflow.operators.model import EvaluateOperator, GateOperator, RegisterOperator, TrainOperator
from mlops_airflow.operators.monitor import (
    BatchScoreOperator,
    DriftCheckOperator,
    DriftPolicyOperator,
    EmitDriftEventOperator,
    PerformanceOperator,
)
from mlops_core.runs import release
from mlops_core.spec.catalog import METRICS

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator

    from mlops_core.spec import PipelineSpec

# The Params form's date wins; otherwise the operator derives the data day from the run
# (MlopsStep.data_day: one rule for scheduled, backfill, manual and asset-triggered runs).
PARTITION = "{{ params.partition_date or '' }}"


def _default_args(spec: PipelineSpec) -> dict[str, Any]:
    """Every task: the spec's retries, a timeout, and never two instances of one step at once.

    ``max_active_tis_per_dag=1`` holds across run types: ``max_active_runs`` does not bound
    backfill runs (Airflow counts them apart), so without it a backfill's ``deploy`` could race a
    scheduled run's. Steps of different runs still overlap (ingest of day 2 while day 1 trains).

    With ``alerts`` listing ``task_failed``, every task's ``on_failure_callback`` sends it
    (:func:`mlops_airflow.notifications.alerts.failure_callback`; a cheap import, no provider loads at parse).
    """
    args: dict[str, Any] = {
        "owner": spec.owner,
        "retries": spec.retries,
        "retry_delay": timedelta(minutes=spec.retry_delay_minutes),
        "execution_timeout": timedelta(minutes=spec.task_timeout_minutes),
        "max_active_tis_per_dag": 1,
    }
    if spec.alerts is not None and "task_failed" in spec.alerts.events:
        from mlops_airflow.notifications.alerts import failure_callback

        args["on_failure_callback"] = failure_callback(spec)
    return args


def _timeouts(spec: PipelineSpec) -> dict[str, timedelta]:
    """``execution_timeout`` of the steps that wait on something (deferral time counts too)."""
    step = spec.task_timeout_minutes
    return {
        "ingest": timedelta(minutes=step + spec.source.wait_minutes),
        "train": timedelta(minutes=step + spec.training.timeout_minutes),
        "deploy": timedelta(minutes=step + 60),
        "smoke_test": timedelta(minutes=step + spec.deployment.canary_wait_minutes),
    }


def release_args() -> dict[str, Any]:
    """``queue=`` of the release steps (gate, register, approval, deploy, smoke_test).

    ``$MLOPS_RELEASE_QUEUE`` (default ``release``): in a Celery deployment only the workers that
    listen on it (``airflow celery worker -q release``) hold the registry-writer MLflow identity
    and the release key (:mod:`mlops_core.runs.release`); an empty value keeps them on the default queue.
    """
    name = release.queue()
    return {"queue": name} if name else {}


def cron(expression: str | None) -> Any:
    """A cron schedule with data intervals: the run for day D starts when D is over and reads D.

    Airflow 3 turns a plain cron string into a ``CronTriggerTimetable`` (logical date = the moment
    it fires, so a ``@daily`` run at 00:00 would name the day that has just begun). With
    ``CronDataIntervalTimetable`` the scheduled run, a backfill of D and a manual run for D all
    have logical date D, and :meth:`MlopsStep.data_day` reads the same rows for each.
    """
    if expression is None or expression in ("@once", "@continuous"):
        return expression
    return CronDataIntervalTimetable(expression, timezone="UTC")


class PipelineDAG(DAG):
    """A pipeline's DAG: ``dag.test()`` (``airflow dags test``) for a logical date before the
    pipeline's ``start_date`` is refused with a message instead of succeeding with no task run."""

    def test(self, *args: Any, **kwargs: Any) -> Any:
        from mlops_airflow.operators.base import before_start_message

        logical = kwargs.get("logical_date")
        start = self.start_date
        refused = (
            isinstance(logical, datetime)
            and start
            and before_start_message(start.date(), self.dag_id, logical)
        )
        if refused:
            raise ValueError(refused)
        return super().test(*args, **kwargs)


def _start(spec: PipelineSpec) -> datetime:
    return datetime(spec.start_date.year, spec.start_date.month, spec.start_date.day, tzinfo=UTC)


def _end(spec: PipelineSpec) -> datetime | None:
    if spec.end_date is None:
        return None
    return datetime(spec.end_date.year, spec.end_date.month, spec.end_date.day, 23, 59, tzinfo=UTC)


def _dag_args(spec: PipelineSpec) -> dict[str, Any]:
    """What every DAG of a pipeline shares: dates, no catchup, one run at a time, retries, native XCom rendering."""
    return {
        "start_date": _start(spec),
        "end_date": _end(spec),
        "catchup": False,
        "max_active_runs": 1,
        "default_args": _default_args(spec),
        "render_template_as_native_obj": True,
    }


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
        # null-able: the UI's form treats an empty required string as missing and would block
        # every ordinary trigger; the gate itself insists on a reason when force_promote is on.
        "reason": Param(
            None,
            type=["null", "string"],
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

**Flow**: {"managed_ingestion (" + spec.ingestion.kind + ") -> " if spec.ingestion and "training" in spec.ingestion.dags else ""}ingest -> validate -> train -> evaluate -> gate -> register -> deploy -> smoke_test.
A rejected challenger is still registered (alias `challenger`, tag `mlops.gate=reject`) but deploy and smoke_test skip; the run stays green and the reasons are in the gate task's log and XCom.
gate, register{", approval" if spec.deployment.approval is not None and spec.deployment.approval.required else ""}, deploy and smoke_test run on the release queue (`$MLOPS_RELEASE_QUEUE`, default `release`).

**Trigger**: UI "Trigger" (form: force_promote, reason, partition_date) or
`airflow dags trigger {spec.name}_training -c '{{"partition_date": "2026-01-31"}}'`.
"""


def drift_asset(spec: PipelineSpec) -> Asset:
    """The Asset the monitoring DAG emits when drift should retrain ``spec``'s model."""
    return Asset(name=f"{spec.name}_drift", uri=spec.drift_asset_uri, group="mlops-drift")


def training_schedule(spec: PipelineSpec) -> Any:
    """The spec's cron OR the drift asset (monitoring enabled); the cron alone otherwise."""
    if not spec.monitoring.enabled:
        return cron(spec.schedule)
    if spec.schedule is None:
        return drift_asset(spec)
    return AssetOrTimeSchedule(timetable=cron(spec.schedule), assets=drift_asset(spec))


def _managed_ingestion(spec: PipelineSpec, dag: str, ingest: Any) -> None:
    """``managed_ingestion >> ingest`` when the spec runs a Glue, Dataflow or Data Factory job for
    this DAG (the provider operator is imported only then: a spec without one loads nothing)."""
    if spec.ingestion is None or dag not in spec.ingestion.dags:
        return
    from mlops_airflow.operators.ingestion import managed_ingestion

    job = managed_ingestion(spec, dag, partition_date=PARTITION)
    if job is not None:
        job >> ingest


def _platform_search(spec: PipelineSpec, ingest: Any) -> BaseOperator | None:
    """The ``search`` task when ``model.search.tuner`` is ``platform`` (imported only then)."""
    search = spec.model.search
    if search is None or search.tuner != "platform":
        return None
    from mlops_airflow.operators.search import TASK_ID, SearchOperator

    # the trigger's own bound (SearchOperator.wait_seconds) plus the step's
    rounds = -(-search.trials // search.concurrent) if spec.training.backend in ("vertex", "auto") else 1
    timeout = timedelta(minutes=spec.task_timeout_minutes + 10 + search.timeout_minutes * rounds)
    return SearchOperator(
        task_id=TASK_ID,
        data=ingest.output,
        partition_date=PARTITION,
        pipeline=spec,
        execution_timeout=timeout,
    )


def _release_steps(
    spec: PipelineSpec, train: BaseOperator, evaluate: BaseOperator, timeouts: dict[str, timedelta]
) -> list[BaseOperator]:
    """gate -> register -> (approval) -> deploy -> smoke_test, on the release queue (:func:`release_args`)."""
    released = release_args()
    gate = GateOperator(
        task_id="gate",
        trained=train.output,
        evaluation=evaluate.output,
        force_promote="{{ params.force_promote }}",
        reason="{{ params.reason }}",
        retries=0,
        pipeline=spec,
        **released,
    )
    register = RegisterOperator(
        task_id="register", trained=train.output, decision=gate.output, pipeline=spec, **released
    )
    approval = None
    if spec.deployment.approval is not None and spec.deployment.approval.required:
        from mlops_airflow.operators.approval import ModelApprovalOperator, approval_kwargs

        approval = ModelApprovalOperator(
            task_id="approval",
            registered=register.output,
            decision=gate.output,
            evaluation=evaluate.output,
            trained=train.output,
            pipeline=spec,
            retries=0,
            **approval_kwargs(spec),
            **released,
        )
    deploy = DeployOperator(
        task_id="deploy",
        registered=register.output,
        decision=gate.output,
        pipeline=spec,
        execution_timeout=timeouts["deploy"],
        **released,
    )
    smoke = SmokeTestOperator(
        task_id="smoke_test",
        deployment=deploy.output,
        trained=train.output,
        evaluation=evaluate.output,
        pipeline=spec,
        execution_timeout=timeouts["smoke_test"],
        **released,
    )
    return [gate, register, *([approval] if approval else []), deploy, smoke]


def build_training_dag(spec: PipelineSpec, *, fileloc: str | None = None) -> DAG:
    """``<name>_training``: ingest -> validate -> train -> evaluate -> gate -> register -> deploy -> smoke_test."""
    with PipelineDAG(
        dag_id=f"{spec.name}_training",
        description=(spec.description or f"Train and promote {spec.name}")[:200],
        schedule=training_schedule(spec),
        **_dag_args(spec),
        params=training_params(),
        tags=spec.tag_list() + ["training"],
        doc_md=doc_md(spec),
    ) as dag:
        timeouts = _timeouts(spec)
        ingest = IngestOperator(
            task_id="ingest", partition_date=PARTITION, pipeline=spec, execution_timeout=timeouts["ingest"]
        )
        _managed_ingestion(spec, "training", ingest)
        validate = ValidateOperator(
            task_id="validate", data=ingest.output, partition_date=PARTITION, pipeline=spec
        )
        search = _platform_search(spec, ingest)
        train = TrainOperator(
            task_id="train",
            data=ingest.output,
            partition_date=PARTITION,
            pipeline=spec,
            execution_timeout=timeouts["train"],
            search=search.output if search is not None else None,
        )
        evaluate = EvaluateOperator(
            task_id="evaluate", trained=train.output, partition_date=PARTITION, pipeline=spec
        )
        chain(
            ingest,
            validate,
            *([search] if search is not None else []),
            train,
            evaluate,
            *_release_steps(spec, train, evaluate, timeouts),
        )
    if fileloc:
        dag.fileloc = fileloc
    return dag


def build_batch_scoring_dag(spec: PipelineSpec, *, fileloc: str | None = None) -> DAG:
    """``<name>_batch_scoring``: ingest the scoring window -> validate features -> score with the champion."""
    with PipelineDAG(
        dag_id=f"{spec.name}_batch_scoring",
        description=f"Score {spec.name} data with the champion model",
        schedule=cron(spec.scoring.schedule),
        **_dag_args(spec),
        params={"partition_date": _partition_param()},
        tags=spec.tag_list() + ["scoring"],
        doc_md=f"Scores `{spec.name}` rows of the last {spec.scoring_window} day(s) with `models:/{spec.name}@champion`; "
        f"writes `<lake>/{spec.name}/predictions/ds=<date>/` with the model version in every row.",
    ) as dag:
        ingest = IngestOperator(
            task_id="ingest",
            stage="batch",
            lookback_days=spec.scoring_window,
            pipeline=spec,
            partition_date=PARTITION,
            execution_timeout=_timeouts(spec)["ingest"],
        )
        _managed_ingestion(spec, "batch_scoring", ingest)
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


def monitoring_params() -> dict[str, Param]:
    """The trigger form of every ``<name>_monitoring`` DAG."""
    return {
        "partition_date": _partition_param(),
        "report": Param(
            False,
            type="boolean",
            title="Evidently report",
            description="Build the Evidently HTML report for this run, whatever monitoring.report says.",
        ),
    }


def monitoring_doc_md(spec: PipelineSpec) -> str:
    """Human documentation of a pipeline's monitoring DAG: the window, the tests and the policy."""
    m = spec.monitoring
    return f"""
### {spec.name} monitoring

Each day: the last {m.window_days} day(s) of source rows are ingested, validated (features only) and
scored with `models:/{spec.name}@champion`; then each of the model's features is compared with the
champion's training snapshot on a seeded sample of at most {m.sample_size} rows per side
(numeric: `{m.numeric_method}`, categorical: `{m.categorical_method}`).

**Policy**: a day drifts when the {"importance-weighted " if m.weighting == "importance" else ""}drift share
is >= {m.drift_share:g}{" (or the champion's calibrated threshold, when higher)" if m.calibration.enabled else ""}, a
critical column drifted{", or the predictions drifted" if m.prediction_drift == "policy" else ""}; retraining fires
after {m.consecutive_days} consecutive drifted day(s), each with >= {m.min_rows} rows, when the
{"champion's training (last promotion)" if m.cooldown_from == "promotion" else "last training attempt"} is >=
{m.cooldown_days} day(s) before. Backfill runs fill the history but {"may" if m.retrain_on_backfill else "never"} fire.
When it fires, `emit_drift_event` emits the Asset `{spec.drift_asset_uri}` and the scheduler starts
`{spec.name}_training`.

Reports: `<lake>/{spec.name}/reports/drift/ds=<date>/`: `drift.json` (verdicts) every day, the
Evidently `report.html` {dict(always="every day", drifted="on drifted days", never="only when asked")[m.report]}
(the trigger form's `report` builds it for one run); history:
`<lake>/{spec.name}/drift_history/`; MLflow experiment `mlops/{spec.name}/monitoring`.
{_shadow_doc(spec)}"""


def _shadow_doc(spec: PipelineSpec) -> str:
    sh = spec.deployment.shadow
    if sh is None or not sh.enabled:
        return ""
    return (
        f"\n**Shadow** (`deployment.shadow`): `score` also scores every row with `models:/{spec.name}@shadow` "
        f"into `<lake>/{spec.name}/monitor_predictions_shadow/`; after {sh.days} monitored day(s) and "
        f">= {sh.min_rows} rows, `shadow_verdict` promotes or rejects it (docs/shadow.md).\n"
    )


def build_monitoring_dag(spec: PipelineSpec) -> DAG:
    """``<name>_monitoring``: ingest window -> validate -> score -> drift_check -> drift_policy -> emit_drift_event."""
    m = spec.monitoring
    with PipelineDAG(
        dag_id=f"{spec.name}_monitoring",
        description=f"Daily drift of {spec.name} against the champion's training data; fires retraining",
        schedule=cron(m.schedule),
        **_dag_args(spec),
        params=monitoring_params(),
        tags=spec.tag_list() + ["monitoring"],
        doc_md=monitoring_doc_md(spec),
    ) as dag:
        common: dict[str, Any] = {"pipeline": spec, "partition_date": PARTITION}
        ingest = IngestOperator(
            task_id="ingest",
            stage="monitor",
            lookback_days=m.window_days,
            execution_timeout=_timeouts(spec)["ingest"],
            **common,
        )
        _managed_ingestion(spec, "monitoring", ingest)
        validate = ValidateOperator(
            task_id="validate", data=ingest.output, with_target=False, stage="monitor_validation", **common
        )
        score = BatchScoreOperator(task_id="score", data=ingest.output, stage="monitor_predictions", **common)
        check = DriftCheckOperator(
            task_id="drift_check", data=ingest.output, report="{{ params.report }}", **common
        )
        policy = DriftPolicyOperator(task_id="drift_policy", drift=check.output, **common)
        if spec.feedback is not None:  # realized performance of the predictions made delay_days ago
            performance = PerformanceOperator(task_id="performance", **common)
            score >> performance >> policy
            if spec.deployment.challenger is not None and spec.deployment.challenger.enabled:
                from mlops_airflow.operators.deploy import ChallengerVerdictOperator

                verdict = ChallengerVerdictOperator(task_id="challenger_verdict", **common, **release_args())
                performance >> verdict
        if spec.deployment.shadow_on:  # both models scored the day's rows: judge the shadow
            from mlops_airflow.operators.deploy import ShadowVerdictOperator

            shadow = ShadowVerdictOperator(task_id="shadow_verdict", **common, **release_args())
            score >> shadow
            if spec.feedback is not None:  # the day's labels joined first
                performance >> shadow
        emit = EmitDriftEventOperator(
            task_id="emit_drift_event",
            decision=policy.output,
            pipeline=spec,
            outlets=[drift_asset(spec)],
            retries=0,
        )
        chain(ingest, validate, score, check, policy, emit)
    return dag


def build_dags(spec: PipelineSpec) -> list[DAG]:
    dags = [build_training_dag(spec), build_batch_scoring_dag(spec)]
    if spec.monitoring.enabled:
        dags.append(build_monitoring_dag(spec))
    return dags
