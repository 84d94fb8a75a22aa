"""Validation, training, registry and smoke test on the real libraries (no Airflow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_core import lifecycle, rollout, scoring
from mlops_core.base import settings
from mlops_core.data import storage, validation
from mlops_core.model import training
from mlops_core.runs import registry, run_artifacts
from mlops_dev import datasets
from tests.helpers import example_spec

pytestmark = pytest.mark.unit

DS = "2026-01-31"


@pytest.fixture
def spec():
    return example_spec()


@pytest.fixture
def raw_uri(landing, spec):
    return lifecycle.ingest(spec, DS, settings.lake_root())["uri"]


def test_validation_passes_and_saves_json_and_html(spec, raw_uri, local_dir):
    report = validation.validate_partition(spec, raw_uri, settings.lake_root(), DS)
    assert report.success and report.evaluated == len(spec.expectations) + 2  # + target exists / not null
    html = storage.read_file(report.html_uri).decode()
    assert "<html" in html.lower() and "expect_column_values_to_be_between" in html and "mean_radius" in html


def test_validation_failure_lists_each_failed_expectation(spec, local_dir):
    bad = datasets.load_example("breast_cancer")
    bad.loc[:9, "mean_radius"] = -1.0
    bad.loc[:2, "diagnosis"] = "unknown"
    m = storage.write_partition({"data": bad}, settings.lake_root(), spec.name, "raw", DS)
    with pytest.raises(validation.DataValidationFailed) as info:
        validation.validate_partition(spec, m.uri, settings.lake_root(), DS)
    msg = str(info.value)
    assert "FAILED expect_column_values_to_be_between(column='mean_radius'" in msg
    assert "10 unexpected value(s)" in msg and "e.g. [-1.0" in msg
    assert "FAILED expect_column_values_to_be_in_set(column='diagnosis'" in msg and "'unknown'" in msg
    # the full report is saved even though the step failed
    saved = storage.read_manifest(f"{settings.lake_root()}/{spec.name}/validation/ds={DS}")
    assert saved.extra["success"] is False and {f.name for f in saved.files} == {"result.json", "result.html"}


def test_missing_target_column_fails_validation(spec, local_dir):
    frame = datasets.load_example("breast_cancer").drop(columns=["diagnosis"])
    m = storage.write_partition({"data": frame}, settings.lake_root(), spec.name, "raw", DS)
    with pytest.raises(
        validation.DataValidationFailed,
        match="expect_column_to_exist\\(column='diagnosis'\\): observed column missing",
    ):
        validation.validate_partition(spec, m.uri, settings.lake_root(), DS)


def test_preprocessing_handles_missing_and_categorical_and_is_deterministic(spec):
    frame = datasets.load_example("breast_cancer")
    frame.loc[::7, "mean_texture"] = np.nan
    frame["site"] = np.where(frame.index % 3 == 0, "north", None)
    train_a, hold, num, cat, pos = training._prepare(spec, frame)
    assert "site" in cat and "record_id" not in num + cat and "event_date" not in num + cat
    assert pos == "malignant"
    fits = [
        training.build_pipeline(spec, num, cat).fit(train_a[num + cat], train_a[spec.target])
        for _ in range(2)
    ]
    p = [f.predict_proba(hold[num + cat]) for f in fits]
    np.testing.assert_array_equal(p[0], p[1])


def test_binary_labels_need_positive_class():
    spec = example_spec(positive_class=None)
    with pytest.raises(training.TrainingDataError, match="set positive_class"):
        training.positive_label(spec, pd.Series(["malignant", "benign"]))


def test_single_class_target_is_a_clear_error(spec):
    frame = datasets.load_example("breast_cancer")
    frame["diagnosis"] = "benign"
    with pytest.raises(training.TrainingDataError, match="single class"):
        training._prepare(spec, frame)


def _train_and_register(spec, raw_uri, run_key):
    trained = training.train(spec, raw_uri, settings.lake_root(), DS, {"airflow.run_id": run_key}).to_dict()
    evaluated = lifecycle.evaluate(spec, trained, settings.lake_root(), DS)
    decision = lifecycle.gate(
        spec, evaluated, trained["run_id"], force=True, forced_by="test", force_reason="unit test"
    )
    return trained, evaluated, lifecycle.register(spec, trained, decision.to_dict(), run_key, {})


def test_register_is_idempotent_per_airflow_run(spec, raw_uri):
    trained, _, first = _train_and_register(spec, raw_uri, "dag/run-1")
    again = lifecycle.register(spec, trained, {"outcome": "forced", "reasons": ["x"]}, "dag/run-1", {})
    assert first["created"] and not again["created"] and again["version"] == first["version"]
    other = lifecycle.register(spec, trained, {"outcome": "forced", "reasons": ["x"]}, "dag/run-2", {})
    assert other["version"] != first["version"]
    assert registry.alias_version(spec.name, registry.CHALLENGER) == other["version"]


def test_a_new_version_gets_its_tags_in_its_create_call_and_a_retry_sets_them_again(
    spec, raw_uri, monkeypatch
):
    """On a tracking server a tag set alone is a request (two: MLflow's client reads the model
    first), so the tags ride on the version's create call; a retried registration re-sets them."""
    from mlflow import MlflowClient

    trained, _, _ = _train_and_register(spec, raw_uri, "dag/a")
    sets: list[str] = []
    real = MlflowClient.set_model_version_tag

    def counted(self, name, version, key, value):
        sets.append(key)
        return real(self, name, version, key, value)

    monkeypatch.setattr(MlflowClient, "set_model_version_tag", counted)
    tags = {"mlops.pipeline": spec.name, "team": "risk"}
    name = spec.registered_model_name
    version, created = registry.register(name, trained["model_uri"], trained["run_id"], "dag/b", tags)
    assert created and sets == []
    assert tags.items() <= registry.client().get_model_version(name, version).tags.items()
    again, created = registry.register(name, trained["model_uri"], trained["run_id"], "dag/b", tags)
    assert (again, created) == (version, False) and sorted(sets) == sorted(tags)


