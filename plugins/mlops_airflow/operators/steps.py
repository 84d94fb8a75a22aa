"""Reusable operators, one per lifecycle step. Each works in a hand-written DAG as well as in the builder's.

Every operator takes ``pipeline`` (a :class:`~mlops_core.spec.PipelineSpec` or the path of its YAML)
and upstream results either as the upstream task's XCom (``ingest.output``) or as a URI string.
Nothing heavy is imported at module level: the libraries load inside ``execute``.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_airflow.links import mlops as links
from mlops_airflow.operators import remote as remote_jobs

if TYPE_CHECKING:
    from collections.abc import Sequence
    from datetime import date

    from airflow.sdk import Context

    from mlops_core.deploy import DeploymentTarget
    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import CloudProfile


# An upstream step's result: its XComArg (``task.output``), the rendered dict, or a URI string.
Upstream = Any


def _as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"true", "1", "yes", "on"}
    return bool(value)


def _uri(value: str | dict[str, Any]) -> str:
    """Upstream result -> URI: a step's XCom dict (``{"uri": ...}``) or a URI string."""
    if isinstance(value, dict):
        return str(value["uri"])
    return str(value)


def _run_type(context: Context) -> str:
    """``manual``, ``scheduled``, ``backfill`` or ``asset_triggered``."""
    value = getattr(context["dag_run"], "run_type", "")
    return str(getattr(value, "value", value))


def drift_evidence(context: Context) -> dict[str, Any]:
    """The extra of the latest drift Asset event that triggered this run ({} for other runs)."""
    events = context.get("triggering_asset_events") or {}
    found: list[Any] = []
    for asset in events:
        found.extend(ev for ev in events[asset] if (ev.extra or {}).get("mlops_trigger") == "drift")
    if not found:
        return {}
    return dict(max(found, key=lambda ev: ev.timestamp).extra)


def data_day(context: Context) -> str:
    """One rule for every run type: which day of data a run processes.

    - scheduled and backfill runs: the last whole day of the run's data interval (a ``@daily``
      run that fires at 00:00 on the 4th reads the 3rd; a backfill of the 3rd reads the 3rd; a
      ``@weekly`` run reads up to the Sunday the week ends on);
    - manual runs: the day of their logical date (what the scheduled run for that date reads);
      a manual run with no logical date reads the last whole day before it was triggered;
    - asset-triggered runs (retraining after drift): the day the drift event names.
    """
    evidence = drift_evidence(context)
    if evidence.get("ds"):
        from datetime import date

        text = str(evidence["ds"])
        try:  # an asset event's extra can be written by anyone with API access: a date, nothing else
            return date.fromisoformat(text).isoformat()
        except ValueError:
            raise ValueError(f"the drift event's ds {text[:40]!r} is not a YYYY-MM-DD date") from None
    run = context["dag_run"]
    kind = _run_type(context)
    logical = context.get("logical_date")
    end = getattr(run, "data_interval_end", None)
    if kind in ("scheduled", "backfill") and end is not None:
        return (end - timedelta(days=1)).date().isoformat()
    if logical is not None:
        return logical.date().isoformat()
    return (run.run_after - timedelta(days=1)).date().isoformat()


def before_start_message(start_date: date, dag_id: str, logical: Any) -> str | None:
    """Why a run for ``logical`` (a logical date) must not go ahead: it is before the pipeline's
    ``start_date``. None when it may (or has no logical date).

    Airflow creates no task instance for a logical date before the tasks' start date: ``airflow
    dags test`` for such a date reports ``success`` having run nothing. The DAGs refuse it
    instead (:class:`~mlops_airflow.builder.PipelineDAG` for ``dags test``, the first step for a
    backfill, whose tasks do run), naming the fix.
    """
    from datetime import UTC, datetime

    if logical is None:
        return None
    start = datetime(start_date.year, start_date.month, start_date.day, tzinfo=UTC)
    when = logical if logical.tzinfo is not None else logical.replace(tzinfo=UTC)
    if when >= start:
        return None
    return (
        f"{dag_id}: logical date {when.date()} is before the pipeline's start_date {start_date}; "
        "Airflow would run no task for it and report success. Set start_date in the pipeline YAML "
        f"to {when.date()} or earlier (the first day of the data), or run a later date"
    )


