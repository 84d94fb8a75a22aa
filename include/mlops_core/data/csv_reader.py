"""CSV source files read in bounded chunks: strictly (every malformed row named and set aside) or
fast (Arrow's tokenizer on clean files, giving the very frame the strict reader would).

The strict reader (:func:`_csv_chunks`) checks each row's field count against the header and
each value of a numeric column; malformed rows go to a :class:`_Rejects` sink with their file,
line and text. The fast path (:func:`_csv_chunks_fast`) never judges a row: at the first
irregularity it raises :class:`_NotClean` and the caller reads the file again strictly
(:func:`mlops_core.data.sources._fast_or_strict`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_core.data.errors import SourceDataError, SourceNotReady

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator
    from datetime import date

    import pandas as pd
    import pyarrow as pa
    from fsspec import AbstractFileSystem

_TRUE = frozenset({"True", "TRUE", "true"})
_FALSE = frozenset({"False", "FALSE", "false"})
NUMERIC_MIN_SHARE = 0.8  # a column is numeric when >= 80% of its non-empty first-chunk values are numbers


@dataclass
class _Rejects:
    """Malformed rows met while reading: ``(file, line, reason, raw)``."""

    rows: list[tuple[str, int, str, str]] = field(default_factory=list)
    # column mode: lines whose date is unreadable (blank, another format), so no window can
    # claim or exclude them; judged against the rows of the whole file, as they may be anywhere
    undated: set[tuple[str, int]] = field(default_factory=set)
    scanned: int = 0  # column mode: the rows read from the file(s), in the window or not

    def clear(self) -> None:
        self.rows.clear()
        self.undated.clear()
        self.scanned = 0


class _NotClean(Exception):  # noqa: N818 - a signal, not an error: read the file strictly
    """The fast CSV path met something only the strict reader may judge (it re-reads from the start)."""


def _csv_chunks(
    fs: AbstractFileSystem,
    path: str,
    columns: list[str] | None,
    chunk_rows: int,
    *,
    shown: str | None = None,
    rejects: _Rejects | None = None,
    window: tuple[str, date, int] | None = None,
) -> Iterator[pd.DataFrame]:
    """CSV read strictly, in chunks of ``chunk_rows`` rows (header = line 1).

    Rows whose field count is not the header's (a truncated last line included) and rows with a
    non-number in a numeric column go to ``rejects`` with their line and text; a column is
    numeric when, in its first chunk with values, at least :data:`NUMERIC_MIN_SHARE` of its
    non-empty values are numbers. Empty fields are nulls; nothing else is (``n/a`` in a text
    column stays text). In column mode (``window``) a malformed row whose date field parses to a
    day outside the window is not counted.
    """
    import csv

    shown = shown or path
    sink = rejects if rejects is not None else _Rejects()
    raw_lines: list[str] = []

    def tracked(text: Iterable[str]) -> Iterator[str]:
        for line in text:
            raw_lines.append(line)
            yield line

    with fs.open(path, "rb") as fh, io.TextIOWrapper(fh, encoding="utf-8-sig", newline="") as text:
        reader = csv.reader(tracked(text))
        try:
            header = next(reader)
        except StopIteration:
            raise SourceNotReady(f"source {shown} is empty (no header)") from None
        except csv.Error as err:
            raise SourceDataError(f"source {shown}: line 1 (the header) is unreadable: {err}") from err
        raw_lines.clear()
        names = [n if n else f"Unnamed: {i}" for i, n in enumerate(header)]
        picked = _picked(names, columns, window, shown)
        date_at = names.index(window[0]) if window is not None and window[0] in names else None
        numeric: dict[int, bool | None] = dict.fromkeys(picked)
        state = {"line": 1, "rows": 0, "bad": 0}
        shape = _Shape(len(names), chunk_rows, shown, date_at, window)
        for rows, lines in _shaped_rows(reader, raw_lines, shape, sink, state):
            yield _typed_chunk(rows, lines, names, picked, numeric, sink, shown, date_at, window)
        if state["rows"] == 0:
            raise SourceNotReady(f"source {shown} has a header but no rows")
        if rejects is None and sink.rows:
            f, n, reason, _ = sink.rows[0]
            raise SourceDataError(f"source {shown} line {n}: {reason}")


def _picked(
    names: list[str], columns: list[str] | None, window: tuple[str, date, int] | None, shown: str
) -> list[int]:
    """The positions of the requested ``columns`` (all without); a missing one other than the
    window's date column (it may be absent in column mode: the caller names it) is refused."""
    if columns is None:
        return list(range(len(names)))
    missing = [c for c in columns if c not in names]
    if missing and (window is None or missing != [window[0]]):
        raise SourceDataError(f"source {shown} has no column(s) {missing}; columns: {names[:20]}")
    return [names.index(c) for c in columns if c in names]


