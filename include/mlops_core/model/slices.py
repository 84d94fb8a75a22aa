"""Fairness and slices in the gate: every slice of a column scored apart on the holdout rows.

:func:`compute` cuts the holdout by each ``evaluation.slices`` column (numeric columns at their
``bins``; values outside the edges and nulls get slices of their own), scores each slice with
fairlearn's :class:`~fairlearn.metrics.MetricFrame` (the package's holdout metrics through
:func:`mlops_core.model.evaluation.metric`, fairlearn's selection / false positive / false negative
rates), adds a bootstrap percentile interval per slice metric, and :func:`check` turns the spec's
``floors``, ``max_gap`` and ``min_rows`` into the reasons the gate rejects on.

Intervals: a proportion (recall, precision, accuracy, selection / false positive / false negative
rate) gets a Wilson score interval from its own counts (recall: the slice's positive rows), so it
is wide when the evidence is thin (1 of 1 positive: [0.21, 1] at 95 %), never ``[0, 0]``; every
other metric gets the bootstrap percentile interval below. A slice fails a floor only when it is
*confidently* below it: the interval's upper bound is under the floor (its lower bound above it,
for a lower-is-better metric). A slice with fewer than ``min_rows`` rows is not judged at all, and
its positive-class metrics (:data:`NEEDS_POSITIVES`) are not judged with fewer than
``min_positives`` positive rows. A rate whose denominator is zero in a slice (recall without
positive rows, precision without a positive prediction, false_positive_rate without negative
rows) is undefined there, not 0.

The interval resamples rows *within* the slice (its size is set by the data, not by chance) and is
vectorised: a resample is a vector of multiplicities (how often each row was drawn), so a metric
of a block of resamples is a few matrix products, and the ranking metrics (roc_auc,
average_precision) are cumulative sums over the rows sorted once by score. A slice gets
``n_resamples`` resamples up to :data:`RESAMPLE_BUDGET` row draws, and no fewer than
:data:`MIN_RESAMPLES` past it, so a huge holdout stays seconds, not minutes.

No Airflow, and nothing heavy at import: fairlearn, numpy and pandas load inside the functions.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import TYPE_CHECKING, Any

from mlops_core.spec.catalog import METRICS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    import numpy as np
    import pandas as pd

    from mlops_core.model.metrics import Scored
    from mlops_core.spec import PipelineSpec, SliceColumn, SlicesSpec

MISSING = "<missing>"
TOO_FEW = "too few rows"
LISTED = 10  # a column with more slices is logged as a summary plus its failing slices
# metrics of the positive class: judged only on a slice with min_positives positive rows
NEEDS_POSITIVES = frozenset(
    {"recall", "precision", "f1", "false_negative_rate", "roc_auc", "average_precision"}
)
# proportions with a Wilson interval (the others: bootstrap)
WILSON = frozenset(
    {"recall", "precision", "accuracy", "selection_rate", "false_positive_rate", "false_negative_rate"}
)
MAX_SLICES = 50  # distinct values of a column without bins; more needs bins
MAX_VALUE_CHARS = 100  # a slice name shows at most this much of a data value
RESAMPLE_BUDGET = 10_000_000  # row draws per slice (resamples x rows) before resamples are capped
MIN_RESAMPLES = 200
_BLOCK = 2_000_000  # multiplicities held at once (16 MB of float64)

# fairlearn's rates: the better direction (None: neither; selection_rate parity is judged by max_gap)
FAIRNESS_DIRECTION: dict[str, bool | None] = {
    "selection_rate": None,
    "false_positive_rate": False,
    "false_negative_rate": False,
}


class SliceDataError(ValueError):
    """The holdout cannot be sliced as the spec says: a missing column, bins on text, too many values."""


def higher_is_better(metric: str) -> bool | None:
    """``True``/``False`` for a metric's better direction, ``None`` for selection_rate (none)."""
    if metric in FAIRNESS_DIRECTION:
        return FAIRNESS_DIRECTION[metric]
    return METRICS[metric].higher_is_better


# --- the report -------------------------------------------------------------------------------


