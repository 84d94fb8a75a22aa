"""Fast per-column drift on a bounded, seeded sample, plus Evidently's report for people.

Why a sample: two-sample tests on millions of rows flag differences too small to matter and take
long; a fixed-size sample keeps both the cost and the test's power known. With the default
10,000 rows per side, Kolmogorov-Smirnov at p < 0.01 detects a mean shift of ~0.05 standard
deviations with high probability and chi-square detects a few points of category share; with
15 stable columns the chance of two or more false alarms on one day is about 1 %.

Methods (per column type; thresholds are p-values for tests, distances otherwise):

============== ============= ========================================== =========
method         column type   statistic                                  drifted if
============== ============= ========================================== =========
ks             numeric       Kolmogorov-Smirnov D, p-value              p < 0.01
wasserstein    numeric       Wasserstein distance / reference std      d > 0.1
psi            numeric       population stability index (10 ref bins)   psi > 0.2
chi2           categorical   chi-square on category counts, p-value     p < 0.01
jensen_shannon categorical   Jensen-Shannon distance (base 2)           d > 0.1
============== ============= ========================================== =========
"""

from __future__ import annotations

import logging
import math
import warnings
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

NUMERIC_METHODS = ("ks", "wasserstein", "psi")
CATEGORICAL_METHODS = ("chi2", "jensen_shannon")
DEFAULT_THRESHOLDS = {"ks": 0.01, "chi2": 0.01, "wasserstein": 0.1, "psi": 0.2, "jensen_shannon": 0.1}
P_VALUE_METHODS = {"ks", "chi2"}
# The largest value a bounded statistic can take (complete separation): a calibrated floor stays
# below it (:func:`_floors`), or a column whose days cycle widely would be muted for good
MAX_STATISTIC = {"ks": 1.0, "jensen_shannon": 1.0}
# The same tests under Evidently's names, so the HTML report agrees with the verdicts. The
# chi-square is the engine's own, registered with Evidently (:func:`_register_evidently_tests`):
# Evidently's ``chisquare`` takes the reference's counts as expected ones, infinite (p = 0, and a
# divide-by-zero warning naming no column) for a category the reference lacks.
EVIDENTLY_NAMES = {
    "ks": "ks",
    "wasserstein": "wasserstein",
    "psi": "psi",
    "chi2": "mlops_chi2",
    "jensen_shannon": "jensenshannon",
}
MISSING = "__missing__"
RARE = "__rare__"  # categories too rare on either side for the chi-square, pooled (see pool_rare)
MIN_EXPECTED = 5.0  # the textbook floor of a chi-square cell's expected count

log = logging.getLogger(__name__)


@dataclass
class ColumnDrift:
    column: str
    kind: str
    method: str
    statistic: float
    p_value: float | None
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    # calibrated columns only: the statistic must also exceed what the training window's own
    # periods showed (see :func:`calibrate`), so a season is not a drift
    floor: float | None = None


@dataclass
class DriftResult:
    """One day's verdict: per-column results and the share of drifted columns.

    ``weights`` (column -> the champion's feature importance) make the share the drifted columns'
    part of the total importance, so a shift of the few columns the model relies on counts for
    what it is; without weights every column counts the same. ``critical`` columns fire alone.
    """

    columns: list[ColumnDrift]
    rows: int
    reference_rows: int
    sample_size: int
    seed: int
    extra: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, float] | None = None
    critical: list[str] = field(default_factory=list)

    @property
    def n_drifted(self) -> int:
        return sum(c.drifted for c in self.columns)

    @property
    def equal_share(self) -> float:
        return self.n_drifted / len(self.columns) if self.columns else 0.0

    @property
    def drift_share(self) -> float:
        if not self.weights:
            return self.equal_share
        total = sum(self.weights.get(c.column, 0.0) for c in self.columns)
        if total <= 0:
            return self.equal_share
        return sum(self.weights.get(c.column, 0.0) for c in self.columns if c.drifted) / total

    @property
    def drifted_columns(self) -> list[str]:
        return [c.column for c in self.columns if c.drifted]

    @property
    def critical_drifted(self) -> list[str]:
        return [c for c in self.drifted_columns if c in self.critical]

    def summary(self) -> dict[str, Any]:
        return {
            "drift_share": round(self.drift_share, 6),
            "equal_share": round(self.equal_share, 6),
            "weighting": "importance" if self.weights else "equal",
            "n_drifted": self.n_drifted,
            "n_columns": len(self.columns),
            "drifted_columns": self.drifted_columns,
            "critical_drifted": self.critical_drifted,
            "rows": self.rows,
            "reference_rows": self.reference_rows,
        }

    def to_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([asdict(c) for c in self.columns])


