"""After deployment: ``scoring`` (the batch scoring DAG), ``monitoring`` (the drift policy and its
calibration) and ``feedback`` (ground truth that arrives later, and the decay policy)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from mlops_core.spec.common import SpecModel, check_schedule
from mlops_core.spec.evaluation import BootstrapSpec
from mlops_core.spec.source import PartitionSpec, check_source_uri


class ScoringSpec(SpecModel):
    """The ``<name>_batch_scoring`` DAG: its schedule and how many days of source rows a run scores.

    ``lookback_days``: unset, the monitoring window (``monitoring.window_days``), so batch scoring
    reads what monitoring reads. ``min_rows``: the row-count rule of a scoring batch (and of the
    monitoring window's validation). A row-count expectation under ``expectations`` describes the
    training table; the scoring steps check ``min_rows`` instead (default 1: any non-empty batch
    scores; monitoring's own ``min_rows`` decides whether a day is judged for drift).
    """

    schedule: str | None = "@daily"
    lookback_days: int | None = Field(None, ge=1, le=366)
    min_rows: int = Field(1, ge=1, le=10_000_000)

    _schedule = field_validator("schedule")(classmethod(lambda cls, v: check_schedule(v)))


NumericMethod = Literal["ks", "wasserstein", "psi"]
CategoricalMethod = Literal["chi2", "jensen_shannon"]


class CalibrationSpec(SpecModel):
    """Drift calibrated against the training window's own variability (:class:`mlops_core.data.drift.Baseline`).

    At training, each period of ``period_days`` days (default: ``monitoring.window_days``) of the
    window is compared with the rest of it, as a monitored day is compared with the whole window,
    and the result is logged with the model (``drift_baseline.json``). A column that drifts in
    more than ``1 - quantile`` of those periods (a weekly or yearly cycle) only counts on a day
    whose statistic exceeds its window's ``quantile`` by ``statistic_margin`` (relative); the share
    threshold is ``max(drift_share, quantile of the periods' shares + share_margin)``. The periods
    come from ``date_column`` (default: ``source.partition.column``, then the first of
    ``features.time_columns``, then ``evaluation.holdout.column``); without a date the configured
    thresholds apply, and the run says so.
    """

    enabled: bool = True
    date_column: str | None = Field(None, min_length=1, max_length=128)
    period_days: int | None = Field(None, ge=1, le=90)
    quantile: float = Field(0.95, ge=0.5, le=1.0)
    share_margin: float = Field(0.1, ge=0.0, le=1.0)
    statistic_margin: float = Field(0.25, ge=0.0, le=10.0)
    max_periods: int = Field(60, ge=4, le=1000)


class EstimateSpec(SpecModel):
    """Performance estimated before labels arrive (a binary classifier's calibrated probabilities,
    :mod:`mlops_core.monitor.estimate`).

    At training, the challenger's probabilities on the holdout are checked for calibration: Brier
    score and expected calibration error (ECE: ``bins`` equal-width bins of P(positive), the
    rows-weighted mean gap between the bin's mean probability and its share of positives). When
    the ECE exceeds ``max_ece``, an isotonic calibrator is fitted on the holdout and stored with
    the run (``calibration.json``); monitoring applies it before estimating. On a holdout of n rows
    sampling noise alone gives a calibrated model an ECE of about ``0.3 * sqrt(bins / n)`` (0.03 for
    1000 rows and 10 bins, above 0.045 one time in 20), so a bound below that calibrates nearly every
    model (harmless: the estimate is then slightly noisier).
    """

    enabled: bool = True
    max_ece: float = Field(0.05, ge=0.0, le=1.0)
    bins: int = Field(10, ge=2, le=100)


class MonitoringSpec(SpecModel):
    """The ``<name>_monitoring`` DAG and the drift policy that triggers retraining.

    Drift is judged per column (``numeric_method`` / ``categorical_method``, thresholds from
    :data:`mlops_core.data.drift.DEFAULT_THRESHOLDS` unless overridden, and, for a column that varies
    with the calendar, above the training window's own variability: ``calibration``); a day
    *drifts* when the share of drifted columns reaches the share threshold (``drift_share``, or
    higher when the window drifts against itself that much), when any of ``critical_columns``
    drifted, or (``prediction_drift: policy``, the default) when the model's predictions drifted
    against its holdout predictions. ``weighting: importance`` (the default): each column counts
    with the champion's feature importance, recorded at training (equal weights when it recorded
    none). Retraining fires when the last ``consecutive_days`` days all drifted, each with at
    least ``min_rows`` rows, and at least ``cooldown_days`` have passed since the current
    champion's training day (``cooldown_from: promotion``; ``attempt``: since the last training
    run, promoted or not). Backfilled days fill the history but fire only with ``retrain_on_backfill``.

    ``report``: when the Evidently HTML report is built: every day (``always``), on drifted days
    (``drifted``, the default: the day drifted, as above), or only when a run asks for it (``never``; the monitoring DAG's ``report`` param
    builds it for that run in every mode). The per-column verdicts (``drift.json``) are always written.
    """

    enabled: bool = True
    schedule: str | None = "@daily"
    reference: str = Field("champion_training", min_length=1)
    window_days: int = Field(1, ge=1, le=90)
    columns: list[str] | None = None
    numeric_method: NumericMethod = "ks"
    categorical_method: CategoricalMethod = "chi2"
    column_methods: dict[str, NumericMethod | CategoricalMethod] = {}
    column_thresholds: dict[str, Annotated[float, Field(ge=0.0, le=100.0)]] = {}
    drift_share: float = Field(0.3, gt=0.0, le=1.0)
    weighting: Literal["equal", "importance"] = "importance"
    # "policy": a day whose predictions drifted (against the champion's holdout predictions) drifts
    prediction_drift: Literal["policy", "report"] = "policy"
    calibration: CalibrationSpec = CalibrationSpec()
    critical_columns: list[str] = Field([], max_length=1000)
    min_rows: int = Field(100, ge=1, le=10_000_000)
    consecutive_days: int = Field(2, ge=1, le=30)
    cooldown_days: int = Field(7, ge=0, le=365)
    # counted from the current champion's training day (a rejected retrain changes nothing) or
    # from the last training attempt, whatever the gate said
    cooldown_from: Literal["promotion", "attempt"] = "promotion"
    sample_size: int = Field(10_000, ge=100, le=1_000_000)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    retrain_on_backfill: bool = False
    # the Evidently HTML report (a few seconds and ~5 MB a day); the JSON verdicts are always written
    report: Literal["always", "drifted", "never"] = "drifted"
    # binary classifiers: the day's performance estimated from calibrated probabilities (no labels)
    estimate: EstimateSpec = EstimateSpec()

    _schedule = field_validator("schedule")(classmethod(lambda cls, v: check_schedule(v)))

    @field_validator("reference")
    @classmethod
    def _reference(cls, value: str) -> str:
        if value != "champion_training" and not value.startswith("${MLOPS_LAKE}/"):
            raise ValueError(
                "reference is 'champion_training' (the champion's training snapshot) or a partition of the "
                "pipeline's own lake prefix, written ${MLOPS_LAKE}/<name>/<stage>/ds=YYYY-MM-DD"
            )
        if ".." in value.split("/"):
            raise ValueError("reference may not contain '..'")
        return value


class DecaySpec(SpecModel):
    """Retrain on model decay: the ``metric`` (default: the primary one), realized on the labels or
    estimated before them (``on``), judged on its bootstrap interval, never the point estimate.

    A day decays when the whole interval is on the wrong side of ``floor`` (default:
    ``evaluation.floors[metric]``, if any), or worse than the ``reference`` by more than
    ``max_drop`` (in the metric's own units; "worse" means lower for a higher-is-better metric,
    so the bound is ``reference - max_drop``, and higher for a lower-is-better one such as rmse,
    so the bound is ``reference + max_drop``).

    ``reference``: ``realized`` (default) is the champion's own realized metric on its first
    ``baseline_days`` evaluated prediction days after it was deployed (the mean of those days;
    until they exist only the floor judges); ``holdout`` is the metric on the champion's holdout
    at training (which may be harder or easier than production data); ``both`` decays on either.
    Retraining fires after ``days`` consecutive evaluated days that decayed, each with at least
    ``min_rows`` labelled rows (and ``monitoring.cooldown_days`` since the last training, as for
    drift).

    ``on``: what is judged. ``realized`` (default): the metric on the labels, ``delay_days`` after
    the predictions. ``estimated`` (binary classifiers): the metric estimated from the champion's
    calibrated probabilities on each monitored day (``monitoring.estimate``), with no labels and no
    lag: the streak ends on the monitored day itself. The same ``floor`` and ``max_drop`` rules
    apply, on the bootstrap interval of the estimate over the day's rows; ``reference: realized``
    then means the estimate's own baseline (its mean on the champion's first ``baseline_days``
    estimated days), ``holdout`` the realized holdout metric; ``min_rows`` counts scored rows.
    The estimate is blind to a change of the labels given the features (concept drift): keep the
    realized decay for that, or watch both (the estimate is recorded whatever ``on`` says)."""

    enabled: bool = True
    on: Literal["estimated", "realized"] = "realized"
    metric: str | None = None
    floor: float | None = Field(None, allow_inf_nan=False, ge=-1e12, le=1e12)
    reference: Literal["realized", "holdout", "both"] = "realized"
    baseline_days: int = Field(7, ge=1, le=90)
    max_drop: float | None = Field(0.05, allow_inf_nan=False, ge=0.0, le=1e12)
    days: int = Field(2, ge=1, le=30)
    # labelled rows a day needs to be judged: the interval carries the uncertainty of a small day
    min_rows: int = Field(20, ge=1, le=10_000_000)


class FeedbackSpec(SpecModel):
    """Ground truth that arrives after the predictions: where the labels land and how they join.

    For monitored day D the ``performance`` step joins the predictions made for
    D - ``delay_days`` (``monitor_predictions``) with the labels that have arrived, on
    ``key_columns`` (the id columns, or ``row_key`` when the data has none), and scores them.
    The labels source is read like ``source`` (same URI policy and partition modes: a date
    column there is the day a label *arrived*); a re-run of a day re-joins it (late labels),
    publishing a new version of that day, never a duplicate.
    """

    uri: str = Field(min_length=1)
    format: Literal["csv", "parquet"] = "csv"
    conn_id: str | None = None
    partition: PartitionSpec = PartitionSpec()
    key_columns: list[Annotated[str, Field(min_length=1, max_length=128)]] = Field(
        min_length=1, max_length=10
    )
    label_column: str | None = None  # default: the pipeline's target
    delay_days: int = Field(7, ge=0, le=365)
    # alert (labels_unmatched) when more than this share of the labels read match no prediction
    max_unmatched_share: float | None = Field(0.5, ge=0.0, le=1.0)
    bootstrap: BootstrapSpec = BootstrapSpec()
    decay: DecaySpec = DecaySpec()

    @field_validator("uri")
    @classmethod
    def _uri_policy(cls, value: str) -> str:
        return check_source_uri(value)
