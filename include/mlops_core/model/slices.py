"""Fairness and slices in the gate: every slice of a column scored apart on the holdout rows.

:func:`compute` cuts the holdout by each ``evaluation.slices`` column (numeric columns at their
``bins``; values outside the edges and nulls get slices of their own), scores each slice with
fairlearn's :class:`~fairlearn.metrics.MetricFrame` (the package's holdout metrics through
:func:`mlops_core.model.evaluation.metric`, fairlearn's selection / false positive / false negative
rates), adds an interval per slice metric (:mod:`mlops_core.model.slice_intervals`: Wilson score
for a proportion, a bootstrap percentile interval otherwise), and
:func:`mlops_core.model.slice_report.check` turns the spec's ``floors``, ``max_gap`` and
``min_rows`` into the reasons the gate rejects on.

A rate whose denominator is zero in a slice (recall without positive rows, precision without a
positive prediction, false_positive_rate without negative rows) is undefined there, not 0.

No Airflow, and nothing heavy at import: fairlearn, numpy and pandas load inside the functions.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import TYPE_CHECKING, Any

from mlops_core.model.slice_intervals import (
    RATES,
    counts,
    indicators,
    interval_methods,
    intervals,
    subset,
    wilson,
)
from mlops_core.model.slice_report import FAIRNESS_DIRECTION, SliceReport, SliceStat, check

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from mlops_core.model.metrics import Scored
    from mlops_core.spec import BootstrapSpec, PipelineSpec, SliceColumn, SlicesSpec

MISSING = "<missing>"
MAX_SLICES = 50  # distinct values of a column without bins; more needs bins
MAX_VALUE_CHARS = 100  # a slice name shows at most this much of a data value


class SliceDataError(ValueError):
    """The holdout cannot be sliced as the spec says: a missing column, bins on text, too many values."""


# --- slicing ----------------------------------------------------------------------------------


def check_columns(spec: PipelineSpec, columns: list[str], where: str) -> None:
    """Every slice column must be in the holdout rows; else a :class:`SliceDataError` naming the fix."""
    missing = [c for c in spec.slice_columns if c not in columns]
    if not missing:
        return
    hints = [
        f"{m!r} -> {close[0]!r}?" for m in missing if (close := difflib.get_close_matches(m, columns, n=1))
    ]
    raise SliceDataError(
        f"evaluation.slices names column(s) {missing} that the holdout rows ({where}) do not have; "
        f"their columns are {columns[:30]}" + (f"; did you mean {', '.join(hints)}" if hints else "") + ". "
        "Add the column(s) to the source data, or fix or remove them under evaluation.slices.columns"
    )


def slice_labels(frame: pd.DataFrame, col: SliceColumn) -> tuple[np.ndarray, list[str]]:
    """Each row's slice name (``sex=F``, ``age=[30, 50)``, ``age=<missing>``) and the slices in report order.

    Bins are left-closed ``[a, b)``; below the first edge is ``(-inf, a)``, from the last edge up
    ``[z, inf)`` (listed only when rows fall there). Every bin between the edges is listed, with 0
    rows if none falls in it.
    """
    values = frame[col.column]
    if col.bins is not None:
        return _binned(values, col.column, col.bins)
    return _distinct(values, col.column)


def _edge(x: float) -> str:
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else repr(x)


def _binned(values: pd.Series, name: str, edges: list[float]) -> tuple[np.ndarray, list[str]]:
    import numpy as np
    from pandas.api import types

    if not types.is_numeric_dtype(values) or types.is_bool_dtype(values):
        sample = values.dropna().astype(str).head(3).tolist()
        raise SliceDataError(
            f"evaluation.slices column {name!r} has bins, but its values are not numbers ({values.dtype}, "
            f"e.g. {sample}); remove bins to slice on each value, or give bins to a numeric column"
        )
    x = values.to_numpy(dtype=float, na_value=np.nan)
    e = [_edge(float(v)) for v in edges]
    names = (
        [f"{name}=(-inf, {e[0]})"]
        + [f"{name}=[{a}, {b})" for a, b in zip(e[:-1], e[1:], strict=True)]
        + [f"{name}=[{e[-1]}, inf)", f"{name}={MISSING}"]
    )
    pos = np.searchsorted(np.asarray(edges, float), x, side="right")  # 0 below, len(edges) above
    pos = np.where(np.isnan(x), len(edges) + 1, pos)
    present = set(np.unique(pos).tolist())
    order = [n for i, n in enumerate(names) if 0 < i < len(edges) or i in present]
    return np.asarray(names, dtype=object)[pos], order


def _value(v: Any) -> str:
    import numpy as np

    if isinstance(v, bool | np.bool_):
        return str(bool(v))
    if isinstance(v, int | np.integer):
        return str(int(v))
    if isinstance(v, float | np.floating):
        return _edge(float(v))
    # data is not trusted: no control characters (a newline could forge a log line), bounded length
    return re.sub(r"[\x00-\x1f\x7f]", "?", str(v))[:MAX_VALUE_CHARS]


def _distinct(values: pd.Series, name: str) -> tuple[np.ndarray, list[str]]:
    import numpy as np
    import pandas as pd

    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if len(uniques) > MAX_SLICES:
        raise SliceDataError(
            f"evaluation.slices column {name!r} has {len(uniques)} distinct values in the holdout (at most "
            f"{MAX_SLICES} slices per column); give it bins (numeric columns, e.g. bins: [0, 18, 30, 50, 120]) "
            "or slice on a coarser column"
        )
    try:
        ranked = sorted(range(len(uniques)), key=lambda i: uniques[i])
    except TypeError:  # mixed types: by their text
        ranked = sorted(range(len(uniques)), key=lambda i: str(uniques[i]))
    names = [f"{name}={_value(u)}" for u in uniques] + [f"{name}={MISSING}"]
    labels = np.asarray(names, dtype=object)[np.where(codes < 0, len(uniques), codes)]
    order = list(dict.fromkeys(names[i] for i in ranked))  # two values may print alike: one slice
    if (codes < 0).any():
        order.append(names[-1])
    return labels, order


# --- metrics on a slice -----------------------------------------------------------------------


def _undefined_rate(name: str, yb: np.ndarray, pb: np.ndarray) -> bool:
    denominator = {
        "recall": yb.sum(),
        "false_negative_rate": yb.sum(),
        "precision": pb.sum(),
        "f1": (yb | pb).sum(),
        "false_positive_rate": (1 - yb).sum(),
        "selection_rate": len(yb),
    }[name]
    return bool(denominator == 0)


def slice_metric(name: str, problem: str, y: np.ndarray, s: Scored, positive: Any = None) -> float:
    """One metric on one slice's rows: the package's metric, or fairlearn's rate; ``nan`` if undefined."""
    from mlops_core.model import metrics

    if len(y) == 0:
        return math.nan
    if problem == "binary" and name in RATES:
        yb, pb = indicators(y, s.pred, positive)
        if _undefined_rate(name, yb, pb):
            return math.nan
        if name in FAIRNESS_DIRECTION:
            from fairlearn import metrics as fm

            rate: Callable[..., float] = getattr(fm, name)
            return float(rate(yb, pb, pos_label=1))
    return metrics.metric(name, problem, y, s, positive)


