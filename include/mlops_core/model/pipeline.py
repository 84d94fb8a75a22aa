"""The scikit-learn Pipeline a spec trains: preprocessing for numbers and categories, then the estimator.

Training (:mod:`mlops_core.model.training`) and every search trial (:mod:`mlops_core.model.search`)
build it here, so a trial scores exactly the pipeline the final fit trains.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mlops_core.spec.estimators import build_estimator, get_family

if TYPE_CHECKING:
    from mlops_core.spec import PipelineSpec


def build_pipeline(
    spec: PipelineSpec, numeric: list[str], categorical: list[str], *, params: dict[str, Any] | None = None
) -> Any:
    """Imputation (+ scaling for linear models) for numbers, imputation + one-hot for categories, then the estimator.

    :param params: the estimator's params (default ``model.params``; a search trial's own).
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    num_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if get_family(spec.model.family).scale_numeric:
        num_steps.append(("scale", StandardScaler()))
    cat_steps = [
        ("impute", SimpleImputer(strategy="constant", fill_value="__missing__")),
        ("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False)),
    ]
    pre = ColumnTransformer(
        [("num", Pipeline(num_steps), numeric), ("cat", Pipeline(cat_steps), categorical)],
        remainder="drop",
        verbose_feature_names_out=False,
    )
    chosen = dict(spec.model.params) if params is None else params
    model = build_estimator(spec.model.family, spec.problem_type, chosen, spec.model.seed)
    return Pipeline([("preprocess", pre), ("model", model)])
