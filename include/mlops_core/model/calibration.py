"""Whether a binary classifier's probabilities are calibrated, checked on the holdout at training.

Performance estimated before labels arrive (:mod:`mlops_core.monitor.estimate`) reads a row's
P(positive) as the chance that its label is positive; that holds only for calibrated scores.
:func:`check` measures the holdout's Brier score and expected calibration error (ECE) and, when
the ECE exceeds ``monitoring.estimate.max_ece``, fits an isotonic calibrator on the holdout's scores
against its labels (sklearn's ``IsotonicRegression(out_of_bounds="clip")``, as NannyML calibrates on
its reference set). The result is plain JSON (``calibration.json`` on the training run): the
calibrator is its breakpoints, applied by linear interpolation (:func:`apply`), exactly what the
fitted regressor predicts, and nothing is unpickled when monitoring reads it back.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

ARTIFACT = "calibration.json"


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Expected calibration error: ``bins`` equal-width bins of ``p`` in [0, 1]; the rows-weighted mean
    of |mean p - share of positives| over the non-empty bins."""
    import numpy as np

    y, p = np.asarray(y, float), np.asarray(p, float)
    if not len(p):
        return float("nan")
    which = np.minimum((p * bins).astype(int), bins - 1)
    total = 0.0
    for b in np.unique(which):
        rows = which == b
        total += rows.sum() * abs(float(p[rows].mean()) - float(y[rows].mean()))
    return total / len(p)


def fit_isotonic(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    """The isotonic calibrator of ``p`` against ``y`` as its breakpoints (``x`` ascending, ``y``)."""
    import numpy as np
    from sklearn.isotonic import IsotonicRegression

    reg = IsotonicRegression(out_of_bounds="clip", increasing=True)
    reg.fit(np.asarray(p, float), np.asarray(y, float))
    return {"x": [float(v) for v in reg.X_thresholds_], "y": [float(v) for v in reg.y_thresholds_]}


def apply(calibration: dict[str, Any] | None, p: np.ndarray) -> np.ndarray:
    """Calibrated probabilities: the stored calibrator applied to ``p`` (``p`` itself when there is none)."""
    import numpy as np

    p = np.asarray(p, float)
    cal = (calibration or {}).get("calibrator")
    if not cal:
        return p
    return np.interp(p, np.asarray(cal["x"], float), np.asarray(cal["y"], float))


def check(y_positive: np.ndarray, p: np.ndarray, *, max_ece: float, bins: int) -> dict[str, Any]:
    """The holdout's calibration: Brier score, ECE, and an isotonic calibrator when ECE > ``max_ece``.

    ``y_positive``: 1 where the label is the positive class; ``p``: P(positive). With one class in
    the holdout nothing can be fitted: recorded as such, the estimate then uses the raw scores.
    """
    import numpy as np

    y, p = np.asarray(y_positive, float), np.asarray(p, float)
    out: dict[str, Any] = {
        "rows": len(y),
        "bins": bins,
        "max_ece": max_ece,
        "brier": round(float(np.mean((p - y) ** 2)), 6) if len(y) else None,
        "ece": round(ece(y, p, bins), 6) if len(y) else None,
        "calibrator": None,
    }
    if len(np.unique(y)) < 2:
        out["reason"] = "the holdout has one class: no calibrator can be fitted; raw scores are used"
        return out
    if out["ece"] <= max_ece:
        out["reason"] = (
            f"ECE {out['ece']:.4f} <= monitoring.estimate.max_ece {max_ece:g}: scores used as they are"
        )
        return out
    out["calibrator"] = fit_isotonic(y, p)
    fitted = apply(out, p)
    out["brier_calibrated"] = round(float(np.mean((fitted - y) ** 2)), 6)
    out["ece_calibrated"] = round(ece(y, fitted, bins), 6)  # in-sample: the fit's own rows
    out["reason"] = (
        f"ECE {out['ece']:.4f} > monitoring.estimate.max_ece {max_ece:g}: the scores are not calibrated; "
        "an isotonic calibrator fitted on the holdout is applied before estimating"
    )
    log.warning("calibration: %s", out["reason"])
    return out


def mlflow_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The calibration's numbers as training-run metrics (``calibration_*``)."""
    names = ("brier", "ece", "brier_calibrated", "ece_calibrated")
    values = {f"calibration_{k}": float(result[k]) for k in names if result.get(k) is not None}
    values["calibration_fitted"] = 1.0 if result.get("calibrator") else 0.0
    return values