def test_promote_restore_and_idempotent_deploy(spec, raw_uri):
    _, _, v1 = _train_and_register(spec, raw_uri, "dag/a")
    _, _, v2 = _train_and_register(spec, raw_uri, "dag/b")
    assert registry.promote(spec.name, v1["version"]) is None
    assert registry.promote(spec.name, v2["version"]) == v1["version"]
    # a retried deploy of the same version moves nothing
    assert registry.promote(spec.name, v2["version"]) == v1["version"]
    assert registry.alias_version(spec.name, registry.PREVIOUS) == v1["version"]
    registry.restore(spec.name, v2["version"], v1["version"])
    assert registry.alias_version(spec.name, registry.CHAMPION) == v1["version"]


def test_smoke_test_failure_rolls_back_to_previous_champion(spec, raw_uri):
    from mlops_core.deploy import SmokeTestFailed

    t1, e1, v1 = _train_and_register(spec, raw_uri, "dag/a")
    rollout.deploy(spec, v1["version"])
    t2, e2, v2 = _train_and_register(spec, raw_uri, "dag/b")
    dep = rollout.deploy(spec, v2["version"])
    assert registry.alias_version(spec.name, registry.CHAMPION) == v2["version"]
    # offline predictions that the served model cannot reproduce
    flipped = storage.read_frame(e2["predictions_uri"], name="predictions")
    flipped["prediction"] = np.where(flipped["prediction"] == "malignant", "benign", "malignant")
    wrong = storage.write_partition(
        {"predictions": flipped}, settings.lake_root(), spec.name, "evaluation_bad", DS
    )
    with pytest.raises(SmokeTestFailed, match=f"rolled back to v{v1['version']}"):
        rollout.smoke_test(spec, dep, t2["holdout_uri"], wrong.uri)
    assert registry.alias_version(spec.name, registry.CHAMPION) == v1["version"]
    assert registry.client().get_model_version(spec.name, v2["version"]).tags["mlops.rolled_back"] == "true"


