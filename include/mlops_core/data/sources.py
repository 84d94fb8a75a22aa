"""Reading a source for a logical date: the rows of its window, strictly, with lineage.

:func:`read_source` (and its ``_strict`` and ``_with_lineage`` forms) select a source's rows for
a data day by its ``partition`` mode (``column``, ``files``, ``snapshot``), read local, object
store and DVC sources alike, refuse local sources reached through a symbolic link
(:func:`no_link`), and set malformed CSV rows aside within ``source.max_rejected_share``. The
files themselves are read by :mod:`mlops_core.data.source_files` and
:mod:`mlops_core.data.csv_reader`.
"""

from __future__ import annotations

import logging
import os
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.base.settings import expand, landing_root, redact
from mlops_core.data.csv_reader import _NotClean, _Rejects
from mlops_core.data.dates import ACCEPTED
from mlops_core.data.errors import SourceDataError, SourceNotReady
from mlops_core.data.filesystems import filesystem, is_local
from mlops_core.data.source_files import _chunks, _concat, _read_window, _shown
from mlops_core.data.storage import _as_date

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    import pandas as pd
    from fsspec import AbstractFileSystem

    from mlops_core.spec import SourceSpec

log = logging.getLogger(__name__)

REJECTED_COLUMNS = ("file", "line", "reason", "raw")
_EXAMPLES = 5


def read_source(
    source: SourceSpec,
    ds: str | date,
    storage_options: dict[str, Any] | None = None,
    lookback_days: int | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Rows of ``source`` selected by the logical date ``ds`` (see :class:`~mlops_core.spec.PartitionSpec`).

    Memory follows the selected rows, not the source: ``column`` mode streams the file (parquet
    in record batches, with the date filter pushed down to row groups when the column is typed;
    CSV in chunks) and keeps only the window's rows; ``files`` mode reads only the window's files.
    ``columns`` limits the columns read (the partition column is still used to select rows).

    CSV is read strictly (:func:`read_source_strict`); malformed rows within
    ``source.max_rejected_share`` are left out of the frame (and logged), never coerced.
    """
    frame, rejected = read_source_strict(source, ds, storage_options, lookback_days, columns=columns)
    if len(rejected):
        log.warning("left out %d malformed row(s) of %s", len(rejected), redact(expand(source.uri)))
    return frame


def read_source_strict(
    source: SourceSpec,
    ds: str | date,
    storage_options: dict[str, Any] | None = None,
    lookback_days: int | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(rows, rejected)``: :func:`read_source`'s rows and the malformed CSV rows set aside.

    CSV rows must have the header's field count, and a numeric column (decided on the first
    chunk) must hold numbers or nothing. Malformed rows (in column mode: those not known to fall
    outside the window) above ``source.max_rejected_share`` of the rows raise
    :class:`SourceDataError` naming the lines; within it they come back as ``rejected``
    (``file, line, reason, raw``: the row's text, untouched). An empty or header-only file is
    :class:`SourceNotReady` (its writer may still be writing); a file that is not parquet is a
    :class:`SourceDataError` naming it.
    """
    frame, rejected, _ = read_source_with_lineage(source, ds, storage_options, lookback_days, columns=columns)
    return frame, rejected


def read_source_with_lineage(
    source: SourceSpec,
    ds: str | date,
    storage_options: dict[str, Any] | None = None,
    lookback_days: int | None = None,
    *,
    columns: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, Any]]:
    """:func:`read_source_strict`'s ``(rows, rejected)`` and the source's lineage for the manifest.

    A plain source's lineage is ``{}``. A DVC source (``source.dvc``) is fetched first
    (:func:`mlops_core.data.dvc_source.fetch`: the revision resolved to its full commit sha, the window's
    files checked against their DVC md5s) and then read like a local file; its lineage is
    ``{"dvc": {"repo", "rev", "commit", "remote", "files": [{"path", "md5", "size", "hash"}]}}``.
    """
    day = _as_date(ds)
    lookback = lookback_days or source.partition.lookback_days
    log.info("reading %s: %s", _shown(source.uri), window_text(source, day, lookback))
    if source.dvc is None:
        frame, rejected = _read_strict(
            source, day, lookback, columns, lambda uri: no_link(*filesystem(uri, storage_options))
        )
        return frame, rejected, {}
    from mlops_core.data import dvc_source

    uris = _window_uris(source, day, lookback)
    with dvc_source.fetch(source, uris, required=source.partition.mode != "files") as fetched:
        frame, rejected = _read_strict(source, day, lookback, columns, fetched.locate)
        return frame, rejected, {"dvc": fetched.lineage()}