def _by_slice(
    metrics: list[str], problem: str, labels: np.ndarray, y: np.ndarray, s: Scored, positive: Any
) -> dict[str, dict[str, float]]:
    """Each slice's metrics, through fairlearn's MetricFrame.

    MetricFrame hands each metric the (y_true, y_pred) of a slice; y_pred here is the row number,
    so a metric can take the slice's probabilities (roc_auc, log_loss) as well as its labels.
    """
    import numpy as np
    import pandas as pd
    from fairlearn.metrics import MetricFrame

    def fn(name: str) -> Callable[[np.ndarray, np.ndarray], float]:
        def on_rows(y_true: np.ndarray, rows: np.ndarray) -> float:
            return slice_metric(name, problem, np.asarray(y_true), subset(s, np.asarray(rows, int)), positive)

        on_rows.__name__ = name
        return on_rows

    frame = MetricFrame(
        metrics={m: fn(m) for m in metrics},
        y_true=y,
        y_pred=np.arange(len(y)),
        sensitive_features=pd.Series(labels, name="slice"),
    )
    by_group = frame.by_group
    return {
        str(k): {m: float(v) for m, v in row.items()} for k, row in by_group.to_dict(orient="index").items()
    }


# --- compute ----------------------------------------------------------------------------------


def _round(v: float | None) -> float | None:
    return None if v is None or math.isnan(v) else round(float(v), 6)


