"""The data steps: ingest a day into the lake, validate it (Great Expectations and the data contract)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from mlops_airflow.links import mlops as links
from mlops_airflow.operators.base import (
    _PARTITIONED,
    MlopsStep,
    Upstream,
    _run_type,
    _uri,
    in_cloud_profile,
    upstream_dataset,
)

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.sdk import Context

    from mlops_airflow.operators.base import Datasets
    from mlops_core.spec import PipelineSpec


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

    @in_cloud_profile
    def execute(self, context: Context) -> dict[str, Any]:
        return self._ingest(context)

    @in_cloud_profile
    def resume_ingest(self, context: Context, event: Any = None) -> dict[str, Any]:
        """Back from a wait for the day's rows: look again."""
        return self._ingest(context)

    def _ingest(self, context: Context) -> dict[str, Any]:
        from mlops_core import lifecycle
        from mlops_core.data.errors import SourceDataError, SourceNotReady
        from mlops_core.data.features import FeatureStoreError
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
            run_type = _run_type(context)
            if run_type != "scheduled" or self.spec.source.partition.mode == "snapshot":
                # only a scheduled day's partition may still land; a manual, backfill or retrain
                # run reads what is there, and a snapshot is one file: waiting hides a wrong path
                raise AirflowFailException(
                    f"{err}. A {run_type} run does not wait for data (only a scheduled run's day waits, "
                    f"up to source.wait_minutes{' and never for a snapshot source' if run_type == 'scheduled' else ''}): "
                    "put the file where source.uri points, or fix source.uri"
                ) from err
            self._wait_or_fail(day, err)
            raise  # unreachable: _wait_or_fail defers or raises
        except (SourceDataError, FeatureStoreError) as err:  # retrying will not make the data right
            raise AirflowFailException(str(err)) from err

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The source files of the day's window (a DVC source's with the md5 of each, once read) -> the
        lake partition (its manifest version once written)."""
        from mlops_airflow import lineage
        from mlops_core.base import settings
        from mlops_core.data import storage

        day = self.partition(context)
        inputs = lineage.source_datasets(self.spec, day, settings.expand, self.lookback_days)
        if result:
            if self.spec.source.dvc is not None:  # each file's DVC md5, as the manifest recorded it
                written = storage.read_manifest(result["uri"], version=int(result["version"]))
                inputs = lineage.with_source_versions(inputs, written.extra)
            return inputs, [lineage.uri_dataset(result["uri"], result.get("version"))]
        return inputs, [
            lineage.uri_dataset(storage.partition_uri(self.lake, self.spec.name, self.stage, day))
        ]

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

    @in_cloud_profile
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

    def lineage_datasets(self, context: Context, result: dict[str, Any] | None) -> Datasets:
        """The partition it validated (the report is not a dataset of its own)."""
        return [upstream_dataset(self.data)], []

    def _link(self, html_uri: str | None) -> None:
        url = links.report_url(self.spec.name, html_uri, self.lake)
        links.remember(self, links.ValidationReportLink.name, url)
