"""What every step shares: the data day, lineage tags, the cloud profile a step runs in, and
:class:`MlopsStep` itself."""

from __future__ import annotations

import functools
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar, cast

from airflow.sdk.exceptions import AirflowFailException

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager
    from datetime import date

    from airflow.sdk import Context

    from mlops_airflow.lineage import LineageDataset
    from mlops_core.spec import PipelineSpec
    from mlops_core.spec.profiles import CloudProfile


F = TypeVar("F", bound="Callable[..., Any]")
# (inputs, outputs) of a step, for OpenLineage (MlopsStep.lineage_datasets)
Datasets = tuple[list["LineageDataset"], list["LineageDataset"]]

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
            for k in ("metric", "value", "low", "high", "holdout", "floor", "rows", "on")
        } | {"mlops.performance_days": ",".join(performance.get("days") or [])}
    return tags


def in_cloud_profile(method: F) -> F:
    """Run a task's ``execute`` (or the method it resumes in after a deferral) inside the
    pipeline's cloud profile: ``${MLOPS_LAKE}``, ``${MLOPS_LANDING}`` and the connections resolve
    to the profile's (:func:`mlops_airflow.hooks.cloud.cloud_context`; a step with a
    ``source_conn_id`` reads its source through that connection).

    What the method returns is kept on ``self.returned``: the step's OpenLineage facets on
    completion name what it wrote from it (the provider's listener calls
    :meth:`MlopsStep.get_openlineage_facets_on_complete` after the method, in the same process).

    Written on each method it applies to, so a reader sees it there; ``tests/unit/test_layers.py``
    fails if an execute or resume method of a step lacks it.
    """

    @functools.wraps(method)
    def run(self: MlopsStep, *args: Any, **kwargs: Any) -> Any:
        with self.cloud_profile():
            result = method(self, *args, **kwargs)
        self.returned = result
        return result

    run.in_cloud_profile = True  # type: ignore[attr-defined]
    return cast("F", run)


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
    returned: Any = None  # what execute (or the resume method) returned (in_cloud_profile)

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

    # --- OpenLineage (docs/lineage.md) -------------------------------------------------------------
    # The provider's listener calls the facet methods, when the provider is installed, around the
    # task: START after the templates are rendered, COMPLETE after execute returned, FAIL after it
    # raised. The names
    # come from mlops_airflow.lineage; each step says what it reads and writes in lineage_datasets.

    def cloud_profile(self) -> AbstractContextManager[Any]:
        """The step's cloud profile as a context (:func:`mlops_airflow.hooks.cloud.cloud_context`;
        a step with a ``source_conn_id`` reads its source through that connection)."""
        from mlops_airflow.hooks.cloud import cloud_context

        return cloud_context(self.spec, getattr(self, "source_conn_id", None) or None)

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """``(inputs, outputs)`` of this step; ``result`` is None before it ran (START), else what it
        returned. Computed inside the step's cloud profile (its lake and landing roots)."""
        return [], []

    def get_openlineage_facets_on_start(self) -> Any:
        from airflow.sdk import get_current_context

        return self._operator_lineage(get_current_context(), None)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        result = self.returned if isinstance(self.returned, dict) else {}
        return self._operator_lineage(task_instance.get_template_context(), result)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """FAIL: what the step was reading and was to write, as at START (nothing it returned: it
        published no version). The provider adds the error as the ``errorMessage`` run facet."""
        return self._operator_lineage(task_instance.get_template_context(), None)

    def _operator_lineage(self, context: Context, result: dict[str, Any] | None) -> Any:
        from mlops_airflow import lineage

        with self.cloud_profile():
            inputs, outputs = self.lineage_datasets(context, result)
        return lineage.operator_lineage(inputs, outputs)


def upstream_dataset(value: Upstream) -> LineageDataset:
    """A partition an upstream step wrote (its XCom dict: ``uri`` and the manifest ``version``) or a URI."""
    from mlops_airflow import lineage

    if isinstance(value, dict):
        return lineage.uri_dataset(str(value["uri"]), value.get("version"))
    return lineage.uri_dataset(str(value))


def tracking() -> str:
    """The MLflow tracking URI (the namespace of models, versions and aliases)."""
    from mlops_core.base import settings

    return settings.tracking_uri()


_PARTITIONED = ("partition_date", "lake_root")
