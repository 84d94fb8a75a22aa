"""The training and batch-scoring DAGs end to end through Airflow's dag.test() (embedded stack).

Each test has its own lake, landing zone and MLflow store (``local_dir``) and its own pipeline
name, so DAG runs and registered models never collide inside the session's Airflow DB.
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime
from typing import Any

import pytest

from mlops_core import lifecycle
from mlops_core.base import settings
from mlops_core.data import storage
from mlops_core.runs import registry, run_artifacts
from mlops_dev import datasets
from tests.helpers import REPO, install_pipeline

pytestmark = pytest.mark.integration

D1 = datetime(2026, 1, 31, tzinfo=UTC)
D2 = datetime(2026, 2, 1, tzinfo=UTC)


def run_with_id(dag, logical_date, conf=None):
    dr = dag.test(logical_date=logical_date, run_conf=conf or {})
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    return str(dr.state), states, dr.run_id


def run(dag, logical_date, conf=None):
    state, states, _ = run_with_id(dag, logical_date, conf)
    return state, states


def git_commit() -> str:
    """What ``mlops.code_version`` must say: this checkout's commit (the tests run from the repo)."""
    out = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short=12", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def assert_lineage(
    name: str,
    version: str,
    *,
    dag_id: str,
    run_id: str,
    logical_date: datetime | None,
    ds: str,
    lake: str,
    gate: str | None,
    evaluated_against: str,
    run_type: str = "manual",
) -> dict[str, str]:
    """Every lineage tag README "What a pipeline becomes" promises, each against the value it must
    have: on the MLflow run (step 3: Airflow run, lake versions, code version, dataset inputs) and on
    the model version (step 6: the same lineage, the run key, the trained run, the model's identity
    and digest, the gate). ``gate=None``: whatever outcome the run's ``gate_decision.json`` holds
    (the tags must agree with it). Also used by the scheduler tier. Returns the version's tags."""
    import mlflow

    client = registry.client()
    mv = client.get_model_version(name, version)
    run = client.get_run(mv.run_id)
    raw = storage.read_manifest(storage.partition_uri(lake, name, "raw", ds))
    hold = storage.read_manifest(storage.partition_uri(lake, name, "holdout", ds))
    airflow = {
        "airflow.dag_id": dag_id,
        "airflow.run_id": run_id,
        "airflow.try_number": "1",
        "airflow.run_type": run_type,
    }
    if logical_date is None:  # an asset-triggered run has none; a date is compared as a datetime below
        airflow["airflow.logical_date"] = ""
    lineage = {
        "mlops.raw_uri": raw.uri,
        "mlops.raw_sha256": raw.sha256,
        "mlops.raw_manifest_version": str(raw.version),
        "mlops.raw_manifest_uri": raw.manifest_uri,
        "mlops.holdout_uri": hold.uri,
        "mlops.holdout_sha256": hold.sha256,
        "mlops.holdout_manifest_version": str(hold.version),
        "mlops.code_version": git_commit(),
        "mlops.ds": ds,
    }
    decision = mlflow.artifacts.load_dict(f"runs:/{run.info.run_id}/gate_decision.json")
    assert gate is None or decision["outcome"] == gate, decision
    gate_tags = {
        "mlops.gate": decision["outcome"],
        "mlops.gate_reasons": " | ".join(decision["reasons"]),
        "mlops.evaluated_against": evaluated_against,
    }
    tags = run.data.tags
    assert {k: tags.get(k) for k in [*airflow, *lineage, *gate_tags]} == {**airflow, **lineage, **gate_tags}
    if logical_date is not None:
        assert datetime.fromisoformat(tags["airflow.logical_date"]) == logical_date
    assert raw.rows > 0 and len(raw.sha256) == 64 and raw.version >= 1
    # both datasets are MLflow dataset inputs: URI, digest, and the lake's sha256 + manifest version
    inputs = {}
    for item in run.inputs.dataset_inputs:
        input_tags = {t.key: t.value for t in item.tags}
        inputs[input_tags["mlflow.data.context"]] = (item.dataset, input_tags)
    assert sorted(inputs) == ["holdout", "training"]
    for context, manifest in (("training", raw), ("holdout", hold)):
        dataset, input_tags = inputs[context]
        assert json.loads(dataset.source)["uri"] == manifest.uri
        assert dataset.digest == manifest.sha256[:16]
        assert (input_tags["sha256"], input_tags["manifest_version"]) == (
            manifest.sha256,
            str(manifest.version),
        )
    # the model version: the same lineage, plus what binds it to this try's model and decision
    (model_output,) = run.outputs.model_outputs
    model_uri = f"models:/{model_output.model_id}"
    identity = {
        registry.RUN_KEY_TAG: f"{dag_id}/{run_id}",
        registry.RUN_ID_TAG: run.info.run_id,
        registry.MODEL_URI_TAG: model_uri,
        registry.MODEL_ID_TAG: model_output.model_id,
        registry.DIGEST_TAG: run_artifacts.artifact_digest(model_uri),
        "mlops.pipeline": name,
    }
    want = {**airflow, **lineage, **gate_tags, **identity}
    assert {k: mv.tags.get(k) for k in want} == want
    if logical_date is not None:
        assert datetime.fromisoformat(mv.tags["airflow.logical_date"]) == logical_date
    return dict(mv.tags)