def trigger_tags(evidence: dict[str, Any]) -> dict[str, str]:
    """MLflow run tags of a run the drift Asset started: what fired (drift, performance or both) and its evidence."""
    if not evidence:
        return {}
    tags = {
        # drift, performance (model decay on realized labels) or drift+performance
        "mlops.trigger": str(evidence.get("trigger") or "drift"),
        "mlops.drift_ds": str(evidence.get("ds")),
        "mlops.drift_share": str(evidence.get("drift_share")),
        "mlops.drifted_columns": ",".join(evidence.get("drifted_columns") or []),
        "mlops.monitoring_run_id": str(evidence.get("monitoring_run_id")),
        "mlops.drift_report": str(evidence.get("report_uri")),
    }
    if "performance" in tags["mlops.trigger"]:
        performance = evidence.get("performance") or {}
        tags |= {
            f"mlops.performance_{k}": str(performance.get(k))
            for k in ("metric", "value", "low", "high", "holdout", "floor", "rows")
        } | {"mlops.performance_days": ",".join(performance.get("days") or [])}
    return tags


def _in_cloud(method: Any) -> Any:
    @functools.wraps(method)
    def run(self: MlopsStep, *args: Any, **kwargs: Any) -> Any:
        from mlops_airflow.hooks.cloud import cloud_context

        with cloud_context(self.spec, getattr(self, "source_conn_id", None) or None):
            return method(self, *args, **kwargs)

    run._in_cloud = True  # type: ignore[attr-defined]
    return run


class MlopsStep:
    """What every step shares, with no ``__init__`` of its own.

    Airflow re-applies default_args and deep-copies the DAG's Params once per ``__init__`` in an
    operator's class chain, so the steps keep that chain one level deep: with 50 pipelines this
    is a measurable share of parse time (benchmarks/parse.py).

    Common arguments: ``pipeline`` (the spec, or the path of its YAML); for steps that read or
    write the lake, ``partition_date`` (``YYYY-MM-DD`` of the data, templated) and ``lake_root``
    (default ``$MLOPS_LAKE``, templated).
    """

    pipeline: PipelineSpec | str
    lake_root: str | None = None

    # Methods a task runs (``execute`` and the resume methods after a deferral); each runs inside
    # the pipeline's cloud profile (lake, landing and connections: mlops_airflow.hooks.cloud).
    _IN_CLOUD = (
        "execute",
        "resume_ingest",
        "remote_complete",
        "search_complete",
        "deploy_complete",
        "promote_after_bake",
    )

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls._IN_CLOUD:
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_in_cloud", False):
                setattr(cls, name, _in_cloud(method))

    @cached_property
    def profile(self) -> CloudProfile:
        from mlops_airflow.hooks.cloud import profile_of

        return profile_of(self.spec)

    @cached_property
    def spec(self) -> PipelineSpec:
        if isinstance(self.pipeline, str):
            from mlops_core.spec import load_spec

            return load_spec(self.pipeline)
        return self.pipeline

    @property
    def lake(self) -> str:
        from mlops_core.base import settings

        return self.lake_root or settings.lake_root()

    partition_date: Any = None

    def partition(self, context: Context) -> str:
        """The data day (``YYYY-MM-DD``): the rendered ``partition_date`` when given, else :func:`data_day`.

        A run whose logical date is before the pipeline's ``start_date`` (a backfill of such a
        day) is refused (:func:`before_start_message`), whichever date it reads.
        """
        dag_id = str(getattr(context["dag_run"], "dag_id", None) or self.spec.name)
        refused = before_start_message(self.spec.start_date, dag_id, context.get("logical_date"))
        if refused:
            raise AirflowFailException(refused)
        text = str(self.partition_date or "").strip()
        if text and text != "None":
            from datetime import date, datetime

            try:  # a date or an ISO datetime, nothing else: a run's conf can reach this field
                return (
                    date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).date()
                ).isoformat()
            except ValueError:
                raise ValueError(
                    f"partition_date {text[:40]!r} is not YYYY-MM-DD (or an ISO datetime)"
                ) from None
        return data_day(context)

    @staticmethod
    def lineage(context: Context) -> dict[str, str]:
        """Airflow lineage tags for MLflow runs and model versions."""
        dag_run = context["dag_run"]
        ti = context["ti"]
        return {
            "airflow.dag_id": ti.dag_id,
            "airflow.run_id": ti.run_id,
            "airflow.logical_date": str(context.get("logical_date") or ""),
            "airflow.try_number": str(ti.try_number),
            "airflow.run_type": _run_type(context),
            "airflow.triggered_by": str(getattr(dag_run, "triggering_user_name", None) or ""),
        }


_PARTITIONED = ("partition_date", "lake_root")


