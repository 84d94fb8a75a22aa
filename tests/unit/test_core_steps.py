"""Validation, training, registry and smoke test on the real libraries (no Airflow)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_core import datasets, lifecycle, registry, settings, storage, training, validation
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
    assert (
        "<html" in html.lower()
        and "expect_column_values_to_be_between" in html.replace(" ", "_").lower()
        or "mean_radius" in html
    )


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
    lifecycle.deploy(spec, v1["version"])
    t2, e2, v2 = _train_and_register(spec, raw_uri, "dag/b")
    dep = lifecycle.deploy(spec, v2["version"])
    assert registry.alias_version(spec.name, registry.CHAMPION) == v2["version"]
    # offline predictions that the served model cannot reproduce
    flipped = storage.read_frame(e2["predictions_uri"], name="predictions")
    flipped["prediction"] = np.where(flipped["prediction"] == "malignant", "benign", "malignant")
    wrong = storage.write_partition(
        {"predictions": flipped}, settings.lake_root(), spec.name, "evaluation_bad", DS
    )
    with pytest.raises(SmokeTestFailed, match=f"rolled back to v{v1['version']}"):
        lifecycle.smoke_test(spec, dep, t2["holdout_uri"], wrong.uri)
    assert registry.alias_version(spec.name, registry.CHAMPION) == v1["version"]
    assert registry.client().get_model_version(spec.name, v2["version"]).tags["mlops.rolled_back"] == "true"


def test_smoke_test_passes_on_the_real_predictions(spec, raw_uri):
    t1, e1, v1 = _train_and_register(spec, raw_uri, "dag/a")
    dep = lifecycle.deploy(spec, v1["version"])
    result = lifecycle.smoke_test(spec, dep, t1["holdout_uri"], e1["predictions_uri"])
    assert result["passed"] and result["rows"] == spec.deployment.smoke_rows and result["mismatches"] == 0