def _sample(frame: pd.DataFrame, size: int, rng: np.random.Generator) -> pd.DataFrame:
    if len(frame) <= size:
        return frame
    idx = rng.choice(len(frame), size=size, replace=False)
    idx.sort()
    return frame.iloc[idx]


def _numeric(
    method: str, ref: np.ndarray, cur: np.ndarray, ks_mode: str = "auto"
) -> tuple[float, float | None]:
    import numpy as np
    from scipy import stats

    if method == "ks":
        res = stats.ks_2samp(ref, cur, method=ks_mode)
        return float(res.statistic), float(res.pvalue)
    if method == "wasserstein":
        scale = float(np.std(ref)) or 1.0
        return float(stats.wasserstein_distance(ref, cur) / scale), None
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, 11)))
    if len(edges) < 3:  # (near-)constant reference: compare against its single value
        edges = np.array([-np.inf, float(edges[0]), np.inf])
    else:
        edges[0], edges[-1] = -np.inf, np.inf
    r = np.histogram(ref, edges)[0] / len(ref)
    c = np.histogram(cur, edges)[0] / len(cur)
    r, c = np.clip(r, 1e-4, None), np.clip(c, 1e-4, None)
    return float(np.sum((c - r) * np.log(c / r))), None


def category_counts(ref: pd.Series, cur: pd.Series) -> pd.DataFrame:
    """Counts per category on each side (columns ``ref``, ``cur``); a category absent from one side counts 0."""
    return ref.value_counts().to_frame("ref").join(cur.value_counts().rename("cur"), how="outer").fillna(0)


def pool_rare(counts: pd.DataFrame, minimum: float = MIN_EXPECTED) -> pd.DataFrame:
    """Categories whose expected count (under "same distribution") is below ``minimum`` on either
    side, pooled into one :data:`RARE` bucket (and that bucket into the smallest category if it is
    still too small): the chi-square is then defined on every cell, and a handful of rows of a new
    (or vanished) category is not drift by construction, while a new category with real weight
    keeps its own cell and counts for what it is."""
    total = counts.to_numpy(dtype=float).sum()
    if total <= 0 or len(counts) < 2:
        return counts
    side = counts.sum(axis=0) / total
    expected = counts.sum(axis=1).to_numpy(dtype=float)[:, None] * side.to_numpy(dtype=float)[None, :]
    rare = expected.min(axis=1) < minimum
    if not rare.any():
        return counts
    kept, pooled = counts[~rare], counts[rare].sum(axis=0)
    if len(kept) and (pooled.sum() * side).min() < minimum:
        smallest = kept.sum(axis=1).idxmin()
        kept = kept.copy()
        kept.loc[smallest] += pooled
        return kept
    import pandas as pd

    return pd.concat([kept, pooled.rename(RARE).to_frame().T])


def _categorical(method: str, ref: pd.Series, cur: pd.Series) -> tuple[float, float | None]:
    import numpy as np
    from scipy import stats
    from scipy.spatial import distance

    counts = category_counts(ref, cur)
    if method == "chi2":
        table = pool_rare(counts).to_numpy(dtype=float).T
        if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
            return 0.0, 1.0
        res = stats.chi2_contingency(table)
        return float(res.statistic), float(res.pvalue)
    p = counts["ref"].to_numpy(dtype=float) / counts["ref"].sum()
    q = counts["cur"].to_numpy(dtype=float) / counts["cur"].sum()
    return float(np.nan_to_num(distance.jensenshannon(p, q, base=2))), None


