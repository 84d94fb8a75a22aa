"""The feedback loop: realized performance once the ground truth arrives, judged for decay.

For monitored day D the performance step looks at the predictions made for T = D - ``delay_days``
(``<lake>/<name>/monitor_predictions/ds=T``; with a ``column``-partitioned source only the rows
whose own date is T, column ``prediction_ds``, so consecutive prediction days share no row), joins
the labels that have arrived by D (the ``feedback`` source, read like ``source``) on
``key_columns``, and scores them with the problem type's metrics, plus a bootstrap percentile
interval of the decay metric. The result is one row of ``<lake>/<name>/performance_history/ds=T``:
keyed by the *prediction* day, so a later run for the same T (a backfill once late labels landed)
publishes a new version of that day, never a second row. Decay is judged on the interval, not the
point estimate, against the floor and the reference (:func:`judge`): by default the champion's own
realized metric on its first ``decay.baseline_days`` evaluated days (:func:`realized_baseline`).

Nothing here imports Airflow; :mod:`mlops_core.monitor.decay_policy` turns the history into a decay
verdict and :mod:`mlops_core.monitor.monitoring` combines it with the
drift policy.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from typing import TYPE_CHECKING, Any

from mlops_core.base import settings
from mlops_core.data import filesystems, sources, storage
from mlops_core.data.errors import SourceDataError, SourceNotReady
from mlops_core.monitor.label_keys import PREDICTIONS, orphans
from mlops_core.monitor.label_keys import key_text as _keys
from mlops_core.runs import registry

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_core.spec import FeedbackSpec, PipelineSpec

log = logging.getLogger(__name__)

HISTORY = "performance_history"
ESTIMATES = "performance_estimate"  # the estimate's per-day history (mlops_core.monitor.estimate)
JUDGED = ("evaluated", "estimated")  # the statuses a day is judged on (realized, estimated)


@dataclass
class DayPerformance:
    """The realized performance of the predictions made for one day."""

    ds: str  # the prediction day T
    evaluated_on: str  # the monitored day D whose run joined the labels
    status: str  # evaluated | no_predictions | no_labels | too_few_rows
    metric: str
    rows: int = 0  # labelled predictions (the join; with a live challenger, the champion arm's)
    predictions: int = 0
    labels: int = 0  # labels read for the window
    unmatched_labels: int = 0  # labels whose key is in none of T's predictions (labels of other days too)
    orphan_labels: int = 0  # labels whose key is in no prediction of any monitored day they could be for
    orphan_share: float | None = None  # orphan_labels / labels (feedback.max_unmatched_share alerts)
    unlabelled: int = 0  # predictions of T with no label yet
    independent: bool = False  # T's predictions are T's rows only (column-partitioned source)
    model_version: str | None = None
    value: float | None = None
    low: float | None = None
    high: float | None = None
    confidence: float = 0.95
    holdout: float | None = None  # the same metric on the champion's holdout (its own run)
    reference: str = "realized"  # feedback.decay.reference: realized | holdout | both
    baseline: float | None = None  # the mean realized metric of the version's first baseline_days days
    baseline_days: list[str] = field(default_factory=list)  # the prediction days that baseline is made of
    floor: float | None = None
    decayed: bool = False
    reasons: list[str] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)
    kind: str = "realized"  # realized (labels) | estimated (mlops_core.monitor.estimate)
    estimated: float | None = None  # the metric estimated for the same prediction day, before its labels
    # deployment.challenger: per variant the version and the per-row outcome's rows, sum, sum of squares
    arms: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        if self.status != "evaluated":
            return f"{self.ds}: {'; '.join(self.reasons)}"
        against = []
        if self.baseline is not None:
            against.append(f"realized baseline {self.baseline:.4f} ({len(self.baseline_days)} days)")
        if self.holdout is not None:
            against.append(f"holdout {self.holdout:.4f}")
        if self.estimated is not None:
            against.append(f"estimated before labels {self.estimated:.4f}")
        return (
            f"{self.ds}: realized {self.metric} {self.value:.4f} "
            f"({self.confidence:.0%} interval [{self.low:.4f}, {self.high:.4f}], {self.rows} labelled rows"
            + (f"; {', '.join(against)}" if against else "")
            + "); "
            + ("; ".join(self.reasons) or "no decay")
        )

    def describe_labels(self) -> str:
        """The join's counts, for the log: matched, unmatched for T, orphans, unlabelled."""
        share = "" if self.orphan_share is None else f" ({self.orphan_share:.1%} of the labels read)"
        return (
            f"{self.ds}: {self.labels} label(s) read, {self.rows} matched a prediction of {self.ds}; "
            f"{self.unmatched_labels} did not (labels of other days count here), {self.orphan_labels} "
            f"match no prediction of any monitored day{share}; {self.unlabelled} of {self.predictions} "
            "prediction(s) still unlabelled"
        )