@dataclass(frozen=True)
class _Shape:
    """What the strict reader's row loop checks each row against, and how it reports one."""

    width: int  # the header's field count
    limit: int  # rows per chunk
    shown: str
    date_at: int | None
    window: tuple[str, date, int] | None


def _shaped_rows(
    reader: Any, raw_lines: list[str], shape: _Shape, sink: _Rejects, state: dict[str, int]
) -> Iterator[tuple[list[list[str]], list[int]]]:
    """Rows of the header's width in chunks of ``shape.limit``, with each row's first line number.

    Other rows (and rows the csv module cannot read) go to ``sink`` with their raw text, which
    ``raw_lines`` holds (the reader's input is tracked into it). ``state`` counts ``line`` (the
    reader's) and ``rows`` (blank lines are not rows).
    """
    import csv

    width, window = shape.width, shape.window
    rows: list[list[str]] = []
    lines: list[int] = []
    last_bad: list[Any] = []
    while True:
        start = state["line"] + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as err:
            state["line"] = reader.line_num
            state["rows"] += 1
            _reject(sink, shape.shown, start, f"unreadable ({err})", "".join(raw_lines), None, window)
            raw_lines.clear()
            continue
        state["line"] = reader.line_num
        if not row and len(raw_lines) == 1 and not raw_lines[0].strip("\r\n"):
            raw_lines.clear()  # a blank line: pandas skips it too
            continue
        state["rows"] += 1
        if len(row) != width:
            raw = "".join(raw_lines)
            at = shape.date_at
            last_bad[:] = [raw, start, row]
            day_text = row[at] if at is not None and at < len(row) else None
            _reject(sink, shape.shown, start, f"{len(row)} fields, header has {width}", raw, day_text, window)
        else:
            last_bad[:] = []
            rows.append(row)
            lines.append(start)
            if len(rows) >= shape.limit:
                yield rows, lines
                rows, lines = [], []
        raw_lines.clear()
    _mark_truncated(sink, last_bad, width)
    if rows:
        yield rows, lines


def _mark_truncated(sink: _Rejects, last_bad: list[Any], width: int) -> None:
    """A short last row with no newline after it was cut off while being written: say so."""
    if last_bad and not last_bad[0].endswith(("\n", "\r")) and len(last_bad[2]) < width and sink.rows:
        f, n, _, raw = sink.rows[-1]
        if n == last_bad[1]:
            sink.rows[-1] = (f, n, f"truncated ({len(last_bad[2])} of {width} fields)", raw)


def _csv_header(fh: Any) -> list[str] | None:
    """The header's names (``Unnamed: i`` for empty ones), or None when it is not one plain line."""
    import csv

    line = fh.readline()
    if not line or line.count(b'"') % 2 or b"\r" in line[:-2]:
        return None  # a quoted name spanning lines, a lone CR: the strict reader decides
    try:
        text = line.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    header = next(csv.reader([text.rstrip("\r\n")]), None)
    if not header:
        return None
    return [n if n else f"Unnamed: {i}" for i, n in enumerate(header)]