@dataclass
class SliceStat:
    """One slice: its rows, each metric as ``{value, low, high}``, and whether the gate judged it."""

    slice: str
    rows: int
    judged: bool
    metrics: dict[str, dict[str, float | None]]
    champion: dict[str, float | None] | None = None
    note: str | None = None  # "too few rows" when not judged
    resamples: int = 0
    positives: int | None = None  # binary: rows of the positive class in the slice


@dataclass
class MetricGap:
    """Best and worst judged slice of one column on one metric (for selection_rate: highest, lowest)."""

    best: str
    best_value: float
    worst: str
    worst_value: float
    gap: float
    judged_slices: int
    max_gap: float | None = None
    champion_gap: float | None = None


@dataclass
class SliceReport:
    """Per column, its slices; per column and metric, the gap; and what the gate makes of them."""

    metrics: list[str]
    min_rows: int
    small: str
    confidence: float
    n_resamples: int
    overall: dict[str, float | None]
    columns: dict[str, list[SliceStat]]
    gaps: dict[str, dict[str, MetricGap]] = field(default_factory=dict)
    champion_overall: dict[str, float | None] | None = None
    champion_version: str | None = None
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    min_positives: int = 0
    # each metric's interval: "wilson" or "bootstrap"
    interval_methods: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SliceReport:
        d = dict(data)
        d["columns"] = {c: [SliceStat(**s) for s in stats] for c, stats in d["columns"].items()}
        d["gaps"] = {c: {m: MetricGap(**g) for m, g in per.items()} for c, per in d.get("gaps", {}).items()}
        return cls(**d)

    def mlflow_metrics(self) -> dict[str, float]:
        """``slice.<slice>.<metric>``, ``slice.<slice>.rows`` and ``slice_gap.<column>.<metric>``,
        named with MLflow's portable characters only (``sex=F`` -> ``sex_F``)."""
        out: dict[str, float] = {}
        used: dict[str, str] = {}
        used_columns: dict[str, str] = {}
        for column, stats in self.columns.items():
            for s in stats:
                base = "slice." + _key(s.slice, used)
                out[f"{base}.rows"] = float(s.rows)
                for m, v in s.metrics.items():
                    if v["value"] is not None:
                        out[f"{base}.{m}"] = float(v["value"])
            gap_base = "slice_gap." + _key(column, used_columns)
            for m, g in self.gaps.get(column, {}).items():
                out[f"{gap_base}.{m}"] = float(g.gap)
        return out


def _key(label: str, used: dict[str, str]) -> str:
    """``label`` in MLflow's portable metric-name characters; a collision gets a short hash."""
    key = re.sub(r"[^A-Za-z0-9_.\-]+", "_", label).strip("_")[:180] or "_"
    if used.setdefault(key, label) != label:
        key = f"{key}_{hashlib.sha1(label.encode()).hexdigest()[:8]}"
        used[key] = label
    return key


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

_RATES = ("precision", "recall", "f1", "selection_rate", "false_positive_rate", "false_negative_rate")


