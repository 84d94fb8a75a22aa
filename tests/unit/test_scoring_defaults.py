"""Batch scoring on the defaults for a small daily volume, and report paths that exist.

A day of 32 rows is scored: the training table's row-count rule (the scaffold writes
``expect_table_row_count_to_be_between(min_value=100)``) is replaced in the scoring suites by
``scoring.min_rows`` (default 1); batch scoring's window follows the monitoring window unless
``scoring.lookback_days`` is set. The log's "full report" is the stored file of that version.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mlops_core.base import settings
from mlops_core.data import filesystems, storage, validation
from mlops_dev import datasets
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

ROW_COUNT = {"expect_table_row_count_to_be_between": {"min_value": 100}}


def _spec(**changes):
    return example_spec(expectations=[ROW_COUNT], **changes)


def test_the_scoring_suites_check_scoring_min_rows_not_the_training_tables_row_count():
    spec = _spec()
    training = [(e.type, e.kwargs) for e in validation.suite_for(spec, with_target=True)]
    scoring = [(e.type, e.kwargs) for e in validation.suite_for(spec, with_target=False)]
    assert (validation.ROW_COUNT, {"min_value": 100}) in training
    assert [k for t, k in scoring if t == validation.ROW_COUNT] == [{"min_value": 1}]
    strict = _spec(scoring={"min_rows": 50})
    assert [
        e.kwargs for e in validation.suite_for(strict, with_target=False) if e.type == validation.ROW_COUNT
    ] == [{"min_value": 50}]


def test_the_batch_scoring_window_follows_the_monitoring_window_unless_set():
    unset = {"lookback_days": None}  # the example sets 7 itself
    assert _spec(scoring=unset, monitoring={"window_days": 1}).scoring_window == 1
    assert _spec(scoring=unset, monitoring={"window_days": 5}).scoring_window == 5
    assert _spec(monitoring={"window_days": 5}, scoring={"lookback_days": 2}).scoring_window == 2


def test_a_day_of_32_rows_passes_batch_validation_and_the_logged_report_exists(local_dir, caplog):
    spec = _spec(contract={"enabled": False})
    day = datasets.daily_batch("breast_cancer", __import__("datetime").date(2026, 2, 1)).head(32)
    lake = settings.lake_root()
    data = storage.write_partition(
        {"data": day.drop(columns=["diagnosis"])}, lake, spec.name, "batch", "2026-02-01"
    )
    with caplog.at_level("INFO", logger="mlops_core.data.validation"):
        report = validation.validate_partition(
            spec, data.uri, lake, "2026-02-01", with_target=False, stage="batch_validation"
        )
    assert report.success and report.evaluated >= 1
    logged = next(r.getMessage() for r in caplog.records if "full report:" in r.getMessage())
    path = logged.split("full report: ", 1)[1].strip()
    assert path == report.html_file and Path(path.removeprefix("file://")).is_file()
    assert "/result-" in path  # the version's stored name, not the logical result.html
    assert storage.read_file(report.html_uri or "") == Path(path.removeprefix("file://")).read_bytes()


def test_a_history_folder_is_read_one_version_per_day(local_dir):
    import pandas as pd

    lake = settings.lake_root()
    for ds, value in (("2026-02-01", 1.0), ("2026-02-01", 2.0), ("2026-02-02", 3.0)):  # a re-run of Feb 1
        storage.write_partition({"data": pd.DataFrame({"ds": [ds], "value": [value]})}, lake, "p", "hist", ds)
    folder = Path(filesystems.join(lake, "p", "hist").removeprefix("file://"))
    assert len(list(folder.glob("ds=*/data-*.parquet"))) == 3  # what a plain glob reads: Feb 1 twice
    days = storage.read_stage(lake, "p", "hist")
    assert days.to_dict("records") == [{"ds": "2026-02-01", "value": 2.0}, {"ds": "2026-02-02", "value": 3.0}]
