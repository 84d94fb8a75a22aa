"""Column-mode dates: parsed value by value, unreadable ones quarantined by line, order-free."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from mlops_core import lifecycle
from mlops_core.base import settings
from mlops_core.data import dates, sources, storage
from mlops_core.data.errors import SourceDataError, SourceNotReady
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

DS = "2026-02-04"
HEADER = "id,event_date,amount,city\n"
# issue 23 item 4: two spellings of the same day, a month-first date, text, a blank
MIXED = ["2026-02-04", "2026-02-04 12:00", "2026-02-04T08:00:00Z", "04/02/2026", "not a date", ""]


def _land(name: str, rows: list[str]) -> str:
    root = Path(settings.landing_root().removeprefix("file://"))
    (root / "d").mkdir(parents=True, exist_ok=True)
    body = "".join(f"{i},{d},{i}.5,c{i % 2}\n" for i, d in enumerate(rows, start=1))
    (root / "d" / name).write_text(HEADER + body)
    return f"${{MLOPS_LANDING}}/d/{name}"


def _spec(uri: str, share: float = 0.0, lookback: int = 1, fmt: str = "csv"):
    return example_spec(
        source={
            "uri": uri,
            "format": fmt,
            "max_rejected_share": share,
            "partition": {"mode": "column", "column": "event_date", "lookback_days": lookback},
        },
        target="city",
        features={"id_columns": ["id"]},
    )


def test_each_value_is_parsed_on_its_own():
    values = [*MIXED, "2026-02-04T23:30-02:00", "2026-02-04 08:30:00+0200", "2026-02-30", "20260204", None]
    days = dates.parse_days(values)
    assert days.tolist()[:3] == [pd.Timestamp("2026-02-04")] * 3
    assert days.iloc[6] == pd.Timestamp("2026-02-05")  # a zoned time belongs to its UTC day
    assert days.iloc[7] == pd.Timestamp("2026-02-04")
    assert days.iloc[[3, 4, 5, 8, 9, 10]].isna().all()
    assert dates.parse_days(values[::-1]).tolist() == days.tolist()[::-1]
    assert dates.describe_bad("") == "is blank"
    assert "'04/02/2026' is not a date" in dates.describe_bad("04/02/2026")


@pytest.mark.parametrize("order", ["as written", "reversed"])
def test_rows_kept_and_quarantined_do_not_depend_on_row_order(local_dir, order):
    rows = [*MIXED, *["2026-01-15"] * 20]  # 3 unreadable of 26 rows read: within 0.2
    rows = rows if order == "as written" else rows[::-1]
    spec = _spec(_land(f"m-{order[:2]}.csv", rows), share=0.2)
    kept, rejected = sources.read_source_strict(spec.source, DS)
    assert sorted(kept["event_date"]) == sorted(MIXED[:3])
    by_line = dict(zip(rejected["line"], rejected["reason"], strict=True))
    assert sorted(rejected["raw"].str.split(",").str[1]) == sorted(MIXED[3:])
    assert len(by_line) == 3 and all("column 'event_date'" in r for r in by_line.values())
    line_of = {d: i + 2 for i, d in enumerate(rows)}  # header = line 1
    assert "is blank" in by_line[line_of[""]]
    assert "'not a date' is not a date" in by_line[line_of["not a date"]]


def test_unreadable_dates_fail_by_default_naming_the_lines(local_dir):
    spec = _spec(_land("strict.csv", MIXED))
    with pytest.raises(SourceDataError) as err:
        sources.read_source(spec.source, DS)
    text = str(err.value)
    assert "line 5: column 'event_date' = '04/02/2026' is not a date" in text
    assert "3 with an unreadable date, 50.00% of the 6 rows read" in text and "max_rejected_share" in text
    assert "no rows" not in text


def test_an_unreadable_first_value_is_not_reported_as_no_rows(local_dir):
    """Issue 28 item 2: one odd value in the first row emptied the window ("its rows are not coming")."""
    good = [f"2026-02-{d:02d}" for d in range(1, 5) for _ in range(10)]  # 40 rows
    spec = _spec(_land("first.csv", ["07/15/2017", *good]), share=0.05, lookback=7)
    result = lifecycle.ingest(spec, DS, settings.lake_root())
    assert result["rows"] == 40 and result["rejected_rows"] == 1
    quarantined = storage.read_frame(result["rejected_uri"])
    assert quarantined["line"].tolist() == [2] and "07/15/2017" in quarantined["raw"].iloc[0]


def test_undated_rows_are_judged_against_the_whole_file(local_dir):
    """2 % of a year's dates written otherwise is 2 % on every day's read, not 2 % of the file per day."""
    days = pd.date_range("2025-02-05", DS, freq="D").strftime("%Y-%m-%d").tolist()
    rows = [d for d in days for _ in range(5)]  # 365 days x 5 rows
    for i in range(0, len(rows), 50):  # 2 %
        rows[i] = pd.Timestamp(rows[i]).strftime("%m/%d/%Y")
    uri = _land("year.csv", rows)
    kept, rejected = sources.read_source_strict(_spec(uri, share=0.05).source, DS)
    assert len(rejected) == len(range(0, len(rows), 50)) and len(kept) == 5
    with pytest.raises(
        SourceDataError,
        match=r"0 of the 5 rows of the window and 37 with an unreadable date, 2\.03% of the 1825 rows read",
    ):
        sources.read_source_strict(_spec(uri, share=0.01).source, DS)


def test_no_rows_only_when_the_window_is_truly_empty(local_dir):
    spec = _spec(_land("old.csv", ["2026-01-01"] * 5))
    with pytest.raises(SourceNotReady, match=r"has no rows for ds=2026-02-04 \(mode=column"):
        sources.read_source(spec.source, DS)


def test_parquet_text_dates_are_quarantined_by_row_number(local_dir):
    root = Path(settings.landing_root().removeprefix("file://"))
    (root / "d").mkdir(parents=True, exist_ok=True)
    days = ["2026-02-04", "bad", "2026-02-04 10:00", None, *["2026-01-15"] * 10]
    frame = pd.DataFrame({"id": range(1, len(days) + 1), "event_date": days})
    frame.assign(amount=1.0, city="c").to_parquet(root / "d" / "p.parquet")
    spec = _spec("${MLOPS_LANDING}/d/p.parquet", share=0.2, fmt="parquet")
    kept, rejected = sources.read_source_strict(spec.source, DS)
    assert kept["id"].tolist() == [1, 3]
    assert rejected["line"].tolist() == [2, 4]
    assert "is blank" in rejected["reason"].iloc[1]


def test_every_read_logs_the_exact_range(local_dir, caplog):
    spec = _spec(_land("log.csv", ["2026-02-04"] * 3), lookback=7)
    with caplog.at_level(logging.INFO, logger="mlops_core.data.sources"):
        sources.read_source(spec.source, DS)
    assert (
        "rows whose 'event_date' falls on 2026-01-29 through 2026-02-04 (UTC days; from 2026-01-29T00:00"
        " to before 2026-02-05T00:00), mode=column, lookback_days=7, ds=2026-02-04" in caplog.text
    )