def _csv_chunks_fast(
    fs: AbstractFileSystem, path: str, columns: list[str] | None, chunk_rows: int
) -> Iterator[pd.DataFrame]:
    """Clean CSV through Arrow's tokenizer, every field read as text, in the strict reader's chunks.

    Chunks of ``chunk_rows`` rows, typed by :func:`_typed_arrow_chunk` exactly as
    :func:`_typed_chunk` types them; raises :class:`_NotClean` instead of judging anything.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    with fs.open(path, "rb") as fh:
        names = _csv_header(fh)
        if names is None:
            raise _NotClean("the header is not one plain line")
        width = len(names)
        picked = list(range(width)) if columns is None else [names.index(c) for c in columns if c in names]
        if columns is not None and len(picked) != len(columns):
            raise _NotClean("a requested column is missing")
        slots = [f"f{i}" for i in range(width)]
        numeric: dict[int, bool | None] = dict.fromkeys(picked)
        pending: list[Any] = []
        held = 0
        rows = 0
        try:
            reader = pacsv.open_csv(
                fh,
                read_options=pacsv.ReadOptions(column_names=slots, block_size=1 << 18, use_threads=False),
                parse_options=pacsv.ParseOptions(newlines_in_values=True, ignore_empty_lines=True),
                convert_options=pacsv.ConvertOptions(
                    column_types=dict.fromkeys(slots, pa.string()),
                    include_columns=[slots[i] for i in picked],
                    strings_can_be_null=False,
                    quoted_strings_can_be_null=False,
                    null_values=[],
                ),
                # freed blocks go back at once (Arrow's default pool keeps them: benchmarks/memory.py)
                memory_pool=pa.system_memory_pool(),
            )
            for batch in reader:
                pending.append(batch)
                held += batch.num_rows
                while held >= chunk_rows:
                    table = pa.Table.from_batches(pending)
                    yield _typed_arrow_chunk(table.slice(0, chunk_rows), names, picked, numeric)
                    rest = table.slice(chunk_rows)
                    pending, held = rest.to_batches(), rest.num_rows
                    rows += chunk_rows
            if held:
                rows += held
                yield _typed_arrow_chunk(pa.Table.from_batches(pending), names, picked, numeric)
        except pa.ArrowInvalid as err:  # a row of another width, bad UTF-8, an open quote
            raise _NotClean(str(err).splitlines()[0][:200]) from None
        if rows == 0:
            raise _NotClean("no rows")


def _typed_arrow_chunk(
    table: pa.Table, names: list[str], picked: list[int], numeric: dict[int, bool | None]
) -> pd.DataFrame:
    """:func:`_typed_chunk` for one clean chunk of Arrow text columns; :class:`_NotClean` where it would reject."""
    import numpy as np
    import pandas as pd
    import pyarrow.compute as pc

    out: dict[str, Any] = {}
    for slot, i in enumerate(picked):
        col = table.column(slot).combine_chunks()
        empty = pc.equal(col, "")
        n_empty = pc.sum(empty).as_py() or 0
        if numeric[i] is None and n_empty < len(col):  # the first chunk with values decides
            raw = col.to_numpy(zero_copy_only=False)
            filled = raw != ""
            numeric[i] = bool(np.mean(~np.isnan(_to_numbers(raw)[filled])) >= NUMERIC_MIN_SHARE)
        if numeric[i]:
            out[names[i]] = _arrow_numbers(col, empty, n_empty)
        elif numeric[i] is None:  # empty so far: all nulls, as pandas reads an empty column
            out[names[i]] = np.full(len(col), np.nan)
        else:
            out[names[i]] = _text(col.to_numpy(zero_copy_only=False), empty.to_numpy(zero_copy_only=False))
        del col
    return pd.DataFrame(out, columns=[names[i] for i in picked])


_INTEGER = r"^[+-]?[0-9]+$"


def _arrow_numbers(col: pa.Array, empty: pa.Array, n_empty: int) -> Any:
    """A numeric column's numbers as :func:`_to_numbers` gives them: int64 when every value is an
    integer and none is empty, float64 otherwise; anything else is for the strict reader."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    if n_empty == 0 and pc.all(pc.match_substring_regex(col, _INTEGER)).as_py():
        try:
            return pc.cast(col, pa.int64()).to_numpy()
        except pa.ArrowInvalid:  # "+5", or beyond int64 (pandas: uint64 or float)
            raise _NotClean("an integer Arrow does not read as int64") from None
    try:
        values = pc.cast(pc.if_else(empty, pa.scalar(None, pa.string()), col), pa.float64())
    except pa.ArrowInvalid:
        raise _NotClean("a value that is not a number in a numeric column") from None
    if pc.any(pc.or_(pc.is_nan(values), pc.is_inf(values))).as_py():
        raise _NotClean("NaN or infinity (spelled out, or an overflow): the strict reader judges it")
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=float)


def _reject(
    sink: _Rejects,
    shown: str,
    line: int,
    reason: str,
    raw: str,
    day_text: str | None,
    window: tuple[str, date, int] | None,
) -> None:
    """Record a malformed row, unless (column mode) its date says it is outside the window."""
    if window is not None:
        import pandas as pd

        from mlops_core.data.dates import parse_days

        got = parse_days([day_text or ""]).iloc[0]
        if pd.isna(got):
            sink.undated.add((shown, line))
        else:
            end = pd.Timestamp(window[1])
            if not (end - pd.Timedelta(days=window[2]) < got <= end):
                return
    sink.rows.append((shown, line, reason, raw))