def test_smoke_test_passes_on_the_real_predictions(spec, raw_uri):
    t1, e1, v1 = _train_and_register(spec, raw_uri, "dag/a")
    dep = rollout.deploy(spec, v1["version"])
    result = rollout.smoke_test(spec, dep, t1["holdout_uri"], e1["predictions_uri"])
    assert result["passed"] and result["rows"] == spec.deployment.smoke_rows and result["mismatches"] == 0


class _FlakyTarget:
    """A deployment target whose rollback fails ``failures`` times before it works."""

    name = "local"

    def __init__(self, failures):
        self.failures, self.calls = failures, 0

    def rollback(self, spec, deployment):
        self.calls += 1
        if self.calls <= self.failures:
            raise ConnectionError("endpoint API unreachable")


def _dep(spec):
    from mlops_core.deploy import Deployment

    return Deployment("local", spec.name, "2", "1", f"models:/{spec.name}@champion").to_dict()


def test_failed_rollback_is_retried(spec, local_dir, monkeypatch):
    monkeypatch.setattr(rollout, "ROLLBACK_BACKOFF_SECONDS", 0.01)
    flaky = _FlakyTarget(failures=2)
    rollout.rollback(spec, _dep(spec), flaky)
    assert flaky.calls == 3


def test_rollback_that_keeps_failing_says_what_state_is_left(spec, local_dir, monkeypatch):
    monkeypatch.setattr(rollout, "ROLLBACK_BACKOFF_SECONDS", 0.01)
    broken = _FlakyTarget(failures=99)
    with pytest.raises(rollout.RollbackFailed) as info:
        rollout.rollback(spec, _dep(spec), broken)
    assert broken.calls == rollout.ROLLBACK_ATTEMPTS
    msg = str(info.value)
    assert "ROLLBACK FAILED after 4 attempts" in msg and "may still serve the failed" in msg
    assert "alias champion points at" in msg and "It should be v1" in msg and "clear this task" in msg


def test_deploy_refuses_a_rejected_version_and_a_moved_champion(spec, raw_uri):
    t1, e1, v1 = _train_and_register(spec, raw_uri, "dag/a")
    trained = training.train(spec, raw_uri, settings.lake_root(), DS, {}).to_dict()
    evaluated = lifecycle.evaluate(spec, trained, settings.lake_root(), DS)
    evaluated["challenger"] = {**evaluated["challenger"], "roc_auc": 0.5}  # below the floor
    rejected = lifecycle.gate(spec, evaluated, trained["run_id"]).to_dict()
    v_rej = lifecycle.register(spec, trained, rejected, "dag/rej", {})
    with pytest.raises(registry.DecisionRefused, match="gate decision is 'reject'"):
        rollout.deploy(spec, v_rej["version"])
    # v2 was evaluated with no champion; once v1 is champion, v2 may not replace it blindly
    _, _, v2 = _train_and_register(spec, raw_uri, "dag/b")
    rollout.deploy(spec, v1["version"])
    with pytest.raises(registry.ChampionMoved, match="nothing was deployed"):
        rollout.deploy(spec, v2["version"])
    assert registry.alias_version(spec.name, registry.CHAMPION) == v1["version"]


def test_promote_compare_and_swap(spec, raw_uri, monkeypatch):
    _, _, v1 = _train_and_register(spec, raw_uri, "dag/a")
    _, _, v2 = _train_and_register(spec, raw_uri, "dag/b")
    start = registry.alias_version(spec.name, registry.CHAMPION)
    with pytest.raises(registry.ChampionMoved, match="Nothing was changed"):
        registry.promote(spec.name, v2["version"], expected="999")
    assert registry.alias_version(spec.name, registry.CHAMPION) == start
    registry.promote(spec.name, v1["version"], expected=start)
    assert registry.alias_version(spec.name, registry.CHAMPION) == v1["version"]
    # another writer lands between our write and our re-read: it won, we fail and leave it
    real = registry.alias_version
    calls = {"n": 0}

    def racing(name, alias):
        if alias == registry.CHAMPION:
            calls["n"] += 1
            if calls["n"] == 2:  # the re-read after our write
                registry.client().set_registered_model_alias(name, registry.CHAMPION, v1["version"])
        return real(name, alias)

    monkeypatch.setattr(registry, "alias_version", racing)
    with pytest.raises(registry.ChampionMoved, match="it won"):
        registry.promote(spec.name, v2["version"], expected=v1["version"])
    assert real(spec.name, registry.CHAMPION) == v1["version"]


