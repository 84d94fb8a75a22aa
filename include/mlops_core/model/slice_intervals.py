"""Intervals of a slice's metrics: Wilson score for proportions, a vectorised bootstrap otherwise.

A proportion (recall, precision, accuracy, selection / false positive / false negative rate) gets
a Wilson score interval from its own counts (recall: the slice's positive rows), so it is wide
when the evidence is thin (1 of 1 positive: [0.21, 1] at 95 %), never ``[0, 0]``; every other
metric gets the bootstrap percentile interval of :func:`intervals`.

The bootstrap resamples rows *within* the slice (its size is set by the data, not by chance) and
is vectorised: a resample is a vector of multiplicities (how often each row was drawn), so a
metric of a block of resamples is a few matrix products, and the ranking metrics (roc_auc,
average_precision) are cumulative sums over the rows sorted once by score. A slice gets
``n_resamples`` resamples up to :data:`RESAMPLE_BUDGET` row draws, and no fewer than
:data:`MIN_RESAMPLES` past it, so a huge holdout stays seconds, not minutes.

No Airflow, and nothing heavy at import: numpy loads inside the functions.
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from mlops_core.model.metrics import Scored

# proportions with a Wilson interval (the others: bootstrap)
WILSON = frozenset(
    {"recall", "precision", "accuracy", "selection_rate", "false_positive_rate", "false_negative_rate"}
)
RESAMPLE_BUDGET = 10_000_000  # row draws per slice (resamples x rows) before resamples are capped
MIN_RESAMPLES = 200
_BLOCK = 2_000_000  # multiplicities held at once (16 MB of float64)

RATES = ("precision", "recall", "f1", "selection_rate", "false_positive_rate", "false_negative_rate")


def indicators(y: np.ndarray, pred: np.ndarray, positive: Any) -> tuple[np.ndarray, np.ndarray]:
    import numpy as np

    return (
        (np.asarray(y).astype(str) == str(positive)).astype(int),
        (np.asarray(pred).astype(str) == str(positive)).astype(int),
    )


def subset(s: Scored, idx: np.ndarray) -> Scored:
    from mlops_core.model.metrics import Scored

    return Scored(pred=s.pred[idx], proba=None if s.proba is None else s.proba[idx], classes=s.classes)


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
        yb, pb = indicators(self.y, self.s.pred, self.positive)
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
        if name in RATES:
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
    if name in RATES:
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
        y, s = np.asarray(y)[order], subset(s, order)
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


def counts(name: str, problem: str, y: np.ndarray, s: Scored, positive: Any) -> tuple[int, int] | None:
    """(successes, trials) of a proportion metric on these rows, or ``None`` if it is not one."""
    import numpy as np

    if name == "accuracy":
        return int((np.asarray(y) == np.asarray(s.pred)).sum()), len(y)
    if problem != "binary" or name not in WILSON:
        return None
    yb, pb = indicators(y, s.pred, positive)
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


def interval_methods(metrics: list[str], problem: str) -> dict[str, str]:
    return {
        m: "wilson" if m == "accuracy" or (problem == "binary" and m in WILSON) else "bootstrap"
        for m in metrics
    }