class IngestOperator(MlopsStep, BaseOperator):
    """Read the source rows the partition date selects; write ``<lake>/<name>/<stage>/ds=<date>/`` atomically.

    :param stage: lake stage to write (``raw`` for training, ``batch`` for scoring).
    :param lookback_days: override the spec's window (templated).
    :param source_conn_id: Airflow connection for the source; default the spec's ``source.conn_id`` (templated).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "stage", "source_conn_id")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        stage: str = "raw",
        lookback_days: int | None = None,
        source_conn_id: str | None = None,
        poll_seconds: float = 300,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.stage = stage
        self.lookback_days = lookback_days
        self.source_conn_id = source_conn_id
        self.poll_seconds = poll_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        return self._ingest(context)

    def resume_ingest(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Back from a wait for the day's rows: look again."""
        return self._ingest(context)

    def _ingest(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle
        from mlops_core.data.features import FeatureStoreError
        from mlops_core.data.storage import SourceDataError, SourceNotReady
        from mlops_core.spec.profiles import CloudProfileError

        joins = self.spec.feature_store.joins if self.spec.feature_store else []
        try:
            self.profile.check_source(self.spec.source.uri)
            for join in joins:  # an offline table is a source too: under the profile's roots
                if join.table is not None:
                    self.profile.check_source(join.table)
        except CloudProfileError as err:  # the URI policy: no retry can make it allowed
            raise AirflowFailException(str(err)) from err
        day = self.partition(context)
        if self.spec.source.partition.mode == "snapshot" and _run_type(context) == "backfill":
            raise AirflowFailException(
                f"source.partition.mode is 'snapshot': the source has no history, so a backfill of {day} "
                "would read today's data under that day's name; use mode 'column' (a date column) or "
                "'files' ({ds} in the URI) to backfill"
            )
        clients = None
        if any(join.store in ("sagemaker", "vertex") for join in joins):
            from mlops_airflow.hooks.cloud import clients_for

            clients = clients_for(self.profile)
        try:
            return lifecycle.ingest(
                self.spec, day, self.lake, stage=self.stage, lookback_days=self.lookback_days, clients=clients
            )
        except SourceNotReady as err:
            self._wait_or_fail(day, err)
            raise  # unreachable: _wait_or_fail defers or raises
        except (SourceDataError, FeatureStoreError) as err:  # retrying will not make the data right
            raise AirflowFailException(str(err)) from err

    def _wait_or_fail(self, day: str, err: Exception) -> None:
        """Defer until the next look while the day may still fill up; fail once its wait is over."""
        from datetime import UTC, date, datetime

        from airflow.providers.standard.triggers.temporal import DateTimeTrigger

        wait = timedelta(minutes=self.spec.source.wait_minutes)
        deadline = (
            datetime.combine(date.fromisoformat(day) + timedelta(days=1), datetime.min.time(), UTC) + wait
        )
        now = datetime.now(UTC)
        if now >= deadline:
            raise AirflowFailException(
                f"{err}; the day ended at {deadline - wait:%Y-%m-%d %H:%M} UTC and source.wait_minutes "
                f"({self.spec.source.wait_minutes}) has passed, so its rows are not coming: fix the source "
                "or re-run the day once they land"
            ) from err
        moment = min(deadline, now + timedelta(seconds=self.poll_seconds))
        self.log.info("%s; not ready yet: looking again at %s (waiting until %s)", err, moment, deadline)
        self.defer(trigger=DateTimeTrigger(moment=moment), method_name="resume_ingest")


class ValidateOperator(MlopsStep, BaseOperator):
    """Validate a partition with the spec's Great Expectations suite; the report lands next to the data.

    Fails without retry when an expectation fails (the data will not change on retry), listing each
    failed expectation and its observed value.

    :param data: the ingest result (XCom) or the partition URI (templated).
    :param with_target: also require the target column (False for scoring data).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "data")
    operator_extra_links = (links.ValidationReportLink(),)

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        data: Upstream,
        with_target: bool = True,
        stage: str = "validation",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.data = data
        self.with_target = with_target
        self.stage = stage

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core.data.validation import DataValidationFailed, validate_partition

        try:
            report = validate_partition(
                self.spec,
                _uri(self.data),
                self.lake,
                self.partition(context),
                with_target=self.with_target,
                stage=self.stage,
            )
        except DataValidationFailed as err:
            from mlops_airflow.notifications import alerts as notifiers

            self._link(err.report.html_uri)
            notifiers.notify_validation_failed(self.spec, context, err.report)
            raise AirflowFailException(str(err)) from err
        self._link(report.html_uri)
        return {
            "success": report.success,
            "evaluated": report.evaluated,
            "html_uri": report.html_uri,
            "json_uri": report.json_uri,
        }

    def _link(self, html_uri: str | None) -> None:
        url = links.report_url(self.spec.name, html_uri, self.lake)
        links.remember(self, links.ValidationReportLink.name, url)


class TrainOperator(MlopsStep, BaseOperator):
    """Fit the spec's model and log an MLflow run (params, metrics, signature, dataset lineage, Airflow tags).

    ``training.backend`` (``auto``: the cloud profile's) decides where: in this worker, or as a
    SageMaker training job, a Vertex AI custom job or an Azure ML command job running the same
    code (:mod:`mlops_core.model.remote`). Remote jobs are named after pipeline + date + Airflow run +
    try, so a resumed try attaches to its own job and never to another run's; the task defers
    while the job runs.

    :param data: the ingest result (XCom) or the raw partition URI (templated).
    :param extra_tags: more MLflow run tags, e.g. the drift evidence that triggered this run (templated).
    :param search: the ``search`` task's result (XCom) when ``model.search.tuner`` is ``platform``:
        its best params train the model instead of a search here.
    :param poll_seconds: how often the trigger asks a remote job for its state.
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "data", "extra_tags", "search")
    template_fields_renderers = {"extra_tags": "json"}
    operator_extra_links = (links.MLflowRunLink(),)

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        data: Upstream,
        extra_tags: dict[str, str] | None = None,
        search: Upstream | None = None,
        poll_seconds: float = 60,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.data = data
        self.extra_tags = extra_tags or {}
        self.search = search
        self.poll_seconds = poll_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core.model.training import TrainingDataError, train

        tags = {**self.lineage(context), **{k: str(v) for k, v in self.extra_tags.items()}}
        tags |= trigger_tags(drift_evidence(context))
        backend: str = self.spec.training.backend
        if backend == "auto":
            backend = self.profile.training_backend
        if backend != "in_worker":
            return self._train_remote(context, backend, tags)
        try:
            result = train(
                self.spec,
                _uri(self.data),
                self.lake,
                self.partition(context),
                tags,
                searched=self._searched(),
            ).to_dict()
        except TrainingDataError as err:
            raise AirflowFailException(str(err)) from err
        return _with_run_link(self, result)

    def _searched(self) -> dict[str, Any] | None:
        """The platform search's result; refused when the spec searches on the platform and none came."""
        search = self.spec.model.search
        if search is None or search.tuner != "platform":
            return None
        if not isinstance(self.search, dict) or "best_params" not in self.search:
            raise AirflowFailException(
                "model.search.tuner is platform but train got no search result: run the search task "
                "first (the builder's DAG does) and pass its output as search="
            )
        return dict(self.search)

    def _train_remote(self, context: Context, backend: str, tags: dict[str, str]) -> dict[str, Any]:
        """Write the job folder, start (or find) the job named after pipeline + date + try, defer."""
        from mlops_core.base import settings
        from mlops_core.model import remote

        tracking = settings.tracking_uri()
        if not tracking.startswith(("http://", "https://", "databricks", "postgresql", "mysql")):
            raise AirflowFailException(
                f"training.backend {backend!r} runs outside this machine, so MLflow must be a server it can "
                f"reach; MLFLOW_TRACKING_URI is {tracking!r} (set it to the team's MLflow server)"
            )
        req = remote.prepare(
            self.spec,
            _uri(self.data),
            self.lake,
            self.partition(context),
            {**tags, "mlops.training_backend": backend},
            context["ti"].try_number,
            env={"MLFLOW_TRACKING_URI": tracking, "MLOPS_LAKE": self.lake},
            run_key=f"{context['ti'].dag_id}/{context['ti'].run_id}",
            search=self._searched(),
        )
        self.log.info("training %s as %s job %s (folder %s)", self.spec.name, backend, req.name, req.folder)
        timeout = self.spec.training.timeout_minutes * 60
        trigger: Any
        if backend == "sagemaker":
            from mlops_core.clouds.aws import training as aws

            config = aws.training_job_config(self.profile, self.spec, req)
            trigger = remote_jobs.sagemaker(self, "training", req.name, config, timeout)
        elif backend == "vertex":
            from mlops_airflow.hooks.cloud import clients_for
            from mlops_core.clouds.gcp import client as gcp

            handle = gcp.submit_training(self.profile, clients_for(self.profile), req)
            trigger = remote_jobs.vertex(self, handle, timeout)
        elif backend == "azureml":
            from mlops_core.clouds.azure import client as azure

            azure.submit_training(self.profile, remote_jobs.azureml_clients(self), req)
            trigger = remote_jobs.azureml(self, req.name, timeout)
        else:
            raise AirflowFailException(f"unknown training backend {backend!r}")
        self.defer(trigger=trigger, method_name="remote_complete", kwargs={"folder": req.folder})

    def remote_complete(
        self, context: Context, event: dict[str, Any] | None = None, folder: str = ""
    ) -> dict[str, Any]:
        """Resume after the job: fail with the platform's message, or return what the job wrote."""
        from mlops_core.model import remote

        event = event or {}
        if event.get("status") not in ("success", None):
            raise AirflowFailException(f"training job failed: {event.get('message') or event}")
        try:
            return _with_run_link(self, remote.read_result(folder))
        except remote.RemoteJobFailed as err:
            raise AirflowFailException(str(err)) from err


def _with_run_link(step: Any, result: dict[str, Any]) -> dict[str, Any]:
    links.remember(
        step, links.MLflowRunLink.name, links.run_url(result.get("experiment_id"), result.get("run_id"))
    )
    return result


class EvaluateOperator(MlopsStep, BaseOperator):
    """Score challenger and champion on the same holdout; metrics and a paired bootstrap go to MLflow.

    :param trained: the train result (XCom dict).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "trained")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        trained: dict[str, Any] | Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.trained = trained

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_airflow.hooks.cloud import export_metrics
        from mlops_core import lifecycle
        from mlops_core.monitor import prometheus

        result = lifecycle.evaluate(self.spec, self.trained, self.lake, self.partition(context))
        export_metrics(
            self.profile,
            self.spec.name,
            {f"holdout_{k}": v for k, v in result["challenger"].items()},
            {"Stage": "evaluation"},
        )
        prometheus.push_evaluation(self.spec.name, result["challenger"])
        return result


class GateOperator(MlopsStep, BaseOperator):
    """Decide promotion and record why. A rejection is a normal outcome: the task succeeds, the
    challenger is still registered (alias ``challenger``), and :class:`DeployOperator` skips.

    :param trained: the train result (XCom dict).
    :param evaluation: the evaluate result (XCom dict).
    :param force_promote: human override (templated; ``params.force_promote`` in the builder's DAGs).
    :param reason: why the override; required when ``force_promote`` (templated).
    """

    template_fields: Sequence[str] = ("trained", "evaluation", "force_promote", "reason")
    ui_color = "#fff3cd"

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        trained: Any,
        evaluation: Any,
        force_promote: bool | str = False,
        reason: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.trained = trained
        self.evaluation = evaluation
        self.force_promote = force_promote
        self.reason = reason

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle

        force = _as_bool(self.force_promote)
        reason = None if self.reason in (None, "None") else str(self.reason)
        who = getattr(context["dag_run"], "triggering_user_name", None)
        try:
            decision = lifecycle.gate(
                self.spec,
                self.evaluation,
                self.trained["run_id"],
                force=force,
                forced_by=who,
                force_reason=reason,
            )
        except ValueError as err:  # force_promote without a reason
            raise AirflowFailException(str(err)) from err
        if not decision.promote:
            from mlops_airflow.notifications import alerts as notifiers

            notifiers.notify_gate_rejected(self.spec, context, decision.to_dict())
        return decision.to_dict()


class RegisterOperator(MlopsStep, BaseOperator):
    """Register the challenger as a model version (once per Airflow run), with lineage and gate tags."""

    template_fields: Sequence[str] = ("trained", "decision")
    operator_extra_links = (links.MLflowModelVersionLink(),)

    def __init__(self, *, pipeline: PipelineSpec | str, trained: Any, decision: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.trained = trained
        self.decision = decision

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle
        from mlops_core.monitor import prometheus

        ti = context["ti"]
        result = lifecycle.register(
            self.spec, self.trained, self.decision, f"{ti.dag_id}/{ti.run_id}", self.lineage(context)
        )
        url = links.version_url(self.spec.registered_model_name, result.get("version"))
        links.remember(self, links.MLflowModelVersionLink.name, url)
        # after registration, so the counts include this version's decision (tagged on it now)
        promote = _as_bool((self.decision or {}).get("promote"))
        prometheus.push_gate(self.spec.name, self.spec.registered_model_name, promote)
        return result


class DeployOperator(MlopsStep, BaseOperator):
    """Deploy a registered version to the spec's target (``auto``: the cloud profile's).

    ``local`` moves the ``champion`` alias. Endpoint targets (SageMaker, Vertex AI, Azure ML)
    create-or-update the endpoint with the spec's strategy, then the task defers until the
    platform reports the new version ready. Skips (the run stays green) when the gate rejected.

    The gate's decision is always re-read from the registry, on the tags of this exact version:
    a version the gate did not promote is never deployed, whatever an XCom says (an XCom that
    claims ``promote`` for a rejected version fails the task), and ``champion`` moves only if it
    is still the version the challenger was evaluated against.

    :param registered: the register result (XCom dict with ``version``).
    :param decision: the gate decision (XCom dict): a rejection skips early; the registry decides.
    :param poll_seconds: how often the trigger asks the platform for the endpoint's state.
    """

    template_fields: Sequence[str] = ("registered", "decision")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        registered: Any,
        decision: Any = None,
        poll_seconds: float = 30,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.registered = registered
        self.decision = decision
        self.poll_seconds = poll_seconds

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle
        from mlops_core.deploy import READY
        from mlops_core.runs import registry

        version = str(self.registered["version"])
        if self.decision is not None and not _as_bool(self.decision.get("promote")):
            reasons = "; ".join(self.decision.get("reasons", []))
            raise AirflowSkipException(f"gate rejected v{version}, champion unchanged: {reasons}")
        try:
            deployment = lifecycle.deploy(self.spec, version, target(self))
        except registry.DecisionRefused as err:
            if self.decision is None and err.outcome == "reject":
                raise AirflowSkipException(str(err)) from err
            raise AirflowFailException(str(err)) from err  # a forged or unbound decision
        except registry.ChampionMoved as err:  # a retry would find the same champion
            raise AirflowFailException(str(err)) from err
        if deployment["state"] == READY:
            return deployment
        from mlops_airflow.triggers.cloud import EndpointTrigger

        self.log.info("%s is updating; deferring until it is ready", deployment["endpoint"])
        self.defer(
            trigger=EndpointTrigger(self.spec.cloud, deployment["target"], deployment, self.poll_seconds),
            method_name="deploy_complete",
        )

    def deploy_complete(self, context: Context, event: dict[str, Any] | None = None) -> dict[str, Any]:
        """The endpoint is ready; on a platform failure roll back and fail without retry.

        A wait that ended on transient errors only (the platform stopped answering for a while)
        is not a failed deploy: the task fails *with* retries, and the retry, a create-or-update
        of the same deployment, attaches to it and waits again.
        """
        from airflow.sdk.exceptions import AirflowException

        from mlops_core import lifecycle

        event = event or {}
        if event.get("status") != "success" and event.get("reason") == "transient":
            raise AirflowException(
                f"lost contact with the platform while the deploy was updating ({event.get('message')}); "
                "nothing rolled back, the task retries and attaches to the same deployment"
            )
        if event.get("status") != "success":
            from mlops_airflow.notifications import alerts as notifiers

            try:
                lifecycle.rollback(self.spec, event["deployment"], target(self))
            except lifecycle.RollbackFailed as err:
                _push_deploy(self, rollback_failed=True)
                notifiers.notify_rolled_back(self.spec, context, event["deployment"], err, ok=False)
                raise AirflowFailException(f"deploy failed ({event.get('message')}); {err}") from err
            _push_deploy(self, rollback_failed=False)
            message = f"deploy failed and was rolled back: {event.get('message')}"
            notifiers.notify_rolled_back(self.spec, context, event["deployment"], message, ok=True)
            raise AirflowFailException(message)
        return dict(event["deployment"])


def target(step: MlopsStep) -> DeploymentTarget:
    """The step's deployment target, with its cloud clients (from the profile's connection)."""
    from mlops_core.targets import get_target, resolve_target_name

    name = resolve_target_name(step.spec, step.profile)
    if name == "local":
        if step.spec.deployment.strategy != "all_at_once":
            step.log.info(  # type: ignore[attr-defined]
                "deployment.strategy %s acts as all_at_once on the local target (one alias, no traffic to split)",
                step.spec.deployment.strategy,
            )
        return get_target("local")
    from mlops_airflow.hooks.cloud import clients_for

    return get_target(name, step.profile, clients_for(step.profile))


class SmokeTestOperator(MlopsStep, BaseOperator):
    """Score held-out rows through the deployment and compare with the offline predictions.

    Passed: a canary on Vertex AI or Azure ML bakes for ``canary_wait_minutes`` (deferred), then
    all traffic and the ``champion`` alias move to the new version (SageMaker shifts the traffic
    itself, guarded by its CloudWatch alarm). Failed: traffic rolls back, the alias is restored
    and the task fails without retry.
    """

    template_fields: Sequence[str] = ("deployment", "trained", "evaluation")

    def __init__(
        self, *, pipeline: PipelineSpec | str, deployment: Any, trained: Any, evaluation: Any, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.deployment = deployment
        self.trained = trained
        self.evaluation = evaluation

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle

        try:
            result = lifecycle.smoke_test(
                self.spec,
                self.deployment,
                self.trained["holdout_uri"],
                self.evaluation["predictions_uri"],
                target(self),
            )
        except Exception as err:  # rolled back already (or the rollback failed); a retry would deploy nothing
            from mlops_airflow.notifications import alerts as notifiers

            _push_deploy(self, rollback_failed=isinstance(err, lifecycle.RollbackFailed))
            notifiers.notify_rolled_back(self.spec, context, self.deployment, err)
            raise AirflowFailException(str(err)) from err
        dep = self.spec.deployment
        if (
            dep.strategy == "canary"
            and dep.canary_wait_minutes > 0
            and self.deployment["target"] in ("vertex", "azureml", "kserve")
        ):
            from datetime import timedelta

            from airflow.providers.standard.triggers.temporal import TimeDeltaTrigger

            self.log.info(
                "canary passed the smoke test; baking %d min before promotion", dep.canary_wait_minutes
            )
            self.defer(
                trigger=TimeDeltaTrigger(timedelta(minutes=dep.canary_wait_minutes)),
                method_name="promote_after_bake",
                kwargs={"smoke": result},
            )
        return {**result, "deployment": self._promote()}

    def promote_after_bake(
        self, context: Context, event: Any = None, smoke: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        return {**(smoke or {}), "deployment": self._promote()}

    def _promote(self) -> dict[str, Any]:
        from mlops_airflow.notifications import alerts as notifiers
        from mlops_core import lifecycle

        try:
            done = lifecycle.promote(self.spec, self.deployment, target(self))
        except lifecycle.RollbackFailed as err:  # (context None: the running task's)
            _push_deploy(self, rollback_failed=True)
            notifiers.notify_rolled_back(self.spec, None, self.deployment, err, ok=False)
            raise AirflowFailException(f"promotion failed; {err}") from err
        except Exception as err:  # rolled back already
            _push_deploy(self, rollback_failed=False)
            notifiers.notify_rolled_back(
                self.spec, None, self.deployment, f"promotion failed: {err}", ok=True
            )
            raise AirflowFailException(f"promotion failed and was rolled back: {err}") from err
        _push_deploy(self, rollback_failed=False)
        return done


def _push_deploy(step: MlopsStep, *, rollback_failed: bool) -> None:
    """Champion, deploy and rollback counts to the Pushgateway (when set; never raises)."""
    from mlops_core.monitor import prometheus

    prometheus.push_deploy(step.spec.name, step.spec.registered_model_name, rollback_failed=rollback_failed)


class BatchScoreOperator(MlopsStep, BaseOperator):
    """Score a partition with ``models:/<name>@champion``; predictions Parquet carries the model version.

    :param data: the ingest result (XCom) or the partition URI (templated).
    :param stage: lake stage for the predictions (``predictions``; ``monitor_predictions`` when monitoring).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "data")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        data: Upstream,
        stage: str = "predictions",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.data = data
        self.stage = stage

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle

        try:
            return lifecycle.batch_score(
                self.spec, _uri(self.data), self.lake, self.partition(context), stage=self.stage
            )
        except LookupError as err:
            raise AirflowFailException(str(err)) from err