def _indicators(y: np.ndarray, pred: np.ndarray, positive: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    return (
        (np.asarray(y).astype(str) == str(positive)).astype(int),
        (np.asarray(pred).astype(str) == str(positive)).astype(int),
    )


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
    if problem == "binary" and name in _RATES:
        yb, pb = _indicators(y, s.pred, positive)
        if _undefined_rate(name, yb, pb):
            return math.nan
        if name in FAIRNESS_DIRECTION:
            from fairlearn import metrics as fm

            rate: Callable[..., float] = getattr(fm, name)
            return float(rate(yb, pb, pos_label=1))
    return metrics.metric(name, problem, y, s, positive)


def _subset(s: Scored, idx: np.ndarray) -> Scored:
    from mlops_core.model.metrics import Scored

    return Scored(pred=s.pred[idx], proba=None if s.proba is None else s.proba[idx], classes=s.classes)


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
            return slice_metric(
                name, problem, np.asarray(y_true), _subset(s, np.asarray(rows, int)), positive
            )

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


# --- the bootstrap ----------------------------------------------------------------------------


class _Rows:
    """One slice's rows as the vectorised metrics need them.

    Every metric but the ranking ones is a function of per-row sums (confusion cells, losses,
    one-hot labels): :meth:`columns` stacks the per-row vectors the requested metrics sum, so a
    block of resamples costs one matrix product.
    """

    def __init__(self, problem: str, y: np.ndarray, s: Scored, positive: Any) -> None:
        import numpy as np

        self.problem, self.y, self.s, self.positive, self.n = problem, np.asarray(y), s, positive, len(y)
        self._rankings: dict[int | None, tuple[np.ndarray | None, np.ndarray, np.ndarray]] = {}

    @cached_property
    def binary(self) -> tuple[np.ndarray, np.ndarray]:
        yb, pb = _indicators(self.y, self.s.pred, self.positive)
        return yb.astype(float), pb.astype(float)

    def _log_loss(self) -> np.ndarray:
        """Each row's log loss, clipped as sklearn clips; nan when a label is not a model class."""
        import numpy as np

        proba = np.asarray(self.s.proba, float)
        eps = np.finfo(proba.dtype).eps
        if self.problem == "binary":
            yb = self.binary[0]
            return -np.log(np.clip(np.where(yb == 1, proba, 1 - proba), eps, 1 - eps))
        classes = [str(c) for c in self.s.classes or []]
        idx = np.asarray([classes.index(v) if v in classes else -1 for v in self.y.astype(str)])
        if (idx < 0).any():
            return np.full(self.n, math.nan)
        return -np.log(np.clip(proba[np.arange(self.n), idx], eps, 1 - eps))

    def _parts(self, name: str) -> dict[str, np.ndarray]:
        import numpy as np

        if self.problem == "regression":
            y = np.asarray(self.y, float)
            e, yc = y - np.asarray(self.s.pred, float), y - y.mean()
            return {"e2": e * e, "ae": np.abs(e), "yc": yc, "yc2": yc * yc}
        if name in _RATES:
            yb, pb = self.binary
            return {"tp": yb * pb, "fp": (1 - yb) * pb, "fn": yb * (1 - pb), "tn": (1 - yb) * (1 - pb)}
        if name == "accuracy":
            return {"correct": (self.y == np.asarray(self.s.pred)).astype(float)}
        if name in ("balanced_accuracy", "f1_macro", "f1_weighted"):
            # one-hot over every label y or the predictions hold, like sklearn's unique_labels
            y, pred = self.y.astype(str), np.asarray(self.s.pred).astype(str)
            labels = np.unique(np.concatenate([y, pred]))
            true, predicted = (y[:, None] == labels).astype(float), (pred[:, None] == labels).astype(float)
            return {"true": true, "pred": predicted, "hit": true * predicted}
        if self.s.proba is None:
            return {}
        if name == "log_loss":
            return {"log_loss": self._log_loss()}
        if name == "brier" and self.problem == "binary":
            return {"brier": (np.asarray(self.s.proba, float) - self.binary[0]) ** 2}
        return {}  # ranking metrics work on the multiplicities themselves

    def columns(self, metrics: list[str]) -> tuple[np.ndarray, dict[str, slice]]:
        """(n, k) matrix of every per-row vector the metrics sum, and where each sits in it."""
        import numpy as np

        parts: dict[str, np.ndarray] = {}
        for m in metrics:
            parts.update(self._parts(m))
        index, start = {}, 0
        for key, v in parts.items():
            width = 1 if v.ndim == 1 else v.shape[1]
            index[key], start = slice(start, start + width), start + width
        stacked = [v[:, None] if v.ndim == 1 else v for v in parts.values()]
        return (np.hstack(stacked) if stacked else np.zeros((self.n, 0))), index

    def ranking(self, column: int | None = None) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
        """(order by descending score or None if the rows are in it, start of each run of equal
        scores, is-positive in that order); computed once per score column."""
        import numpy as np

        if column not in self._rankings:
            if column is None:
                score, yb = np.asarray(self.s.proba, float), self.binary[0]
            else:
                score = np.asarray(self.s.proba, float)[:, column]
                yb = (self.y.astype(str) == str((self.s.classes or [])[column])).astype(float)
            order = np.argsort(-score, kind="stable")
            ranked = score[order]
            starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])
            in_order = bool((order == np.arange(self.n)).all())
            self._rankings[column] = (None if in_order else order, starts, yb[order])
        return self._rankings[column]


