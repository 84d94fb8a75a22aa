"""Strict source reading: malformed CSV rows are named by line, failed on or quarantined, never coerced."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_core import lifecycle
from mlops_core.base import settings
from mlops_core.data import csv_reader, source_files, sources, storage
from mlops_core.data.errors import SourceDataError, SourceNotReady
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

DS = "2026-01-31"
HEADER = "id,event_date,amount,city\n"
GOOD = [f"{i},2026-01-{1 + i % 30:02d},{i}.5,c{i % 3}\n" for i in range(1, 21)]  # 20 rows, lines 2..21


def _land(name: str, text: str | bytes) -> str:
    root = Path(settings.landing_root().removeprefix("file://"))
    (root / "t").mkdir(parents=True, exist_ok=True)
    path = root / "t" / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return f"${{MLOPS_LANDING}}/t/{name}"


def _spec(uri: str, fmt: str = "csv", share: float = 0.0, mode: str = "snapshot", **part):
    partition = {"mode": mode, **part}
    return example_spec(
        source={"uri": uri, "format": fmt, "max_rejected_share": share, "partition": partition},
        target="city",  # the test files' own columns (ingest checks the YAML's names against them)
        features={"id_columns": ["id"]},
    )


def _ingest(spec, ds: str = DS) -> dict:
    return lifecycle.ingest(spec, ds, settings.lake_root())


def _with(line_no: int, bad: str) -> str:
    """The 20 good rows with the row at file line ``line_no`` replaced by ``bad``."""
    rows = list(GOOD)
    rows[line_no - 2] = bad
    return HEADER + "".join(rows)


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("7,2026-01-08,7.5,c1,extra\n", "line 8: 5 fields, header has 4"),
        ("7,2026-01-08,7.5\n", "line 8: 3 fields, header has 4"),
        ("7,2026-01-08,n/a,c1\n", "line 8: column 'amount' = 'n/a' is not a number"),
        ("7,2026-01-08,N/A,c1\n", "line 8: column 'amount' = 'N/A' is not a number"),
        ("7,2026-01-08,?,c1\n", "line 8: column 'amount' = '?' is not a number"),
    ],
)
def test_a_malformed_row_fails_ingest_naming_its_line(local_dir, bad, reason):
    spec = _spec(_land("x.csv", _with(8, bad)))
    with pytest.raises(SourceDataError) as err:
        _ingest(spec)
    text = str(err.value)
    assert reason in text and "1 malformed row(s) of 20" in text and "t/x.csv" in text
    assert "max_rejected_share" in text and "Fix the file" in text
    assert isinstance(err.value, SourceDataError) and not isinstance(err.value, SourceNotReady)


def test_a_truncated_last_line_is_named_truncated(local_dir):
    text = HEADER + "".join(GOOD) + "21,2026-01-"  # the writer was cut off; no newline at the end
    with pytest.raises(SourceDataError, match=r"line 22: truncated \(2 of 4 fields\)"):
        _ingest(_spec(_land("x.csv", text)))


def test_the_message_lists_the_first_five_lines_and_the_share(local_dir):
    rows = list(GOOD)
    for n in (3, 9, 15):
        rows[n - 2] = f"{n},2026-01-02,abc,c1\n"
    for n in (5, 12, 18):
        rows[n - 2] = f"{n},2026-01-02,1,c1,x\n"
    with pytest.raises(SourceDataError) as err:
        _ingest(_spec(_land("x.csv", HEADER + "".join(rows)), share=0.1))
    text = str(err.value)
    assert "6 malformed row(s) of 20 (30.00%" in text and "max_rejected_share is 0.1" in text
    assert all(f"line {n}:" in text for n in (3, 5, 9, 12, 15)) and "line 18" not in text
    assert text.rstrip().endswith("partition") and "; ..." in text


def test_within_the_tolerance_rows_are_quarantined_never_coerced(local_dir):
    rows = list(GOOD)
    rows[3 - 2] = "98,2026-01-04,n/a,c0\n"
    rows[10 - 2] = "99,2026-01-11,10.5,c1,oops\n"
    result = _ingest(_spec(_land("x.csv", HEADER + "".join(rows)), share=0.1))
    assert result["rows"] == 18 and result["rejected_rows"] == 2
    raw = storage.read_frame(result["uri"])
    assert raw["amount"].notna().all() and raw["amount"].dtype == "float64"
    assert not {98, 99} & set(raw["id"]) and raw["id"].dtype == "int64"
    rejected = storage.read_frame(result["rejected_uri"])
    assert "/rejected/ds=2026-01-31" in result["rejected_uri"]
    assert sorted(rejected["line"].tolist()) == [3, 10]
    by_line = rejected.set_index("line")
    assert by_line.loc[3, "reason"] == "column 'amount' = 'n/a' is not a number"
    assert by_line.loc[3, "raw"] == "98,2026-01-04,n/a,c0"
    assert by_line.loc[10, "reason"] == "5 fields, header has 4"
    assert by_line.loc[10, "raw"] == "99,2026-01-11,10.5,c1,oops\n"


def test_a_clean_file_has_no_rejected_partition(local_dir):
    result = _ingest(_spec(_land("x.csv", HEADER + "".join(GOOD))))
    assert result["rejected_rows"] == 0 and "rejected_uri" not in result
    frame = storage.read_frame(result["uri"])
    assert frame["id"].dtype == "int64" and frame["amount"].dtype == "float64" and len(frame) == 20


def test_a_quoted_field_with_a_newline_is_not_malformed(local_dir):
    text = HEADER + '1,2026-01-02,1.5,"two\nlines"\n' + "".join(GOOD[1:]) + "21,2026-01-03,n/a,c1\n"
    with pytest.raises(SourceDataError, match=r"line 23: column 'amount'"):  # lines stay right
        _ingest(_spec(_land("x.csv", text)))
    ok = _ingest(_spec(_land("y.csv", HEADER + '1,2026-01-02,1.5,"two\nlines"\n2,2026-01-03,2,c1\n')))
    assert storage.read_frame(ok["uri"])["city"].tolist() == ["two\nlines", "c1"]


def test_a_fully_empty_column_and_text_nulls_are_read_as_they_are(local_dir):
    text = "id,empty,word,city\n1,,n/a,c1\n2,,x,c2\n3,,,c1\n"
    frame = storage.read_frame(_ingest(_spec(_land("x.csv", text)))["uri"])
    assert frame["empty"].isna().all() and len(frame) == 3
    assert frame["word"].tolist()[:2] == ["n/a", "x"] and pd.isna(frame["word"].iloc[2])


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"t/x\.csv is empty \(0 bytes\)"),
        (HEADER.encode(), r"t/x\.csv has a header but no rows"),
    ],
)
def test_an_empty_or_header_only_file_is_not_ready_naming_the_file(local_dir, content, message):
    with pytest.raises(SourceNotReady, match=message):
        _ingest(_spec(_land("x.csv", content)))


def test_an_empty_days_file_in_files_mode_is_not_ready(local_dir):
    _land("d_2026-01-31.csv", b"")
    spec = _spec("${MLOPS_LANDING}/t/d_{ds}.csv", mode="files")
    with pytest.raises(SourceNotReady, match=r"t/d_2026-01-31\.csv is empty \(0 bytes\)"):
        _ingest(spec)


@pytest.mark.parametrize("mode", ["snapshot", "column"])
def test_garbage_as_parquet_names_the_file(local_dir, mode):
    uri = _land("x.parquet", b"this is not parquet at all, just text\n" * 10)
    part = {"column": "event_date"} if mode == "column" else {}
    with pytest.raises(SourceDataError, match=r"t/x\.parquet is not a parquet file.*ArrowInvalid"):
        _ingest(_spec(uri, fmt="parquet", mode=mode, **part))
    with pytest.raises(SourceNotReady, match=r"t/e\.parquet is empty \(0 bytes\)"):
        _ingest(_spec(_land("e.parquet", b""), fmt="parquet", mode=mode, **part))


def test_column_mode_counts_malformed_rows_of_the_window_only(local_dir, monkeypatch):
    monkeypatch.setattr(source_files, "CSV_CHUNK_ROWS", 5)  # the schema holds across chunks
    rows = list(GOOD)
    rows[4 - 2] = "3,2026-01-03,n/a,c2\n"  # outside the 25-day window: not this run's row
    rows[20 - 2] = "19,2026-01-30,n/a,c1\n"  # inside it
    uri = _land("x.csv", HEADER + "".join(rows))
    spec = _spec(uri, mode="column", column="event_date", lookback_days=25)
    with pytest.raises(SourceDataError) as err:
        _ingest(spec)
    assert "line 20: column 'amount' = 'n/a'" in str(err.value) and "line 4:" not in str(err.value)
    assert "1 malformed row(s) of 15" in str(err.value)
    result = _ingest(_spec(uri, share=0.2, mode="column", column="event_date", lookback_days=25))
    assert result["rows"] == 14 and result["rejected_rows"] == 1


def test_the_schema_is_decided_on_the_first_chunk(local_dir, monkeypatch):
    monkeypatch.setattr(source_files, "CSV_CHUNK_ROWS", 5)
    rows = list(GOOD)
    rows[15 - 2] = "14,2026-01-15,abc,c2\n"  # a later chunk: amount is numeric already
    with pytest.raises(SourceDataError, match="line 15: column 'amount' = 'abc' is not a number"):
        _ingest(_spec(_land("x.csv", HEADER + "".join(rows))))


def test_read_source_keeps_returning_a_frame(local_dir):
    spec = _spec(_land("x.csv", _with(8, "7,2026-01-08,n/a,c1\n")), share=0.1)
    frame = sources.read_source(spec.source, DS)
    assert isinstance(frame, pd.DataFrame) and len(frame) == 19 and frame["amount"].notna().all()
    rows, rejected = sources.read_source_strict(spec.source, DS)
    assert len(rows) == 19 and rejected.columns.tolist() == ["file", "line", "reason", "raw"]


def test_columns_the_yaml_names_are_checked_against_the_header_at_ingest(landing):
    from mlops_core import lifecycle
    from mlops_core.base import settings
    from mlops_core.data.errors import SourceDataError
    from tests.helpers import example_spec

    spec = example_spec(
        features={"id_columns": ["recordid"], "time_columns": ["event_date"]}, target="diagnosis"
    )
    with pytest.raises(SourceDataError) as err:
        lifecycle.ingest(spec, "2026-01-31", settings.lake_root())
    text = str(err.value)
    assert "no column(s) recordid (features.id_columns)" in text and "'recordid' -> 'record_id'?" in text
    scoring = example_spec(target="label_not_in_scoring_data")
    # scoring and monitoring data have no target: only training ingest requires it
    assert lifecycle.ingest(scoring, "2026-01-31", settings.lake_root(), stage="batch")["rows"] > 0
    with pytest.raises(SourceDataError, match=r"label_not_in_scoring_data \(target\)"):
        lifecycle.ingest(scoring, "2026-01-31", settings.lake_root())


# --- the fast path: Arrow's tokenizer on clean files, the same frame as the strict reader --------


def _both(tmp_path: Path, text: str | bytes, columns=None, chunk_rows: int = 1000):
    """The file read by the fast path and by the strict reader, chunk by chunk."""
    import fsspec

    path = tmp_path / "f.csv"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    fs = fsspec.filesystem("file")
    fast = list(csv_reader._csv_chunks_fast(fs, str(path), columns, chunk_rows))
    strict = list(csv_reader._csv_chunks(fs, str(path), columns, chunk_rows))
    return fast, strict


def _clean_table(rows: int, seed: int = 3) -> str:
    import numpy as np

    rng = np.random.default_rng(seed)
    lines = ["id,when,x,y,n,flag,city,note,later,sparse"]
    for i in range(rows):
        x = repr(float(rng.normal(0, 1e3)))  # 17 significant digits: pandas alone rounds some wrong
        y = "" if i % 97 == 0 else f"{rng.lognormal():.6f}"
        n = str(int(rng.integers(-5, 10_000)))
        flag = "True" if i % 3 else "false"
        city = ["north", "south", "Zürich", '"a, quoted"', '"two\nlines"'][i % 5]
        note = "" if i % 11 == 0 else ["n/a", "NA", "?", "None"][i % 4]
        later = "" if i < 1500 else str(i)  # empty until the second chunk: decided there
        sparse = "" if i != 2500 else "7"
        lines.append(f"{i},2026-01-{1 + i % 28:02d},{x},{y},{n},{flag},{city},{note},{later},{sparse}")
    return "\r\n".join(lines) + "\r\n"


@pytest.mark.parametrize("columns", [None, ["x", "city", "flag", "id"]])
def test_the_fast_path_reads_exactly_what_the_strict_reader_reads(tmp_path, columns):
    fast, strict = _both(tmp_path, "\ufeff" + _clean_table(3500), columns)
    assert len(fast) == len(strict) == 4  # the same 1000-row chunks
    for a, b in zip(fast, strict, strict=True):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    whole = pd.concat(fast, ignore_index=True)
    assert whole["flag"].dtype == "bool" and set(whole["city"]) == {
        "north",
        "south",
        "Zürich",
        "a, quoted",
        "two\nlines",
    }
    if columns is None:
        assert whole["note"].isna().sum() == 319 and set(whole["note"].dropna()) == {"n/a", "NA", "?", "None"}
        assert whole["n"].dtype == "int64" and whole["y"].dtype == "float64"
        assert whole["later"].dtype == "float64" and whole["later"].notna().sum() == 2000


def test_the_strict_reader_rounds_like_the_fast_path(tmp_path):
    """Both give the nearest double; pandas' own parser is one ulp off on about 1 in 4 such values."""
    import numpy as np

    values = [repr(float(v)) for v in np.random.default_rng(1).normal(0, 1e3, 2000)]
    fast, strict = _both(tmp_path, "v\n" + "\n".join(values) + "\n")
    expected = np.array([float(v) for v in values])
    np.testing.assert_array_equal(pd.concat(strict)["v"].to_numpy(), expected)
    np.testing.assert_array_equal(pd.concat(fast)["v"].to_numpy(), expected)


