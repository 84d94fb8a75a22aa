"""One data-day rule for every run type, proven on the DAGs' own timetables.

A scheduled run, a backfill of the same date and a manual run for that date read the same day;
a scheduled ``@daily`` run that fires at 00:00 on the 4th reads the 3rd (the last whole day), not
the day that has just begun.
"""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest
from airflow.sdk import AssetOrTimeSchedule

from mlops_airflow.builder import build_monitoring_dag, build_training_dag
from mlops_airflow.operators.base import data_day
from tests.helpers import example_spec

pytestmark = pytest.mark.unit


def _context(run_type, *, logical=None, end=None, run_after=None, events=None):
    run = SimpleNamespace(run_type=run_type, data_interval_end=end, run_after=run_after or end or logical)
    return {"dag_run": run, "logical_date": logical, "triggering_asset_events": events or {}}


def _core_timetable(dag):
    """The scheduler's view of the DAG's timetable (what the scheduler and backfill really call)."""
    from airflow.serialization.decoders import decode_timetable
    from airflow.serialization.encoders import encode_timetable

    tt = dag.timetable
    return decode_timetable(encode_timetable(tt.timetable if isinstance(tt, AssetOrTimeSchedule) else tt))


def _scheduled(dag, previous_start, previous_end):
    """The run the scheduler creates after the one whose data interval was [previous_start, previous_end)."""
    from airflow.timetables.base import DataInterval, TimeRestriction

    return _core_timetable(dag).next_dagrun_info(
        last_automated_data_interval=DataInterval(previous_start, previous_end),
        restriction=TimeRestriction(earliest=dag.start_date, latest=None, catchup=True),
    )


def _day(n: int) -> datetime:
    return datetime(2026, 2, n, tzinfo=UTC)


def test_scheduled_daily_run_reads_the_day_that_just_ended():
    dag = build_monitoring_dag(example_spec(end_date=None))
    info = _scheduled(dag, _day(2), _day(3))
    assert info.run_after == datetime(2026, 2, 4, tzinfo=UTC)  # fires at 00:00 on the 4th ...
    ctx = _context(
        "scheduled", logical=info.logical_date, end=info.data_interval.end, run_after=info.run_after
    )
    assert data_day(ctx) == "2026-02-03"  # ... and reads the 3rd
    assert info.logical_date.date().isoformat() == "2026-02-03"  # {{ ds }} says the same


def test_backfill_of_three_dates_reads_exactly_those_days():
    from airflow.serialization.serialized_objects import DagSerialization

    # what `airflow backfill create --from-date 2026-02-01 --to-date 2026-02-03` iterates
    dag = DagSerialization.from_dict(DagSerialization.to_dict(build_monitoring_dag(example_spec())))
    infos = list(
        dag.iter_dagrun_infos_between(datetime(2026, 2, 1, tzinfo=UTC), datetime(2026, 2, 3, tzinfo=UTC))
    )
    days = [data_day(_context("backfill", logical=i.logical_date, end=i.data_interval.end)) for i in infos]
    assert days == ["2026-02-01", "2026-02-02", "2026-02-03"]


def test_manual_run_for_a_date_reads_what_the_scheduled_run_for_it_reads():
    dag = build_monitoring_dag(example_spec(end_date=None))
    info = _scheduled(dag, _day(2), _day(3))
    scheduled = data_day(_context("scheduled", logical=info.logical_date, end=info.data_interval.end))
    # a manual run for the same logical date: Airflow infers its data interval differently
    # ([2nd, 3rd) for a manual 3rd), the rule still reads the 3rd
    manual = data_day(_context("manual", logical=info.logical_date, end=datetime(2026, 2, 3, tzinfo=UTC)))
    assert manual == scheduled == "2026-02-03"


def test_manual_run_without_a_logical_date_reads_the_last_whole_day():
    ctx = _context("manual", run_after=datetime(2026, 2, 4, 9, 15, tzinfo=UTC))
    assert data_day(ctx) == "2026-02-03"


def test_weekly_run_reads_up_to_the_last_day_of_its_week():
    dag = build_training_dag(example_spec(end_date=None, monitoring={"enabled": False}))
    # @weekly: Sunday 00:00 boundaries; the week of Sunday 1 Feb ends at 00:00 on Sunday the 8th
    info = _scheduled(dag, datetime(2026, 1, 25, tzinfo=UTC), _day(1))
    assert info.run_after == _day(8)
    assert (
        data_day(_context("scheduled", logical=info.logical_date, end=info.data_interval.end)) == "2026-02-07"
    )


def test_asset_triggered_run_reads_the_drift_events_day():
    event = SimpleNamespace(extra={"mlops_trigger": "drift", "ds": "2026-02-06"}, timestamp=1)
    ctx = _context("asset_triggered", run_after=datetime(2026, 2, 7, 3, 0, tzinfo=UTC), events={"a": [event]})
    assert data_day(ctx) == "2026-02-06"


# --- a logical date before start_date is refused, never a silent success (issue 28, item 6) ---


def test_dags_test_before_start_date_is_refused_with_a_message():
    dag = build_monitoring_dag(example_spec(start_date="2026-01-01"))
    with pytest.raises(
        ValueError, match=r"logical date 2017-08-31 is before the pipeline's start_date 2026-01-01"
    ) as err:
        dag.test(logical_date=datetime(2017, 8, 31, tzinfo=UTC))
    assert "Set start_date in the pipeline YAML to 2017-08-31 or earlier" in str(err.value)


def test_a_backfilled_step_before_start_date_fails_and_on_or_after_it_reads_its_day():
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.operators.data import IngestOperator

    spec = example_spec(start_date="2026-01-01")
    step = IngestOperator(task_id="ingest", pipeline=spec)
    early = _context(
        "backfill", logical=datetime(2025, 12, 30, tzinfo=UTC), end=datetime(2025, 12, 31, tzinfo=UTC)
    )
    early["dag_run"].dag_id = "breast_cancer_training"
    with pytest.raises(
        AirflowFailException, match="logical date 2025-12-30 is before the pipeline's start_date"
    ):
        step.partition(early)
    first = _context(
        "backfill", logical=datetime(2026, 1, 1, tzinfo=UTC), end=datetime(2026, 1, 2, tzinfo=UTC)
    )
    first["dag_run"].dag_id = "breast_cancer_training"
    assert step.partition(first) == "2026-01-01"
    unset = _context("manual", logical=None, run_after=datetime(2026, 1, 1, 9, tzinfo=UTC))
    unset["dag_run"].dag_id = "breast_cancer_training"
    assert step.partition(unset) == "2025-12-31"  # no logical date: Airflow runs it, it reads yesterday