def decay_metric(spec: PipelineSpec) -> str:
    assert spec.feedback is not None
    return spec.feedback.decay.metric or spec.evaluation.primary_metric


def decay_floor(spec: PipelineSpec) -> float | None:
    assert spec.feedback is not None
    floor = spec.feedback.decay.floor
    if floor is None:
        floor = spec.evaluation.floors.get(decay_metric(spec))
    return floor


def labels_source(fb: FeedbackSpec) -> Any:
    """The labels as a :class:`~mlops_core.spec.SourceSpec`: the same strict reader and URI policy."""
    from mlops_core.spec import SourceSpec

    return SourceSpec(
        uri=fb.uri, format=fb.format, conn_id=fb.conn_id, partition=fb.partition, wait_minutes=0
    )


def read_labels(spec: PipelineSpec, ds: str, storage_options: dict[str, Any] | None = None) -> pd.DataFrame:
    """The labels that have arrived by ``ds``: key columns + ``label`` (an empty frame when none).

    A key labelled twice keeps its last row in the file order (a correction that arrived later).
    """
    import pandas as pd

    fb = spec.feedback
    assert fb is not None
    label = fb.label_column or spec.target
    wanted = [*fb.key_columns, label]
    try:
        frame, _ = sources.read_source_strict(labels_source(fb), ds, storage_options, columns=None)
    except SourceNotReady as why:
        log.info("%s: no labels yet (%s)", spec.name, why)
        return pd.DataFrame(columns=[*fb.key_columns, "label"])
    missing = [c for c in wanted if c not in frame.columns]
    if missing:
        raise SourceDataError(
            f"feedback source {settings.redact(settings.expand(fb.uri))} has no column(s) {missing}; "
            f"its header has {list(frame.columns)[:30]}. Fix feedback.key_columns / label_column or the file"
        )
    frame = frame[wanted].rename(columns={label: "label"})
    frame = frame.loc[frame["label"].notna()]
    return frame.drop_duplicates(subset=list(fb.key_columns), keep="last").reset_index(drop=True)


def _scored(spec: PipelineSpec, frame: pd.DataFrame, positive: Any) -> Any:
    """The predictions of the join as :class:`~mlops_core.model.evaluation.Scored` (labels compared as text)."""
    import numpy as np

    from mlops_core.model.evaluation import Scored

    if spec.problem_type == "regression":
        return Scored(pred=frame["prediction"].to_numpy(dtype=float))
    pred = frame["prediction"].astype(str).to_numpy()
    proba_cols = [c for c in frame.columns if c.startswith("proba_")]
    classes = [c.removeprefix("proba_") for c in proba_cols]
    if not proba_cols:
        return Scored(pred=pred)
    if spec.problem_type == "binary":
        at = classes.index(str(positive)) if str(positive) in classes else None
        return Scored(
            pred=pred, proba=None if at is None else frame[proba_cols[at]].to_numpy(float), classes=classes
        )
    return Scored(pred=pred, proba=np.asarray(frame[proba_cols].to_numpy(float)), classes=classes)


def _positive(spec: PipelineSpec, frame: pd.DataFrame) -> Any:
    if spec.problem_type != "binary":
        return None
    if spec.positive_class is not None:
        return str(spec.positive_class)
    classes = [c.removeprefix("proba_") for c in frame.columns if c.startswith("proba_")]
    for candidate in ("1", "True", "1.0"):
        if candidate in classes:
            return candidate
    return classes[-1] if classes else None