def compute(
    spec: PipelineSpec,
    holdout: pd.DataFrame,
    y: np.ndarray,
    challenger: Scored,
    positive: Any = None,
    *,
    champion: Scored | None = None,
    champion_version: str | None = None,
) -> SliceReport:
    """The slice report of the challenger (and the champion's values beside it), checked."""
    import numpy as np

    sl = spec.evaluation.slices
    if sl is None:
        raise ValueError("compute needs evaluation.slices in the spec")
    check_columns(spec, list(holdout.columns), "holdout")
    boot, problem, y = spec.evaluation.bootstrap, spec.problem_type, np.asarray(y)
    methods = interval_methods(sl.metrics, problem)
    is_positive = np.asarray(y).astype(str) == str(positive)
    columns: dict[str, list[SliceStat]] = {}
    for ci, col in enumerate(sl.columns):
        labels, order = slice_labels(holdout, col)
        values = _by_slice(sl.metrics, problem, labels, y, challenger, positive)
        champ = (
            _by_slice(sl.metrics, problem, labels, y, champion, positive) if champion is not None else None
        )
        stats = []
        for si, name in enumerate(order):
            idx = np.flatnonzero(labels == name)
            rows = subset(challenger, idx)
            ivs, used = _intervals(
                sl.metrics, methods, boot, problem, y[idx], rows, positive, [boot.seed, ci, si]
            )
            positives = int(is_positive[idx].sum()) if problem == "binary" else None
            theirs = champ.get(name, {}) if champ else None
            stats.append(_stat(sl, name, len(idx), values.get(name, {}), theirs, ivs, used, positives))
        columns[col.column] = stats

    def overall(s: Scored) -> dict[str, float | None]:
        return {m: _round(slice_metric(m, problem, y, s, positive)) for m in sl.metrics}

    report = SliceReport(
        metrics=list(sl.metrics),
        min_rows=sl.min_rows,
        small=sl.small,
        confidence=boot.confidence,
        n_resamples=boot.n_resamples,
        overall=overall(challenger),
        columns=columns,
        champion_overall=overall(champion) if champion is not None else None,
        champion_version=champion_version if champion is not None else None,
        min_positives=sl.min_positives,
        interval_methods=methods,
    )
    return check(report, sl)


def _stat(
    sl: SlicesSpec,
    name: str,
    rows: int,
    point: dict[str, float],
    champion: dict[str, float] | None,
    ivs: dict[str, tuple[float, float] | None],
    used: int,
    positives: int | None,
) -> SliceStat:
    """One slice's line of the report: each metric's value and interval, the champion's value."""
    return SliceStat(
        slice=name,
        rows=rows,
        judged=rows >= sl.min_rows,
        metrics={
            m: {
                "value": _round(point.get(m)),
                "low": _round(iv[0]) if (iv := ivs[m]) else None,
                "high": _round(iv[1]) if iv else None,
            }
            for m in sl.metrics
        },
        champion={m: _round(champion.get(m)) for m in sl.metrics} if champion is not None else None,
        resamples=used,
        positives=positives,
    )


def _intervals(
    metrics: list[str],
    methods: dict[str, str],
    boot: BootstrapSpec,
    problem: str,
    y: np.ndarray,
    rows: Scored,
    positive: Any,
    seed: list[int],
) -> tuple[dict[str, tuple[float, float] | None], int]:
    """One slice's interval of each metric (Wilson or bootstrap, as ``methods`` says) and how many
    resamples the bootstrap drew."""
    ivs: dict[str, tuple[float, float] | None] = {}
    used = 0
    resampled = [m for m in metrics if methods[m] == "bootstrap"]
    if resampled:
        ivs, used = intervals(
            resampled,
            problem,
            y,
            rows,
            positive,
            n_resamples=boot.n_resamples,
            confidence=boot.confidence,
            seed=seed,
        )
    for m in metrics:
        if methods[m] == "wilson":
            c = counts(m, problem, y, rows, positive)
            ivs[m] = wilson(*c, boot.confidence) if c else None
    return ivs, used
