"""``model.search``: seeded Optuna trials on the training rows only, pruned, logged as MLflow child
runs; the best trial's params train the challenger, which goes through the same gate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from mlops_core import lifecycle
from mlops_core.base import settings
from mlops_core.data import storage
from mlops_core.model import search, training
from mlops_core.runs import run_artifacts, tracking
from mlops_core.spec import SpecError
from tests.helpers import example_spec

if TYPE_CHECKING:
    import pandas as pd

pytestmark = pytest.mark.unit

DS = "2026-01-31"
SPACE = {
    "n_estimators": {"low": 5, "high": 60},
    "max_depth": {"choices": [1, 2, 8]},
    "min_samples_leaf": {"low": 1, "high": 40, "log": True},
}


def searched(**search: Any) -> Any:
    return example_spec(
        model={
            "family": "random_forest",
            "params": {"n_jobs": 1},
            "seed": 3,
            "search": {"params": SPACE, **search},
        }
    )


@pytest.fixture
def raw_uri(landing: str) -> str:
    return lifecycle.ingest(example_spec(), DS, settings.lake_root())["uri"]


def test_the_best_trial_trains_the_challenger_and_trials_are_child_runs(
    raw_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = searched(trials=8, cv_folds=3)
    seen: dict[str, Any] = {}
    real = search.run_search

    def spy(spec_: Any, X: Any, y: Any, *args: Any) -> Any:
        seen["rows"] = {tuple(r) for r in X.round(6).itertuples(index=False)}
        seen["result"] = real(spec_, X, y, *args)
        return seen["result"]

    monkeypatch.setattr(search, "run_search", spy)
    trained = training.train(spec, raw_uri, settings.lake_root(), DS, {"airflow.run_id": "s1"})
    result = seen["result"]
    assert len(result.trials) == 8 and result.completed >= 1
    # the holdout is never searched on: no holdout row is among the rows the trials saw
    holdout = storage.read_frame(trained.holdout_uri)[trained.numeric + trained.categorical]
    held = {tuple(r) for r in holdout.round(6).itertuples(index=False)}
    assert held and not (held & seen["rows"])
    assert len(seen["rows"]) == trained.n_train
    # the challenger is the best trial's model
    model = run_artifacts.load_trained(trained.model_uri, trained.run_id).named_steps["model"]
    for key, value in result.best_params.items():
        assert getattr(model, key) == value, key
    client = tracking.configure()
    run = client.get_run(trained.run_id)
    assert run.data.metrics["search_best_cv_roc_auc"] == pytest.approx(result.best_value)
    assert run.data.tags["mlops.search"].startswith("8 trials")
    children = client.search_runs(
        [trained.experiment_id], f"tags.mlflow.parentRunId = '{trained.run_id}'", max_results=100
    )
    assert sorted(int(c.data.tags["mlops.search_trial"]) for c in children) == list(range(8))
    states = {c.data.tags["mlops.search_state"] for c in children}
    assert states <= {"COMPLETE", "PRUNED"}
    complete = [c for c in children if c.data.tags["mlops.search_state"] == "COMPLETE"]
    assert max(c.data.metrics["cv_mean_roc_auc"] for c in complete) == pytest.approx(result.best_value)
    # ... and goes through the same gate as any challenger
    evaluated = lifecycle.evaluate(spec, trained.to_dict(), settings.lake_root(), DS)
    decision = lifecycle.gate(spec, evaluated, trained.run_id)
    assert any("floor roc_auc >= 0.95" in r for r in decision.reasons)  # the same floors judge it
    assert decision.challenger["roc_auc"] == pytest.approx(evaluated["challenger"]["roc_auc"])


def test_the_search_is_seeded_and_prunes_bad_trials(raw_uri: str) -> None:

    spec = searched(trials=12, cv_folds=3)
    frame = storage.read_frame(raw_uri)
    train_df, _, numeric, categorical, pos = training._prepare(spec, frame)
    X: pd.DataFrame = train_df[numeric + categorical]
    y = train_df[spec.target]
    tracking.configure()
    import mlflow

    with mlflow.start_run(experiment_id=tracking.experiment_id(spec.name)):
        first = search.run_search(spec, X, y, numeric, categorical, pos)
    with mlflow.start_run(experiment_id=tracking.experiment_id(spec.name)):
        second = search.run_search(spec, X, y, numeric, categorical, pos)
    assert [t["params"] for t in first.trials] == [t["params"] for t in second.trials]
    assert first.best_params == second.best_params
    assert first.pruned >= 1, first.trials  # stumps (max_depth 1) fall below the median early
    unpruned = searched(trials=4, pruning=False)
    with mlflow.start_run(experiment_id=tracking.experiment_id(spec.name)):
        assert search.run_search(unpruned, X, y, numeric, categorical, pos).pruned == 0


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"n_estimators": {"low": 10, "high": 10**9}}, "n_estimators: 1000000000 is outside 1..5000"),
        ({"n_jobs": {"low": 1, "high": 4}}, "also fixed under model.params"),
        ({"C": {"low": 0.1, "high": 1.0}}, "['C'] not allowed for family 'random_forest'"),
        ({"n_estimators": {"low": 1.5, "high": 10}}, "needs whole low/high"),
        ({"max_features": {"choices": ["sqrt", "os.system"]}}, "'os.system' is not allowed"),
        ({"max_depth": {"low": 5, "high": 2}}, "must be below high"),
        ({"max_depth": {"choices": [2, 4], "low": 1}}, "either low and high, or choices"),
        ({"learning_rate": {"low": 0.0, "high": 1.0, "log": True}}, "needs low > 0"),
    ],
)
def test_a_search_space_outside_the_allow_list_is_refused_at_parse(
    space: dict[str, Any], message: str
) -> None:
    family = "gradient_boosting" if "learning_rate" in space else "random_forest"
    params = {} if family == "gradient_boosting" else {"n_jobs": 1}
    with pytest.raises(SpecError, match=None) as err:
        example_spec(model={"family": family, "params": params, "search": {"params": space}})
    assert message in str(err.value)


def test_search_bounds_on_cost() -> None:
    for bad in (
        {"trials": 0},
        {"trials": 201},
        {"cv_folds": 1},
        {"cv_folds": 11},
        {"timeout_minutes": 0},
        {"timeout_minutes": 120},
    ):
        with pytest.raises(SpecError):
            searched(**bad)
