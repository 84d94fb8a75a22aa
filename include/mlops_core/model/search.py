"""``model.search``: a bounded hyperparameter search with Optuna on the training rows only.

The holdout is split off before (:func:`mlops_core.model.training._prepare`) and never reaches this
module: each trial is scored by k-fold cross-validation on the rows the model will be trained on,
on the pipeline's primary metric. Seeded TPE sampling (``model.seed``), so the same data and spec
give the same trials; a median pruner stops a trial whose running mean over the folds falls below
the median of earlier trials at that fold. Every trial is an MLflow child run of the training run
(its params, each fold's score, its state); the best params train the challenger, which then goes
through the same gate as any other.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_core.spec.catalog import METRICS
from mlops_core.spec.estimators import is_whole

if TYPE_CHECKING:
    from collections.abc import Callable

    import pandas as pd

    from mlops_core.spec import PipelineSpec

log = logging.getLogger(__name__)


@dataclass
class SearchResult:
    best_params: dict[str, Any]
    best_value: float
    metric: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def completed(self) -> int:
        return sum(t["state"] == "COMPLETE" for t in self.trials)

    @property
    def pruned(self) -> int:
        return sum(t["state"] == "PRUNED" for t in self.trials)


def _suggest(trial: Any, key: str, space: Any, family: str) -> Any:
    if space.choices is not None:
        # Optuna's categorical choices must be None, bool, int, float or str: the spec's Scalar is
        return trial.suggest_categorical(key, list(space.choices))
    if is_whole(key, family):
        return trial.suggest_int(key, int(space.low), int(space.high), log=space.log)
    return trial.suggest_float(key, float(space.low), float(space.high), log=space.log)


class NotFinite(ValueError):
    """A fold's score is NaN or infinite: the trial ends without a value."""


def cv_scores(
    spec: PipelineSpec,
    X: pd.DataFrame,
    y: pd.Series,
    numeric: list[str],
    categorical: list[str],
    positive: Any,
    params: dict[str, Any],
    splits: list[Any],
    report: Callable[[int, float, float], None] | None = None,
) -> list[float]:
    """Each fold's ``evaluation.primary_metric`` of ``params`` (over ``model.params``) on ``splits``
    of the training rows; ``report(fold, value, running mean)`` after each fold may raise to stop."""
    from mlops_core.model import evaluation
    from mlops_core.model.pipeline import build_pipeline

    metric = spec.evaluation.primary_metric
    scores: list[float] = []
    for fold, (fit_idx, val_idx) in enumerate(splits):
        pipe = build_pipeline(spec, numeric, categorical, params={**spec.model.params, **params})
        pipe.fit(X.iloc[fit_idx], y.iloc[fit_idx])
        scored = evaluation.score(pipe, X.iloc[val_idx], spec.problem_type, positive)
        value = evaluation.metric(metric, spec.problem_type, y.iloc[val_idx].to_numpy(), scored, positive)
        if not math.isfinite(value):
            raise NotFinite(f"{metric} is not finite on fold {fold}")
        scores.append(value)
        if report is not None:
            report(fold, value, sum(scores) / len(scores))
    return scores


def folds(spec: PipelineSpec, X: pd.DataFrame, y: pd.Series) -> list[Any]:
    """The (fit, validate) index pairs every trial is scored on: seeded, stratified for classifiers."""
    return list(_folds(spec, y).split(X, y))


def _folds(spec: PipelineSpec, y: Any) -> Any:
    from sklearn.model_selection import KFold, StratifiedKFold

    assert spec.model.search is not None
    k, seed = spec.model.search.cv_folds, spec.model.seed
    if spec.problem_type == "regression":
        return KFold(n_splits=k, shuffle=True, random_state=seed)
    return StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)


def run_search(
    spec: PipelineSpec,
    X: pd.DataFrame,
    y: pd.Series,
    numeric: list[str],
    categorical: list[str],
    positive: Any,
) -> SearchResult:
    """Search ``model.search.params`` on ``X``/``y`` (the training rows); log trials as child runs."""
    import optuna

    search = spec.model.search
    assert search is not None
    metric = spec.evaluation.primary_metric
    splits = folds(spec, X, y)
    study = _study(spec)
    objective = _objective(spec, X, y, numeric, categorical, positive, splits)
    start = time.monotonic()
    study.optimize(objective, n_trials=search.trials, timeout=search.timeout_minutes * 60, catch=())
    trials = [
        {"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params)}
        for t in study.trials
    ]
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not completed:
        raise RuntimeError(
            f"model.search: none of {len(study.trials)} trial(s) completed (all pruned or failed); "
            "widen the ranges, set pruning: false, or raise timeout_minutes"
        )
    result = SearchResult(
        best_params=dict(study.best_params),
        best_value=float(study.best_value),
        metric=metric,
        trials=trials,
        seconds=round(time.monotonic() - start, 3),
    )
    log.info(
        "search %s: %d trial(s), %d complete, %d pruned, best cv %s %.4f with %s (%.1f s)",
        spec.name,
        len(trials),
        result.completed,
        result.pruned,
        metric,
        result.best_value,
        result.best_params,
        result.seconds,
    )
    return result


def _study(spec: PipelineSpec) -> Any:
    """An optuna study in the primary metric's direction: seeded TPE, median pruning if asked."""
    import optuna

    search = spec.model.search
    assert search is not None
    better = METRICS[spec.evaluation.primary_metric].higher_is_better
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    pruner: Any = (
        optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
        if search.pruning
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        direction="maximize" if better else "minimize",
        sampler=optuna.samplers.TPESampler(seed=spec.model.seed),
        pruner=pruner,
        study_name=f"{spec.name}-search",
    )


def _objective(
    spec: PipelineSpec,
    X: pd.DataFrame,
    y: pd.Series,
    numeric: list[str],
    categorical: list[str],
    positive: Any,
    splits: list[Any],
) -> Callable[[Any], float]:
    """One trial: its params' cross-validated mean, logged as a child run of the active run."""
    import mlflow
    import optuna

    search = spec.model.search
    assert search is not None
    metric = spec.evaluation.primary_metric
    parent = mlflow.active_run()
    experiment = parent.info.experiment_id if parent is not None else None

    def objective(trial: Any) -> float:
        params = {k: _suggest(trial, k, space, spec.model.family) for k, space in search.params.items()}

        def report(fold: int, value: float, running: float) -> None:
            mlflow.log_metric(f"cv_{metric}", value, step=fold)
            trial.report(running, fold)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {fold}")

        # (the parent's experiment: a nested run otherwise lands in the default one)
        with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True, experiment_id=experiment):
            mlflow.set_tag("mlops.search_trial", str(trial.number))
            mlflow.log_params({f"param.{k}": v for k, v in params.items()})
            try:
                scores = cv_scores(spec, X, y, numeric, categorical, positive, params, splits, report)
            except NotFinite as err:
                mlflow.set_tag("mlops.search_state", "PRUNED")
                raise optuna.TrialPruned(str(err)) from None
            except optuna.TrialPruned:
                mlflow.set_tag("mlops.search_state", "PRUNED")
                raise
            mean = sum(scores) / len(scores)
            mlflow.log_metric(f"cv_mean_{metric}", mean)
            mlflow.set_tag("mlops.search_state", "COMPLETE")
        return mean

    return objective