def _interval(
    spec: PipelineSpec, metric: str, y: np.ndarray, scored: Any, positive: Any
) -> tuple[float, float, int]:
    """Percentile bootstrap interval of ``metric`` on the labelled predictions (undefined draws dropped)."""
    import numpy as np

    from mlops_core.model.evaluation import _subset
    from mlops_core.model.evaluation import metric as compute

    assert spec.feedback is not None
    b = spec.feedback.bootstrap
    rng = np.random.default_rng(b.seed)
    values = []
    for _ in range(b.n_resamples):
        idx = rng.integers(0, len(y), size=len(y))
        v = compute(metric, spec.problem_type, y[idx], _subset(scored, idx), positive)
        if not math.isnan(v):
            values.append(v)
    if not values:
        return math.nan, math.nan, 0
    alpha = (1.0 - b.confidence) / 2.0
    low, high = np.quantile(np.asarray(values), [alpha, 1.0 - alpha])
    return float(low), float(high), len(values)


def champion_holdout(spec: PipelineSpec, version: str | None, metric: str) -> float | None:
    """``metric`` on the holdout of the version that made the predictions (its training run)."""
    if not version:
        return None
    try:
        client = registry.client()
        run = client.get_run(str(client.get_model_version(spec.registered_model_name, version).run_id))
    except Exception as err:
        raise registry.unavailable(err, f"reading the holdout metrics of {spec.name} v{version}") from err
    value = run.data.metrics.get(f"holdout_{metric}")
    return None if value is None else float(value)


def realized_baseline(
    spec: PipelineSpec, days: list[dict[str, Any]], version: str | None, metric: str, before: str
) -> tuple[float | None, list[str]]:
    """The champion's own reference: ``metric`` on the first ``decay.baseline_days`` evaluated
    prediction days of ``version`` before ``before`` (the mean of their values), or None while
    fewer exist. Days not judged (no labels, too few rows) do not count."""
    assert spec.feedback is not None
    n = spec.feedback.decay.baseline_days
    own = sorted(
        (
            d
            for d in days
            if d.get("status") in JUDGED
            and str(d.get("model_version")) == str(version)
            and d.get("metric") == metric
            and d.get("value") is not None
            and str(d["ds"]) < before
        ),
        key=lambda d: str(d["ds"]),
    )[:n]
    if version is None or len(own) < n:
        return None, [str(d["ds"]) for d in own]
    return round(sum(float(d["value"]) for d in own) / n, 6), [str(d["ds"]) for d in own]


def _references(cfg: Any, day: DayPerformance) -> list[tuple[str, float]]:
    """The values ``max_drop`` is measured from (``decay.reference``); a forming baseline says so."""
    references = []
    if cfg.reference in ("realized", "both"):
        if day.baseline is not None:
            references.append((f"the champion's {day.kind} baseline", day.baseline))
        elif cfg.max_drop is not None:
            day.reasons.append(
                f"{day.kind} baseline forming: {len(day.baseline_days)}/{cfg.baseline_days} {day.status} day(s) of "
                f"v{day.model_version}; only the floor judges until then"
            )
    if cfg.reference in ("holdout", "both") and day.holdout is not None:
        references.append(("the champion's holdout", day.holdout))
    return references


