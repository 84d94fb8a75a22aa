"""An example framework family: LightGBM's native API (``lightgbm.train`` -> ``Booster``), not its
scikit-learn wrapper. Copy it for PyTorch or TensorFlow: ``fit`` runs the training loop, ``dump``
writes the weights as bytes (``safetensors``, ``numpy.savez``, a model string; never ``torch.save``
or a pickle), ``load`` reads them back, ``predict`` returns probabilities or predictions.

Register it before the DAGs are built (e.g. at the top of ``dags/mlops_pipelines.py``, or with an
entry point in your package: ``[project.entry-points."mlops_airflow.frameworks"]
lightgbm_booster = "lightgbm_booster:register"``), then name it in a pipeline YAML::

    model:
      family: lightgbm_booster
      params: {rounds: 200, learning_rate: 0.05, num_leaves: 31}
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_core.spec.estimators import Framework, register_framework

if TYPE_CHECKING:
    import numpy as np


def fit(X: np.ndarray, y: np.ndarray, params: dict[str, Any], seed: int, problem: str) -> Any:
    """Train a Booster: ``y`` is ``0..k-1`` for classification, the float target for regression."""
    import lightgbm as lgb

    classes = int(y.max()) + 1 if problem == "classification" else 0
    objective = "regression" if not classes else ("binary" if classes == 2 else "multiclass")
    config = {
        "objective": objective,
        "learning_rate": float(params.get("learning_rate", 0.1)),
        "num_leaves": int(params.get("num_leaves", 15)),
        "seed": seed,
        "deterministic": True,
        "force_col_wise": True,
        "num_threads": 1,
        "verbosity": -1,
        **({"num_class": classes} if objective == "multiclass" else {}),
    }
    return lgb.train(config, lgb.Dataset(X, label=y), num_boost_round=int(params.get("rounds", 100)))


def predict(booster: Any, X: np.ndarray) -> np.ndarray:
    """Binary: the positive class's probability; multiclass: one column per class; regression: values."""
    return booster.predict(X)  # type: ignore[no-any-return]


def dump(booster: Any) -> bytes:
    return booster.model_to_string().encode()  # type: ignore[no-any-return]


def load(data: bytes) -> Any:
    import lightgbm as lgb

    return lgb.Booster(model_str=data.decode())


def register() -> None:
    register_framework(
        "lightgbm_booster",
        Framework(
            fit="lightgbm_booster:fit",
            predict="lightgbm_booster:predict",
            dump="lightgbm_booster:dump",
            load="lightgbm_booster:load",
            flavor="mlflow.lightgbm",
            requirements=("lightgbm",),
        ),
        params={"rounds": (1, 5000), "learning_rate": (1e-4, 1.0), "num_leaves": (2, 1024)},
        scale_numeric=False,
    )