class _Block:
    """One block of resamples: the multiplicities and the per-row sums the metrics need."""

    def __init__(self, w: np.ndarray, rows: _Rows, matrix: np.ndarray, index: dict[str, slice]) -> None:
        self.w, self.rows, self.n = w, rows, rows.n
        product = w @ matrix
        self.sum = {k: product[:, i] if k in _WIDE else product[:, i.start] for k, i in index.items()}


_WIDE = ("true", "pred", "hit")


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    import numpy as np

    return np.divide(num, den, out=np.full(num.shape, math.nan), where=den > 0)


def _rates(b: _Block, name: str) -> np.ndarray:
    tp, fp, fn, tn = (b.sum[k] for k in ("tp", "fp", "fn", "tn"))
    num, den = {
        "precision": (tp, tp + fp),
        "recall": (tp, tp + fn),
        "f1": (2 * tp, 2 * tp + fp + fn),
        "selection_rate": (tp + fp, tp + fp + fn + tn),
        "false_positive_rate": (fp, fp + tn),
        "false_negative_rate": (fn, fn + tp),
    }[name]
    return _ratio(num, den)


def _per_label(b: _Block, name: str) -> np.ndarray:
    import numpy as np

    t, p, hit = b.sum["true"], b.sum["pred"], b.sum["hit"]
    if name == "balanced_accuracy":  # mean recall over the labels present in y_true
        present = t > 0
        return np.where(present, _ratio(hit, t), 0.0).sum(1) / present.sum(1)
    f1 = np.where(t + p > 0, _ratio(2 * hit, t + p), 0.0)
    if name == "f1_macro":
        return f1.sum(1) / (t + p > 0).sum(1)
    return (f1 * t).sum(1) / t.sum(1)  # f1_weighted