class DriftCheckOperator(MlopsStep, BaseOperator):
    """Drift of a partition against the champion's training snapshot: verdicts, Evidently report, history, MLflow.

    :param data: the ingest result (XCom) or the partition URI (templated).
    :param report: build the Evidently report whatever ``monitoring.report`` says (templated;
        ``params.report`` in the builder's DAGs).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "data", "report")
    operator_extra_links = (links.DriftReportLink(),)

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        data: Upstream,
        report: bool | str = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.data = data
        self.report = report

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_airflow.hooks.cloud import export_metrics
        from mlops_core.monitor import monitoring, prometheus

        run_type = _run_type(context)
        try:
            result = monitoring.check(
                self.spec,
                _uri(self.data),
                self.lake,
                self.partition(context),
                run_type=run_type,
                tags=self.lineage(context),
                report=_as_bool(self.report),
            )
        except LookupError as err:  # no champion / no reference: nothing to compare against
            raise AirflowFailException(str(err)) from err
        export_metrics(
            self.profile,
            self.spec.name,
            {"drift_share": result.get("drift_share"), "drifted_columns": result.get("n_drifted")},
            {"Stage": "monitoring"},
        )
        prometheus.push_drift(self.spec.name, result)
        report = result.get("report_uri") or result.get("verdicts_uri")
        links.remember(self, links.DriftReportLink.name, links.report_url(self.spec.name, report, self.lake))
        return result


class DriftPolicyOperator(MlopsStep, BaseOperator):
    """Apply the drift policy to the history. Always succeeds; returns the decision with its reasons.

    :param drift: the drift check result (XCom dict).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "drift")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        drift: Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.drift = drift

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core.monitor import monitoring

        is_backfill = _run_type(context) == "backfill"
        decision = monitoring.policy(self.spec, self.lake, self.partition(context), is_backfill=is_backfill)
        self.log.info(
            "drift policy %s:\n  - %s", "FIRES" if decision.fire else "holds", "\n  - ".join(decision.reasons)
        )
        return {**decision.to_dict(), "drift": self.drift}


