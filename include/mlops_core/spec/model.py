"""The ``model`` section (the estimator, its params and a hyperparameter search) and ``training``
(where training runs)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from mlops_core.spec.common import Scalar, SpecModel
from mlops_core.spec.estimators import families


class SearchParam(SpecModel):
    """One searched parameter: a range (``low``..``high``, ``log`` for a log scale) or ``choices``.

    Whole-number parameters (``n_estimators``, ``max_depth``...) are searched as integers. Every
    bound and choice must itself be an allowed value of the parameter (estimators.PARAM_BOUNDS).
    """

    low: float | None = Field(None, allow_inf_nan=False)
    high: float | None = Field(None, allow_inf_nan=False)
    log: bool = False
    choices: list[Scalar] | None = Field(None, min_length=2, max_length=20)

    @model_validator(mode="after")
    def _one_kind(self) -> SearchParam:
        ranged = self.low is not None or self.high is not None
        if ranged == (self.choices is not None):
            raise ValueError("give either low and high, or choices")
        if ranged:
            if self.low is None or self.high is None or not self.low < self.high:
                raise ValueError(f"low ({self.low}) must be below high ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError("a log-scale range needs low > 0")
        elif self.log:
            raise ValueError("log applies to a range, not to choices")
        return self


class SearchSpec(SpecModel):
    """A bounded hyperparameter search (Optuna, seeded TPE) on the *training* rows only.

    Each trial is scored by ``cv_folds``-fold cross-validation on the training rows (the holdout
    is split off before and never seen), on ``evaluation.primary_metric``; a trial whose running
    mean falls below the median of earlier trials at the same fold is pruned. The best trial's
    params (over ``model.params``) train the challenger, which goes through the same gate. Cost:
    at most ``trials`` x ``cv_folds`` fits, and never longer than ``timeout_minutes``.

    ``tuner``: ``local`` runs the trials with Optuna inside the training process (the worker, or
    the remote training job); ``platform`` runs each trial as a job of the training backend's own
    tuning service (SageMaker automatic model tuning, Vertex AI hyperparameter tuning, an Azure ML
    sweep), ``parallel_trials`` at a time, in a ``search`` task before ``train``
    (:mod:`mlops_core.model.tuning`). The trials score the same folds of the same training rows either
    way. Platform cost: at most ``trials`` jobs of at most ``timeout_minutes`` each.
    """

    params: dict[str, SearchParam] = Field(min_length=1, max_length=10)
    trials: int = Field(20, ge=1, le=200)
    cv_folds: int = Field(3, ge=2, le=10)
    timeout_minutes: int = Field(30, ge=1, le=24 * 60)
    pruning: bool = True
    tuner: Literal["local", "platform"] = "local"
    parallel_trials: int = Field(2, ge=1, le=20)  # tuner platform: trials at a time

    @model_validator(mode="after")
    def _parallel(self) -> SearchSpec:
        if "parallel_trials" in self.model_fields_set and self.parallel_trials > self.trials:
            raise ValueError(f"parallel_trials ({self.parallel_trials}) cannot exceed trials ({self.trials})")
        return self

    @property
    def concurrent(self) -> int:
        """Trials at a time (the default 2 never above ``trials``)."""
        return min(self.parallel_trials, self.trials)


class ModelSpec(SpecModel):
    """An allow-listed estimator family, its constructor params and the seed."""

    family: str
    params: dict[str, Scalar] = {}
    seed: int = Field(42, ge=0, le=2**31 - 1)
    # Save (and load) the model with cloudpickle when skops cannot: unpickling runs code, so
    # anyone who can write the artifact store could run code on the workers. Off by default.
    allow_pickle: bool = False
    search: SearchSpec | None = None

    @field_validator("family")
    @classmethod
    def _allowed(cls, value: str) -> str:
        if value not in families():
            raise ValueError(
                f"{value!r} is not in the estimator allow-list; choose one of: {', '.join(families())}"
            )
        return value


class TrainingSpec(SpecModel):
    """Where training runs. ``auto``: the cloud profile's backend (``in_worker`` on ``local``).

    Remote backends run the same training code (``python -m mlops_core.model.remote``) as a SageMaker
    training job, a Vertex AI custom job or an Azure ML command job; the model lands in MLflow
    with the same lineage tags either way.
    """

    backend: Literal["auto", "in_worker", "sagemaker", "vertex", "azureml"] = "auto"
    instance_type: str | None = Field(None, max_length=64)  # default: the profile's
    timeout_minutes: int = Field(120, ge=5, le=7 * 24 * 60)
