"""``model.search.tuner: platform``: the search space in each tuning service's terms, what a trial
accepts from the service, a trial as the container runs it (a real ``python -m mlops_core.model.tuning``
process), the worker's choice of the best trial, and the challenger trained with it."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import pytest

from mlops_core import lifecycle
from mlops_core.base import settings
from mlops_core.clouds.aws import tuning as aws_tuning
from mlops_core.clouds.azure import tuning as azure_tuning
from mlops_core.clouds.gcp import tuning as gcp_tuning
from mlops_core.data import filesystems, storage
from mlops_core.model import remote, training, tuning
from mlops_core.runs import run_artifacts, tracking
from mlops_core.spec import SpecError
from tests.helpers import example_spec

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.unit

DS = "2026-01-31"
SPACE = {
    "n_estimators": {"low": 5, "high": 60},
    "min_samples_leaf": {"low": 1, "high": 40, "log": True},
    "max_features": {"choices": ["sqrt", None]},
}


def platform_spec(space: dict[str, Any] | None = None, family: str = "random_forest", **search: Any) -> Any:
    return example_spec(
        model={
            "family": family,
            "params": {"n_jobs": 1} if family == "random_forest" else {},
            "seed": 3,
            "search": {"params": space or SPACE, "tuner": "platform", "trials": 6, **search},
        },
        training={"backend": "sagemaker"},
    )


# -- the space in each platform's terms


def test_sagemaker_ranges() -> None:
    assert aws_tuning.sagemaker_ranges(platform_spec()) == {
        "IntegerParameterRanges": [
            {"Name": "n_estimators", "MinValue": "5", "MaxValue": "60", "ScalingType": "Linear"},
            {"Name": "min_samples_leaf", "MinValue": "1", "MaxValue": "40", "ScalingType": "Logarithmic"},
        ],
        "CategoricalParameterRanges": [{"Name": "max_features", "Values": ["sqrt", "null"]}],
    }
    floats = platform_spec({"C": {"low": 0.01, "high": 10, "log": True}}, family="linear")
    assert aws_tuning.sagemaker_ranges(floats) == {
        "ContinuousParameterRanges": [
            {"Name": "C", "MinValue": "0.01", "MaxValue": "10.0", "ScalingType": "Logarithmic"}
        ]
    }


def test_vertex_parameters_use_int64_strings_for_whole_numbers() -> None:
    assert gcp_tuning.vertex_parameters(platform_spec()) == [
        {
            "parameterId": "n_estimators",
            "integerValueSpec": {"minValue": "5", "maxValue": "60"},
            "scaleType": "UNIT_LINEAR_SCALE",
        },
        {
            "parameterId": "min_samples_leaf",
            "integerValueSpec": {"minValue": "1", "maxValue": "40"},
            "scaleType": "UNIT_LOG_SCALE",
        },
        {"parameterId": "max_features", "categoricalValueSpec": {"values": ["sqrt", "null"]}},
    ]


def test_azure_search_space_takes_natural_logs_of_log_bounds() -> None:
    space = azure_tuning.azure_search_space(platform_spec())
    assert space["n_estimators"] == ["quniform", [5.0, 60.0, 1]]
    assert space["min_samples_leaf"][0] == "qloguniform"
    assert space["min_samples_leaf"][1] == [pytest.approx(0.0), pytest.approx(3.6888794), 1]
    assert space["max_features"] == ["choice", [["sqrt", "null"]]]
    floats = platform_spec({"C": {"low": 0.01, "high": 10}}, family="linear")
    assert azure_tuning.azure_search_space(floats) == {"C": ["uniform", [0.01, 10.0]]}


# -- what a trial accepts


def test_decode_types_each_value_and_ignores_what_is_not_searched() -> None:
    spec = platform_spec()
    raw = {
        "n_estimators": "57.0",
        "min_samples_leaf": "3",
        "max_features": "null",
        "_tuning_objective_metric": "x",
    }
    assert tuning.decode(spec, raw) == {"n_estimators": 57, "min_samples_leaf": 3, "max_features": None}
    assert tuning.decode(spec, {**raw, "max_features": '"sqrt"'})["max_features"] == "sqrt"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_estimators": "61"}, r"n_estimators=61 is outside its range \[5.0, 60.0\]"),
        ({"n_estimators": "nan"}, "outside its range"),
        ({"n_estimators": "__import__('os')"}, "is not a number"),
        ({"max_features": "auto"}, r"max_features='auto' is not one of the choices"),
        ({"min_samples_leaf": None}, "is not a number"),
    ],
)
def test_decode_refuses_values_outside_the_space(change: dict[str, Any], message: str) -> None:
    raw = {"n_estimators": "10", "min_samples_leaf": "2", "max_features": "sqrt", **change}
    with pytest.raises(tuning.TrialInputError, match=message):
        tuning.decode(platform_spec(), raw)


def test_decode_refuses_a_missing_value() -> None:
    with pytest.raises(tuning.TrialInputError, match="passed no value for 'max_features'"):
        tuning.decode(platform_spec(), {"n_estimators": "10", "min_samples_leaf": "2"})


def test_argv_values_read_both_spellings() -> None:
    assert tuning.argv_values(["--a=1", "--b", "x y"]) == {"a": "1", "b": "x y"}
    with pytest.raises(tuning.TrialInputError, match="expected --name=value"):
        tuning.argv_values(["a=1"])


# -- the spec


def test_platform_tuner_needs_a_remote_training_backend() -> None:
    with pytest.raises(SpecError, match="training.backend in_worker has none"):
        example_spec(
            model={"family": "random_forest", "params": {}, "search": {"params": SPACE, "tuner": "platform"}},
            training={"backend": "in_worker"},
        )


def test_parallel_trials_never_exceed_trials() -> None:
    with pytest.raises(SpecError, match=r"parallel_trials \(4\) cannot exceed trials \(3\)"):
        platform_spec(trials=3, parallel_trials=4)
    assert platform_spec(trials=1).model.search.concurrent == 1  # the default 2, capped


def test_a_platform_search_is_not_bounded_by_the_training_timeout() -> None:
    # the trials run in their own jobs: only a local search shares the training job's time
    spec = platform_spec(timeout_minutes=300)
    assert spec.model.search.timeout_minutes > spec.training.timeout_minutes - 200


# -- a trial, as the container runs it


@pytest.fixture
def job(landing: str) -> remote.JobRequest:
    spec = platform_spec()
    raw_uri = lifecycle.ingest(spec, DS, settings.lake_root())["uri"]
    version = storage.read_manifest(raw_uri).version
    return remote.prepare(
        spec, raw_uri, settings.lake_root(), DS, {}, 1, env={}, run_key="d/r", kind="hpo", raw_version=version
    )


def _trial(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k not in ("CLOUD_ML_TRIAL_ID", "TRAINING_JOB_NAME", "AZUREML_RUN_ID")
    }
    return subprocess.run(
        [sys.executable, "-m", "mlops_core.model.tuning", *args],
        env={**clean, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_trials_report_to_their_platform_and_the_best_trains_the_challenger(
    job: remote.JobRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    spec = remote.job_spec(job.folder)
    assert "-hpo-" in job.name and job.raw_version is not None
    # Vertex AI: values appended as --k=v, the metric in cloudml-hypertune's file
    metrics = tmp_path / "hypertune" / "output.metrics"
    vertex = _trial(
        ["trial", job.folder, "--n_estimators=8", "--min_samples_leaf=30", "--max_features=sqrt"],
        {"CLOUD_ML_TRIAL_ID": "1", "CLOUD_ML_HP_METRIC_FILE": str(metrics)},
        tmp_path,
    )
    assert vertex.returncode == 0, vertex.stderr
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [(m["trial"], m["global_step"]) for m in lines] == [("1", "0"), ("1", "1"), ("1", "2")]
    # SageMaker: `train`, the folder from the environment, the values from hyperparameters.json,
    # the metric from the log line its MetricDefinitions regex reads
    config = tmp_path / "config"
    config.mkdir()
    (config / "hyperparameters.json").write_text(
        json.dumps(
            {
                "n_estimators": "60",
                "min_samples_leaf": "1",
                "max_features": "null",
                "_tuning_objective_metric": "cv_score",
            }
        )
    )
    monkeypatch.setenv("MLOPS_JOB_FOLDER", job.folder)
    monkeypatch.setenv("SM_INPUT_CONFIG_DIR", str(config))
    monkeypatch.setenv("TRAINING_JOB_NAME", "hpo-x-002-ab")
    capsys.readouterr()
    assert tuning.main(["train"]) == 0  # in this process (the image's entry point: the emulator tier)
    values = [float(v) for v in re.findall(tuning.METRIC_REGEX, capsys.readouterr().out)]
    assert len(values) == 3 and all(0.5 < v <= 1.0 for v in values)
    monkeypatch.delenv("TRAINING_JOB_NAME")

    found = tuning.collect(spec, job.folder)
    assert {t["trial"] for t in found["trials"]} == {"1", "hpo-x-002-ab"}
    best = max(found["trials"], key=lambda t: t["value"])
    assert found["best_trial"] == best["trial"] and found["best_value"] == pytest.approx(
        values[-1] if best["trial"] != "1" else best["value"]
    )
    # the trials saw the training rows only: as many as train() fits on, never the holdout
    X, *_ = training.training_rows(spec, job.raw_uri, version=job.raw_version)
    record = json.loads(filesystems.filesystem(job.folder)[0].cat_file(f"{job.folder}/trials/1.json"))
    assert record["n_rows"] == len(X)

    searched = {**found, "backend": "sagemaker", "tuning_job": "hpo-x", "raw_version": job.raw_version}
    trained = training.train(
        spec, job.raw_uri, settings.lake_root(), DS, {"airflow.run_id": "p1"}, searched=searched
    )
    assert trained.n_train == len(X)
    model = run_artifacts.load_trained(trained.model_uri, trained.run_id).named_steps["model"]
    for key, value in found["best_params"].items():
        assert getattr(model, key) == value, key
    client = tracking.configure()
    run = client.get_run(trained.run_id)
    assert run.data.tags["mlops.search_tuner"] == "sagemaker"
    assert run.data.tags["mlops.search_tuning_job"] == "hpo-x"
    assert run.data.metrics["search_best_cv_roc_auc"] == pytest.approx(found["best_value"])
    children = client.search_runs([trained.experiment_id], f"tags.mlflow.parentRunId = '{trained.run_id}'")
    assert sorted(c.data.tags["mlops.search_trial"] for c in children) == ["1", "hpo-x-002-ab"]

    # a partition rewritten since the search: its params were chosen on other rows
    with pytest.raises(training.TrainingDataError, match="the search ran on version"):
        training.train(
            spec, job.raw_uri, settings.lake_root(), DS, {}, searched={**searched, "raw_version": 999}
        )


def test_a_trial_refuses_values_outside_the_space_and_writes_nothing(job: remote.JobRequest) -> None:
    args = ["trial", job.folder, "--n_estimators=5000", "--min_samples_leaf=1", "--max_features=sqrt"]
    with pytest.raises(tuning.TrialInputError, match="n_estimators=5000 is outside its range"):
        tuning.main(args)
    fs, base = filesystems.filesystem(job.folder)
    assert not fs.exists(f"{base}/trials")


# -- the worker's choice


def _records(folder: str, *records: dict[str, Any]) -> None:
    fs, base = filesystems.filesystem(folder)
    fs.makedirs(f"{base}/trials", exist_ok=True)
    for r in records:
        fs.pipe(f"{base}/trials/{r['trial']}.json", json.dumps(r).encode())


def test_collect_minimises_an_error_metric_and_skips_records_outside_the_space(tmp_path: Path) -> None:
    spec = example_spec(
        "diabetes",
        model={
            "family": "random_forest",
            "params": {},
            "search": {"params": {"n_estimators": {"low": 5, "high": 60}}, "tuner": "platform"},
        },
        training={"backend": "vertex"},
    )
    folder = str(tmp_path / "job")
    _records(
        folder,
        {"trial": "a", "state": "COMPLETE", "value": 50.0, "params": {"n_estimators": 10}, "folds": [50.0]},
        {"trial": "b", "state": "COMPLETE", "value": 40.0, "params": {"n_estimators": 20}, "folds": [40.0]},
        {
            "trial": "c",
            "state": "COMPLETE",
            "value": 1.0,
            "params": {"n_estimators": 4000},
            "folds": [1.0],
        },  # tampered
        {"trial": "d", "state": "FAILED", "value": None, "params": {"n_estimators": 30}, "folds": []},
    )
    found = tuning.collect(spec, folder)
    assert spec.evaluation.primary_metric == "rmse"
    assert (found["best_trial"], found["best_params"], found["best_value"]) == (
        "b",
        {"n_estimators": 20},
        40.0,
    )
    assert sorted(t["trial"] for t in found["trials"]) == ["a", "b", "d"]


def test_collect_without_a_complete_trial_says_where_it_looked(tmp_path: Path) -> None:
    spec = platform_spec()
    with pytest.raises(
        tuning.NoTrialResult, match=r"none of its trials wrote a complete result .*\(0 record"
    ):
        tuning.collect(spec, str(tmp_path / "job"))


def test_tuning_job_names_fit_sagemaker() -> None:
    name = tuning.tuning_job_name(remote.job_name("a" * 60, DS, 3, "dag/run", kind="hpo"))
    assert re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}", name)
    assert name != tuning.tuning_job_name(remote.job_name("a" * 60, DS, 4, "dag/run", kind="hpo"))


def test_the_training_dag_searches_between_validate_and_train_only_on_the_platform() -> None:
    from mlops_airflow.builder import build_training_dag

    dag = build_training_dag(platform_spec())
    search, train = dag.get_task("search"), dag.get_task("train")
    assert search.upstream_task_ids == {"validate", "ingest"}
    assert "search" in train.upstream_task_ids
    assert train.search is not None  # the search task's XCom
    local = example_spec(
        model={"family": "random_forest", "params": {}, "search": {"params": SPACE}},
        training={"backend": "auto"},
    )
    assert "search" not in build_training_dag(local).task_ids
