"""The estimator allow-list.

A pipeline YAML names an estimator *family*; it can never name a class, a module or a callable.
Each family maps to one scikit-learn-compatible class per problem kind and the constructor
parameters a YAML may set. To add a family, add an :class:`EstimatorFamily` to ``_BUILTIN`` (or call
:func:`register_estimator` from code that runs before the DAGs are built) and a row to the README.
Classes are imported only when a model is built, never when a spec is validated.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class EstimatorFamily:
    """One allow-listed family.

    :param name: the value of ``model.family`` in YAML.
    :param classifier: ``"module:Class"`` used for binary and multiclass problems.
    :param regressor: ``"module:Class"`` used for regression.
    :param params: constructor parameters a YAML may set.
    :param seed_param: the constructor parameter that receives ``model.seed`` (None if deterministic).
    :param scale_numeric: standardise numeric columns first (linear models need it, trees do not).
    :param defaults: parameters applied unless the YAML sets them.
    """

    name: str
    classifier: str
    regressor: str
    params: frozenset[str]
    seed_param: str | None = "random_state"
    scale_numeric: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)


_TREE_PARAMS = frozenset(
    {
        "n_estimators",
        "max_depth",
        "min_samples_split",
        "min_samples_leaf",
        "max_features",
        "class_weight",
        "n_jobs",
    }
)

_BUILTIN: tuple[EstimatorFamily, ...] = (
    EstimatorFamily(
        "linear",
        classifier="sklearn.linear_model:LogisticRegression",
        regressor="sklearn.linear_model:Ridge",
        params=frozenset({"C", "alpha", "max_iter", "class_weight", "tol", "fit_intercept"}),
        scale_numeric=True,
        defaults={"max_iter": 1000},
    ),
    EstimatorFamily(
        "random_forest",
        classifier="sklearn.ensemble:RandomForestClassifier",
        regressor="sklearn.ensemble:RandomForestRegressor",
        params=_TREE_PARAMS,
    ),
    EstimatorFamily(
        "gradient_boosting",
        classifier="sklearn.ensemble:GradientBoostingClassifier",
        regressor="sklearn.ensemble:GradientBoostingRegressor",
        params=frozenset(
            {"n_estimators", "learning_rate", "max_depth", "subsample", "min_samples_leaf", "max_features"}
        ),
    ),
    EstimatorFamily(
        "hist_gradient_boosting",
        classifier="sklearn.ensemble:HistGradientBoostingClassifier",
        regressor="sklearn.ensemble:HistGradientBoostingRegressor",
        params=frozenset(
            {
                "max_iter",
                "learning_rate",
                "max_depth",
                "max_leaf_nodes",
                "min_samples_leaf",
                "l2_regularization",
                "class_weight",
            }
        ),
    ),
    EstimatorFamily(
        "lightgbm",
        classifier="lightgbm:LGBMClassifier",
        regressor="lightgbm:LGBMRegressor",
        params=frozenset(
            {
                "n_estimators",
                "learning_rate",
                "num_leaves",
                "max_depth",
                "min_child_samples",
                "subsample",
                "colsample_bytree",
                "reg_alpha",
                "reg_lambda",
                "class_weight",
            }
        ),
        defaults={"verbose": -1, "n_jobs": 1},
    ),
)

_REGISTRY: dict[str, EstimatorFamily] = {f.name: f for f in _BUILTIN}

# Parameters that exist on only one of a family's two classes (LogisticRegression has C, Ridge alpha).
_PER_KIND_ONLY = {"C": "classifier", "class_weight": "classifier", "alpha": "regressor"}


def register_estimator(family: EstimatorFamily) -> None:
    """Add a family to the allow-list (call it before the DAGs are built, e.g. from a plugin)."""
    if family.name in _REGISTRY:
        raise ValueError(f"estimator family {family.name!r} is already registered")
    _REGISTRY[family.name] = family


def families() -> list[str]:
    """Allowed ``model.family`` values, sorted."""
    return sorted(_REGISTRY)


def get_family(name: str) -> EstimatorFamily:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(
            f"model.family {name!r} is not in the allow-list; choose one of: {', '.join(families())}"
        ) from None


# Bounds of every allow-listed parameter's value: (low, high) for numbers, or the allowed strings.
# A YAML cannot ask for 10**9 trees, every core of the worker, or a non-finite number.
PARAM_BOUNDS: dict[str, tuple[float, float] | frozenset[Any]] = {
    "n_estimators": (1, 5000),
    "max_depth": (1, 200),
    "min_samples_split": (2, 100_000),
    "min_samples_leaf": (1, 100_000),
    "n_jobs": (1, 8),
    "max_iter": (1, 100_000),
    "C": (1e-6, 1e6),
    "alpha": (0.0, 1e6),
    "tol": (1e-12, 1.0),
    "learning_rate": (1e-6, 10.0),
    "subsample": (0.01, 1.0),
    "max_leaf_nodes": (2, 100_000),
    "l2_regularization": (0.0, 1e6),
    "num_leaves": (2, 131_072),
    "min_child_samples": (1, 100_000),
    "colsample_bytree": (0.01, 1.0),
    "reg_alpha": (0.0, 1e6),
    "reg_lambda": (0.0, 1e6),
    "max_features": frozenset({"sqrt", "log2", None}),
    "class_weight": frozenset({"balanced", None}),
    "fit_intercept": frozenset({True, False}),
}
# max_features may also be a fraction (0, 1]; max_depth may be null (unbounded trees).
_ALSO = {"max_features": (0.0, 1.0), "max_depth": None}


def _value_problem(key: str, value: Any) -> str | None:
    bound = PARAM_BOUNDS.get(key)
    if bound is None:
        return None
    if key in _ALSO and _ALSO[key] is None and value is None:
        return None
    if isinstance(bound, frozenset):
        if not isinstance(value, bool | str | type(None)) and key in _ALSO:
            low, high = _ALSO[key]  # type: ignore[misc]
            if isinstance(value, int | float) and math.isfinite(value) and low < value <= high:
                return None
        if value in bound and (isinstance(value, bool) == any(isinstance(b, bool) for b in bound)):
            return None
        shown = ", ".join(repr(b) for b in sorted(bound, key=repr))
        return f"model.params.{key}: {value!r} is not allowed; choose one of {shown}"
    low, high = bound
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return f"model.params.{key}: {value!r} must be a finite number from {low:g} to {high:g}"
    if isinstance(low, int) and isinstance(high, int) and not isinstance(value, int):
        return f"model.params.{key}: {value!r} must be a whole number from {low} to {high}"
    if not low <= value <= high:
        return f"model.params.{key}: {value!r} is outside {low:g}..{high:g}"
    return None


def check_params(name: str, params: dict[str, Any], problem: str) -> None:
    """Raise ValueError naming each parameter the family does not allow for this problem, or whose value is out of bounds."""
    fam = get_family(name)
    kind = "regressor" if problem == "regression" else "classifier"
    if fam.seed_param and fam.seed_param in params:
        raise ValueError(f"model.params.{fam.seed_param}: set the seed with model.seed instead")
    bad = sorted(k for k in params if k not in fam.params or _PER_KIND_ONLY.get(k, kind) != kind)
    if bad:
        allowed = sorted(k for k in fam.params if _PER_KIND_ONLY.get(k, kind) == kind)
        raise ValueError(
            f"model.params {bad} not allowed for family {name!r} ({kind}); allowed: {', '.join(allowed)}"
        )
    problems = [p for k, v in params.items() if (p := _value_problem(k, v))]
    if problems:
        raise ValueError("; ".join(problems))


def is_whole(key: str) -> bool:
    """A parameter searched as an integer (its bounds are whole numbers)."""
    bound = PARAM_BOUNDS.get(key)
    return isinstance(bound, tuple) and all(isinstance(b, int) for b in bound)


def check_search(name: str, fixed: dict[str, Any], search: Any, problem: str) -> None:
    """``model.search.params``: allowed for the family, not also fixed, and every bound or choice an
    allowed value (so no trial can ask for what a YAML could not ask for directly)."""
    overlap = sorted(set(search.params) & set(fixed))
    if overlap:
        raise ValueError(f"model.search.params {overlap} are also fixed under model.params; keep one")
    for key, space in search.params.items():
        values = list(space.choices) if space.choices is not None else [space.low, space.high]
        if space.choices is None and is_whole(key):
            if not all(float(v).is_integer() for v in values):
                raise ValueError(f"model.search.params.{key}: a whole-number parameter needs whole low/high")
            values = [int(v) for v in values]
        try:
            for value in values:
                check_params(name, {key: value}, problem)
        except ValueError as err:
            raise ValueError(str(err).replace("model.params", "model.search.params")) from None


def build_estimator(name: str, problem: str, params: dict[str, Any], seed: int) -> Any:
    """Instantiate the allow-listed class for ``problem`` with ``params`` and ``seed``."""
    check_params(name, params, problem)
    fam = get_family(name)
    target = fam.regressor if problem == "regression" else fam.classifier
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    kwargs = {**fam.defaults, **params}
    if fam.seed_param:
        kwargs[fam.seed_param] = seed
    return cls(**kwargs)
