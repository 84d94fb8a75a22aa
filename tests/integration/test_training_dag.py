"""The training and batch-scoring DAGs end to end through Airflow's dag.test() (embedded stack).

Each test has its own lake, landing zone and MLflow store (``local_dir``) and its own pipeline
name, so DAG runs and registered models never collide inside the session's Airflow DB.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest

from mlops_core import datasets, lifecycle, registry, settings, storage
from tests.helpers import install_pipeline

pytestmark = pytest.mark.integration

D1 = datetime(2026, 1, 31, tzinfo=UTC)
D2 = datetime(2026, 2, 1, tzinfo=UTC)


def run(dag, logical_date, conf=None):
    dr = dag.test(logical_date=logical_date, run_conf=conf or {})
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    return str(dr.state), states


def training_dag(name):
    from mlops_airflow.builder import build_training_dag

    spec = install_pipeline(name)
    return spec, build_training_dag(spec)


def versions(name):
    return sorted(int(v.version) for v in registry.client().search_model_versions(f"name = '{name}'"))


def test_first_run_promotes_second_run_on_same_data_keeps_champion(airflow_db, landing):
    spec, dag = training_dag("it_twice")
    state, tasks = run(dag, D1)
    assert state == "success", tasks
    assert set(tasks.values()) == {"success"}
    assert registry.alias_version(spec.name, registry.CHAMPION) == "1"
    first = lifecycle.latest_decision(spec)
    assert first["outcome"] == "promote" and any("no champion yet" in r for r in first["reasons"])
    mv = registry.client().get_model_version(spec.name, "1")
    assert mv.tags["airflow.dag_id"] == "it_twice_training" and mv.tags["mlops.smoke_test"] == "passed"
    run_tags = registry.client().get_run(mv.run_id).data.tags
    assert (
        run_tags["airflow.logical_date"].startswith("2026-01-31") and len(run_tags["mlops.raw_sha256"]) == 64
    )

    state, tasks = run(dag, D2)
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
    assert registry.client().get_model_version(spec.name, "2").tags["mlops.gate"] == "reject"


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


def test_force_promote_without_reason_fails_and_leaves_champion(airflow_db, landing):
    spec, dag = training_dag("it_force_noreason")
    assert run(dag, D1)[0] == "success"
    state, tasks = run(dag, D2, {"force_promote": True, "reason": ""})
    assert state == "failed" and tasks["gate"] == "failed"
    assert versions(spec.name) == [1] and registry.alias_version(spec.name, registry.CHAMPION) == "1"


def test_batch_scoring_writes_predictions_with_model_version(airflow_db, landing):
    from mlops_airflow.builder import build_batch_scoring_dag

    spec, dag = training_dag("it_scoring")
    assert run(dag, D1)[0] == "success"
    state, tasks = run(build_batch_scoring_dag(spec), D1)
    assert state == "success", tasks
    preds = storage.read_frame(f"{settings.lake_root()}/{spec.name}/predictions/ds=2026-01-31")
    assert len(preds) > 0 and set(preds["model_version"]) == {"1"}
    assert {"record_id", "prediction", "proba_malignant", "proba_benign"} <= set(preds.columns)


def test_handwritten_dag_reuses_the_operators(airflow_db, local_dir):
    from airflow.dag_processing.dagbag import DagBag

    datasets.materialize("diabetes", settings.landing_root())
    folder = os.environ["AIRFLOW__CORE__DAGS_FOLDER"]
    dag = DagBag(dag_folder=f"{folder}/example_handwritten_training.py").dags["example_handwritten_diabetes"]
    state, tasks = run(dag, D1)
    assert state == "success", tasks
    assert tasks["report"] == "success"
    assert registry.alias_version("diabetes", registry.CHAMPION) == "1"