def judge(spec: PipelineSpec, day: DayPerformance) -> DayPerformance:
    """Decay on the interval: all of it worse than the floor, or worse than the reference by more than max_drop.

    "Worse" is lower for a higher-is-better metric (bound ``reference - max_drop``, the interval's
    upper end must be below it) and higher for a lower-is-better one (bound ``reference + max_drop``,
    the interval's lower end must be above it). The reference is the realized baseline, the
    holdout, or either (``feedback.decay.reference``).
    """
    from mlops_core.spec.catalog import METRICS

    assert spec.feedback is not None
    cfg = spec.feedback.decay
    if day.status not in JUDGED or day.low is None or day.high is None or math.isnan(day.low):
        return day
    if day.rows < cfg.min_rows:
        what = "labelled" if day.kind == "realized" else "scored"
        day.status = "too_few_rows"
        day.reasons.append(f"{day.rows} {what} rows < feedback.decay.min_rows {cfg.min_rows}: not judged")
        return day
    higher = METRICS[day.metric].higher_is_better
    worst = day.high if higher else day.low  # the interval's end nearest to good

    def worse(a: float, b: float) -> bool:
        return a < b if higher else a > b

    side = "below" if higher else "above"
    end = "upper" if higher else "lower"
    if day.floor is not None and worse(worst, day.floor):
        day.decayed = True
        day.reasons.append(
            f"{day.metric} interval [{day.low:.4f}, {day.high:.4f}] is wholly {side} the floor {day.floor:g} "
            f"({end} end {worst:.4f})"
        )
    for name, ref in _references(cfg, day) if cfg.max_drop is not None else []:
        assert cfg.max_drop is not None
        bound = ref - cfg.max_drop if higher else ref + cfg.max_drop
        if worse(worst, bound):
            day.decayed = True
            day.reasons.append(
                f"{day.metric} interval [{day.low:.4f}, {day.high:.4f}] is wholly {side} {name} "
                f"{ref:.4f} {'-' if higher else '+'} max_drop {cfg.max_drop:g} = {bound:.4f}"
            )
    return day


def evaluate_day(spec: PipelineSpec, lake_root: str, ds: str) -> DayPerformance:
    """Join the predictions for ``ds - delay_days`` with the labels arrived by ``ds`` and score them."""
    fb = spec.feedback
    assert fb is not None
    metric = decay_metric(spec)
    target_day = (date.fromisoformat(ds[:10]) - timedelta(days=fb.delay_days)).isoformat()
    day = DayPerformance(
        ds=target_day,
        evaluated_on=ds[:10],
        status="evaluated",
        metric=metric,
        floor=decay_floor(spec),
        confidence=fb.bootstrap.confidence,
    )
    day.estimated = estimated_value(lake_root, spec.name, target_day, metric)
    uri = storage.partition_uri(lake_root, spec.name, PREDICTIONS, target_day)
    try:
        predictions = storage.read_frame(uri)
    except FileNotFoundError:
        day.status = "no_predictions"
        day.reasons.append(f"no predictions for {target_day} ({uri}): that day was not monitored")
        return day
    keys = list(fb.key_columns)
    predictions = _own_rows(predictions, keys, target_day, day)
    labels = read_labels(spec, ds)
    joined = _join(spec, lake_root, ds, day, predictions, labels, keys)
    if not len(labels):
        day.status = "no_labels"
        day.reasons.append(
            f"no labels have arrived by {ds[:10]} ({settings.redact(settings.expand(fb.uri))})"
        )
        return day
    if not day.rows:
        day.status = "no_labels"
        day.reasons.append(
            f"none of the {len(labels)} label(s) matches a prediction of {target_day} on {keys}: "
            f"{day.unmatched_labels} label(s) for unknown keys"
        )
        return day
    if "variant" in joined.columns:  # a live challenger: its sums for the test; decay judges the champion
        day.arms = _arm_sums(spec, joined)
        joined = joined.loc[joined["variant"].astype(str) == "champion"]
        # on its own rows: decay.min_rows and the interval count the rows the metric is computed on
        day.rows = len(joined)
    return _score_day(spec, lake_root, day, joined)


def _arm_sums(spec: PipelineSpec, joined: pd.DataFrame) -> dict[str, Any]:
    """Per variant: its version and the sufficient statistics of the challenger's per-row metric
    (:func:`mlops_core.monitor.sequential.per_row_outcome`) on the day's labelled rows."""
    from mlops_core.monitor import sequential

    metric = spec.challenger_metric
    out: dict[str, Any] = {"metric": metric}
    for variant, part in joined.groupby(joined["variant"].astype(str)):
        positive = _positive(spec, part)
        y = (
            part["label"].to_numpy(dtype=float)
            if spec.problem_type == "regression"
            else part["label"].astype(str).to_numpy()
        )
        values = sequential.per_row_outcome(
            metric, spec.problem_type, y, _scored(spec, part, positive), positive
        )
        versions = part["model_version"].astype(str).unique().tolist()
        out[str(variant)] = {
            "version": versions[0] if len(versions) == 1 else None,
            "rows": len(values),
            "sum": float(values.sum()),
            "sumsq": float((values**2).sum()),
        }
    return out