def _one_sided(column: str, ref: pd.Series, cur: pd.Series) -> None:
    """Say which categories of ``column`` only one side has: they are what a reader looks for first."""
    counts = category_counts(ref, cur)
    only_cur = counts.index[(counts["ref"] == 0)].tolist()
    only_ref = counts.index[(counts["cur"] == 0)].tolist()
    if only_cur or only_ref:
        log.info(
            "drift column %r: %d categor%s only in current %s (%d rows of %d), %d only in reference %s; "
            "rare ones are pooled before the chi-square",
            column,
            len(only_cur),
            "y" if len(only_cur) == 1 else "ies",
            only_cur[:5],
            int(counts.loc[only_cur, "cur"].sum()),
            int(counts["cur"].sum()),
            len(only_ref),
            only_ref[:5],
        )


def _verdict(method: str, statistic: float, p_value: float | None, threshold: float) -> bool:
    if method in P_VALUE_METHODS:
        return p_value is not None and p_value < threshold
    return not math.isnan(statistic) and statistic > threshold


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    numeric_method: str = "ks",
    categorical_method: str = "chi2",
    column_methods: dict[str, str] | None = None,
    column_thresholds: dict[str, float] | None = None,
    sample_size: int = 10_000,
    seed: int = 0,
    floors: dict[str, float] | None = None,
    quiet: bool = False,
    ks_mode: str = "auto",
) -> DriftResult:
    """Per-column drift of ``current`` against ``reference`` on at most ``sample_size`` rows per side.

    ``floors``: per calibrated column, the statistic a drift must also exceed (:class:`Baseline`).
    ``quiet``: no per-column notes in the log (the calibration runs this once per period).
    ``ks_mode``: scipy's ``ks_2samp`` method; the calibration uses ``asymp`` (its floors are on
    the statistic, and the exact p-value costs ~10 ms a column on a loaded machine).
    """
    import numpy as np
    import pandas as pd

    column_methods, column_thresholds = column_methods or {}, column_thresholds or {}
    rng = np.random.default_rng(seed)
    cols = [*numeric, *categorical]
    ref = _sample(reference[cols], sample_size, rng)
    cur = _sample(current[cols], sample_size, rng)
    results = []
    for col in cols:
        kind = "numeric" if col in numeric else "categorical"
        method = column_methods.get(col, numeric_method if kind == "numeric" else categorical_method)
        threshold = column_thresholds.get(col, DEFAULT_THRESHOLDS[method])
        # a numerical warning is logged with the column it speaks of, never bare
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if kind == "numeric":
                r = pd.to_numeric(ref[col], errors="coerce").dropna().to_numpy(float)
                c = pd.to_numeric(cur[col], errors="coerce").dropna().to_numpy(float)
                stat, p = _numeric(method, r, c, ks_mode) if len(r) and len(c) else (math.nan, None)
            else:
                r_s = ref[col].astype("string").fillna(MISSING)
                c_s = cur[col].astype("string").fillna(MISSING)
                if not quiet:
                    _one_sided(col, r_s, c_s)
                stat, p = _categorical(method, r_s, c_s)
                r, c = r_s.to_numpy(), c_s.to_numpy()
        for warning in caught:
            log.warning("drift column %r (%s): %s", col, method, warning.message)
        floor = (floors or {}).get(col)
        drifted = _verdict(method, stat, p, threshold) and (floor is None or stat > floor)
        results.append(ColumnDrift(col, kind, method, stat, p, threshold, drifted, len(r), len(c), floor))
    return DriftResult(
        results, rows=len(current), reference_rows=len(reference), sample_size=sample_size, seed=seed
    )


PREDICTION = "__prediction__"  # the model's output, calibrated like a column but never in the share


