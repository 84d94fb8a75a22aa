"""Atomic partitions, manifests and source selection by logical date."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
import pytest

from mlops_core import storage
from mlops_core.spec import SourceSpec

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit


def _frame(n=10):
    return pd.DataFrame({"a": range(n), "b": [f"x{i}" for i in range(n)]})


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_write_then_read_round_trip_with_manifest(tmp_path):
    root = tmp_path.as_uri()
    m = storage.write_partition({"data": _frame()}, root, "p", "raw", "2026-01-31")
    assert m.uri == f"{root}/p/raw/ds=2026-01-31"
    assert m.rows == 10 and [c["name"] for c in m.columns] == ["a", "b"]
    assert len(m.sha256) == 64
    pd.testing.assert_frame_equal(storage.read_frame(m.uri), _frame())
    assert storage.read_manifest(m.uri).sha256 == m.sha256


def test_same_content_same_hash_and_overwrite_replaces(tmp_path):
    root = tmp_path.as_uri()
    a = storage.write_partition({"data": _frame()}, root, "p", "raw", "2026-01-31")
    b = storage.write_partition({"data": _frame()}, root, "p", "raw", "2026-01-31")
    assert a.sha256 == b.sha256
    c = storage.write_partition({"data": _frame(3)}, root, "p", "raw", "2026-01-31")
    assert storage.read_frame(c.uri).shape == (3, 2)
    assert _listing(tmp_path / "p" / "raw") == [
        "ds=2026-01-31",
        "ds=2026-01-31/_manifest.json",
        "ds=2026-01-31/data.parquet",
    ]


def test_failed_write_leaves_no_partition(tmp_path, monkeypatch):
    root = tmp_path.as_uri()

    class Boom(Exception):
        pass

    def broken(df):
        raise Boom("disk full")

    first = {"data": _frame()}
    monkeypatch.setattr(storage, "_parquet_bytes", broken)
    with pytest.raises(Boom):
        storage.write_partition(first, root, "p", "raw", "2026-01-31")
    assert not (tmp_path / "p" / "raw" / "ds=2026-01-31").exists()
    assert [p.name for p in (tmp_path / "p" / "raw").iterdir()] == []  # no temp folder left either


def test_failed_rewrite_keeps_the_old_partition(tmp_path, monkeypatch):
    root = tmp_path.as_uri()
    storage.write_partition({"data": _frame()}, root, "p", "raw", "2026-01-31")
    real = storage._parquet_bytes
    calls = {"n": 0}

    def second_file_fails(df):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("connection reset")
        return real(df)

    monkeypatch.setattr(storage, "_parquet_bytes", second_file_fails)
    with pytest.raises(OSError):
        storage.write_partition({"data": _frame(2), "extra": _frame(2)}, root, "p", "raw", "2026-01-31")
    monkeypatch.undo()
    assert storage.read_frame(f"{root}/p/raw/ds=2026-01-31").shape == (10, 2)
    assert sorted(p.name for p in (tmp_path / "p" / "raw").iterdir()) == ["ds=2026-01-31"]


def test_tampered_file_is_detected(tmp_path):
    m = storage.write_partition({"data": _frame()}, tmp_path.as_uri(), "p", "raw", "2026-01-31")
    (tmp_path / "p" / "raw" / "ds=2026-01-31" / "data.parquet").write_bytes(storage._parquet_bytes(_frame(4)))
    with pytest.raises(ValueError, match="does not match its manifest"):
        storage.read_frame(m.uri)


def test_partition_without_manifest_is_absent(tmp_path):
    (tmp_path / "p" / "raw" / "ds=2026-01-31").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no complete partition"):
        storage.read_frame(f"{tmp_path.as_uri()}/p/raw/ds=2026-01-31")


def _events(tmp_path) -> str:
    df = pd.DataFrame(
        {"event_date": ["2026-01-01", "2026-01-10", "2026-01-20", "2026-01-31", "2026-02-01"], "v": range(5)}
    )
    path = tmp_path / "events.csv"
    df.to_csv(path, index=False)
    return path.as_uri()


def test_column_mode_selects_window(tmp_path):
    src = SourceSpec(
        uri=_events(tmp_path), partition={"mode": "column", "column": "event_date", "lookback_days": 12}
    )
    assert storage.read_source(src, "2026-01-31")["v"].tolist() == [2, 3]
    assert storage.read_source(src, "2026-01-31", lookback_days=1)["v"].tolist() == [3]


def test_column_mode_no_rows_is_a_clear_error(tmp_path):
    src = SourceSpec(uri=_events(tmp_path), partition={"mode": "column", "column": "event_date"})
    with pytest.raises(storage.SourceDataError, match="no rows for ds=2025-06-01"):
        storage.read_source(src, "2025-06-01")


def test_files_mode_reads_the_days_files(tmp_path):
    for day, n in (("2026-01-30", 2), ("2026-01-31", 3)):
        _frame(n).to_parquet(tmp_path / f"events_{day}.parquet")
    src = SourceSpec(
        uri=f"{tmp_path.as_uri()}/events_{{ds}}.parquet",
        format="parquet",
        partition={"mode": "files", "lookback_days": 2},
    )
    assert len(storage.read_source(src, "2026-01-31")) == 5
    with pytest.raises(storage.SourceDataError, match="no source file"):
        storage.read_source(src, "2026-03-01")


def test_snapshot_missing_source_names_the_uri(tmp_path):
    src = SourceSpec(uri=f"{tmp_path.as_uri()}/nope.csv")
    with pytest.raises(storage.SourceDataError, match="nope.csv does not exist"):
        storage.read_source(src, "2026-01-31")
