"""A model's predictions on a table and the metrics over them: what the gate, the slices and the
feedback loop all score with (one definition of every metric name in :data:`~mlops_core.spec.catalog.METRICS`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from mlops_core.spec import PipelineSpec


@dataclass
class Scored:
    """Predictions of one model on the holdout: labels/values, and probabilities for classifiers."""

    pred: np.ndarray
    proba: np.ndarray | None = None  # binary: P(positive); multiclass: (n, k)
    classes: list[Any] | None = None


def score(model: Any, X: pd.DataFrame, problem: str, positive: Any = None) -> Scored:
    """Score an sklearn-compatible model (a fitted Pipeline)."""
    import numpy as np

    pred = np.asarray(model.predict(X))
    if problem == "regression" or not hasattr(model, "predict_proba"):
        return Scored(pred=pred)
    proba = np.asarray(model.predict_proba(X))
    classes = list(model.classes_)
    if problem == "binary":
        idx = [str(c) for c in classes].index(str(positive))
        return Scored(pred=pred, proba=proba[:, idx], classes=classes)
    return Scored(pred=pred, proba=proba, classes=classes)


def metric(name: str, problem: str, y: np.ndarray, s: Scored, positive: Any = None) -> float:
    """One metric; ``nan`` when it is undefined on these rows (e.g. AUC with a single class)."""
    import numpy as np
    from sklearn import metrics as skm

    try:
        if name == "rmse":
            return float(np.sqrt(np.mean((np.asarray(y, float) - np.asarray(s.pred, float)) ** 2)))
        if name == "mae":
            return float(skm.mean_absolute_error(y, s.pred))
        if name == "r2":
            return float(skm.r2_score(y, s.pred)) if len(y) > 1 else math.nan
        if name == "accuracy":
            return float(np.mean(np.asarray(y) == np.asarray(s.pred)))
        if name == "balanced_accuracy":
            return float(skm.balanced_accuracy_score(y, s.pred))
        if name in ("f1", "precision", "recall"):
            fn = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}[name]
            return float(fn(y, s.pred, pos_label=positive, zero_division=0))
        if name in ("f1_macro", "f1_weighted"):
            return float(skm.f1_score(y, s.pred, average=name.split("_")[1], zero_division=0))
        return _proba_metric(name, problem, y, s, positive)
    except ValueError:
        return math.nan


def _proba_metric(name: str, problem: str, y: np.ndarray, s: Scored, positive: Any) -> float:
    import numpy as np
    from sklearn import metrics as skm

    if s.proba is None:
        return math.nan
    if problem == "multiclass":
        multi = {
            "roc_auc": lambda: skm.roc_auc_score(y, s.proba, multi_class="ovr", labels=s.classes),
            "log_loss": lambda: skm.log_loss(y, s.proba, labels=s.classes),
        }
        return float(multi[name]()) if name in multi else math.nan
    y_bin = (np.asarray(y).astype(str) == str(positive)).astype(int)
    if y_bin.min() == y_bin.max() and name in ("roc_auc", "average_precision"):
        return math.nan  # undefined with one class in the rows
    binary = {
        "roc_auc": lambda: skm.roc_auc_score(y_bin, s.proba),
        "average_precision": lambda: skm.average_precision_score(y_bin, s.proba),
        "log_loss": lambda: skm.log_loss(y_bin, s.proba, labels=[0, 1]),
        "brier": lambda: skm.brier_score_loss(y_bin, s.proba),
    }
    return float(binary[name]()) if name in binary else math.nan


def all_metrics(spec: PipelineSpec, y: np.ndarray, s: Scored, positive: Any) -> dict[str, float]:
    from mlops_core.spec.catalog import metrics_for

    return {m: metric(m, spec.problem_type, y, s, positive) for m in metrics_for(spec.problem_type)}


def _subset(s: Scored, idx: np.ndarray) -> Scored:
    return Scored(pred=s.pred[idx], proba=None if s.proba is None else s.proba[idx], classes=s.classes)