@dataclass
class Baseline:
    """How much the training window drifts against itself, measured at training.

    Each period of ``period_days`` days of the window is compared with the rest of the window,
    exactly as a monitored day is compared with the whole window (same methods, thresholds and
    sample size). A column that drifts in more than ``1 - quantile`` of those periods (and in 3 at
    least: chance alone does it in 1 or 2 of a few dozen) varies with the calendar (a weekly or
    yearly cycle): it gets a ``floor``, the ``quantile`` of its own
    statistic times ``1 + statistic_margin``, which a monitored day's statistic must exceed to
    count. ``shares`` are the periods' drift shares with those floors; the policy's share
    threshold is at least their ``quantile`` plus ``share_margin`` (:meth:`share_threshold`).
    """

    date_column: str
    period_days: int
    periods: int
    quantile: float
    share_margin: float
    statistic_margin: float
    floors: dict[str, float]
    rates: dict[str, float]
    shares: list[float]

    @property
    def share_quantile(self) -> float:
        import numpy as np

        return float(np.quantile(self.shares, self.quantile)) if self.shares else 0.0

    def share_threshold(self, configured: float) -> float:
        """The share a day must reach: the configured one, or the window's own plus the margin if higher."""
        return round(min(1.0, max(configured, self.share_quantile + self.share_margin)), 6)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "share_quantile": round(self.share_quantile, 6), "calibrated": True}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Baseline | None:
        """The recorded baseline, or None for a run that recorded none (or said why it could not)."""
        if not raw or not raw.get("calibrated"):
            return None
        return cls(
            date_column=str(raw["date_column"]),
            period_days=int(raw["period_days"]),
            periods=int(raw["periods"]),
            quantile=float(raw["quantile"]),
            share_margin=float(raw["share_margin"]),
            statistic_margin=float(raw["statistic_margin"]),
            floors={str(k): float(v) for k, v in (raw.get("floors") or {}).items()},
            rates={str(k): float(v) for k, v in (raw.get("rates") or {}).items()},
            shares=[float(v) for v in raw.get("shares") or []],
        )