def test_the_deploy_lock_serialises_promotions_and_breaks_stale_locks(spec, raw_uri):
    """Read-compare-write of the champion is one step: a second promotion waits for the holder."""
    _, _, v1 = _train_and_register(spec, raw_uri, "dag/lock")
    start = registry.alias_version(spec.name, registry.CHAMPION)
    with registry.deploy_lock(spec.name, "holder-a"):
        with pytest.raises(registry.ChampionMoved, match="holds .*mlops-deploy-lock"):
            with registry.deploy_lock(spec.name, "holder-b", wait=0.5):
                pass
    # a holder killed with kill -9 leaves its lock: after the TTL the next deploy breaks it
    registry.client().create_registered_model(
        f"{spec.name}.mlops-deploy-lock", tags={"holder": "dead", "expires_at": "0"}
    )
    registry.promote(spec.name, v1["version"], expected=start)
    assert registry.alias_version(spec.name, registry.CHAMPION) == v1["version"]
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException, match="not found|does not exist|RESOURCE_DOES_NOT_EXIST"):
        registry.client().get_registered_model(f"{spec.name}.mlops-deploy-lock")  # released


def _model_dir(name, version):
    """Where the local store keeps a registered version's files (what an attacker with write access edits)."""
    from pathlib import Path
    from urllib.parse import urlparse

    resolved = registry.client().get_model_version_download_uri(name, version)
    assert resolved.startswith(("file:", "/")), resolved
    return Path(urlparse(resolved).path if resolved.startswith("file:") else resolved)


def test_a_tampered_or_pickled_artifact_is_refused_at_load(spec, raw_uri):
    _, _, v = _train_and_register(spec, raw_uri, "dag/tamper")
    version = v["version"]
    registry.promote(spec.name, version)
    assert run_artifacts.load_verified(spec.name, version) is not None  # untouched: loads
    folder = _model_dir(spec.name, version)
    mlmodel = folder / "MLmodel"
    original = mlmodel.read_text()
    # the attacker switches the flavor to pickle (what ran code on load before)
    mlmodel.write_text(original.replace("serialization_format: skops", "serialization_format: cloudpickle"))
    with pytest.raises(run_artifacts.ArtifactRefused, match="changed since training"):
        run_artifacts.load_verified(spec.name, version)
    mlmodel.write_text(original)
    # ... or replaces the model file's bytes
    model_file = next(p for p in folder.rglob("*") if p.is_file() and p.suffix in (".skops", ".pkl"))
    blob = model_file.read_bytes()
    model_file.write_bytes(blob + b"\0")
    with pytest.raises(run_artifacts.ArtifactRefused, match="changed since training"):
        scoring.batch_score(spec, raw_uri, settings.lake_root(), DS)
    model_file.write_bytes(blob)
    assert run_artifacts.load_verified(spec.name, version) is not None


def test_monitoring_compares_against_the_exact_version_the_champion_trained_on(spec, raw_uri):
    """A re-run of the training day rewrites raw/ds=...; the champion's reference does not move."""
    from mlops_core.monitor import monitoring

    _, _, v = _train_and_register(spec, raw_uri, "dag/pinned")
    registry.promote(spec.name, v["version"])
    before = storage.read_frame(raw_uri)
    # the same day ingested again, with other rows (a corrected export)
    other = datasets.load_example("breast_cancer").iloc[:50]
    storage.write_partition({"data": other}, settings.lake_root(), spec.name, "raw", DS)
    assert len(storage.read_frame(raw_uri)) == 50  # readers of the path see the new version
    reference, uri, version = monitoring.read_reference(spec)
    assert uri == raw_uri and version is not None
    pd.testing.assert_frame_equal(reference, before)  # the champion's reference is the old version


