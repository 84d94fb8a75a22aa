"""One source file as DataFrames in bounded pieces: CSV chunks (:mod:`mlops_core.data.csv_reader`)
or parquet record batches, and column mode's window of days selected chunk by chunk.

Memory follows the kept rows, not the file: parquet is scanned batch by batch (with the window
pushed down as an exact filter on a typed date column), CSV in chunks of :data:`CSV_CHUNK_ROWS`.
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.base.settings import expand, redact
from mlops_core.data.csv_reader import _as_line, _csv_chunks, _csv_chunks_fast, _NotClean, _Rejects
from mlops_core.data.errors import SourceDataError, SourceNotReady
from mlops_core.data.filesystems import is_local

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    import pandas as pd
    import pyarrow as pa
    from fsspec import AbstractFileSystem

CSV_CHUNK_ROWS = 16_384  # rows of Python strings per strict-parse chunk: bounds the reader
PARQUET_BATCH_ROWS = 65_536


def _shown(uri: str) -> str:
    """A source URI as messages show it: variables expanded, credentials redacted."""
    return redact(expand(uri))


def _chunks(
    fs: AbstractFileSystem,
    path: str,
    fmt: str,
    columns: list[str] | None = None,
    window: tuple[str, date, int] | None = None,
    *,
    shown: str | None = None,
    rejects: _Rejects | None = None,
    fast: bool = False,
) -> Iterator[pd.DataFrame]:
    """A source file as DataFrames, in bounded pieces (CSV chunks / parquet record batches).

    ``shown`` names the file in messages; ``rejects`` collects malformed CSV rows (without it,
    any malformed row raises). ``fast``: CSV through Arrow's tokenizer, raising
    :class:`_NotClean` at the first irregularity (see :func:`_fast_or_strict`).
    """
    shown = shown or path
    _check_not_empty(fs, path, shown)
    if fmt == "csv" and fast:
        yield from _csv_chunks_fast(fs, path, columns, CSV_CHUNK_ROWS)
    elif fmt == "csv":
        yield from _csv_chunks(fs, path, columns, CSV_CHUNK_ROWS, shown=shown, rejects=rejects, window=window)
    else:
        with _parquet_errors(shown):
            yield from _parquet_chunks(fs, path, columns, window)


def _check_not_empty(fs: AbstractFileSystem, path: str, shown: str) -> None:
    try:
        size = fs.size(path)
    except (OSError, NotImplementedError):  # a store that cannot say: the read finds out
        return
    if size == 0:
        raise SourceNotReady(f"source {shown} is empty (0 bytes)")


@contextmanager
def _parquet_errors(shown: str) -> Iterator[None]:
    """Arrow's errors opening or scanning a file as one message naming it."""
    import pyarrow as pa

    try:
        yield
    except pa.ArrowException as err:
        from mlops_core.base.settings import redact

        # Arrow's first line, whole: it often ends with the file's path, which a cut made unreadable
        text = redact(str(err).splitlines()[0]) if str(err) else ""
        raise SourceDataError(
            f"source {shown} is not a parquet file, or a damaged one ({type(err).__name__}: {text})"
        ) from err


def _parquet_chunks(
    fs: AbstractFileSystem, path: str, columns: list[str] | None, window: tuple[str, date, int] | None
) -> Iterator[pd.DataFrame]:
    """Parquet as record batches; with a ``window`` on a typed date column, row groups outside it are skipped."""
    import pyarrow.dataset as pads

    dataset = pads.dataset(path, format="parquet", filesystem=None if is_local(fs) else fs)
    if window is not None and window[0] not in dataset.schema.names:
        yield dataset.schema.empty_table().to_pandas()  # _select_window names what is missing
        return
    expr = _window_filter(dataset.schema, window) if window is not None else None
    for batch in dataset.scanner(columns=columns, filter=expr, **_scan_options()).to_batches():
        yield batch.to_pandas()


def _scan_options() -> dict[str, Any]:
    """Scanner settings for bounded memory: one batch read ahead, and no pre-buffering of whole
    column chunks (pages are decoded as batches are consumed, so peak memory follows the batch
    and the kept rows, not the row group)."""
    import pyarrow.dataset as pads

    return {
        "batch_size": PARQUET_BATCH_ROWS,
        "use_threads": False,
        "batch_readahead": 1,
        "fragment_readahead": 1,
        "fragment_scan_options": pads.ParquetFragmentScanOptions(
            pre_buffer=False, use_buffered_stream=True, buffer_size=1 << 20
        ),
    }


def _parquet_exact_window(
    fs: AbstractFileSystem, path: str, columns: list[str] | None, window: tuple[str, date, int]
) -> pd.DataFrame | None:
    """A typed date column's window read in Arrow and converted once (None: not applicable).

    The filter is exact (:func:`_window_filter`), so only the window's rows are decoded; the
    Arrow table is handed to pandas with ``self_destruct`` (its buffers are freed as columns are
    converted), so peak memory stays near one copy of the window's rows.
    """
    import pyarrow as pa
    import pyarrow.dataset as pads

    dataset = pads.dataset(path, format="parquet", filesystem=None if is_local(fs) else fs)
    if window[0] not in dataset.schema.names:
        return None
    expr = _window_filter(dataset.schema, window)
    if expr is None:
        return None
    # the system allocator hands freed decode buffers back at once; Arrow's default pool keeps
    # them for reuse, which measured as ~2x the window's size of extra peak (benchmarks/memory.py)
    pool = pa.system_memory_pool()
    table = dataset.to_table(columns=columns, filter=expr, memory_pool=pool, **_scan_options())
    frame = table.to_pandas(self_destruct=True, split_blocks=True, memory_pool=pool)
    del table
    return frame