def training_dag(name):
    from mlops_airflow.builder import build_training_dag

    spec = install_pipeline(name)
    return spec, build_training_dag(spec)


def versions(name):
    return sorted(int(v.version) for v in registry.client().search_model_versions(f"name = '{name}'"))


def test_first_run_promotes_second_run_on_same_data_keeps_champion(airflow_db, landing):
    spec, dag = training_dag("it_twice")
    state, tasks, run_id = run_with_id(dag, D1)
    assert state == "success", tasks
    assert set(tasks.values()) == {"success"}
    assert registry.alias_version(spec.name, registry.CHAMPION) == "1"
    first = lifecycle.latest_decision(spec)
    assert first["outcome"] == "promote" and any("no champion yet" in r for r in first["reasons"])
    lake = settings.lake_root()
    common: dict[str, Any] = {"dag_id": "it_twice_training", "lake": lake}
    tags = assert_lineage(
        spec.name,
        "1",
        run_id=run_id,
        logical_date=D1,
        ds="2026-01-31",
        gate="promote",
        evaluated_against="none",
        **common,
    )
    assert (tags["mlops.smoke_test"], tags["mlops.deployed_to"]) == (
        "passed",
        f"models:/{spec.name}@champion",
    )

    state, tasks, second_run_id = run_with_id(dag, D2)
    assert state == "success", tasks  # a rejection is a normal, green outcome
    assert tasks["gate"] == "success" and tasks["register"] == "success"
    assert {tasks[t] for t in ("deploy", "smoke_test")} == {"skipped"}
    second = lifecycle.latest_decision(spec)
    assert second["outcome"] == "reject"
    assert any(
        "challenger vs champion v1" in r and "NOT met, the champion stays" in r for r in second["reasons"]
    )
    # the rejected challenger is kept (alias challenger) for audit; the champion does not move
    assert versions(spec.name) == [1, 2]
    assert registry.alias_version(spec.name, registry.CHALLENGER) == "2"
    assert registry.alias_version(spec.name, registry.CHAMPION) == "1"
    assert registry.alias_version(spec.name, registry.PREVIOUS) is None
    rejected = assert_lineage(
        spec.name,
        "2",
        run_id=second_run_id,
        logical_date=D2,
        ds="2026-02-01",
        gate="reject",
        evaluated_against="1",
        **common,
    )
    assert "mlops.smoke_test" not in rejected and "mlops.promoted" not in rejected


def test_data_that_breaks_expectations_fails_at_validate_and_registers_nothing(airflow_db, local_dir):
    bad = datasets.load_example("breast_cancer")
    bad.loc[:24, "mean_radius"] = -3.0
    datasets.materialize("breast_cancer", settings.landing_root(), frame=bad)
    spec, dag = training_dag("it_bad_data")
    state, tasks = run(dag, D1)
    assert state == "failed"
    assert tasks["ingest"] == "success" and tasks["validate"] == "failed"
    assert {tasks[t] for t in ("train", "evaluate", "gate", "register", "deploy", "smoke_test")} == {
        "upstream_failed"
    }
    assert registry.client().search_registered_models(f"name = '{spec.name}'") == []
    report = storage.read_manifest(f"{settings.lake_root()}/{spec.name}/validation/ds=2026-01-31")
    assert report.extra["success"] is False


def test_force_promote_with_reason_promotes_and_is_recorded(airflow_db, landing):
    spec, dag = training_dag("it_force")
    assert run(dag, D1)[0] == "success"
    state, tasks = run(dag, D2, {"force_promote": True, "reason": "new labelling policy, reviewed by QA"})
    assert state == "success", tasks
    assert tasks["register"] == "success" and tasks["smoke_test"] == "success"
    assert registry.alias_version(spec.name, registry.CHAMPION) == "2"
    assert registry.alias_version(spec.name, registry.PREVIOUS) == "1"
    tags = registry.client().get_model_version(spec.name, "2").tags
    assert tags["mlops.gate"] == "forced"
    assert tags["mlops.force_reason"] == "new labelling policy, reviewed by QA"
    assert tags["mlops.forced_by"] == "dag_test"  # the triggering user (dag.test's name for itself)


def test_batch_scoring_writes_predictions_with_model_version(airflow_db, landing):
    from mlops_airflow.builder import build_batch_scoring_dag

    spec, dag = training_dag("it_scoring")
    assert run(dag, D1)[0] == "success"
    state, tasks = run(build_batch_scoring_dag(spec), D1)
    assert state == "success", tasks
    preds = storage.read_frame(f"{settings.lake_root()}/{spec.name}/predictions/ds=2026-01-31")
    assert len(preds) > 0 and set(preds["model_version"]) == {"1"}
    assert {"record_id", "prediction", "proba_malignant", "proba_benign"} <= set(preds.columns)
    assert not preds["_unseen_categories"].any()  # every category known to the champion: none flagged


def test_handwritten_dag_reuses_the_operators(airflow_db, local_dir):
    from airflow.dag_processing.dagbag import DagBag

    datasets.materialize("diabetes", settings.landing_root())
    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    dag = DagBag(dag_folder=f"{folder}/example_handwritten_training.py").dags["example_handwritten_diabetes"]
    state, tasks = run(dag, D1)
    assert state == "success", tasks
    assert tasks["report"] == "success"
    assert registry.alias_version("diabetes", registry.CHAMPION) == "1"