def _to_numbers(values: Any) -> Any:
    """Numbers of a text column (not a number -> NaN); ``nan`` spelled out is not a number.

    pandas decides what is a number (and int64 vs float64), but its parser is not correctly
    rounded (about 1 in 4 seventeen-digit decimals comes back one ulp off), so the floats it
    accepted are parsed again with Python's ``float``: the nearest double, as Arrow's parser gives
    it on the fast path (:func:`_arrow_numbers`), so a file reads to the same bytes either way.
    """
    import numpy as np
    import pandas as pd

    nums = np.asarray(pd.to_numeric(values, errors="coerce"))
    if nums.dtype.kind == "f":
        ok = ~np.isnan(nums)
        if ok.any():
            nums = nums.copy()
            nums[ok] = [float(v) for v in np.asarray(values, dtype=object)[ok]]
    return nums


def _typed_chunk(  # noqa: C901 - schema decision, number check, quarantine
    rows: list[list[str]],
    lines: list[int],
    names: list[str],
    picked: list[int],
    numeric: dict[int, bool | None],
    sink: _Rejects,
    shown: str,
    date_at: int | None,
    window: tuple[str, date, int] | None,
) -> pd.DataFrame:
    """Well-shaped rows as a typed frame; rows with a non-number in a numeric column go to ``sink``."""
    import numpy as np
    import pandas as pd

    cols = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    raws = {i: np.array(cols[i], dtype=object) for i in picked}
    del cols
    empties = {i: raws[i] == "" for i in picked}
    parsed: dict[int, Any] = {}
    bad = np.zeros(len(rows), dtype=bool)
    reasons: dict[int, str] = {}
    for i in picked:
        raw, empty = raws[i], empties[i]
        if numeric[i] is None and not empty.all():
            nums = _to_numbers(raw)
            filled = ~empty
            numeric[i] = bool(np.mean(~np.isnan(nums[filled])) >= NUMERIC_MIN_SHARE)
            parsed[i] = nums
        if numeric[i]:
            nums = parsed[i] if i in parsed else _to_numbers(raw)
            parsed[i] = nums
            wrong = np.isnan(nums) & ~empty
            if wrong.any():
                for j in np.flatnonzero(wrong).tolist():
                    reasons.setdefault(j, f"column {names[i]!r} = {raw[j]!r} is not a number")
                bad |= wrong
    if window is not None and date_at is not None:
        bad |= _undated(rows, lines, date_at, names[date_at], bad, sink, shown)
    if bad.any():
        for j in sorted(reasons):
            day_text = rows[j][date_at] if date_at is not None else None
            _reject(sink, shown, lines[j], reasons[j], _as_line(rows[j]), day_text, window)
        keep = ~bad
        raws = {i: r[keep] for i, r in raws.items()}
        empties = {i: e[keep] for i, e in empties.items()}
        parsed = {i: _to_numbers(raws[i]) for i in parsed if numeric[i]}  # ints stay ints
    out: dict[str, Any] = {}
    for i in picked:
        if numeric[i]:
            out[names[i]] = parsed[i] if i in parsed else _to_numbers(raws[i])
        elif numeric[i] is None:  # empty so far: all nulls, as pandas reads an empty column
            out[names[i]] = np.full(len(raws[i]), np.nan)
        else:
            out[names[i]] = _text(raws[i], empties[i])
    return pd.DataFrame(out, columns=[names[i] for i in picked])


def _undated(
    rows: list[list[str]], lines: list[int], at: int, name: str, bad: Any, sink: _Rejects, shown: str
) -> Any:
    """Rows (not already ``bad``) whose date column is not an accepted date: quarantined as undated."""
    import numpy as np

    from mlops_core.data.dates import describe_bad, parse_days

    texts = [r[at] for r in rows]
    undated = parse_days(texts).isna().to_numpy() & ~bad
    for j in np.flatnonzero(undated).tolist():
        sink.rows.append((shown, lines[j], f"column {name!r} {describe_bad(texts[j])}", _as_line(rows[j])))
        sink.undated.add((shown, lines[j]))
    return undated


def _as_line(row: list[str]) -> str:
    import csv

    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(row)
    return buf.getvalue()


def _text(raw: Any, empty: Any) -> Any:
    """A text column: empty -> null; True/False spellings -> bool, as pandas reads them."""
    import numpy as np

    filled = raw[~empty]
    if len(filled) and filled[0] in _TRUE | _FALSE:
        seen = set(filled.tolist())
        if seen <= _TRUE | _FALSE:
            flags = np.array([v in _TRUE for v in raw], dtype=bool)
            if not empty.any():
                return flags
            return np.where(empty, np.nan, flags.astype(object))
    if empty.any():
        raw = raw.copy()
        raw[empty] = np.nan
    return raw
