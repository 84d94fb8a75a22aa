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
    :param bounds: bounds of this family's own params, over :data:`PARAM_BOUNDS` (a framework's
        ``epochs`` or ``hidden_units``); a param with no bound anywhere takes any scalar.
    :param framework: a family registered with :func:`register_framework` (training callable,
        state codec, MLflow flavor), built as :class:`mlops_core.model.framework_model.FrameworkClassifier`.
    :param state_types: types a *fitted* model of the family holds besides its two classes and what
        skops trusts by default (a forest's ``sklearn.tree._tree.Tree``, LightGBM's ``Booster``), by
        skops' fully qualified name. With the classes they make the family's part of
        :func:`trusted_types`; ``tests/unit/test_model_loading.py`` fits every family and fails when
        a library upgrade adds a type this list lacks.
    """

    name: str
    classifier: str
    regressor: str
    params: frozenset[str]
    seed_param: str | None = "random_state"
    scale_numeric: bool = False
    defaults: dict[str, Any] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float] | frozenset[Any]] = field(default_factory=dict)
    framework: Framework | None = None
    state_types: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Framework:
    """A model family trained by code of its own (PyTorch, TensorFlow, a native booster...).

    Every field is a ``"module:function"`` path, imported only when a model is trained or used:

    :param fit: ``fit(X, y, params, seed, problem) -> native``. ``X`` is the preprocessed float
        matrix (numpy), ``y`` the labels encoded ``0..k-1`` (classification) or the float target.
    :param predict: ``predict(native, X) -> array``: class probabilities ``(n, k)`` (or ``(n,)`` of
        the positive class for binary), or the predictions for regression.
    :param dump: ``dump(native) -> bytes``: the fitted model as *data* (weights, a model string);
        never a pickle.
    :param load: ``load(bytes) -> native``: the inverse of ``dump``; it must not unpickle either.
    :param flavor: an MLflow flavor module (``mlflow.pytorch``, ``mlflow.lightgbm``...): the native
        model is also logged with it as ``native_model``, for the framework's own serving. The
        package never loads that copy (a flavor's loader may unpickle).
    :param requirements: pip names the model needs to load (pinned from this environment).
    """

    fit: str
    predict: str
    dump: str
    load: str
    flavor: str | None = None
    requirements: tuple[str, ...] = ()


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
        state_types=frozenset({"sklearn.tree._tree.Tree"}),
    ),
    EstimatorFamily(
        "gradient_boosting",
        classifier="sklearn.ensemble:GradientBoostingClassifier",
        regressor="sklearn.ensemble:GradientBoostingRegressor",
        params=frozenset(
            {"n_estimators", "learning_rate", "max_depth", "subsample", "min_samples_leaf", "max_features"}
        ),
        state_types=frozenset({"sklearn.tree._tree.Tree"}),
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
        state_types=frozenset({"sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor"}),
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
        # the Booster is restored from its model string (__setstate__), its params in an OrderedDict
        state_types=frozenset({"lightgbm.basic.Booster", "collections.OrderedDict"}),
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


def register_framework(
    name: str,
    framework: Framework,
    *,
    params: dict[str, tuple[float, float] | frozenset[Any]],
    scale_numeric: bool = True,
) -> None:
    """Add a code-trained family to the allow-list: the YAML names it like any other family.

    :param params: every param a YAML may set, each with its bounds (a ``(low, high)`` range or the
        allowed values), so no YAML can ask for what the family's author did not allow.

    The model is saved the way every model here is (skops, no pickle): an sklearn-compatible
    adapter (:mod:`mlops_core.model.framework_model`) holds ``dump``'s bytes and the family's *name*.
    Loading looks the name up in this process's registry and calls its ``load``, so an artifact
    can never choose which code runs. Register the family wherever the model is loaded too (the
    workers, the serving image): from code imported before the DAGs are built, or through the
    ``mlops_airflow.frameworks`` entry point group (a callable that registers).
    """
    register_estimator(
        EstimatorFamily(
            name,
            classifier="mlops_core.model.framework_model:FrameworkClassifier",
            regressor="mlops_core.model.framework_model:FrameworkRegressor",
            params=frozenset(params),
            seed_param=None,
            scale_numeric=scale_numeric,
            bounds=dict(params),
            framework=framework,
        )
    )


_ENTRY_POINTS_LOADED = False


def _load_entry_points() -> None:
    """Families installed packages register (``[project.entry-points."mlops_airflow.frameworks"]``)."""
    global _ENTRY_POINTS_LOADED
    if _ENTRY_POINTS_LOADED:
        return
    _ENTRY_POINTS_LOADED = True
    from importlib.metadata import entry_points

    for point in entry_points(group="mlops_airflow.frameworks"):
        point.load()()


def families() -> list[str]:
    """Allowed ``model.family`` values, sorted."""
    _load_entry_points()
    return sorted(_REGISTRY)


def get_family(name: str) -> EstimatorFamily:
    _load_entry_points()
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


def _value_problem(key: str, value: Any, own: dict[str, Any] | None = None) -> str | None:
    bound = (own or {}).get(key, PARAM_BOUNDS.get(key))
    if bound is None:
        return None
    if key in _ALSO and key not in (own or {}) and _ALSO[key] is None and value is None:
        return None
    if isinstance(bound, frozenset):
        if not isinstance(value, bool | str | type(None)) and key in _ALSO and key not in (own or {}):
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
    problems = [p for k, v in params.items() if (p := _value_problem(k, v, fam.bounds))]
    if problems:
        raise ValueError("; ".join(problems))


def is_whole(key: str, family: str | None = None) -> bool:
    """A parameter searched as an integer (its bounds are whole numbers)."""
    own = get_family(family).bounds if family else {}
    bound = own.get(key, PARAM_BOUNDS.get(key))
    return isinstance(bound, tuple) and all(isinstance(b, int) for b in bound)


def check_search(name: str, fixed: dict[str, Any], search: Any, problem: str) -> None:
    """``model.search.params``: allowed for the family, not also fixed, and every bound or choice an
    allowed value (so no trial can ask for what a YAML could not ask for directly)."""
    overlap = sorted(set(search.params) & set(fixed))
    if overlap:
        raise ValueError(f"model.search.params {overlap} are also fixed under model.params; keep one")
    for key, space in search.params.items():
        values = list(space.choices) if space.choices is not None else [space.low, space.high]
        if space.choices is None and is_whole(key, name):
            if not all(float(v).is_integer() for v in values):
                raise ValueError(f"model.search.params.{key}: a whole-number parameter needs whole low/high")
            values = [int(v) for v in values]
        try:
            for value in values:
                check_params(name, {key: value}, problem)
        except ValueError as err:
            raise ValueError(str(err).replace("model.params", "model.search.params")) from None


# What every saved model holds around its estimator: the preprocessing pipeline
# (:func:`mlops_core.model.training.build_pipeline`), the threshold wrapper (:mod:`mlops_core.model.threshold`)
# and numpy dtypes. skops trusts the scikit-learn classes by default today; naming them keeps the
# list the package's own if that default narrows.
_AROUND_EVERY_MODEL = (
    "sklearn.pipeline:Pipeline",
    "sklearn.compose:ColumnTransformer",
    "sklearn.impute:SimpleImputer",
    "sklearn.preprocessing:StandardScaler",
    "sklearn.preprocessing:OneHotEncoder",
    "sklearn.model_selection:FixedThresholdClassifier",
    "sklearn.frozen:FrozenEstimator",
)
_DATA_TYPES = frozenset({"numpy.dtype"})


def _skops_name(path: str) -> str:
    """``"module:Class"`` -> the name skops records for the class (its defining module + name)."""
    module_name, class_name = path.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return f"{cls.__module__}.{cls.__name__}"


def trusted_types(name: str) -> frozenset[str]:
    """The types a saved model of family ``name`` may contain, beyond what skops trusts by default.

    Decided by this package (the catalogue, plus families registered in this process), never by
    the artifact: a model's ``MLmodel`` lists ``skops_trusted_types`` too, but whoever can write
    the artifact store can write that list (``posix.system`` included).
    :func:`mlops_core.runs.run_artifacts.load_verified` loads with this list only. Imports the family's classes.
    """
    fam = get_family(name)
    classes = {_skops_name(p) for p in (fam.classifier, fam.regressor, *_AROUND_EVERY_MODEL)}
    return frozenset(classes | fam.state_types | _DATA_TYPES)


def build_estimator(name: str, problem: str, params: dict[str, Any], seed: int) -> Any:
    """Instantiate the allow-listed class for ``problem`` with ``params`` and ``seed``."""
    check_params(name, params, problem)
    fam = get_family(name)
    target = fam.regressor if problem == "regression" else fam.classifier
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if fam.framework is not None:  # the adapter: the family's name, its params, the seed
        return cls(family=name, params={**fam.defaults, **params}, seed=seed)
    kwargs = {**fam.defaults, **params}
    if fam.seed_param:
        kwargs[fam.seed_param] = seed
    return cls(**kwargs)