def _own_rows(
    predictions: pd.DataFrame, keys: list[str], target_day: str, day: DayPerformance
) -> pd.DataFrame:
    """The predictions made for ``target_day`` (a window's rows for other days are judged on theirs);
    :class:`~mlops_core.data.errors.SourceDataError` when they lack the key columns."""
    missing = [k for k in keys if k not in predictions.columns]
    if missing:
        raise SourceDataError(
            f"the predictions of {target_day} have no column(s) {missing} (feedback.key_columns); they carry "
            f"{[c for c in predictions.columns if not c.startswith('proba_')][:20]}: use the id columns, or "
            "row_key when the data has no id column"
        )
    if "prediction_ds" in predictions.columns:  # the window's rows made for other days are judged on theirs
        predictions = predictions.loc[predictions["prediction_ds"].astype(str) == target_day]
        day.independent = True
    return predictions


def _join(
    spec: PipelineSpec,
    lake_root: str,
    ds: str,
    day: DayPerformance,
    predictions: pd.DataFrame,
    labels: pd.DataFrame,
    keys: list[str],
) -> pd.DataFrame:
    """Predictions joined with their labels on ``keys``; the day's counts (unlabelled, unmatched, orphans)."""
    day.predictions, day.labels = len(predictions), len(labels)
    own = predictions  # the champion's rows name the day's model (a live challenger's are its own arm)
    if "variant" in predictions.columns:
        own = predictions.loc[predictions["variant"].astype(str) == "champion"]
    versions = own["model_version"].astype(str).unique().tolist() if "model_version" in own else []
    day.model_version = versions[-1] if versions else None
    joined = _keys(predictions, keys).merge(_keys(labels, keys), on=keys, how="inner")
    known = set(map(tuple, _keys(predictions, keys)[keys].itertuples(index=False, name=None)))
    day.unmatched_labels = sum(
        1 for k in _keys(labels, keys)[keys].itertuples(index=False, name=None) if tuple(k) not in known
    )
    day.rows = len(joined)
    day.unlabelled = day.predictions - day.rows
    if len(labels):
        day.orphan_labels = orphans(spec, lake_root, ds, _keys(labels, keys)[keys])
        day.orphan_share = round(day.orphan_labels / len(labels), 6)
    return joined


def _score_day(
    spec: PipelineSpec, lake_root: str, day: DayPerformance, joined: pd.DataFrame
) -> DayPerformance:
    """The day's metrics on the joined rows, the decay metric's interval, its references, judged."""
    from mlops_core.model.evaluation import all_metrics

    fb = spec.feedback
    assert fb is not None
    metric = day.metric
    positive = _positive(spec, joined)
    scored = _scored(spec, joined, positive)
    y = (
        joined["label"].to_numpy(dtype=float)
        if spec.problem_type == "regression"
        else joined["label"].astype(str).to_numpy()
    )
    values = all_metrics(spec, y, scored, positive)
    day.metrics = {k: (None if math.isnan(v) else round(float(v), 6)) for k, v in values.items()}
    day.value = day.metrics.get(metric)
    if day.value is None:
        day.status = "too_few_rows"
        day.reasons.append(f"{metric} is undefined on these {day.rows} rows (e.g. a single class)")
        return day
    low, high, _ = _interval(spec, metric, y, scored, positive)
    day.low, day.high = round(low, 6), round(high, 6)
    day.holdout = champion_holdout(spec, day.model_version, metric)
    day.reference = fb.decay.reference
    day.baseline, day.baseline_days = realized_baseline(
        spec, history(spec, lake_root), day.model_version, metric, day.ds
    )
    return judge(spec, day)