def _grouped(
    w: np.ndarray, ranking: tuple[np.ndarray | None, np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Positive and negative multiplicities per run of equal scores, highest score first."""
    import numpy as np

    order, starts, yb = ranking
    ws = w if order is None else w[:, order]
    pos = ws * yb
    if len(starts) == ws.shape[1]:  # no ties: each row is its own run
        return pos, ws - pos
    pos = np.add.reduceat(pos, starts, axis=1)
    return pos, np.add.reduceat(ws, starts, axis=1) - pos


def _auc(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """roc_auc of each resample: P(positive scored above negative), ties counting half."""
    import numpy as np

    n_pos, n_neg = pos.sum(1), neg.sum(1)
    above = (pos * np.cumsum(neg, 1)).sum(1) - 0.5 * (pos * neg).sum(1)  # pairs ranked wrongly
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = 1.0 - above / (n_pos * n_neg)
    return np.where((n_pos == 0) | (n_neg == 0), math.nan, auc)


def _ap(pos: np.ndarray, neg: np.ndarray) -> np.ndarray:
    """Average precision of each resample (sklearn's step sum over recall)."""
    import numpy as np

    n_pos, n_neg = pos.sum(1), neg.sum(1)
    tps = np.cumsum(pos, 1)
    precision = np.divide(tps, tps + np.cumsum(neg, 1), out=np.zeros_like(tps), where=tps > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ap = (pos * precision).sum(1) / n_pos
    return np.where((n_pos == 0) | (n_neg == 0), math.nan, ap)


def _ranked(b: _Block, name: str) -> np.ndarray:
    import numpy as np

    r = b.rows
    if r.problem == "binary":
        pos, neg = _grouped(b.w, r.ranking())
        return _auc(pos, neg) if name == "roc_auc" else _ap(pos, neg)
    if name != "roc_auc":
        return np.full(len(b.w), math.nan)
    per_class = [_auc(*_grouped(b.w, r.ranking(j))) for j in range(len(r.s.classes or []))]
    return np.mean(per_class, axis=0)  # one-vs-rest, macro; nan when a class is absent


def _regression(b: _Block, name: str) -> np.ndarray:
    import numpy as np

    if name == "rmse":
        return np.sqrt(b.sum["e2"] / b.n)
    if name == "mae":
        return b.sum["ae"] / b.n
    if b.n < 2:
        return np.full(len(b.w), math.nan)
    sse, sum2 = b.sum["e2"], b.sum["yc2"]
    sst = sum2 - b.sum["yc"] ** 2 / b.n
    constant = sst <= 1e-12 * sum2  # sklearn: r2 of a constant target is 1 if exact, else 0
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(constant, np.where(sse == 0, 1.0, 0.0), 1 - sse / sst)


def _vector_metric(b: _Block, name: str) -> np.ndarray:
    """``name`` on each resample of the block, as :func:`slice_metric` defines it."""
    import numpy as np

    if b.rows.problem == "regression":
        return _regression(b, name)
    if name in _RATES:
        return _rates(b, name)
    if name == "accuracy":
        return b.sum["correct"] / b.n
    if name in ("balanced_accuracy", "f1_macro", "f1_weighted"):
        return _per_label(b, name)
    if b.rows.s.proba is None:
        return np.full(len(b.w), math.nan)
    if name in ("log_loss", "brier"):
        return b.sum[name] / b.n
    return _ranked(b, name)


def _multiplicities(rng: np.random.Generator, n: int, count: int) -> Iterator[np.ndarray]:
    """``count`` bootstrap resamples of ``n`` rows, in blocks: how often each row was drawn."""
    import numpy as np

    per = max(1, min(count, _BLOCK // n))
    for start in range(0, count, per):
        c = min(per, count - start)
        draws = rng.integers(0, n, size=(c, n), dtype=np.int32) + (np.arange(c, dtype=np.int32) * n)[:, None]
        yield np.bincount(draws.ravel(), minlength=c * n).reshape(c, n).astype(float)


def intervals(
    metrics: list[str],
    problem: str,
    y: np.ndarray,
    s: Scored,
    positive: Any,
    *,
    n_resamples: int,
    confidence: float,
    seed: int | list[int],
) -> tuple[dict[str, tuple[float, float] | None], int]:
    """Percentile interval of each metric over resamples of these rows (``None``: undefined on all).

    Returns the intervals and how many resamples were drawn (capped by :data:`RESAMPLE_BUDGET`).
    """
    import numpy as np

    n = len(y)
    if n == 0:
        return dict.fromkeys(metrics), 0
    count = min(n_resamples, max(MIN_RESAMPLES, RESAMPLE_BUDGET // n))
    if problem == "binary" and s.proba is not None and {"roc_auc", "average_precision"} & set(metrics):
        # rows by descending score: the ranking metrics then need no reordering of each resample
        order = np.argsort(-np.asarray(s.proba, float), kind="stable")
        y, s = np.asarray(y)[order], _subset(s, order)
    rows = _Rows(problem, y, s, positive)
    matrix, index = rows.columns(metrics)
    drawn: dict[str, list[np.ndarray]] = {m: [] for m in metrics}
    for w in _multiplicities(np.random.default_rng(seed), n, count):
        block = _Block(w, rows, matrix, index)
        for m in metrics:
            drawn[m].append(_vector_metric(block, m))
    alpha = (1.0 - confidence) / 2.0
    out: dict[str, tuple[float, float] | None] = {}
    for m, parts in drawn.items():
        values = np.concatenate(parts)
        values = values[~np.isnan(values)]
        low, high = np.quantile(values, [alpha, 1.0 - alpha]) if len(values) else (math.nan, math.nan)
        out[m] = None if math.isnan(low) else (float(low), float(high))
    return out, count


def _counts(name: str, problem: str, y: np.ndarray, s: Scored, positive: Any) -> tuple[int, int] | None:
    """(successes, trials) of a proportion metric on these rows, or ``None`` if it is not one."""
    import numpy as np

    if name == "accuracy":
        return int((np.asarray(y) == np.asarray(s.pred)).sum()), len(y)
    if problem != "binary" or name not in WILSON:
        return None
    yb, pb = _indicators(y, s.pred, positive)
    tp, fp = int((yb & pb).sum()), int(((1 - yb) & pb).sum())
    fn, tn = int((yb & (1 - pb)).sum()), int(((1 - yb) & (1 - pb)).sum())
    return {
        "recall": (tp, tp + fn),
        "false_negative_rate": (fn, tp + fn),
        "precision": (tp, tp + fp),
        "false_positive_rate": (fp, fp + tn),
        "selection_rate": (tp + fp, len(y)),
    }[name]


def wilson(successes: int, trials: int, confidence: float) -> tuple[float, float] | None:
    """Wilson score interval of a proportion (``None`` with no trials)."""
    from statistics import NormalDist

    if trials <= 0:
        return None
    z = NormalDist().inv_cdf(0.5 + confidence / 2.0)
    p, n = successes / trials, trials
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _interval_methods(metrics: list[str], problem: str) -> dict[str, str]:
    return {
        m: "wilson" if m == "accuracy" or (problem == "binary" and m in WILSON) else "bootstrap"
        for m in metrics
    }


# --- compute and check ------------------------------------------------------------------------


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
    methods = _interval_methods(sl.metrics, problem)
    resampled = [m for m in sl.metrics if methods[m] == "bootstrap"]
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
            rows = _subset(challenger, idx)
            ivs: dict[str, tuple[float, float] | None] = {}
            used = 0
            if resampled:
                ivs, used = intervals(
                    resampled,
                    problem,
                    y[idx],
                    rows,
                    positive,
                    n_resamples=boot.n_resamples,
                    confidence=boot.confidence,
                    seed=[boot.seed, ci, si],
                )
            for m in sl.metrics:
                if methods[m] == "wilson":
                    counts = _counts(m, problem, y[idx], rows, positive)
                    ivs[m] = wilson(*counts, boot.confidence) if counts else None
            point = values.get(name, {})
            stats.append(
                SliceStat(
                    slice=name,
                    rows=len(idx),
                    judged=len(idx) >= sl.min_rows,
                    metrics={
                        m: {
                            "value": _round(point.get(m)),
                            "low": _round(iv[0]) if (iv := ivs[m]) else None,
                            "high": _round(iv[1]) if iv else None,
                        }
                        for m in sl.metrics
                    },
                    champion={m: _round(champ.get(name, {}).get(m)) for m in sl.metrics} if champ else None,
                    resamples=used,
                    positives=int(is_positive[idx].sum()) if problem == "binary" else None,
                )
            )
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


def _num(x: float, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if x == 0 or abs(x) >= 0.1 else f"{x:.{digits}g}"


def _apart(value: float, bound: float) -> tuple[str, str]:
    """Both numbers with 2 decimals, or more when 2 would print a failing value as its bound."""
    for digits in (2, 4, 6):
        a, b = _num(value, digits), _num(bound, digits)
        if a != b:
            break
    return a, b


def _conf(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def judged_on(s: SliceStat, metric: str, min_positives: int) -> bool:
    """Whether ``metric`` of slice ``s`` is judged: enough rows, a value, and for a positive-class
    metric enough positive rows."""
    if not s.judged or s.metrics[metric]["value"] is None:
        return False
    return metric not in NEEDS_POSITIVES or s.positives is None or s.positives >= min_positives


def _gap(stats: list[SliceStat], metric: str, min_positives: int) -> MetricGap | None:
    defined = sorted(
        (
            (float(s.metrics[metric]["value"] or 0.0), i, s)
            for i, s in enumerate(stats)
            if judged_on(s, metric, min_positives)
        ),
        key=lambda t: (t[0], t[1]),
    )
    if len(defined) < 2:
        return None
    # two distinct slices, even when every value ties (a slice is never compared with itself)
    lowest, highest = defined[0], defined[-1]
    best, worst = (lowest, highest) if higher_is_better(metric) is False else (highest, lowest)
    champ = [v for _, _, s in defined if s.champion and (v := s.champion.get(metric)) is not None]
    return MetricGap(
        best=best[2].slice,
        best_value=best[0],
        worst=worst[2].slice,
        worst_value=worst[0],
        gap=round(highest[0] - lowest[0], 6),
        judged_slices=len(defined),
        champion_gap=round(max(champ) - min(champ), 6) if len(champ) == len(defined) else None,
    )


# why a metric can be undefined on a slice's rows
_UNDEFINED = {
    "recall": "no positive rows",
    "false_negative_rate": "no positive rows",
    "false_positive_rate": "no negative rows",
    "precision": "no positive predictions",
    "f1": "no positive rows or predictions",
    "r2": "fewer than 2 rows",
}


def _not_judged(s: SliceStat, sl: SlicesSpec) -> list[str]:
    """Reasons about a slice as such: too few rows, a judged metric undefined on it, or too few
    positive rows for a positive-class metric."""
    if not s.judged:
        return [f"slice {s.slice}: {s.rows} rows < min_rows {sl.min_rows}, not judged"]
    out = [
        f"slice {s.slice}: {m} is undefined on its {s.rows} rows ({_UNDEFINED.get(m, 'one class only')}), "
        "not judged"
        for m in sl.floors
        if s.metrics[m]["value"] is None
    ]
    thin = [
        m
        for m in sl.metrics
        if m in NEEDS_POSITIVES
        and s.metrics[m]["value"] is not None
        and s.positives is not None
        and s.positives < sl.min_positives
    ]
    if thin:
        out.append(
            f"slice {s.slice}: {s.positives} positive rows < min_positives {sl.min_positives}, "
            f"{', '.join(thin)} not judged"
        )
    return out


def _floor_violations(s: SliceStat, sl: SlicesSpec, report: SliceReport) -> list[str]:
    """Floors the slice is confidently on the wrong side of: its whole interval (the point value
    when the interval is undefined) is below a minimum, or above a maximum."""
    out = []
    for m, floor in sl.floors.items():
        if not judged_on(s, m, sl.min_positives):
            continue
        value, low, high = (s.metrics[m][k] for k in ("value", "low", "high"))
        assert value is not None  # judged_on
        at_most = higher_is_better(m) is False  # selection_rate (no direction): a minimum
        bound = (value if low is None else low) if at_most else (value if high is None else high)
        if (bound <= floor) if at_most else (bound >= floor):
            continue
        v, f = _apart(value, floor)
        method = report.interval_methods.get(m, "bootstrap")
        interval = (
            f"{_conf(report.confidence)} {method} interval [{_num(low)}, {_num(high)}] "
            f"{'above' if at_most else 'below'} it"
            if low is not None and high is not None
            else "interval undefined"
        )
        evidence = f"{s.rows} rows" + (f", {s.positives} positive" if s.positives is not None else "")
        out.append(f"slice {s.slice}: {m} {v} {'>' if at_most else '<'} floor {f} ({interval}, {evidence})")
    return out


def _gap_reason(column: str, metric: str, g: MetricGap, version: str | None) -> tuple[bool, str]:
    bound = float(g.max_gap or 0.0)
    gap, limit = _apart(g.gap, bound)
    ok = g.gap <= bound
    if g.gap == 0:
        text = (
            f"slices of {column}: {metric} gap 0 (all {g.judged_slices} judged slices at "
            f"{_num(g.best_value)}) <= max_gap {limit}"
        )
    else:
        text = (
            f"slices of {column}: {metric} gap {gap} between {g.best} ({_num(g.best_value)}) and "
            f"{g.worst} ({_num(g.worst_value)}) {'<=' if ok else '>'} max_gap {limit}"
        )
    if g.champion_gap is not None:
        text += f" (champion{' v' + version if version else ''}: {_num(g.champion_gap)})"
    return ok, text


def _compact(column: str, notes: list[str], keep: int = 3) -> list[str]:
    """Up to ``keep`` not-judged notes of a column as they are; more as one line naming the slices."""
    if len(notes) <= keep:
        return notes
    names = [n.split(":", 1)[0].removeprefix("slice ") for n in notes]
    rows = sum(" rows < min_rows " in n for n in notes)
    positives = sum(" positive rows < min_positives " in n for n in notes)
    undefined = len(notes) - rows - positives
    kinds = ", ".join(
        f"{k} {what}"
        for k, what in (
            (rows, "below min_rows"),
            (positives, "below min_positives"),
            (undefined, "undefined"),
        )
        if k
    )
    shown = ", ".join(names[:8]) + (f", … +{len(names) - 8} more" if len(names) > 8 else "")
    return [f"slices of {column}: {len(notes)} not judged ({kinds}): {shown}"]


def _check_column(
    column: str, stats: list[SliceStat], sl: SlicesSpec, report: SliceReport
) -> tuple[list[str], list[str], dict[str, MetricGap]]:
    violations: list[str] = []
    notes: list[str] = []
    small_notes: list[str] = []
    floor_failures = 0
    for s in stats:
        small = _not_judged(s, sl)
        if sl.small == "reject":
            violations += [f"{r} (small: reject)" for r in small]
        else:
            small_notes += small
        failed = _floor_violations(s, sl, report)
        floor_failures += len(failed)
        violations += failed
    notes += _compact(column, small_notes)
    gaps = {m: g for m in report.metrics if (g := _gap(stats, m, sl.min_positives)) is not None}
    for m, bound in sl.max_gap.items():
        if m not in gaps:
            judged = sum(judged_on(s, m, sl.min_positives) for s in stats)
            notes.append(f"slices of {column}: {m} gap not judged ({judged} judged slice(s) with a value)")
            continue
        gaps[m].max_gap = bound
        ok, text = _gap_reason(column, m, gaps[m], report.champion_version)
        (notes if ok else violations).append(text)
    judged = sum(s.judged for s in stats)
    if sl.floors and judged and not floor_failures:
        notes.append(f"slices of {column}: {judged} of {len(stats)} slices judged, every slice floor holds")
    return violations, notes, gaps


def check(report: SliceReport, sl: SlicesSpec) -> SliceReport:
    """Judge the report against the spec: which slices count, their floors, each column's gaps.

    Recomputed from the slice values and the spec (never taken from the report's own lists), so
    the gate applies the YAML it runs with.
    """
    violations: list[str] = []
    notes: list[str] = []
    columns: dict[str, list[SliceStat]] = {}
    gaps: dict[str, dict[str, MetricGap]] = {}
    report = replace(report, min_positives=sl.min_positives)
    for column, given in report.columns.items():
        columns[column] = [
            replace(s, judged=s.rows >= sl.min_rows, note=None if s.rows >= sl.min_rows else TOO_FEW)
            for s in given
        ]
        bad, fine, gaps[column] = _check_column(column, columns[column], sl, report)
        violations += bad
        notes += fine
    return replace(
        report,
        min_rows=sl.min_rows,
        small=sl.small,
        columns=columns,
        gaps=gaps,
        violations=violations,
        notes=notes,
    )


def _slice_line(s: dict[str, Any]) -> str:
    parts = []
    for m, v in s["metrics"].items():
        if v["value"] is None:
            parts.append(f"{m} undefined")
            continue
        part = f"{m} {_num(v['value'])}"
        if v["low"] is not None:
            part += f" [{_num(v['low'])}, {_num(v['high'])}]"
        champ = (s.get("champion") or {}).get(m)
        parts.append(part + (f" (champion {_num(champ)})" if champ is not None else ""))
    flag = "" if s["judged"] else f", not judged: {s.get('note') or TOO_FEW}"
    positives = f", {s['positives']} positive" if s.get("positives") is not None else ""
    return f"  {s['slice']}: {s['rows']} rows{positives}{flag}; " + ", ".join(parts)


def describe(report: dict[str, Any]) -> list[str]:
    """A slice table for logs: per column, each slice's rows and metrics with their intervals.

    A column with more than :data:`LISTED` slices shows a summary and only its failing slices
    (every slice is in ``slices.json`` and on the model card).
    """
    lines = []
    failing = " ".join(report.get("violations") or [])
    limits = f"min_rows {report.get('min_rows')}"
    if report.get("min_positives"):
        limits += f", min_positives {report.get('min_positives')}"
    for column, stats in report.get("columns", {}).items():
        if len(stats) <= LISTED:
            lines.append(f"slices of {column} ({limits}):")
            lines += [_slice_line(s) for s in stats]
            continue
        bad = [s for s in stats if f"slice {s['slice']}:" in failing]
        judged = sum(bool(s["judged"]) for s in stats)
        lines.append(
            f"slices of {column} ({limits}): {len(stats)} slices, {judged} judged, {len(bad)} failing"
            + (" (listed below; all of them in slices.json and on the model card)" if bad else "")
        )
        lines += [_slice_line(s) for s in bad]
    return lines