def test_training_records_feature_importance_for_weighted_drift(raw_uri):
    from mlops_core.monitor import monitoring

    spec = example_spec(monitoring={"weighting": "importance"})
    trained, _, v = _train_and_register(spec, raw_uri, "dag/importance")
    registry.promote(spec.name, v["version"])
    weights = monitoring.champion_importance(spec)
    assert set(weights) == set(trained["numeric"] + trained["categorical"])
    assert sum(weights.values()) > 0 and all(w >= 0 for w in weights.values())
    # the pinned requirements are written, not inferred by loading the model in a subprocess
    from pathlib import Path

    import mlflow

    text = (Path(mlflow.artifacts.download_artifacts(trained["model_uri"])) / "requirements.txt").read_text()
    assert "scikit-learn==" in text and "skops==" in text


def test_training_records_the_drift_baseline_monitoring_reads(raw_uri):
    """Defaults: the window's own drift by day of ``event_date`` (the partition column), the model's
    output included, read back from the champion; the cooldown clock is the champion's training day."""
    from datetime import date

    from mlops_core.data import drift
    from mlops_core.monitor import monitoring

    spec = example_spec()
    trained, _, v = _train_and_register(spec, raw_uri, "dag/baseline")
    registry.promote(spec.name, v["version"])
    baseline = monitoring.champion_baseline(spec)
    assert baseline is not None and baseline.date_column == "event_date" and baseline.periods >= 4
    assert set(baseline.rates) == {*trained["numeric"], *trained["categorical"], drift.PREDICTION}
    assert 0.0 <= baseline.share_threshold(spec.monitoring.drift_share) <= 1.0
    assert monitoring.last_promotion_ds(spec) == date.fromisoformat(DS)
    off = example_spec(monitoring={"calibration": {"enabled": False}})
    assert monitoring.champion_baseline(off) is None


def test_batch_predictions_carry_a_row_key_and_the_input_version(raw_uri):
    spec = example_spec(features={"id_columns": []})
    _, _, v = _train_and_register(spec, raw_uri, "dag/keys")
    registry.promote(spec.name, v["version"])
    out = storage.read_frame(scoring.batch_score(spec, raw_uri, settings.lake_root(), DS)["uri"])
    again = storage.read_frame(scoring.batch_score(spec, raw_uri, settings.lake_root(), DS)["uri"])
    assert out["row_key"].is_unique and out["row_key"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert out["row_key"].tolist() == again["row_key"].tolist()  # stable across runs
    assert set(out["input_version"]) == {storage.read_manifest(raw_uri).version}


@pytest.mark.parametrize("setting", [0.2, {"optimize": "recall_at_precision", "min_precision": 0.9}])
def test_the_threshold_travels_with_the_model(raw_uri, setting):
    """A fixed or searched threshold is recorded, and the saved model applies it wherever it is loaded."""
    spec = example_spec(evaluation={"threshold": setting})
    trained, evaluated, v = _train_and_register(spec, raw_uri, f"dag/threshold-{type(setting).__name__}")
    run = registry.client().get_run(trained["run_id"])
    chosen = float(run.data.tags["mlops.threshold"])
    # (written out: "assert x == a if c else lo < x < hi" reads as either precedence)
    if isinstance(setting, float):
        assert chosen == setting
    else:
        assert 0.0 < chosen < 1.0  # searched on the training folds; applied below either way
    registry.promote(spec.name, v["version"])
    model = run_artifacts.load_verified(spec.name, v["version"])  # skops round trip keeps it
    hold = storage.read_frame(trained["holdout_uri"])
    X = hold.drop(columns=[spec.target])
    proba = model.predict_proba(X)[:, list(model.classes_).index("malignant")]
    expected = np.where(proba >= chosen, "malignant", "benign")
    assert (model.predict(X) == expected).all()
    # one truth: the evaluation (gate log), the version, the card all show what the model applies
    from mlops_core.model import modelcard

    assert evaluated["threshold"] == chosen and evaluated["positive_class"] == "malignant"
    assert registry.client().get_model_version(spec.name, v["version"]).tags["mlops.threshold"] == str(chosen)
    card = modelcard.build(spec, spec.name, v["version"])
    assert card.metrics["threshold"] == f"{chosen:g} on P(malignant)"
