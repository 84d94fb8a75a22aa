"""Versioned partitions (commit protocol), pinned reads, garbage collection, bounded source reads."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd
import pytest

from mlops_core.data import collector, source_files, sources, storage
from mlops_core.data.errors import SourceDataError
from mlops_core.spec import SourceSpec

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

DS = "2026-01-31"


def _frame(n=10):
    return pd.DataFrame({"a": range(n), "b": [f"x{i}" for i in range(n)]})


def _listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def _part(tmp_path: Path) -> Path:
    return tmp_path / "p" / "raw" / f"ds={DS}"


def test_write_then_read_round_trip_with_manifest(tmp_path):
    root = tmp_path.as_uri()
    m = storage.write_partition({"data": _frame()}, root, "p", "raw", DS)
    assert m.uri == f"{root}/p/raw/ds={DS}" and m.version == 1 and len(m.commit) == 16
    assert m.rows == 10 and [c["name"] for c in m.columns] == ["a", "b"]
    assert len(m.sha256) == 64
    assert m.files[0].name == "data.parquet" and m.files[0].path == f"data-{m.commit}.parquet"
    assert m.manifest_uri == f"{m.uri}/_manifests/{1:020d}.json"
    pd.testing.assert_frame_equal(storage.read_frame(m.uri), _frame())
    assert storage.read_manifest(m.uri) == m


def test_rewrites_add_versions_and_never_touch_old_files(tmp_path):
    root = tmp_path.as_uri()
    a = storage.write_partition({"data": _frame()}, root, "p", "raw", DS)
    before = {p: p.read_bytes() for p in _part(tmp_path).rglob("*") if p.is_file()}
    b = storage.write_partition({"data": _frame()}, root, "p", "raw", DS)
    assert a.sha256 == b.sha256 and (a.version, b.version) == (1, 2)  # same content, same hash
    c = storage.write_partition({"data": _frame(3)}, root, "p", "raw", DS, files={"note.txt": b"x"})
    assert c.version == 3 and storage.read_frame(c.uri).shape == (3, 2)
    assert {p: p.read_bytes() for p in before} == before  # immutable: nothing overwritten
    names = _listing(_part(tmp_path))
    assert [n for n in names if n.startswith("_manifests/")] == [
        f"_manifests/{v:020d}.json" for v in (1, 2, 3)
    ]
    assert len([n for n in names if n.startswith("data-")]) == 3 and f"note-{c.commit}.txt" in names


def test_pinned_version_reads_exactly_that_version(tmp_path):
    root = tmp_path.as_uri()
    first = storage.write_partition({"data": _frame()}, root, "p", "raw", DS)
    storage.write_partition({"data": _frame(2)}, root, "p", "raw", DS)
    pd.testing.assert_frame_equal(storage.read_frame(first.uri, version=first.version), _frame())
    assert storage.read_manifest(first.uri, version=1).sha256 == first.sha256
    assert len(storage.read_frame(first.uri)) == 2
    with pytest.raises(FileNotFoundError, match="has no version 7"):
        storage.read_frame(first.uri, version=7)


def test_a_version_taken_by_another_writer_is_retried_as_the_next(tmp_path, monkeypatch):
    root = tmp_path.as_uri()
    storage.write_partition({"data": _frame()}, root, "p", "raw", DS)
    real = storage._versions
    seen: list[list[int]] = []

    def once_stale(fs, part):  # the first listing misses version 1, as a racing writer's may
        seen.append(real(fs, part))
        return [] if len(seen) == 1 else seen[-1]

    monkeypatch.setattr(storage, "_versions", once_stale)
    m = storage.write_partition({"data": _frame(4)}, root, "p", "raw", DS)
    assert m.version == 2 and len(seen) == 2  # tried 1 (taken, refused), published 2
    monkeypatch.undo()
    assert storage.read_manifest(m.uri, version=1).rows == 10 and storage.read_manifest(m.uri).rows == 4


def test_failed_write_leaves_no_partition(tmp_path, monkeypatch):
    class Boom(Exception):
        pass

    def broken(df):
        raise Boom("disk full")

    monkeypatch.setattr(storage, "_parquet_bytes", broken)
    with pytest.raises(Boom):
        storage.write_partition({"data": _frame()}, tmp_path.as_uri(), "p", "raw", DS)
    assert [p.name for p in (tmp_path / "p" / "raw").iterdir()] == []  # no folder, no file left


def test_failed_rewrite_keeps_the_old_partition(tmp_path, monkeypatch):
    root = tmp_path.as_uri()
    storage.write_partition({"data": _frame()}, root, "p", "raw", DS)
    before = _listing(_part(tmp_path))
    real = storage._parquet_bytes
    calls = {"n": 0}

    def second_file_fails(df):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError("connection reset")
        return real(df)

    monkeypatch.setattr(storage, "_parquet_bytes", second_file_fails)
    with pytest.raises(OSError):
        storage.write_partition({"data": _frame(2), "extra": _frame(2)}, root, "p", "raw", DS)
    monkeypatch.undo()
    assert storage.read_frame(f"{root}/p/raw/ds={DS}").shape == (10, 2)
    assert _listing(_part(tmp_path)) == before  # the failed write's first file was removed


def test_failed_publish_keeps_the_old_version(tmp_path, monkeypatch):
    root = tmp_path.as_uri()
    storage.write_partition({"data": _frame()}, root, "p", "raw", DS)
    monkeypatch.setattr(storage, "_create_local", _raise_enospc)
    with pytest.raises(OSError, match="No space"):
        storage.write_partition({"data": _frame(2)}, root, "p", "raw", DS)
    monkeypatch.undo()
    assert storage.read_manifest(f"{root}/p/raw/ds={DS}").version == 1
    assert storage.read_frame(f"{root}/p/raw/ds={DS}").shape == (10, 2)


def _raise_enospc(target, blob):
    raise OSError(28, "No space left on device")


def test_tampered_file_is_detected(tmp_path):
    m = storage.write_partition({"data": _frame()}, tmp_path.as_uri(), "p", "raw", DS)
    (_part(tmp_path) / m.files[0].path).write_bytes(storage._parquet_bytes(_frame(4)))
    with pytest.raises(ValueError, match="does not match its manifest"):
        storage.read_frame(m.uri)


def test_partition_without_manifest_is_absent(tmp_path):
    _part(tmp_path).mkdir(parents=True)
    (_part(tmp_path) / "data-0123.parquet").write_bytes(storage._parquet_bytes(_frame()))  # an orphan
    with pytest.raises(FileNotFoundError, match="no complete partition"):
        storage.read_frame(f"{tmp_path.as_uri()}/p/raw/ds={DS}")


def test_files_are_read_by_their_name_through_the_manifest(tmp_path):
    m = storage.write_partition(
        {"data": _frame()}, tmp_path.as_uri(), "p", "validation", DS, files={"r.html": b"<p>"}
    )
    assert storage.read_file(f"{m.uri}/r.html") == b"<p>"
    assert storage.read_file(m.file_uri("r.html")) == b"<p>" and m.file_uri("r.html").endswith(
        f"r-{m.commit}.html"
    )
    with pytest.raises(FileNotFoundError):
        storage.read_file(f"{m.uri}/nope.html")


def _old_layout(tmp_path: Path) -> None:
    """A partition as the previous package version wrote it: ``_manifest.json`` + plain names."""
    part = _part(tmp_path)
    part.mkdir(parents=True)
    blob = storage._parquet_bytes(_frame(5))
    (part / "data.parquet").write_bytes(blob)
    import hashlib

    sha = hashlib.sha256(blob).hexdigest()
    old = {
        "uri": f"{tmp_path.as_uri()}/p/raw/ds={DS}",
        "pipeline": "p",
        "stage": "raw",
        "ds": DS,
        "rows": 5,
        "columns": [],
        "files": [{"name": "data.parquet", "rows": 5, "bytes": len(blob), "sha256": sha}],
        "sha256": hashlib.sha256(sha.encode()).hexdigest(),
        "created_at": "2026-01-31T00:00:00+00:00",
        "extra": {},
    }
    (part / "_manifest.json").write_text(json.dumps(old))


def test_old_layout_reads_as_version_0_and_is_superseded(tmp_path):
    _old_layout(tmp_path)
    uri = f"{tmp_path.as_uri()}/p/raw/ds={DS}"
    assert storage.read_manifest(uri).version == 0 and len(storage.read_frame(uri)) == 5
    m = storage.write_partition({"data": _frame(2)}, tmp_path.as_uri(), "p", "raw", DS)
    assert (
        m.version == 1 and len(storage.read_frame(uri)) == 2 and len(storage.read_frame(uri, version=0)) == 5
    )
    later = datetime.now(UTC) + timedelta(days=30)
    report = collector.collect_garbage(
        tmp_path.as_uri(), "p", keep_versions=1, retention=timedelta(days=7), now=later
    )
    assert sorted(p.rsplit("/", 1)[-1] for p in report.manifests + report.files) == [
        "_manifest.json",
        "data.parquet",
    ]
    assert len(storage.read_frame(uri)) == 2


def _three_versions_and_debris(tmp_path: Path) -> list[storage.Manifest]:
    ms = [storage.write_partition({"data": _frame(n)}, tmp_path.as_uri(), "p", "raw", DS) for n in (1, 2, 3)]
    (_part(tmp_path) / "data-deadbeefdeadbeef.parquet").write_bytes(b"killed writer")
    (tmp_path / "p" / "raw" / ".tmp-ds=2026-01-30-abcd").mkdir()  # the old protocol's leftovers
    (_part(tmp_path) / "_manifests" / ".tmp-0123.json").write_bytes(b"{")
    return ms


def test_garbage_collection_respects_retention(tmp_path):
    ms = _three_versions_and_debris(tmp_path)
    soon = datetime.now(UTC) + timedelta(hours=1)
    report = collector.collect_garbage(
        tmp_path.as_uri(), "p", keep_versions=1, retention=timedelta(days=1), now=soon
    )
    assert report.removed == 0 and list(report.kept_versions.values()) == [[1, 2, 3]]
    for m in ms:  # every version is still readable within retention (what lineage relies on)
        assert len(storage.read_frame(m.uri, version=m.version)) == m.rows


def test_garbage_collection_after_retention(tmp_path):
    ms = _three_versions_and_debris(tmp_path)
    later = datetime.now(UTC) + timedelta(days=2)
    kwargs = {"keep_versions": 2, "retention": timedelta(days=1), "now": later}
    dry = collector.collect_garbage(tmp_path.as_uri(), "p", dry_run=True, **kwargs)
    assert dry.dry_run and dry.removed == 5 and storage.read_frame(ms[0].uri, version=1) is not None
    report = collector.collect_garbage(tmp_path.as_uri(), "p", **kwargs)
    assert [p.rsplit("/", 1)[-1] for p in report.manifests] == [f"{1:020d}.json"]
    assert sorted(p.rsplit("/", 1)[-1] for p in report.files) == sorted(
        [ms[0].files[0].path, "data-deadbeefdeadbeef.parquet"]
    )
    assert len(report.temporary) == 2 and list(report.kept_versions.values()) == [[2, 3]]
    with pytest.raises(FileNotFoundError, match="has no version 1"):
        storage.read_frame(ms[0].uri, version=1)
    assert len(storage.read_frame(ms[1].uri, version=2)) == 2 and len(storage.read_frame(ms[2].uri)) == 3
    again = collector.collect_garbage(
        tmp_path.as_uri(), "p", keep_versions=0, retention=timedelta(days=1), now=later
    )
    assert list(again.kept_versions.values()) == [[3]] and len(storage.read_frame(ms[2].uri)) == 3


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
    assert sources.read_source(src, DS)["v"].tolist() == [2, 3]
    assert sources.read_source(src, DS, lookback_days=1)["v"].tolist() == [3]


def test_column_mode_no_rows_is_a_clear_error(tmp_path):
    src = SourceSpec(uri=_events(tmp_path), partition={"mode": "column", "column": "event_date"})
    with pytest.raises(SourceDataError, match="no rows for ds=2025-06-01"):
        sources.read_source(src, "2025-06-01")


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_column_mode_missing_column_is_a_clear_error(tmp_path, fmt):
    path = tmp_path / f"e.{fmt}"
    frame = pd.DataFrame({"day": ["2026-01-31"], "v": [1]})
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path)
    src = SourceSpec(uri=path.as_uri(), format=fmt, partition={"mode": "column", "column": "event_date"})
    with pytest.raises(SourceDataError, match="has no column 'event_date'"):
        sources.read_source(src, DS)


def test_files_mode_reads_the_days_files(tmp_path):
    for day, n in (("2026-01-30", 2), (DS, 3)):
        _frame(n).to_parquet(tmp_path / f"events_{day}.parquet")
    src = SourceSpec(
        uri=f"{tmp_path.as_uri()}/events_{{ds}}.parquet",
        format="parquet",
        partition={"mode": "files", "lookback_days": 2},
    )
    assert len(sources.read_source(src, DS)) == 5
    with pytest.raises(SourceDataError, match="no source file"):
        sources.read_source(src, "2026-03-01")


def test_snapshot_missing_source_names_the_uri(tmp_path):
    src = SourceSpec(uri=f"{tmp_path.as_uri()}/nope.csv")
    with pytest.raises(SourceDataError, match="nope.csv does not exist"):
        sources.read_source(src, DS)


def _history(n_days=12, per_day=720) -> pd.DataFrame:
    stamps = pd.Timestamp("2026-01-20") + pd.to_timedelta(range(n_days * per_day), unit="min") * (
        24 * 60 // per_day
    )
    return pd.DataFrame(
        {
            "ts": stamps,
            "ts_utc": stamps.tz_localize("UTC"),
            "day": stamps.date,
            "text": stamps.strftime("%Y-%m-%d %H:%M:%S"),
            "x": range(len(stamps)),
            "cat": [f"c{i % 7}" for i in range(len(stamps))],
        }
    )


def _old_full_read(path: Path, fmt: str, column: str, lookback: int) -> pd.DataFrame:
    full = pd.read_csv(path) if fmt == "csv" else pd.read_parquet(path)
    return source_files._select_window(full, column, storage._as_date(DS), lookback, str(path))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("column", ["ts", "ts_utc", "day", "text"])
@pytest.mark.parametrize("lookback", [1, 3])
def test_bounded_column_read_matches_the_old_full_read(tmp_path, monkeypatch, fmt, column, lookback):
    monkeypatch.setattr(source_files, "CSV_CHUNK_ROWS", 500)  # many chunks / batches / row groups
    monkeypatch.setattr(source_files, "PARQUET_BATCH_ROWS", 500)
    path = tmp_path / f"h.{fmt}"
    frame = _history()
    frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, row_group_size=600)
    src = SourceSpec(uri=path.as_uri(), format=fmt, partition={"mode": "column", "column": column})
    got = sources.read_source(src, DS, lookback_days=lookback)
    expected = _old_full_read(path, fmt, column, lookback)
    assert len(got) == 720 * lookback
    pd.testing.assert_frame_equal(got, expected)
    narrow = sources.read_source(src, DS, lookback_days=lookback, columns=["x"])
    assert narrow.columns.tolist() == ["x"] and narrow["x"].tolist() == expected["x"].tolist()


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_files_and_snapshot_modes_match_the_old_full_read(tmp_path, fmt):
    frame = _history(n_days=2)
    for day in ("2026-01-30", DS):
        path = tmp_path / f"e_{day}.{fmt}"
        frame.to_csv(path, index=False) if fmt == "csv" else frame.to_parquet(path, row_group_size=300)
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    files = SourceSpec(
        uri=f"{tmp_path.as_uri()}/e_{{ds}}.{fmt}", format=fmt, partition={"mode": "files", "lookback_days": 2}
    )
    expected = pd.concat([read(tmp_path / f"e_{d}.{fmt}") for d in ("2026-01-30", DS)], ignore_index=True)
    pd.testing.assert_frame_equal(sources.read_source(files, DS), expected)
    snap = SourceSpec(uri=(tmp_path / f"e_{DS}.{fmt}").as_uri(), format=fmt)
    pd.testing.assert_frame_equal(sources.read_source(snap, DS), read(tmp_path / f"e_{DS}.{fmt}"))


def test_the_gc_command_collects_superseded_versions_after_retention(tmp_path):
    """``python -m mlops_core.maintenance gc``: a real process, nested stages included."""
    import json as _json
    import os as _os
    import subprocess
    import sys

    import pandas as pd

    from mlops_core.data import storage as st

    root = tmp_path.as_uri()
    for stage in ("raw", "reports/drift"):
        for i in range(3):
            st.write_partition({"data": pd.DataFrame({"x": [i]})}, root, "p", stage, "2026-01-31")
    cmd = [
        sys.executable,
        "-m",
        "mlops_core.maintenance",
        "gc",
        "--pipeline",
        "p",
        "--root",
        root,
        "--keep",
        "1",
    ]
    env = {**_os.environ}
    kept = subprocess.run(
        [*cmd, "--retention-days", "7"], capture_output=True, text=True, check=True, env=env
    )
    assert _json.loads(kept.stdout)["removed"] == 0  # superseded minutes ago: still within retention
    done = subprocess.run(
        [*cmd, "--retention-days", "0"], capture_output=True, text=True, check=True, env=env
    )
    out = _json.loads(done.stdout)
    assert len(out["manifests"]) == 4 and len(out["files"]) == 4  # 2 old versions x 2 stages
    for stage in ("raw", "reports/drift"):
        uri = st.partition_uri(root, "p", stage, "2026-01-31")
        assert st.read_frame(uri)["x"].tolist() == [2]  # the newest version is whole
