"""Performance before labels arrive: confidence-based performance estimation (CBPE, as in NannyML).

A binary classifier whose P(positive) is calibrated says, for each row, how likely its label is
positive. On a monitored day with no labels yet, the expected confusion matrix follows from those
probabilities ``p`` (after the champion's holdout calibrator, :mod:`mlops_core.model.calibration`)
and the model's own predicted labels (its decision threshold, tuned or 0.5, is already applied):

- expected TP = sum of p over the rows predicted positive, FP = sum of (1 - p) over them;
- expected FN = sum of p over the rows predicted negative, TN = sum of (1 - p) over them;

hence accuracy, precision, recall, f1 and balanced accuracy; Brier score and log loss are their
expectations under p; ROC AUC and average precision come from the expected curves, the rows
ranked by the model's raw score with p as each row's expected share of a positive (NannyML's
``estimate_roc_auc`` and ``estimate_ap``). The estimate is unbiased while calibration holds: under
covariate shift (the features move, P(label | features) does not), not under concept drift.

For monitored day D the drift check (:func:`mlops_core.monitor.monitoring.check`) estimates D's own
predictions (``monitor_predictions/ds=D``, the rows predicted for D), with a bootstrap interval
over its rows, and publishes ``<lake>/<name>/performance_estimate/ds=D`` (a re-run replaces the
day). The feedback step shows it next to the realized metric of the same prediction day, and
``feedback.decay.on: estimated`` judges the decay streak on it (:mod:`mlops_core.monitor.decay_policy`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mlops_core.data import storage
from mlops_core.model import calibration
from mlops_core.monitor import feedback

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

HISTORY = feedback.ESTIMATES


def estimate_roc_auc(p: np.ndarray, scores: np.ndarray) -> float:
    """The expected ROC curve's area: rows ranked by raw ``scores`` (descending), a row adds ``p``
    to the expected true positives and ``1 - p`` to the false positives (NannyML's definition)."""
    import numpy as np

    order = np.argsort(np.asarray(scores, float), kind="stable")[::-1]
    ranked = np.asarray(p, float)[order]
    tps = np.r_[0.0, np.cumsum(ranked)]
    fps = np.r_[0.0, np.cumsum(1.0 - ranked)]
    if tps[-1] <= 0 or fps[-1] <= 0:
        return math.nan
    x, y = fps / fps[-1], tps / tps[-1]
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))  # the trapezoid rule (numpy 1.26 has none)


def estimate_average_precision(p: np.ndarray, scores: np.ndarray) -> float:
    """Average precision of the expected precision-recall curve (rows ranked as for ROC AUC)."""
    import numpy as np

    order = np.argsort(np.asarray(scores, float), kind="stable")[::-1]
    tps = np.cumsum(np.asarray(p, float)[order])
    if not len(tps) or tps[-1] <= 0:
        return math.nan
    precision = tps / np.arange(1, len(tps) + 1)
    recall = np.r_[0.0, tps / tps[-1]]
    return float(np.sum(np.diff(recall) * precision))


def _ratio(a: float, b: float) -> float:
    return a / b if b > 0 else 0.0


def estimate_metrics(p: np.ndarray, scores: np.ndarray, predicted_positive: np.ndarray) -> dict[str, float]:
    """Every binary metric's expectation from calibrated ``p``, raw ``scores`` and the predicted labels."""
    import numpy as np

    p, s = np.asarray(p, float), np.asarray(scores, float)
    pos = np.asarray(predicted_positive, bool)
    tp, fp = float(p[pos].sum()), float((1.0 - p[pos]).sum())
    fn, tn = float(p[~pos].sum()), float((1.0 - p[~pos]).sum())
    n = len(p)
    recall, specificity = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    clipped = np.clip(s, np.finfo(float).eps, 1 - np.finfo(float).eps)
    return {
        "roc_auc": estimate_roc_auc(p, s),
        "average_precision": estimate_average_precision(p, s),
        "log_loss": float(-np.mean(p * np.log(clipped) + (1.0 - p) * np.log(1.0 - clipped)))
        if n
        else math.nan,
        "brier": float(np.mean(p * (1.0 - s) ** 2 + (1.0 - p) * s**2)) if n else math.nan,
        "accuracy": _ratio(tp + tn, n) if n else math.nan,
        "balanced_accuracy": (recall + specificity) / 2.0,
        "f1": _ratio(tp, tp + 0.5 * (fp + fn)),
        "precision": _ratio(tp, tp + fp),
        "recall": recall,
    }