def period_labels(dates: pd.Series, period_days: int) -> pd.Series:
    """Period number of each row (days since the first date // ``period_days``); -1 where no date parses."""
    import pandas as pd

    parsed = pd.to_datetime(dates, errors="coerce", format="mixed", utc=True)
    day = parsed.dt.tz_localize(None).dt.normalize()
    first = day.min()
    if pd.isna(first):
        return pd.Series(-1, index=dates.index)
    return ((day - first).dt.days // period_days).fillna(-1).astype(int)


def _share(columns: list[ColumnDrift], drifted: list[bool], weights: dict[str, float] | None) -> float:
    counted = [(c, d) for c, d in zip(columns, drifted, strict=True) if c.column != PREDICTION]
    if not counted:
        return 0.0
    total = sum((weights or {}).get(c.column, 0.0) for c, _ in counted)
    if not weights or total <= 0:
        return sum(d for _, d in counted) / len(counted)
    return sum(weights.get(c.column, 0.0) for c, d in counted if d) / total


def _with_predictions(
    rows: pd.DataFrame,
    ref: pd.DataFrame,
    currents: dict[Any, pd.DataFrame],
    predict: Callable[[pd.DataFrame], Any],
    prediction_kind: str,
) -> tuple[pd.DataFrame, dict[Any, pd.DataFrame]]:
    """The samples with the model's output as column :data:`PREDICTION` (one predict over their rows)."""
    import numpy as np

    index = sorted(set().union(*(r.index for r in [ref, *currents.values()])))
    predicted = np.asarray(predict(rows.loc[index]))
    values = predicted.astype(float) if prediction_kind == "numeric" else predicted.astype(str)
    by_row = dict(zip(index, values, strict=True))
    ref = ref.assign(**{PREDICTION: [by_row[i] for i in ref.index]})
    return ref, {p: c.assign(**{PREDICTION: [by_row[i] for i in c.index]}) for p, c in currents.items()}


def _floors(
    results: list[DriftResult], quantile: float, statistic_margin: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Per column, the statistic floor of a column that really cycles, and how often it drifted."""
    import numpy as np

    floors, rates = {}, {}
    # a stable column's test fires by chance (p < 0.01 in 1 % of periods): with few periods, 2 such
    # hits are above 5 %; at least 3 (and above the quantile's share) says the column really cycles
    hits_needed = max(3, math.floor((1 - quantile) * len(results)) + 1)
    for i, col in enumerate(results[0].columns):
        stats_ = np.array([r.columns[i].statistic for r in results], dtype=float)
        drifted = np.array([r.columns[i].drifted for r in results])
        rates[col.column] = round(float(drifted.mean()), 6)
        if drifted.sum() >= hits_needed and np.isfinite(stats_).any():
            q = float(np.nanquantile(stats_, quantile))
            # a bounded statistic's floor is at most halfway from q to its maximum: with daily weather
            # (KS q95 0.85), q x 1.25 > 1 would mute the column even when a day's values lie wholly
            # outside the window (KS 1.0): a change bigger than the cycle must still count
            top = MAX_STATISTIC.get(col.method, math.inf)
            floors[col.column] = min(q * (1 + statistic_margin), (q + top) / 2)
    return floors, rates


# long: its keyword-only signature (the engine options, 20 lines) and docstring; the body is about 38 lines
def calibrate(
    reference: pd.DataFrame,
    periods: pd.Series,
    numeric: list[str],
    categorical: list[str],
    *,
    period_days: int = 1,
    weights: dict[str, float] | None = None,
    predict: Callable[[pd.DataFrame], Any] | None = None,
    prediction_kind: str = "numeric",
    quantile: float = 0.95,
    share_margin: float = 0.1,
    statistic_margin: float = 0.25,
    max_periods: int = 60,
    min_period_rows: int = 10,
    date_column: str = "",
    **drift_kwargs: Any,
) -> Baseline | None:
    """The window's own variability (:class:`Baseline`), or None with fewer than 4 usable periods.

    ``periods``: :func:`period_labels` of ``reference``'s rows. ``predict``: the trained model's
    predictions for rows (its output is then calibrated too, as column :data:`PREDICTION`).
    ``drift_kwargs``: what :func:`compute_drift` takes (methods, thresholds, sample size, seed).
    At most ``max_periods`` periods, evenly spread over the window (its edges included).
    """
    import numpy as np

    sizes = periods[periods >= 0].value_counts().sort_index()
    usable = sizes.index[sizes >= min_period_rows].to_numpy()
    if len(usable) < 4:
        return None
    chosen = usable[
        np.unique(np.linspace(0, len(usable) - 1, min(max_periods, len(usable))).round().astype(int))
    ]
    sample_size = int(drift_kwargs.get("sample_size", 10_000))
    rng = np.random.default_rng(int(drift_kwargs.get("seed", 0)))
    cols = [*numeric, *categorical]
    frame = reference[cols].assign(_period=periods.to_numpy())
    ref = _sample(frame, sample_size, rng)
    currents = {p: _sample(frame[frame["_period"] == p], sample_size, rng) for p in chosen}
    num, cat = list(numeric), list(categorical)
    if predict is not None:
        ref, currents = _with_predictions(frame.loc[:, cols], ref, currents, predict, prediction_kind)
        (num if prediction_kind == "numeric" else cat).append(PREDICTION)
    results = [
        compute_drift(ref[ref["_period"] != p], cur, num, cat, quiet=True, ks_mode="asymp", **drift_kwargs)
        for p, cur in currents.items()
    ]
    floors, rates = _floors(results, quantile, statistic_margin)
    shares = [
        _share(
            r.columns,
            [c.drifted and c.statistic > floors.get(c.column, -math.inf) for c in r.columns],
            weights,
        )
        for r in results
    ]
    return Baseline(
        date_column=date_column,
        period_days=period_days,
        periods=len(results),
        quantile=quantile,
        share_margin=share_margin,
        statistic_margin=statistic_margin,
        floors=floors,
        rates=rates,
        shares=[round(v, 6) for v in shares],
    )