def no_link(fs: AbstractFileSystem, path: str) -> tuple[AbstractFileSystem, str]:
    """``(fs, path)`` of a source, refused when it is local and reached through a symbolic link.

    A link in the landing zone (``ln -s /etc/passwd <landing>/demo/data.csv``) would hand the
    reader any file the worker can read, whatever the URI checks said. Under a source root (the
    landing zone, a local ``source_roots`` entry of the active profile) no part of the path below
    the root may be a link and the resolved file must stay under the resolved root; elsewhere
    (outside every root, which the operators' profile check refuses anyway) the file itself may
    not be a link.
    """
    if not is_local(fs):
        return fs, path
    from mlops_core.spec import profiles as clouds

    profile = clouds.active()
    roots = [landing_root(), *(profile.source_roots if profile else ())]
    target = os.path.normpath(path)
    shown = redact(target)
    fix = "copy the file into the landing zone (symbolic links are not followed: one may point anywhere)"
    for root in (
        os.path.normpath(r.removeprefix("file://")) for r in roots if r.startswith(("/", "file://"))
    ):
        if not target.startswith(root.rstrip("/") + "/"):
            continue
        here = root
        for part in os.path.relpath(target, root).split(os.sep):
            here = os.path.join(here, part)
            if os.path.islink(here):
                raise SourceDataError(f"source {shown}: {redact(here)} is a symbolic link; {fix}")
        real, real_root = os.path.realpath(target), os.path.realpath(root)
        if not real.startswith(real_root.rstrip("/") + "/"):
            raise SourceDataError(f"source {shown} resolves outside its root {redact(root)}; {fix}")
        return fs, path
    if os.path.islink(target):
        raise SourceDataError(f"source {shown} is a symbolic link; {fix}")
    return fs, path


def window_text(source: SourceSpec, day: date, lookback: int) -> str:
    """The exact time range a read for ``day`` covers, as the ingest log states it."""
    part = source.partition
    first = day - timedelta(days=lookback - 1)
    if part.mode == "column":
        return (
            f"rows whose {part.column!r} falls on {first} through {day} (UTC days; from {first}T00:00 "
            f"to before {day + timedelta(days=1)}T00:00), mode=column, lookback_days={lookback}, ds={day}"
        )
    if part.mode == "files":
        return f"the daily files for {first} through {day}, mode=files, lookback_days={lookback}, ds={day}"
    return f"the whole source, mode=snapshot (no date filter), ds={day}"


def _window_uris(source: SourceSpec, day: date, lookback: int) -> list[str]:
    """The URIs a run reads: one per day of the window in ``files`` mode, else the source's."""
    if source.partition.mode != "files":
        return [source.uri]
    return [source.uri.replace("{ds}", (day - timedelta(days=i)).isoformat()) for i in range(lookback)]


