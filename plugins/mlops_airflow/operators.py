"""Reusable operators, one per lifecycle step. Each works in a hand-written DAG as well as in the builder's.

Every operator takes ``pipeline`` (a :class:`~mlops_core.spec.PipelineSpec` or the path of its YAML)
and upstream results either as the upstream task's XCom (``ingest.output``) or as a URI string.
Nothing heavy is imported at module level: the libraries load inside ``execute``.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator, SkipMixin
from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from mlops_core.spec import PipelineSpec


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


def _ds(value: Any) -> str:
    text = str(value or "").strip()
    if text in {"", "None"}:
        raise AirflowFailException(
            "partition_date rendered empty: pass a date (YYYY-MM-DD) or leave the default {{ ds }}"
        )
    return text[:10]


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

    @cached_property
    def spec(self) -> PipelineSpec:
        if isinstance(self.pipeline, str):
            from mlops_core.spec import load_spec

            return load_spec(self.pipeline)
        return self.pipeline

    @property
    def lake(self) -> str:
        from mlops_core import settings

        return self.lake_root or settings.lake_root()

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
            "airflow.run_type": str(getattr(dag_run, "run_type", "")),
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
        partition_date: str = "{{ ds }}",
        lake_root: str | None = None,
        stage: str = "raw",
        lookback_days: int | None = None,
        source_conn_id: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.stage = stage
        self.lookback_days = lookback_days
        self.source_conn_id = source_conn_id

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle
        from mlops_core.storage import SourceDataError

        try:
            return lifecycle.ingest(
                self.spec,
                _ds(self.partition_date),
                self.lake,
                stage=self.stage,
                lookback_days=self.lookback_days,
            )
        except SourceDataError as err:  # retrying will not make rows appear
            raise AirflowFailException(str(err)) from err


class ValidateOperator(MlopsStep, BaseOperator):
    """Validate a partition with the spec's Great Expectations suite; the report lands next to the data.

    Fails without retry when an expectation fails (the data will not change on retry), listing each
    failed expectation and its observed value.

    :param data: the ingest result (XCom) or the partition URI (templated).
    :param with_target: also require the target column (False for scoring data).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "data")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str = "{{ ds }}",
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
        from mlops_core.validation import DataValidationFailed, validate_partition

        try:
            report = validate_partition(
                self.spec,
                _uri(self.data),
                self.lake,
                _ds(self.partition_date),
                with_target=self.with_target,
                stage=self.stage,
            )
        except DataValidationFailed as err:
            raise AirflowFailException(str(err)) from err
        return {
            "success": report.success,
            "evaluated": report.evaluated,
            "html_uri": report.html_uri,
            "json_uri": report.json_uri,
        }


class TrainOperator(MlopsStep, BaseOperator):
    """Fit the spec's model and log an MLflow run (params, metrics, signature, dataset lineage, Airflow tags).

    :param data: the ingest result (XCom) or the raw partition URI (templated).
    :param extra_tags: more MLflow run tags, e.g. the drift evidence that triggered this run (templated).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "data", "extra_tags")
    template_fields_renderers = {"extra_tags": "json"}

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str = "{{ ds }}",
        lake_root: str | None = None,
        data: Upstream,
        extra_tags: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.data = data
        self.extra_tags = extra_tags or {}

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core.training import TrainingDataError, train

        tags = {**self.lineage(context), **{k: str(v) for k, v in self.extra_tags.items()}}
        try:
            return train(self.spec, _uri(self.data), self.lake, _ds(self.partition_date), tags).to_dict()
        except TrainingDataError as err:
            raise AirflowFailException(str(err)) from err


class EvaluateOperator(MlopsStep, BaseOperator):
    """Score challenger and champion on the same holdout; metrics and a paired bootstrap go to MLflow.

    :param trained: the train result (XCom dict).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "trained")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str = "{{ ds }}",
        lake_root: str | None = None,
        trained: dict[str, Any] | Any,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.trained = trained

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle

        return lifecycle.evaluate(self.spec, self.trained, self.lake, _ds(self.partition_date))


class GateOperator(MlopsStep, BaseOperator, SkipMixin):
    """Decide promotion. A rejection is a normal outcome: downstream tasks are skipped and the run stays green.

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
            downstream = [t for t in context["task"].get_flat_relatives(upstream=False) if not t.is_teardown]
            self.log.info("Challenger rejected; skipping %s", [t.task_id for t in downstream])
            context["ti"].xcom_push(key="return_value", value=decision.to_dict())
            self.skip(ti=context["ti"], tasks=downstream)
        return decision.to_dict()


class RegisterOperator(MlopsStep, BaseOperator):
    """Register the challenger as a model version (once per Airflow run), with lineage and gate tags."""

    template_fields: Sequence[str] = ("trained", "decision")

    def __init__(self, *, pipeline: PipelineSpec | str, trained: Any, decision: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.trained = trained
        self.decision = decision

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle

        ti = context["ti"]
        return lifecycle.register(
            self.spec, self.trained, self.decision, f"{ti.dag_id}/{ti.run_id}", self.lineage(context)
        )


class DeployOperator(MlopsStep, BaseOperator):
    """Deploy a registered version to the spec's target (local: move the ``champion`` alias)."""

    template_fields: Sequence[str] = ("registered",)

    def __init__(self, *, pipeline: PipelineSpec | str, registered: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.registered = registered

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle

        return lifecycle.deploy(self.spec, str(self.registered["version"]))


class SmokeTestOperator(MlopsStep, BaseOperator):
    """Score held-out rows through the deployment and compare with the offline predictions; roll back on failure."""

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
            return lifecycle.smoke_test(
                self.spec, self.deployment, self.trained["holdout_uri"], self.evaluation["predictions_uri"]
            )
        except Exception as err:  # rolled back already; a retry would deploy nothing
            raise AirflowFailException(str(err)) from err


class BatchScoreOperator(MlopsStep, BaseOperator):
    """Score a partition with ``models:/<name>@champion``; predictions Parquet carries the model version.

    :param data: the ingest result (XCom) or the partition URI (templated).
    """

    template_fields: Sequence[str] = (*_PARTITIONED, "data")

    def __init__(
        self,
        *,
        pipeline: PipelineSpec | str,
        partition_date: str = "{{ ds }}",
        lake_root: str | None = None,
        data: Upstream,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.pipeline, self.partition_date, self.lake_root = pipeline, partition_date, lake_root
        self.data = data

    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle

        try:
            return lifecycle.batch_score(self.spec, _uri(self.data), self.lake, _ds(self.partition_date))
        except LookupError as err:
            raise AirflowFailException(str(err)) from err
