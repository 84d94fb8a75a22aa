"""The monitoring steps: batch scoring, the daily drift check and policy, the drift event, realized
performance and decay."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from mlops_airflow.links import mlops as links
from mlops_airflow.operators.base import (
    _PARTITIONED,
    MlopsStep,
    Upstream,
    _as_bool,
    _run_type,
    _uri,
    in_cloud_profile,
    tracking,
    upstream_dataset,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from mlops_airflow.operators.base import Datasets
    from mlops_core.spec import PipelineSpec


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

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core import scoring

        try:
            return scoring.batch_score(
                self.spec, _uri(self.data), self.lake, self.partition(context), stage=self.stage
            )
        except LookupError as err:
            raise AirflowFailException(str(err)) from err

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The partition and the champion's version -> the predictions partition."""
        from mlops_airflow import lineage
        from mlops_core.data import storage

        name = self.spec.registered_model_name
        if not result:
            day = self.partition(context)
            uri = storage.partition_uri(self.lake, self.spec.name, self.stage, day)
            inputs = [upstream_dataset(self.data), lineage.champion_dataset(tracking(), name)]
            return inputs, [lineage.uri_dataset(uri)]
        model = lineage.model_version_dataset(tracking(), name, result["model_version"])
        return [upstream_dataset(self.data), model], [lineage.uri_dataset(result["uri"])]


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

    @in_cloud_profile
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

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The monitored partition, against the champion -> the day's drift history partition (what
        the drift policy reads; the report is not a dataset of its own)."""
        from mlops_airflow import lineage

        champion = lineage.champion_dataset(tracking(), self.spec.registered_model_name)
        day = history_dataset(self, context, result, "drift_history", "history_uri")
        return [upstream_dataset(self.data), champion], [day]


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

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_core.monitor import monitoring

        is_backfill = _run_type(context) == "backfill"
        decision = monitoring.policy(self.spec, self.lake, self.partition(context), is_backfill=is_backfill)
        self.log.info(
            "drift policy %s:\n  - %s", "FIRES" if decision.fire else "holds", "\n  - ".join(decision.reasons)
        )
        return {**decision.to_dict(), "drift": self.drift}

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The day's drift history partition and, with ``feedback``, the performance history of the
        prediction day this run's ``performance`` step judged (the policy reads the earlier days of
        its windows too; those were named by the runs that wrote them). Its decision goes to
        ``emit_drift_event`` by XCom: no dataset."""
        from datetime import date, timedelta

        from mlops_airflow import lineage
        from mlops_core.data import storage
        from mlops_core.monitor import feedback

        day = self.partition(context)
        inputs = [history_dataset(self, context, None, "drift_history", "history_uri")]
        if self.spec.feedback is not None:
            judged = date.fromisoformat(day) - timedelta(days=self.spec.feedback.delay_days)
            uri = storage.partition_uri(self.lake, self.spec.name, feedback.HISTORY, judged)
            inputs.append(lineage.uri_dataset(uri))
        return inputs, []


def history_dataset(
    step: MlopsStep, context: Context, result: dict[str, Any] | None, stage: str, key: str
) -> Any:
    """A history partition a monitoring step wrote (``result[key]``, with the version just published)
    or, before it ran, the one of its day."""
    from mlops_airflow import lineage
    from mlops_core.data import storage

    uri = (result or {}).get(key)
    if not uri:
        return lineage.uri_dataset(
            storage.partition_uri(step.lake, step.spec.name, stage, step.partition(context))
        )
    try:  # the version this step published (read back right after it: the newest)
        version: int | None = storage.read_manifest(str(uri)).version
    except FileNotFoundError:
        version = None
    return lineage.uri_dataset(str(uri), version)


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

    @in_cloud_profile
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
            # what fired: drift, performance (decay, realized or estimated) or drift+performance
            "trigger": self.decision.get("trigger") or "drift",
            "performance": (self.decision.get("evidence") or {}).get("performance"),
        }
        for outlet in self.outlets:
            context["outlet_events"][outlet].extra = extra
        self.log.info("emitted drift event for %s: %s", self.spec.name, extra)
        from mlops_airflow.notifications import alerts as notifiers

        notifiers.notify_policy_fired(self.spec, context, extra)
        return extra

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The champion whose monitoring fired -> the drift event (the day it names as its version),
        which starts the retraining (whose train step reads it)."""
        from mlops_airflow import lineage

        champion = lineage.champion_dataset(tracking(), self.spec.registered_model_name)
        decision = self.decision if isinstance(self.decision, dict) else {}
        if not decision.get("fire"):
            return [champion], []
        return [champion], [lineage.drift_event_dataset(self.spec.drift_asset_uri, decision.get("ds"))]


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

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        from mlops_airflow.hooks.cloud import export_metrics
        from mlops_core.data.errors import SourceDataError
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

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The predictions of ``delay_days`` before (the ``score`` output of that day's monitoring
        run) and the labels file(s) -> the performance history partition of that prediction day."""
        from datetime import date, timedelta

        from mlops_airflow import lineage
        from mlops_core.base import settings
        from mlops_core.data import storage
        from mlops_core.monitor import feedback

        fb = self.spec.feedback
        if fb is None:
            return [], []
        day = self.partition(context)
        judged = (date.fromisoformat(day) - timedelta(days=fb.delay_days)).isoformat()
        predictions = storage.partition_uri(self.lake, self.spec.name, feedback.PREDICTIONS, judged)
        inputs = [lineage.uri_dataset(predictions), *lineage.labels_datasets(self.spec, day, settings.expand)]
        if result and result.get("history_uri"):
            return inputs, [history_dataset(self, context, result, feedback.HISTORY, "history_uri")]
        uri = storage.partition_uri(self.lake, self.spec.name, feedback.HISTORY, judged)
        return inputs, [lineage.uri_dataset(uri)]


def _notify_decay(step: MlopsStep, context: Context, evidence: dict[str, Any]) -> None:
    """The ``metric_below_floor`` alert, when the pipeline routes alerts (mlops_airflow.notifications.alerts)."""
    if step.spec.alerts is None:
        return
    from mlops_airflow.notifications import alerts as notifiers

    notifiers.notify_metric_below_floor(step.spec, context, evidence)
