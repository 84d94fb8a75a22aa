"""A code-trained family (``register_framework``): LightGBM's native Booster API, the example in
``include/examples/frameworks``, through the same path as every family: parse-time bounds, the
usual pipeline, skops (no pickle), the gate, registration, deployment, scoring, and its own MLflow
flavor beside it. Loading never lets the artifact choose the code that runs."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import pytest

from mlops_core import lifecycle, rollout, scoring
from mlops_core.base import settings
from mlops_core.data import storage
from mlops_core.model import training
from mlops_core.runs import run_artifacts, tracking
from mlops_core.spec import SpecError, estimators
from tests.helpers import REPO, example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.unit

DS = "2026-01-31"


@pytest.fixture
def booster() -> Iterator[None]:
    """The example family registered for one test; the allow-list restored afterwards."""
    saved = dict(estimators._REGISTRY)
    sys.path.insert(0, str(REPO / "include" / "examples" / "frameworks"))
    import lightgbm_booster

    lightgbm_booster.register()
    yield
    estimators._REGISTRY.clear()
    estimators._REGISTRY.update(saved)
    sys.path.remove(str(REPO / "include" / "examples" / "frameworks"))


def spec_with(**model: Any) -> Any:
    return example_spec(
        name="native_gbm",
        model={"family": "lightgbm_booster", "params": {"rounds": 40, "num_leaves": 7}, "seed": 5, **model},
        evaluation={"primary_metric": "roc_auc", "floors": {"roc_auc": 0.9}},
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"rounds": 10**6}, "rounds: 1000000 is outside 1..5000"),
        ({"rounds": 2.5}, "rounds: 2.5 must be a whole number"),
        ({"n_estimators": 10}, "['n_estimators'] not allowed for family 'lightgbm_booster'"),
        ({"learning_rate": "fast"}, "learning_rate: 'fast' must be a finite number"),
    ],
)
def test_the_yaml_names_the_family_and_its_params_stay_within_their_bounds(
    booster: None, params: dict[str, Any], message: str
) -> None:
    assert "lightgbm_booster" in estimators.families()
    with pytest.raises(SpecError) as err:
        spec_with(params=params)
    assert message in str(err.value)


def test_a_framework_model_goes_through_the_whole_lifecycle_saved_without_pickle(
    booster: None, landing: str
) -> None:
    import mlflow
    import yaml

    spec = spec_with()
    raw = lifecycle.ingest(spec, DS, settings.lake_root())
    trained = training.train(spec, raw["uri"], settings.lake_root(), DS, {"airflow.run_id": "f1"})
    local = mlflow.artifacts.download_artifacts(trained.model_uri)
    flavor = yaml.safe_load(open(f"{local}/MLmodel"))["flavors"]["sklearn"]
    assert flavor["serialization_format"] == "skops"
    assert "mlops_core.model.framework_model.FrameworkClassifier" in flavor["skops_trusted_types"]

    model = run_artifacts.load_trained(
        trained.model_uri, trained.run_id
    )  # skops, the types the package allows
    adapter = model.named_steps["model"]
    assert type(adapter.native()).__name__ == "Booster" and adapter.model_bytes_.startswith(b"tree")

    evaluated = lifecycle.evaluate(spec, trained.to_dict(), settings.lake_root(), DS)
    assert evaluated["challenger"]["roc_auc"] > 0.95
    decision = lifecycle.gate(spec, evaluated, trained.run_id)
    assert decision.outcome == "promote", decision.reasons
    version = lifecycle.register(spec, trained.to_dict(), decision.to_dict(), "dag/run-1", {})
    rollout.deploy(spec, version["version"])
    scored = scoring.batch_score(spec, raw["uri"], settings.lake_root(), DS)
    predictions = storage.read_frame(scored["uri"])
    assert set(predictions["prediction"]) <= {"malignant", "benign"} and len(predictions) == raw["rows"]

    # the native model, logged with its own flavor, agrees with the served pipeline
    tags = tracking.configure().get_run(trained.run_id).data.tags
    native = mlflow.lightgbm.load_model(tags["mlops.native_model_uri"])
    hold = storage.read_frame(trained.holdout_uri)
    X = model.named_steps["preprocess"].transform(hold[trained.numeric + trained.categorical])
    assert (native.predict(X) == model.predict_proba(hold)[:, 1]).all()
    assert "lightgbm==" in " ".join(training.pip_requirements(spec))


def test_a_loaded_model_calls_only_the_code_registered_under_its_family_name(
    booster: None, landing: str
) -> None:
    """The artifact holds the family's *name*: a process without that family refuses the model
    rather than importing anything the artifact could name."""
    spec = spec_with()
    raw = lifecycle.ingest(spec, DS, settings.lake_root())
    trained = training.train(spec, raw["uri"], settings.lake_root(), DS, {"airflow.run_id": "f2"})
    model = run_artifacts.load_trained(trained.model_uri, trained.run_id)
    adapter = model.named_steps["model"]
    assert set(vars(adapter)) == {"family", "params", "seed", "classes_", "model_bytes_", "n_features_in_"}
    from mlops_core.model import framework_model

    framework_model._NATIVE.clear()
    estimators._REGISTRY.pop("lightgbm_booster")
    hold = storage.read_frame(trained.holdout_uri)
    with pytest.raises(ValueError, match="'lightgbm_booster' is not in the allow-list"):
        model.predict(hold)


def test_the_same_seed_trains_the_same_booster(booster: None, landing: str) -> None:
    spec = spec_with()
    raw = lifecycle.ingest(spec, DS, settings.lake_root())
    frame = storage.read_frame(raw["uri"])
    train_df, _, numeric, categorical, _ = training._prepare(spec, frame)
    fits = [
        training.build_pipeline(spec, numeric, categorical).fit(
            train_df[numeric + categorical], train_df[spec.target]
        )
        for _ in range(2)
    ]
    assert fits[0].named_steps["model"].model_bytes_ == fits[1].named_steps["model"].model_bytes_