@pytest.mark.parametrize(
    "text",
    [
        HEADER + "1,2026-01-01,1.5,c\n2,2026-01-02,1.5\n",  # a short row
        HEADER + "1,2026-01-01,1.5,c\n2,2026-01-02,1.5,c,x\n",  # a long row
        HEADER + "1,2026-01-01,1.5,c\n2,2026-01-02,n/a,c\n" + "".join(GOOD),  # a non-number
        HEADER + "1,2026-01-01,nan,c\n" + "".join(GOOD),  # NaN spelled out
        HEADER + "1,2026-01-01,1e400,c\n" + "".join(GOOD),  # an overflow
        HEADER + "+1,2026-01-01,1.5,c\n" + "".join(GOOD),  # an integer only pandas reads
        '"id","wh\nen"\n1,2\n',  # a header name over two lines
        HEADER,  # no rows
    ],
)
def test_the_fast_path_leaves_every_irregular_file_to_the_strict_reader(tmp_path, text):
    import fsspec

    path = tmp_path / "f.csv"
    path.write_text(text)
    with pytest.raises(csv_reader._NotClean):
        list(csv_reader._csv_chunks_fast(fsspec.filesystem("file"), str(path), None, 1000))


def test_ingest_of_a_clean_file_takes_the_fast_path_and_a_dirty_one_the_strict(local_dir, monkeypatch):
    calls = []
    strict = csv_reader._csv_chunks

    def counting(*args, **kwargs):
        calls.append("strict")
        return strict(*args, **kwargs)

    monkeypatch.setattr(source_files, "_csv_chunks", counting)
    _ingest(_spec(_land("clean.csv", HEADER + "".join(GOOD))))
    assert calls == []
    spec = _spec(_land("dirty.csv", _with(8, "7,2026-01-08,n/a,c1\n")), share=0.1)
    assert _ingest(spec)["rejected_rows"] == 1 and calls == ["strict"]


def test_a_damaged_parquet_message_keeps_the_whole_path(local_dir):
    """#25 trap 7: Arrow's message was cut at 200 characters, mid-path. It is kept whole."""
    deep = "a_rather_long_folder_name_as_teams_write_them/" * 6 + "customers_2026.parquet"
    (Path(settings.landing_root().removeprefix("file://")) / "t" / deep).parent.mkdir(parents=True)
    uri = _land(deep, b"PAR1 this is not parquet at all\n" * 10)
    with pytest.raises(SourceDataError) as info:
        _ingest(_spec(uri, fmt="parquet", mode="snapshot"))
    message = str(info.value)
    assert "is not a parquet file" in message
    tail = message.split("ArrowInvalid: ", 1)[1]
    assert len(tail) > 200 and deep in tail, tail
