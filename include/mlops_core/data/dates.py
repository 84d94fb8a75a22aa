"""The dates a partition column may hold, parsed value by value.

Accepted, and nothing else (a value is judged on its own, never by a format guessed from another
row, so which rows are kept never depends on their order):

- an ISO date, ``YYYY-MM-DD`` (``2017-07-15``);
- an ISO date and time, with ``T`` or one space between them, minutes or seconds, an optional
  fraction of a second and an optional zone (``Z``, ``+02:00``, ``+0200``):
  ``2017-07-15T08:30``, ``2017-07-15 08:30:00``, ``2017-07-15T08:30:00.250Z``,
  ``2017-07-15 08:30:00+02:00``;
- in a parquet file, a typed ``date`` or ``timestamp`` column.

A zoned time belongs to its UTC day (``2017-07-15T23:30-02:00`` is 2017-07-16); a time without
zone belongs to the day it spells. Anything else is not a date: a blank, ``not a date``, a
day-first or month-first ``07/15/2017`` (``07/08/2017`` has two readings, so none is taken), a
calendar date that does not exist (``2017-02-30``).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

ISO_DAY = r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
ISO_VALUE = (
    ISO_DAY + r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,9})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?)?"
)
_ISO = re.compile(ISO_VALUE)
ACCEPTED = "YYYY-MM-DD, or YYYY-MM-DD[T| ]HH:MM[:SS[.fff]] with an optional zone (Z, +HH:MM)"


def is_date_text(value: str) -> bool:
    """Whether ``value`` is spelled as one of the accepted dates (the calendar is not checked)."""
    return _ISO.fullmatch(value.strip()) is not None


def day_of(text: str) -> date | None:
    """One value's day by the same rules as :func:`parse_days`, in plain Python (no pandas)."""
    value = text.strip()
    if _ISO.fullmatch(value) is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:  # 2017-02-30
        return None
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(UTC)
    return stamp.date()


def parse_days(values: Any) -> pd.Series:
    """Each value's day (a naive midnight ``Timestamp``), ``NaT`` where it is not an accepted date.

    ``values``: text (any iterable or Series), or an already typed datetime Series. Vectorised:
    the spelling is checked per value, then every accepted value is parsed as ISO 8601 in one pass.
    """
    import pandas as pd
    from pandas.api import types

    series = values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)
    series = series.reset_index(drop=True)
    if types.is_datetime64_any_dtype(series):
        stamps = series.dt.tz_convert("UTC").dt.tz_localize(None) if series.dt.tz is not None else series
        return stamps.dt.normalize()
    out = pd.Series(pd.NaT, index=series.index, dtype="datetime64[ns]")
    text = _as_text(series)
    if text is None:  # date or datetime objects (a parquet date32 column), maybe mixed with text
        text = series.map(lambda v: v.strip() if isinstance(v, str) else None)
        typed = series.map(lambda v: isinstance(v, date)).astype(bool)
        if typed.any():
            stamps = pd.to_datetime(series[typed], errors="coerce", utc=True)
            out.loc[typed] = stamps.dt.tz_localize(None).dt.normalize().to_numpy()
        spelled = text.map(lambda v: v is not None and _ISO.fullmatch(v) is not None).astype(bool)
    else:
        import pyarrow as pa
        import pyarrow.compute as pc

        trimmed = pc.utf8_trim_whitespace(pa.array(text, type=pa.string(), from_pandas=True))
        spelled = pd.Series(
            pc.fill_null(pc.match_substring_regex(trimmed, f"^(?:{ISO_VALUE})$"), False).to_numpy(
                zero_copy_only=False
            ),
            index=series.index,
        )
        text = pd.Series(trimmed.to_numpy(zero_copy_only=False), index=series.index)
    if spelled.any():
        stamps = pd.to_datetime(text[spelled], format="ISO8601", errors="coerce", utc=True)
        out.loc[spelled] = stamps.dt.tz_localize(None).dt.normalize().to_numpy()
    return out


def _as_text(series: pd.Series) -> pd.Series | None:
    """``series`` as text with nulls, or None when it holds anything but strings and nulls."""
    from pandas.api import types

    kind = types.infer_dtype(series, skipna=True)
    if kind in ("string", "empty"):
        return series
    if types.is_numeric_dtype(series) or types.is_bool_dtype(series):  # never a date: all unreadable
        return series.astype(object).where(series.isna(), "")
    return None


def describe_bad(value: Any) -> str:
    """Why ``value`` is not a date, for a quarantine reason."""
    if value is None or (isinstance(value, float) and value != value) or str(value).strip() == "":
        return "is blank"
    return f"= {str(value)[:40]!r} is not a date"