HISTORY_COLUMNS = (
    "ds",
    "evaluated_on",
    "status",
    "metric",
    "rows",
    "value",
    "low",
    "high",
    "holdout",
    "baseline",
    "floor",
    "decayed",
    "model_version",
    "labels",
    "unmatched_labels",
    "orphan_labels",
    "orphan_share",
    "unlabelled",
    "estimated",
)


def record(spec: PipelineSpec, lake_root: str, day: DayPerformance) -> str:
    """Publish the day as a new version of ``performance_history/ds=<T>`` (a re-run replaces it)."""
    import pandas as pd

    summary = day.to_dict()
    frame = pd.DataFrame([{k: summary[k] for k in HISTORY_COLUMNS}])
    metrics = pd.DataFrame([{"ds": day.ds, **{f"metric_{k}": v for k, v in day.metrics.items()}}])
    manifest = storage.write_partition(
        {"data": frame, "metrics": metrics}, lake_root, spec.name, HISTORY, day.ds, extra=summary
    )
    return manifest.uri


def estimated_value(lake_root: str, name: str, ds: str, metric: str) -> float | None:
    """``metric`` as estimated for prediction day ``ds`` before its labels (None when not estimated)."""
    try:
        extra = storage.read_manifest(storage.partition_uri(lake_root, name, ESTIMATES, ds)).extra
    except FileNotFoundError:
        return None
    value = (extra.get("metrics") or {}).get(metric)
    return None if value is None else float(value)


def history(spec: PipelineSpec, lake_root: str, stage: str = HISTORY) -> list[dict[str, Any]]:
    """Every recorded prediction day (its newest version), oldest first (``stage``: the realized history,
    or :data:`ESTIMATES`)."""
    fs, root = filesystems.filesystem(filesystems.join(lake_root, spec.name, stage))
    days: list[dict[str, Any]] = []
    if not fs.exists(root):
        return days
    for path in sorted(fs.ls(root, detail=False)):
        name = str(path).rstrip("/").rsplit("/", 1)[-1]
        if not name.startswith("ds="):
            continue
        try:
            days.append(
                dict(storage.read_manifest(filesystems.join(lake_root, spec.name, stage, name)).extra)
            )
        except FileNotFoundError:
            continue
    return days


def log_to_mlflow(spec: PipelineSpec, day: DayPerformance, tags: dict[str, str]) -> str | None:
    """Metrics of the prediction day in ``mlops/<name>/monitoring``, one run per day (re-logged on a re-run)."""
    if day.status == "no_predictions" or (day.value is None and not day.labels):
        return None  # nothing was joined: no run (a day whose labels all missed still logs its counts)
    import mlflow

    from mlops_core.runs import tracking

    exp_id = tracking.experiment_id(f"{spec.name}/monitoring")
    found = registry.client().search_runs(
        [exp_id], f"tags.`mlops.performance_ds` = '{day.ds}'", max_results=1
    )
    run_id = found[0].info.run_id if found else None
    with mlflow.start_run(
        run_id=run_id,
        experiment_id=exp_id,
        run_name=f"performance-{day.ds}",
        tags={**tags, "mlops.performance_ds": day.ds, "mlops.model_version": str(day.model_version)},
    ) as run:
        values: dict[str, float | None] = {f"realized_{k}": v for k, v in day.metrics.items()}
        values |= {f"realized_{day.metric}_low": day.low, f"realized_{day.metric}_high": day.high}
        values |= {f"realized_{day.metric}_baseline": day.baseline, "orphan_share": day.orphan_share}
        values |= {f"estimated_{day.metric}": day.estimated}  # the same day's estimate, next to it
        logged = {k: float(v) for k, v in values.items() if v is not None}
        counts = {
            "labelled_rows": day.rows,
            "labels": day.labels,
            "unmatched_labels": day.unmatched_labels,
            "orphan_labels": day.orphan_labels,
            "unlabelled": day.unlabelled,
        }
        mlflow.log_metrics({**logged, **{k: float(v) for k, v in counts.items()}})
        mlflow.log_dict(day.to_dict(), "performance.json")
    return str(run.info.run_id)