def _concat(pieces: Iterable[pd.DataFrame]) -> pd.DataFrame:
    import pandas as pd

    kept = [p for p in pieces if not p.empty]
    return pd.concat(kept, ignore_index=True) if kept else pd.DataFrame()


def _window_filter(schema: pa.Schema, window: tuple[str, date, int]) -> Any:
    """The window ``(day - lookback, day]`` as an Arrow filter on a typed column (rows, not just row groups).

    Exactly the days :func:`_select_window` keeps (it still makes the final cut): timestamps in
    ``[day - lookback + 1, day + 1)``, compared in UTC for zoned ones. A superset here would
    turn days of rows into pandas only to drop them.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    column, day, lookback = window
    kind = schema.field(column).type
    lo = datetime.combine(day - timedelta(days=lookback - 1), datetime.min.time())
    hi = datetime.combine(day + timedelta(days=1), datetime.min.time())
    if pa.types.is_timestamp(kind):
        tz = getattr(kind, "tz", None)
        bounds = [pa.scalar(b.replace(tzinfo=UTC) if tz else b, type=kind) for b in (lo, hi)]
    elif pa.types.is_date(kind):
        bounds = [pa.scalar(b.date(), type=kind) for b in (lo, hi)]
    else:
        return None  # strings etc.: parsed per batch, no pushdown
    field_ = pc.field(column)
    return (field_ >= bounds[0]) & (field_ < bounds[1])


def _read_window(
    fs: AbstractFileSystem,
    path: str,
    fmt: str,
    column: str,
    day: date,
    lookback: int,
    uri: str,
    columns: list[str] | None,
    *,
    rejects: _Rejects | None = None,
    fast: bool = False,
) -> pd.DataFrame:
    """The rows of ``(day - lookback, day]``, selected chunk by chunk (memory follows the window)."""

    read = None if columns is None else [*columns, *([column] if column not in columns else [])]
    shown = _shown(uri)
    if fmt == "parquet":
        _check_not_empty(fs, path, shown)
        with _parquet_errors(shown):
            exact = _parquet_exact_window(fs, path, read, (column, day, lookback))
        if exact is not None:
            return exact if columns is None or exact.empty else exact[list(columns)]
    sink = rejects if rejects is not None else _Rejects()
    pieces = _chunks(fs, path, fmt, read, (column, day, lookback), shown=shown, rejects=sink, fast=fast)

    def windowed() -> Iterator[pd.DataFrame]:
        seen = 0
        for chunk in pieces:
            undated: Callable[[pd.DataFrame, Any], None] | None = None
            if fmt == "csv" and fast:
                undated = _leave_fast_path
            elif fmt != "csv":
                undated = _undated_rows(sink, shown, column, seen)
            yield _select_window(chunk, column, day, lookback, uri, undated)
            seen += len(chunk)
        # the strict CSV reader leaves out the rows it quarantined; they were read all the same
        sink.scanned = seen + (len(sink.rows) if fmt == "csv" else 0)

    frame = _concat(windowed())
    return frame if columns is None or frame.empty else frame[list(columns)]


def _leave_fast_path(frame: pd.DataFrame, unreadable: Any) -> None:
    raise _NotClean(f"{int(unreadable.sum())} unreadable date(s): the strict reader quarantines them by line")


def _undated_rows(
    sink: _Rejects, shown: str, column: str, offset: int
) -> Callable[[pd.DataFrame, Any], None]:
    """Quarantine a parquet chunk's unreadable dates, numbered by row (1 = the file's first row)."""

    def record(frame: pd.DataFrame, unreadable: Any) -> None:
        import numpy as np

        from mlops_core.data.dates import describe_bad

        for j in np.flatnonzero(unreadable).tolist():
            row = [("" if v is None else str(v)) for v in frame.iloc[j].tolist()]
            sink.rows.append(
                (
                    shown,
                    offset + j + 1,
                    f"column {column!r} {describe_bad(frame[column].iloc[j])}",
                    _as_line(row),
                )
            )
            sink.undated.add((shown, offset + j + 1))

    return record


def _select_window(
    frame: pd.DataFrame,
    column: str,
    day: date,
    lookback: int,
    uri: str,
    undated: Callable[[pd.DataFrame, Any], None] | None = None,
) -> pd.DataFrame:
    """The rows of ``frame`` whose ``column`` falls in ``(day - lookback, day]`` (:mod:`mlops_core.data.dates`).

    Each value is parsed on its own; ``undated`` is told which rows have no readable date (the
    caller quarantines them, or re-reads strictly); without it they are left out.
    """
    import pandas as pd

    from mlops_core.data.dates import parse_days

    if column not in frame.columns:
        raise SourceDataError(
            f"source {uri} has no column {column!r} (partition.column); columns: {list(frame.columns)[:20]}"
        )
    stamps = parse_days(frame[column])
    unreadable = stamps.isna().to_numpy()
    if undated is not None and unreadable.any():
        undated(frame, unreadable)
    end = pd.Timestamp(day)
    start = end - pd.Timedelta(days=lookback)
    keep = ((stamps > start) & (stamps <= end)).to_numpy()
    return frame.loc[keep].reset_index(drop=True)
