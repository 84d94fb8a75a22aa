"""How labels name the rows they are for (``feedback.key_columns``): keys compared as text, and
the labels whose key is in no prediction they could be for (orphans: a wrong key column, a key
written differently)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.data import filesystems, storage

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import PipelineSpec

PREDICTIONS = "monitor_predictions"  # <lake>/<name>/monitor_predictions/ds=<day>/: what was served, keyed


def key_text(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Key columns as text, so a key read as a number in one file and text in the other still joins."""
    out = frame.copy()
    for c in columns:
        out[c] = out[c].astype("string")
    return out


def orphans(spec: PipelineSpec, lake_root: str, ds: str, labels: pd.DataFrame) -> int:
    """Labels whose key is in no prediction of any monitored day they could be for.

    The days searched: those whose labels can be in the window read at ``ds`` (the labels' lookback
    plus ``delay_days`` plus the monitoring window; with a ``snapshot`` labels source, the last 366
    monitored days). Labels of T's neighbours are not orphans; a wrong key column makes nearly all
    labels orphans.
    """
    fb = spec.feedback
    assert fb is not None
    end = date.fromisoformat(ds[:10])
    horizon = (
        366
        if fb.partition.mode == "snapshot"
        else fb.partition.lookback_days + fb.delay_days + spec.monitoring.window_days
    )
    start = (end - timedelta(days=horizon)).isoformat()
    fs, root = filesystems.filesystem(filesystems.join(lake_root, spec.name, PREDICTIONS))
    days = []
    if fs.exists(root):
        for path in fs.ls(root, detail=False):
            name = str(path).rstrip("/").rsplit("/", 1)[-1]
            if name.startswith("ds=") and start < name[3:13] <= end.isoformat():
                days.append(name[3:13])
    keys = list(fb.key_columns)
    dated = _date_key(spec)
    known: set[tuple[Any, ...]] = set()
    scored_dates: set[str] = set()  # the dated key's values the predictions cover
    for d in days:
        try:
            frame = storage.read_frame(storage.partition_uri(lake_root, spec.name, PREDICTIONS, d))
        except FileNotFoundError:
            continue
        if all(k in frame.columns for k in keys):
            known.update(key_text(frame, keys)[keys].itertuples(index=False, name=None))
            if dated is not None:
                scored_dates.update(_day_text(frame[dated]))
    if dated is None:
        return sum(1 for k in labels.itertuples(index=False, name=None) if tuple(k) not in known)
    # A label of a date no prediction covers (a cumulative feed's history, a day never monitored)
    # cannot be judged either way: only a label of a scored date whose key is unknown is an orphan.
    candidates = labels.loc[_day_text(labels[dated]).isin(scored_dates).to_numpy()]
    return sum(1 for k in candidates.itertuples(index=False, name=None) if tuple(k) not in known)


def _date_key(spec: PipelineSpec) -> str | None:
    """The key column that dates a row (the partition column, a time column, the time holdout's or
    the drift calibration's date column), if ``feedback.key_columns`` has one."""
    assert spec.feedback is not None
    dates = [
        spec.source.partition.column,
        *spec.features.time_columns,
        spec.evaluation.holdout.column,
        spec.monitoring.calibration.date_column,
    ]
    return next((c for c in spec.feedback.key_columns if c in dates), None)


def _day_text(values: pd.Series) -> pd.Series:
    """Dates as ``YYYY-MM-DD`` text, whether read as dates, timestamps or text."""
    import pandas as pd

    parsed = pd.to_datetime(values.astype("string"), errors="coerce", format="mixed")
    return parsed.dt.strftime("%Y-%m-%d").fillna(values.astype("string"))