class EmitDriftEventOperator(MlopsStep, BaseOperator):
    """Emit the pipeline's drift Asset event (what schedules ``<name>_training``) when the policy fired.

    Skips otherwise, so no event is emitted. The event's ``extra`` carries the evidence: day, drift
    share, drifted columns, report and the monitoring run.

    :param decision: the policy decision (XCom dict).
    """

    template_fields: Sequence[str] = ("decision",)

    def __init__(self, *, pipeline: PipelineSpec | str, decision: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.decision = decision

    def execute(self, context: Context) -> dict[str, Any]:
        if not self.decision.get("fire"):
            raise AirflowSkipException(
                "drift policy did not fire: " + "; ".join(self.decision.get("reasons", []))
            )
        drift = self.decision.get("drift") or {}
        extra = {
            "mlops_trigger": "drift",
            "pipeline": self.spec.name,
            "ds": self.decision["ds"],
            "drift_share": drift.get("drift_share"),
            "drifted_columns": drift.get("drifted_columns"),
            "rows": drift.get("rows"),
            "report_uri": drift.get("report_uri"),
            "monitoring_run_id": context["ti"].run_id,
            "mlflow_run_id": drift.get("mlflow_run_id"),
            "reasons": self.decision.get("reasons"),
            # what fired: drift, performance (decay on realized labels) or drift+performance
            "trigger": self.decision.get("trigger") or "drift",
            "performance": (self.decision.get("evidence") or {}).get("performance"),
        }
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        self.log.info("emitted drift event for %s: %s", self.spec.name, extra)
        from mlops_airflow.notifications import alerts as notifiers

        notifiers.notify_policy_fired(self.spec, context, extra)
        return extra


class PerformanceOperator(MlopsStep, BaseOperator):
    """Realized performance: the predictions made ``feedback.delay_days`` before the monitored day,
    joined with the labels that have arrived, scored with an interval, recorded per prediction day.

    Never fails for missing labels (the day is recorded as not evaluated, and the policy says
    why); fails without retry on a labels file that cannot be read or joined.
    """

    template_fields: Sequence[str] = _PARTITIONED

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str | None = None,
        lake_root: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_airflow.hooks.cloud import export_metrics
        from mlops_core.data.storage import SourceDataError
        from mlops_core.monitor import feedback, prometheus
        from mlops_core.spec.profiles import CloudProfileError

        fb = self.spec.feedback
        if fb is None:
            raise AirflowSkipException(f"{self.spec.name} has no feedback section: no labels to join")
        try:
            self.profile.check_source(fb.uri)
            day = feedback.evaluate_day(self.spec, self.lake, self.partition(context))
        except (CloudProfileError, SourceDataError) as err:
            raise AirflowFailException(str(err)) from err
        uri = feedback.record(self.spec, self.lake, day)
        run_id = feedback.log_to_mlflow(self.spec, day, self.lineage(context))
        self.log.info("realized performance %s", day.describe())
        self.log.info("labels %s", day.describe_labels())
        limit = fb.max_unmatched_share
        if limit is not None and day.orphan_share is not None and day.orphan_share > limit:
            self.log.warning(
                "%.1f%% of the labels read match no monitored prediction (> feedback.max_unmatched_share %g): "
                "check feedback.key_columns and the key's format on both sides",
                100 * day.orphan_share,
                limit,
            )
            if self.spec.alerts is not None:
                from mlops_airflow.notifications import alerts as notifiers

                notifiers.notify_labels_unmatched(self.spec, context, day.to_dict())
        if day.value is not None:
            export_metrics(
                self.profile,
                self.spec.name,
                {f"realized_{day.metric}": day.value, "labelled_rows": day.rows},
                {"Stage": "performance"},
                spec=self.spec,  # alerts.metric_alarm: the alarm on this series (mlops_airflow.hooks.cloud)
            )
        prometheus.push_performance(self.spec.name, day.to_dict(), feedback.decay_floor(self.spec))
        if day.decayed:
            _notify_decay(self, context, day.to_dict())
        return {**day.to_dict(), "history_uri": uri, "mlflow_run_id": run_id}


def _notify_decay(step: MlopsStep, context: Context, evidence: dict[str, Any]) -> None:
    """The ``metric_below_floor`` alert, when the pipeline routes alerts (mlops_airflow.notifications.alerts)."""
    if step.spec.alerts is None:
        return
    from mlops_airflow.notifications import alerts as notifiers

    notifiers.notify_metric_below_floor(step.spec, context, evidence)
