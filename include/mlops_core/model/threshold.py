"""The decision threshold of a binary classifier: fixed, or chosen on validation folds.

On imbalanced data a fixed 0.5 can pass a ROC AUC floor with poor recall. ``evaluation.threshold``
either fixes the probability above which a row is positive, or searches it on cross-validation
folds of the *training* rows (sklearn's ``TunedThresholdClassifierCV``; the holdout the gate uses
is never seen). The result is a ``FixedThresholdClassifier`` around the fitted pipeline: the
model itself carries the threshold, so batch scoring, the smoke test and every endpoint apply it.

Every threshold here is a cut on **P(positive_class)**, whatever the labels' order: each search
objective is a scorer that names ``pos_label`` (sklearn tunes on the probability of the scorer's
``pos_label``, and on ``classes_[1]`` when it has none, which is the *other* class whenever the
positive label sorts first), and :func:`apply` checks on the training rows that the saved model
predicts exactly what the search chose before it is returned.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)

TAG = "mlops.threshold"  # on the training run (and copied to the version): what the saved model applies
DEFAULT = "default"  # the tag's value when the model applies its own predict (most probable class)
_CHECK_ROWS = 5000  # training rows the saved model's predictions are compared on


class ThresholdError(RuntimeError):
    """The wrapped model would not apply the threshold the search chose (never expected)."""


def _infeasible(score: float) -> float:
    """A score below every feasible one (those are in [0, 1]) that still ranks the infeasible."""
    return -1.0 + score - 1e-12


def balanced_accuracy(y_true: Any, y_pred: Any, *, pos_label: Any) -> float:
    """sklearn's balanced accuracy; ``pos_label`` only tells the tuner which probability to cut."""
    from sklearn import metrics as skm

    return float(skm.balanced_accuracy_score(y_true, y_pred))


def recall_at_precision(y_true: Any, y_pred: Any, *, pos_label: Any, min_precision: float) -> float:
    """Recall of ``pos_label`` where its precision is at least ``min_precision``; below it, the
    precision (shifted under every feasible score) so the search moves towards the constraint."""
    from sklearn import metrics as skm

    precision = skm.precision_score(y_true, y_pred, pos_label=pos_label, zero_division=0)
    recall = skm.recall_score(y_true, y_pred, pos_label=pos_label, zero_division=0)
    return float(recall) if precision >= min_precision else _infeasible(float(precision))


def precision_at_recall(y_true: Any, y_pred: Any, *, pos_label: Any, min_recall: float) -> float:
    """Precision of ``pos_label`` where its recall is at least ``min_recall`` (the highest threshold
    that still finds that share of the positives); below it, the recall, shifted as above."""
    from sklearn import metrics as skm

    precision = skm.precision_score(y_true, y_pred, pos_label=pos_label, zero_division=0)
    recall = skm.recall_score(y_true, y_pred, pos_label=pos_label, zero_division=0)
    return float(precision) if recall >= min_recall else _infeasible(float(recall))


def scorer(spec: PipelineSpec, positive: Any) -> Any:
    """The search objective as an sklearn scorer that carries ``pos_label=positive``."""
    from sklearn import metrics as skm

    search = spec.evaluation.threshold
    optimize = getattr(search, "optimize", "f1")
    if optimize == "balanced_accuracy":
        return skm.make_scorer(balanced_accuracy, pos_label=positive)
    if optimize == "recall_at_precision":
        return skm.make_scorer(
            recall_at_precision,
            pos_label=positive,
            min_precision=float(getattr(search, "min_precision", 0.0)),
        )
    if optimize == "precision_at_recall":
        return skm.make_scorer(
            precision_at_recall, pos_label=positive, min_recall=float(getattr(search, "min_recall", 0.0))
        )
    return skm.make_scorer(skm.f1_score, pos_label=positive, zero_division=0)


def tune(spec: PipelineSpec, pipe: Any, X: pd.DataFrame, y: Any, positive: Any) -> Any:
    """The fitted ``TunedThresholdClassifierCV`` of ``evaluation.threshold`` (a search) on these rows."""
    from sklearn.model_selection import TunedThresholdClassifierCV

    search = spec.evaluation.threshold
    tuned = TunedThresholdClassifierCV(
        pipe,
        scoring=scorer(spec, positive),
        response_method="predict_proba",
        cv=getattr(search, "folds", 3),
        random_state=spec.model.seed,
        n_jobs=1,
    ).fit(X, y)
    if tuned.best_score_ < 0:
        log.warning(
            "evaluation.threshold %s: no threshold met the constraint on the validation folds; the "
            "closest one (%.4f) is used. Lower the constraint or expect the gate's floors to reject",
            getattr(search, "optimize", "?"),
            float(tuned.best_threshold_),
        )
    return tuned


def apply(spec: PipelineSpec, pipe: Any, X: pd.DataFrame, y: Any, positive: Any) -> tuple[Any, float | None]:
    """Fit ``pipe`` (with the spec's threshold when set); return the fitted model and its threshold.

    The threshold is a probability of ``positive``: rows with P(positive) >= threshold are positive.
    """
    threshold = spec.evaluation.threshold
    if threshold is None or spec.problem_type != "binary":
        return pipe.fit(X, y), None
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier

    tuned = None
    if isinstance(threshold, float):
        chosen = float(threshold)
        fitted = pipe.fit(X, y)
    else:
        tuned = tune(spec, pipe, X, y, positive)
        chosen, fitted = float(tuned.best_threshold_), tuned.estimator_
    # a plain FixedThresholdClassifier around the already fitted pipeline: what is saved (skops)
    model = FixedThresholdClassifier(
        FrozenEstimator(fitted), threshold=chosen, pos_label=positive, response_method="predict_proba"
    ).fit(X, y)
    if tuned is not None:
        _same_predictions(tuned, model, X)
    return model, round(chosen, 6)


def _same_predictions(tuned: Any, model: Any, X: pd.DataFrame) -> None:
    import numpy as np

    rows = X.iloc[:_CHECK_ROWS]
    differ = int((np.asarray(tuned.predict(rows)) != np.asarray(model.predict(rows))).sum())
    if differ:
        raise ThresholdError(
            f"the saved model would predict {differ} of {len(rows)} training rows differently from the "
            f"threshold search (threshold {tuned.best_threshold_:.4f}); refusing to save a model that "
            "applies its threshold to the wrong class"
        )


def of_model(model: Any) -> float | None:
    """The threshold on P(positive) that a loaded model applies, or ``None`` for the estimator's
    own ``predict`` (the most probable class: 0.5 for a binary classifier)."""
    value = getattr(model, "threshold", None)
    if type(model).__name__ == "FixedThresholdClassifier" and isinstance(value, int | float):
        return round(float(value), 6)
    return None


def parse(tag: str | None) -> float | None:
    """The :data:`TAG` value as a number (``None``: the default, or not recorded)."""
    try:
        return None if tag in (None, "", DEFAULT) else round(float(str(tag)), 6)
    except ValueError:
        return None


def describe(value: float | None, positive: Any = None) -> str:
    """How a threshold reads in the card, the gate log and the Models view."""
    on = f"P({positive})" if positive is not None else "P(positive)"
    if value is None:
        return "default (0.5: the most probable class)"
    return f"{value:g} on {on}"
