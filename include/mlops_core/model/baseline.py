"""What training records for monitoring: the drift baseline of the training window against itself.

Monitoring (:mod:`mlops_core.monitor.monitoring`) reads it back from the champion's run as
``drift_baseline.json``; the daily check and this calibration use the same engine options.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops_core.data.columns import feature_columns

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import MonitoringSpec, PipelineSpec

log = logging.getLogger("mlops_core.monitor.monitoring")

BASELINE_ARTIFACT = "drift_baseline.json"


def baseline_date_column(spec: PipelineSpec, columns: list[str]) -> str | None:
    """The date that cuts the training window into periods (``monitoring.calibration.date_column``,
    else the partition column, a time column, the time holdout's column), if the data has it."""
    candidates = [
        spec.monitoring.calibration.date_column,
        spec.source.partition.column,
        *spec.features.time_columns,
        spec.evaluation.holdout.column,
    ]
    return next((c for c in candidates if c and c in columns), None)


def training_baseline(
    spec: PipelineSpec, raw: pd.DataFrame, pipe: Any, weights: dict[str, float] | None
) -> dict[str, Any]:
    """At training: how much the window drifts against itself (:func:`mlops_core.data.drift.calibrate`),
    what monitoring reads back from the champion's run as ``drift_baseline.json``.

    ``{"calibrated": false, "reason": ...}`` when it cannot be measured (no date, too few periods).
    """
    from mlops_core.data import drift

    m, cal = spec.monitoring, spec.monitoring.calibration
    date_column = baseline_date_column(spec, list(raw.columns))
    if date_column is None:
        return {
            "calibrated": False,
            "reason": "no date column (monitoring.calibration.date_column, source.partition.column, "
            "features.time_columns or evaluation.holdout.column) to cut the window into periods",
        }
    numeric, categorical = _columns(spec, raw)
    period_days = cal.period_days or m.window_days
    every = [c for pair in feature_columns(spec, raw) for c in pair]

    def predict(rows: pd.DataFrame) -> Any:
        return pipe.predict(raw.loc[rows.index, every])

    baseline = drift.calibrate(
        raw,
        drift.period_labels(raw[date_column], period_days),
        numeric,
        categorical,
        period_days=period_days,
        weights=weights,
        predict=predict if pipe is not None else None,
        prediction_kind="numeric" if spec.problem_type == "regression" else "categorical",
        quantile=cal.quantile,
        share_margin=cal.share_margin,
        statistic_margin=cal.statistic_margin,
        max_periods=cal.max_periods,
        date_column=date_column,
        **_engine_options(m),
    )
    if baseline is None:
        return {
            "calibrated": False,
            "reason": f"fewer than 4 periods of {period_days} day(s) with 10 rows or more in {date_column!r}",
        }
    log.info(
        "%s drift baseline: %d periods of %d day(s) by %r; share quantile %.2f -> share threshold %.2f; "
        "calibrated columns %s",
        spec.name,
        baseline.periods,
        period_days,
        date_column,
        baseline.share_quantile,
        baseline.share_threshold(m.drift_share),
        sorted(baseline.floors) or "none",
    )
    return baseline.to_dict()


def _engine_options(m: MonitoringSpec) -> dict[str, Any]:
    """The drift engine's options from ``spec.monitoring``: the same for calibration and the daily check."""
    return {
        "numeric_method": m.numeric_method,
        "categorical_method": m.categorical_method,
        "column_methods": dict(m.column_methods),
        "column_thresholds": dict(m.column_thresholds),
        "sample_size": m.sample_size,
        "seed": m.seed,
    }


def _columns(spec: PipelineSpec, reference: pd.DataFrame) -> tuple[list[str], list[str]]:
    numeric, categorical = feature_columns(spec, reference)
    if spec.monitoring.columns:
        wanted = set(spec.monitoring.columns)
        missing = wanted - set(numeric) - set(categorical)
        if missing:
            raise ValueError(f"monitoring.columns {sorted(missing)} are not features of {spec.name}")
        numeric = [c for c in numeric if c in wanted]
        categorical = [c for c in categorical if c in wanted]
    return numeric, categorical
