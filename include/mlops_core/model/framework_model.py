"""The sklearn-compatible adapter around a code-trained family (:func:`estimators.register_framework`).

The adapter is the last step of the usual pipeline (imputation, scaling, one-hot, then the model),
so the gate, thresholds, slices, the smoke test, scoring and every serving target see the same
``predict`` / ``predict_proba`` as for any other family, and the model is saved with skops like
every other model: what the artifact holds is the family's *name*, its params, the seed, the
classes and ``dump``'s bytes. Loading calls the ``load`` registered under that name in the loading
process; the artifact never names code. The digest recorded at registration covers the bytes.
"""

from __future__ import annotations

import hashlib
import importlib
from typing import TYPE_CHECKING, Any

from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np

    from mlops_core.spec.estimators import Framework

# decoded native models, by family and sha256 of their bytes (a load per predict would be slow)
_NATIVE: dict[tuple[str, str], Any] = {}


def _function(path: str) -> Callable[..., Any]:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


class _FrameworkModel(BaseEstimator):
    """What both adapters share: fit through the family's ``fit``, keep ``dump``'s bytes."""

    problem = "regression"

    def __init__(self, family: str = "", params: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.family, self.params, self.seed = family, params, seed

    def _framework(self) -> Framework:
        from mlops_core.spec.estimators import get_family

        framework = get_family(self.family).framework
        if framework is None:
            raise ValueError(f"model family {self.family!r} is not a framework family (register_framework)")
        return framework

    def _fit_native(self, X: Any, y: Any) -> Any:
        import numpy as np

        framework = self._framework()
        matrix = np.asarray(X, dtype=np.float64)
        native = _function(framework.fit)(matrix, y, dict(self.params or {}), self.seed, self.problem)
        self.model_bytes_ = bytes(_function(framework.dump)(native))
        self.n_features_in_ = matrix.shape[1]
        _NATIVE[(self.family, hashlib.sha256(self.model_bytes_).hexdigest())] = native
        return native

    def native(self) -> Any:
        """The framework's own model, decoded from the saved bytes by the registered ``load``."""
        key = (self.family, hashlib.sha256(self.model_bytes_).hexdigest())
        if key not in _NATIVE:
            _NATIVE[key] = _function(self._framework().load)(self.model_bytes_)
        return _NATIVE[key]

    def _raw(self, X: Any) -> np.ndarray:
        import numpy as np

        out = _function(self._framework().predict)(self.native(), np.asarray(X, dtype=np.float64))
        return np.asarray(out)


class FrameworkClassifier(ClassifierMixin, _FrameworkModel):
    """Binary and multiclass: ``fit`` gets the labels encoded ``0..k-1``; ``predict_proba`` is the family's."""

    problem = "classification"

    def fit(self, X: Any, y: Any) -> FrameworkClassifier:
        import numpy as np

        self.classes_, encoded = np.unique(np.asarray(y), return_inverse=True)
        self._fit_native(X, encoded)
        return self

    def predict_proba(self, X: Any) -> np.ndarray:
        import numpy as np

        proba = self._raw(X)
        if proba.ndim == 1:  # the positive class's probability (binary)
            proba = np.column_stack([1.0 - proba, proba])
        if proba.shape[1] != len(self.classes_):
            raise ValueError(
                f"family {self.family!r}: predict returned {proba.shape[1]} columns for {len(self.classes_)} classes"
            )
        return proba

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class FrameworkRegressor(RegressorMixin, _FrameworkModel):
    """Regression: ``fit`` gets the float target; ``predict`` is the family's."""

    def fit(self, X: Any, y: Any) -> FrameworkRegressor:
        import numpy as np

        self._fit_native(X, np.asarray(y, dtype=np.float64))
        return self

    def predict(self, X: Any) -> np.ndarray:
        return self._raw(X).reshape(-1)