def _read_strict(
    source: SourceSpec,
    day: date,
    lookback: int,
    columns: Sequence[str] | None,
    locate: Callable[[str], tuple[AbstractFileSystem, str]],
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`read_source_strict` on the filesystems ``locate`` gives for the source's URIs."""
    import pandas as pd

    part = source.partition
    rejects = _Rejects()
    read = _reader(source, day, lookback, list(columns) if columns else None, locate, rejects)
    frame = _fast_or_strict(read, rejects, source)
    rejected = pd.DataFrame(rejects.rows, columns=list(REJECTED_COLUMNS))
    rejected["line"] = rejected["line"].astype("int64")
    rejected = rejected.sort_values(["file", "line"], kind="stable", ignore_index=True)
    if len(rejected):
        undated = len(rejects.undated)
        placed = len(rejected) - undated
        _check_share(source, rejected, len(frame) + placed, undated=undated, scanned=rejects.scanned)
    if frame.empty:
        raise SourceNotReady(
            f"source {redact(expand(source.uri))} has no rows for ds={day} (mode={part.mode}, lookback_days={lookback})"
            + (
                f"; {len(rejects.undated)} row(s) with an unreadable date were quarantined"
                if rejects.undated
                else ""
            )
        )
    return frame, rejected


def _reader(
    source: SourceSpec,
    day: date,
    lookback: int,
    wanted: list[str] | None,
    locate: Callable[[str], tuple[AbstractFileSystem, str]],
    rejects: _Rejects,
) -> Callable[[bool], pd.DataFrame]:
    """How to read the window's rows (fast or strictly, see :func:`_fast_or_strict`), once the
    files are known to exist (:class:`SourceNotReady` when none does)."""
    part = source.partition
    if part.mode == "files":
        uris = _window_uris(source, day, lookback)
        fs, _ = locate(uris[0])
        found = sorted((locate(u)[1], u) for u in uris)
        found = [(p, u) for p, u in found if fs.exists(p)]
        if not found:
            raise SourceNotReady(
                f"no source file for ds={day} in the last {lookback} day(s): looked for {redact(uris[0])} and earlier"
            )

        def read_files(fast: bool) -> pd.DataFrame:
            return _concat(
                c
                for p, u in found
                for c in _chunks(fs, p, source.format, wanted, shown=_shown(u), rejects=rejects, fast=fast)
            )

        return read_files
    fs, path = locate(source.uri)
    if not fs.exists(path):
        raise SourceNotReady(
            f"source {redact(expand(source.uri))} does not exist; check source.uri and its connection"
        )

    def read(fast: bool) -> pd.DataFrame:
        if part.mode == "column":
            return _read_window(
                fs,
                path,
                source.format,
                str(part.column),
                day,
                lookback,
                source.uri,
                wanted,
                rejects=rejects,
                fast=fast,
            )
        return _concat(
            _chunks(fs, path, source.format, wanted, shown=_shown(source.uri), rejects=rejects, fast=fast)
        )

    return read


def _fast_or_strict(
    read: Callable[[bool], pd.DataFrame], rejects: _Rejects, source: SourceSpec
) -> pd.DataFrame:
    """Read clean CSV with Arrow's tokenizer; anything irregular goes through the strict reader.

    The fast path gives exactly the frame the strict one would (same chunks, same numeric
    decision, same nulls and booleans: ``tests/unit/test_strict_reading.py`` compares both), but
    never judges a row: a field count off, a non-number in a numeric column, a spelled-out NaN,
    an odd header... and the whole read starts again strictly, which names and quarantines.
    """
    if source.format != "csv":
        return read(False)
    try:
        return read(True)
    except _NotClean as why:
        log.info("source %s read strictly: %s", _shown(source.uri), why)
        rejects.clear()
        return read(False)


def _check_share(
    source: SourceSpec, rejected: pd.DataFrame, total: int, *, undated: int = 0, scanned: int = 0
) -> None:
    """Refuse when malformed rows exceed ``source.max_rejected_share``.

    ``total``: the rows the read selected plus the malformed ones it placed there. ``undated``
    rows (column mode: their date is unreadable, so they may belong to any day) are judged
    against the ``scanned`` rows of the whole file instead: 2 % of a year's dates written
    otherwise is 2 %, on every day's read.
    """
    bad = len(rejected)
    placed = bad - undated
    share = placed / total if total else (1.0 if placed else 0.0)
    if undated:
        share = max(share, undated / scanned if scanned else 1.0)
    if share <= source.max_rejected_share:
        return
    files = sorted(set(rejected["file"]))
    examples = "; ".join(
        (f"{f} " if len(files) > 1 else "") + f"line {n}: {r}"
        for f, n, r in rejected[["file", "line", "reason"]].head(_EXAMPLES).itertuples(index=False)
    )
    counted = (
        f"{placed} of the {total} rows of the window and {undated} with an unreadable date, "
        f"{undated / scanned if scanned else 1.0:.2%} of the {scanned} rows read (accepted dates: {ACCEPTED})"
        if undated
        else f"of {total}"
    )
    raise SourceDataError(
        f"source {', '.join(files)} has {bad} malformed row(s) {counted} ({share:.2%}; "
        f"source.max_rejected_share is {source.max_rejected_share:g}): {examples}"
        + ("; ..." if bad > _EXAMPLES else "")
        + ". Fix the file, or set source.max_rejected_share to quarantine up to that share of rows"
        " to the 'rejected' partition"
    )
