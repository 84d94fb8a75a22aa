"""The decision threshold of a binary classifier: fixed, or chosen on validation folds.

On imbalanced data a fixed 0.5 can pass a ROC AUC floor with poor recall. ``evaluation.threshold``
either fixes the probability above which a row is positive, or searches it on cross-validation
folds of the *training* rows (sklearn's ``TunedThresholdClassifierCV``; the holdout the gate uses
is never seen). The result is a ``FixedThresholdClassifier`` around the fitted pipeline: the
model itself carries the threshold, so batch scoring, the smoke test and every endpoint apply it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from mlops_core.spec import PipelineSpec


def _scorer(spec: PipelineSpec, positive: Any) -> Any:
    import numpy as np
    from sklearn import metrics as skm

    search = spec.evaluation.threshold
    optimize = getattr(search, "optimize", "f1")
    if optimize == "balanced_accuracy":
        return "balanced_accuracy"
    if optimize == "recall_at_precision":
        floor = float(getattr(search, "min_precision", 0.0) or 0.0)

        def recall_at_precision(y_true: Any, y_pred: Any) -> float:
            precision = skm.precision_score(y_true, y_pred, pos_label=positive, zero_division=0)
            recall = skm.recall_score(y_true, y_pred, pos_label=positive, zero_division=0)
            return float(recall) if precision >= floor else float(-1.0 + precision - np.finfo(float).eps)

        return skm.make_scorer(recall_at_precision)
    return skm.make_scorer(skm.f1_score, pos_label=positive)


def apply(spec: PipelineSpec, pipe: Any, X: pd.DataFrame, y: Any, positive: Any) -> tuple[Any, float | None]:
    """Fit ``pipe`` (with the spec's threshold when set); return the fitted model and its threshold."""
    threshold = spec.evaluation.threshold
    if threshold is None or spec.problem_type != "binary":
        return pipe.fit(X, y), None
    from sklearn.frozen import FrozenEstimator
    from sklearn.model_selection import FixedThresholdClassifier, TunedThresholdClassifierCV

    if isinstance(threshold, float):
        chosen = float(threshold)
        fitted = pipe.fit(X, y)
    else:
        tuned = TunedThresholdClassifierCV(
            pipe,
            scoring=_scorer(spec, positive),
            response_method="predict_proba",
            cv=threshold.folds,
            random_state=spec.model.seed,
            n_jobs=1,
        ).fit(X, y)
        chosen, fitted = float(tuned.best_threshold_), tuned.estimator_
    # a plain FixedThresholdClassifier around the already fitted pipeline: what is saved (skops)
    model = FixedThresholdClassifier(
        FrozenEstimator(fitted), threshold=chosen, pos_label=positive, response_method="predict_proba"
    ).fit(X, y)
    return model, round(chosen, 6)