def bootstrap_interval(
    metric: str, p: np.ndarray, scores: np.ndarray, pos: np.ndarray, spec: PipelineSpec
) -> tuple[float, float]:
    """Percentile bootstrap of the estimate over the day's rows (``feedback.bootstrap``'s settings)."""
    import numpy as np

    from mlops_core.spec import BootstrapSpec

    b = spec.feedback.bootstrap if spec.feedback is not None else BootstrapSpec()
    rng = np.random.default_rng(b.seed)
    values = []
    for _ in range(b.n_resamples):
        idx = rng.integers(0, len(p), size=len(p))
        v = estimate_metrics(p[idx], scores[idx], pos[idx])[metric]
        if not math.isnan(v):
            values.append(v)
    if not values:
        return math.nan, math.nan
    alpha = (1.0 - b.confidence) / 2.0
    low, high = np.quantile(np.asarray(values), [alpha, 1.0 - alpha])
    return float(low), float(high)


@dataclass
class DayEstimate(feedback.DayPerformance):
    """The performance estimated for one prediction day from calibrated probabilities (no labels)."""

    kind: str = "estimated"
    calibrated: bool = False  # the champion's holdout calibrator was applied
    ece: float | None = None  # the champion's holdout ECE before calibration

    def describe(self) -> str:
        if self.status != "estimated":
            return f"{self.ds}: {'; '.join(self.reasons)}"
        against = [f"{self.kind} baseline {self.baseline:.4f}"] if self.baseline is not None else []
        against += [f"holdout {self.holdout:.4f}"] if self.holdout is not None else []
        return (
            f"{self.ds}: estimated {self.metric} {self.value:.4f} "
            f"({self.confidence:.0%} interval [{self.low:.4f}, {self.high:.4f}], {self.rows} scored rows, "
            + ("calibrated" if self.calibrated else "raw scores")
            + (f"; {', '.join(against)}" if against else "")
            + "); "
            + ("; ".join(self.reasons) or "no decay")
        )


def day_rows(spec: PipelineSpec, lake_root: str, ds: str) -> pd.DataFrame | None:
    """The predictions made for ``ds`` (a window's rows for other days excluded), or None."""
    try:
        frame = storage.read_frame(storage.partition_uri(lake_root, spec.name, feedback.PREDICTIONS, ds))
    except FileNotFoundError:
        return None
    if "prediction_ds" in frame.columns:
        frame = frame.loc[frame["prediction_ds"].astype(str) == ds]
    return frame


def _inputs(
    spec: PipelineSpec, frame: pd.DataFrame, cal: dict[str, Any] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """(calibrated p, raw scores, predicted positive) of the rows, or None without P(positive)."""
    import numpy as np

    positive = (cal or {}).get("positive_class") or feedback._positive(spec, frame)
    column = f"proba_{positive}"
    if positive is None or column not in frame.columns:
        return None
    scores = frame[column].to_numpy(float)
    keep = ~np.isnan(scores)
    scores = scores[keep]
    pos = (frame["prediction"].astype(str).to_numpy() == str(positive))[keep]
    return calibration.apply(cal, scores), scores, pos


def estimate_day(spec: PipelineSpec, lake_root: str, ds: str, cal: dict[str, Any] | None) -> DayEstimate:
    """Estimate the performance of the predictions made for ``ds`` (``cal``: the champion's calibration),
    judged like a realized day when the pipeline has ``feedback`` (its floor, ``max_drop`` and reference)."""
    metric = feedback.decay_metric(spec) if spec.feedback else spec.evaluation.primary_metric
    day = DayEstimate(
        ds=ds[:10],
        evaluated_on=ds[:10],
        status="estimated",
        metric=metric,
        floor=feedback.decay_floor(spec) if spec.feedback else None,
        calibrated=bool((cal or {}).get("calibrator")),
        ece=(cal or {}).get("ece"),
    )
    frame = day_rows(spec, lake_root, day.ds)
    if frame is None or not len(frame):
        day.status = "no_predictions"
        day.reasons.append(f"no predictions for {day.ds}: that day was not scored")
        return day
    versions = frame["model_version"].astype(str).unique().tolist() if "model_version" in frame else []
    day.model_version = versions[-1] if versions else None
    inputs = _inputs(spec, frame, cal)
    if inputs is None or not len(inputs[0]):
        day.status = "no_probabilities"
        day.reasons.append(
            f"the predictions of {day.ds} carry no P(positive) column: nothing to estimate from"
        )
        return day
    p, scores, pos = inputs
    day.rows = day.predictions = len(p)
    values = estimate_metrics(p, scores, pos)
    day.metrics = {k: (None if math.isnan(v) else round(float(v), 6)) for k, v in values.items()}
    day.value = day.metrics.get(metric)
    if day.value is None:
        day.status = "too_few_rows"
        day.reasons.append(f"estimated {metric} is undefined on these {day.rows} rows")
        return day
    low, high = bootstrap_interval(metric, p, scores, pos, spec)
    day.low, day.high = round(low, 6), round(high, 6)
    if spec.feedback is None:
        return day
    day.confidence = spec.feedback.bootstrap.confidence
    day.reference = spec.feedback.decay.reference
    if day.reference in ("holdout", "both"):
        day.holdout = feedback.champion_holdout(spec, day.model_version, metric)
    day.baseline, day.baseline_days = feedback.realized_baseline(
        spec, feedback.history(spec, lake_root, HISTORY), day.model_version, metric, day.ds
    )
    return feedback.judge(spec, day)  # type: ignore[return-value]


def record(spec: PipelineSpec, lake_root: str, day: DayEstimate) -> str:
    """Publish the day as a new version of ``performance_estimate/ds=<ds>`` (a re-run replaces it)."""
    import pandas as pd

    summary = day.to_dict()
    columns = [k for k in feedback.HISTORY_COLUMNS if k in summary]
    frame = pd.DataFrame([{k: summary[k] for k in columns}])
    metrics = pd.DataFrame([{"ds": day.ds, **{f"estimated_{k}": v for k, v in day.metrics.items()}}])
    manifest = storage.write_partition(
        {"data": frame, "metrics": metrics}, lake_root, spec.name, HISTORY, day.ds, extra=summary
    )
    return manifest.uri


def history(spec: PipelineSpec, lake_root: str) -> list[dict[str, Any]]:
    """Every estimated day (its newest version), oldest first."""
    return feedback.history(spec, lake_root, HISTORY)


def mlflow_metrics(day: DayEstimate) -> dict[str, float]:
    """The day's estimate as metrics of its monitoring run: ``estimated_<metric>`` (and the interval)."""
    values: dict[str, float | None] = {f"estimated_{k}": v for k, v in day.metrics.items()}
    if day.value is not None:
        values |= {f"estimated_{day.metric}_low": day.low, f"estimated_{day.metric}_high": day.high}
    return {k: float(v) for k, v in values.items() if v is not None}


def champion_calibration(spec: PipelineSpec) -> dict[str, Any] | None:
    """The champion's holdout calibration (``calibration.json`` of its run), None when it recorded none."""
    from mlops_core.runs import run_artifacts

    raw, version, _ = run_artifacts.champion_artifact(spec.registered_model_name, calibration.ARTIFACT)
    if raw is None and version is not None:
        log.info("%s v%s recorded no calibration: its raw scores are taken as calibrated", spec.name, version)
    return raw


def run(spec: PipelineSpec, lake_root: str, ds: str) -> DayEstimate | None:
    """The monitored day's estimate, recorded (None when the pipeline is not a binary classifier or
    ``monitoring.estimate`` is off)."""
    if spec.problem_type != "binary" or not spec.monitoring.estimate.enabled:
        return None
    day = estimate_day(spec, lake_root, ds, champion_calibration(spec))
    uri = record(spec, lake_root, day)
    log.info("estimated performance %s (%s)", day.describe(), uri)
    return day
