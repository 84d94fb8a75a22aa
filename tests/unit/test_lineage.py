"""OpenLineage names (mlops_airflow.lineage) and the steps' facet methods, held to the schema."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mlops_airflow import lineage
from mlops_airflow.lineage import LineageDataset
from tests.contract import openlineage_schema
from tests.helpers import REPO, example_spec

pytestmark = pytest.mark.unit

SQLITE = "sqlite:////tmp/mlflow/mlflow.db"


def test_files_and_object_stores_are_named_as_openlineage_names_them():
    assert lineage.uri_dataset("file:///data/lake/lin_p/raw/ds=2026-01-31", 3) == LineageDataset(
        "file", "/data/lake/lin_p/raw/ds=2026-01-31", "3"
    )
    assert lineage.uri_dataset("/data/x.csv") == LineageDataset("file", "/data/x.csv")
    assert lineage.uri_dataset("s3://user:secret@bucket/lake/p/raw/ds=2026-01-31") == LineageDataset(
        "s3://bucket", "lake/p/raw/ds=2026-01-31"
    )
    assert lineage.uri_dataset("gs://b/k.csv") == LineageDataset("gs://b", "k.csv")
    assert lineage.uri_dataset("abfss://lake@acct.dfs.core.windows.net/p/raw") == LineageDataset(
        "abfss://lake@acct.dfs.core.windows.net", "p/raw"
    )


def test_mlflow_names_never_carry_credentials_and_a_local_store_is_localhost():
    assert (
        lineage.mlflow_namespace("https://bot:pw@mlflow.example.com:5000/")
        == "mlflow://mlflow.example.com:5000"
    )
    assert lineage.mlflow_namespace(SQLITE) == "mlflow://localhost"
    assert lineage.model_version_dataset(SQLITE, "churn", 7) == LineageDataset(
        "mlflow://localhost", "models/churn/7", "7"
    )
    assert lineage.model_dataset(SQLITE, "models:/m-abc123").name == "models/m-abc123"
    assert lineage.model_dataset(SQLITE, "runs:/r1/model").name == "runs/r1/model"
    assert lineage.champion_dataset(SQLITE, "churn").name == "models/churn@champion"


def test_an_endpoint_is_the_champion_alias_locally_and_the_cloud_endpoint_elsewhere():
    local = {"target": "local", "endpoint": "models:/churn@champion", "version": "4"}
    assert lineage.endpoint_dataset(SQLITE, local, "local") == LineageDataset(
        "mlflow://localhost", "models/churn@champion", "4"
    )
    sagemaker = {"target": "sagemaker", "endpoint": "churn-prod", "version": "4"}
    assert lineage.endpoint_dataset(SQLITE, sagemaker, "aws") == LineageDataset(
        "sagemaker://aws", "churn-prod", "4"
    )


def test_the_source_window_in_files_mode_names_one_file_per_day(monkeypatch):
    monkeypatch.setenv("MLOPS_LANDING", "file:///landing")
    spec = example_spec(
        source={
            "uri": "${MLOPS_LANDING}/p/{ds}.csv",
            "format": "csv",
            "partition": {"mode": "files", "lookback_days": 3},
        }
    )
    from mlops_core.base import settings

    got = lineage.source_datasets(spec, "2026-01-31", settings.expand)
    assert [d.name for d in got] == [
        "/landing/p/2026-01-31.csv",
        "/landing/p/2026-01-30.csv",
        "/landing/p/2026-01-29.csv",
    ]
    column = example_spec()
    (one,) = lineage.source_datasets(column, "2026-01-31", settings.expand)
    assert one.namespace == "file" and one.name.endswith("/breast_cancer/breast_cancer.csv")


def _event(op_lineage: Any, event_type: str) -> dict[str, Any]:
    """The RunEvent the provider would send with these datasets (the client's own classes and serde)."""
    from openlineage.client.event_v2 import Job, Run, RunEvent, RunState
    from openlineage.client.serde import Serde
    from openlineage.client.uuid import generate_new_uuid

    event = RunEvent(
        eventType=RunState[event_type],
        eventTime=datetime(2026, 2, 1, tzinfo=UTC).isoformat(),
        run=Run(runId=str(generate_new_uuid())),
        job=Job(namespace="mlops-tests", name="p_training.train"),
        producer="https://github.com/apache/airflow/tree/providers-openlineage/2.20.3",
        inputs=op_lineage.inputs,
        outputs=op_lineage.outputs,
    )
    return Serde.to_dict(event)


def _context(drift: dict[str, Any] | None = None) -> dict[str, Any]:
    events = {}
    if drift is not None:
        events = {"asset": [SimpleNamespace(extra={"mlops_trigger": "drift", **drift}, timestamp=1)]}
    run = SimpleNamespace(run_type="asset_triggered" if drift else "manual", dag_id="p_training")
    return {
        "dag_run": run,
        "logical_date": datetime(2026, 1, 31, tzinfo=UTC),
        "triggering_asset_events": events,
    }


def test_drift_event_to_retrained_version_follows_by_name_and_meets_the_schema(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path))
    from mlops_airflow.operators.model import RegisterOperator, TrainOperator
    from mlops_airflow.operators.monitor import EmitDriftEventOperator

    spec = example_spec(name="lin_p")
    emit = EmitDriftEventOperator(
        task_id="emit", pipeline=spec, decision={"fire": True, "ds": "2026-01-30", "drift": {}}
    )
    start = emit._operator_lineage(_context(), None)
    (drift_event,) = start.outputs
    assert (drift_event.namespace, drift_event.name) == ("mlops://lin_p", "drift")
    assert [(d.namespace, d.name) for d in start.inputs] == [
        ("mlflow://mlflow.internal:5000", "models/lin_p@champion")
    ]

    raw = {"uri": f"{tmp_path.as_uri()}/lake/lin_p/raw/ds=2026-01-30", "version": 2}
    train = TrainOperator(task_id="train", pipeline=spec, data=raw)
    trained = {"model_uri": "models:/m-42", "run_id": "r42", "holdout_uri": f"{tmp_path.as_uri()}/h"}
    done = train._operator_lineage(_context({"ds": "2026-01-30"}), trained)
    assert (drift_event.namespace, drift_event.name) in {(d.namespace, d.name) for d in done.inputs}
    partition = next(d for d in done.inputs if d.namespace == "file")
    assert partition.facets["version"].datasetVersion == "2"  # the manifest version, as a facet
    (model,) = done.outputs
    assert model.name == "models/m-42"

    register = RegisterOperator(task_id="register", pipeline=spec, trained=trained, decision={})
    reg = register._operator_lineage(_context(), {"model_name": "lin_p", "version": "2"})
    assert (model.namespace, model.name) in {(d.namespace, d.name) for d in reg.inputs}
    (retrained,) = reg.outputs
    assert (retrained.name, retrained.facets["version"].datasetVersion) == ("models/lin_p/2", "2")

    for op_lineage, kind in ((start, "START"), (done, "COMPLETE"), (reg, "COMPLETE")):
        event = _event(op_lineage, kind)
        assert openlineage_schema.violations(event) == []
    assert openlineage_schema.checked_facets(_event(reg, "COMPLETE"))  # the version facet was checked


def test_a_malformed_event_is_refused_by_the_schema():
    bad = _event(lineage.operator_lineage([LineageDataset("file", "/x", "1")], []), "START")
    bad["inputs"][0]["facets"]["version"]["datasetVersion"] = 1  # a number where the spec says string
    del bad["job"]["namespace"]
    errors = openlineage_schema.violations(bad)
    assert any("'namespace' is a required property" in e for e in errors)
    assert any("is not of type 'string'" in e for e in errors)


def test_without_the_provider_the_operators_import_and_a_dag_builds():
    """The facet methods import the provider lazily: with the OpenLineage client and the
    provider's extractors unimportable the package still imports and builds a DAG, loading
    neither. (Airflow's providers manager itself reads every installed provider's
    ``get_provider_info``: that part of an installed provider cannot be hidden here.)"""
    code = textwrap.dedent(
        """
        import sys
        OURS = ("airflow.providers.openlineage.extractors", "airflow.providers.openlineage.plugins")
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "openlineage" or name.startswith(OURS):
                    raise ImportError(f"{name} blocked")
        sys.meta_path.insert(0, Block())
        from mlops_airflow.builder import build_training_dag
        from tests.helpers import example_spec
        dag = build_training_dag(example_spec())
        assert "train" in dag.task_ids
        loaded = [m for m in sys.modules if m.split(".")[0] == "openlineage" or m.startswith(OURS)]
        assert not loaded, loaded
        print("ok")
        """
    )
    paths = [str(REPO / p) for p in ("include", "plugins", "tools")] + [str(REPO)]
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env={**__import__("os").environ, "PYTHONPATH": ":".join(paths)},
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


def _names(datasets: list[Any]) -> set[tuple[str, str]]:
    return {(d.namespace, d.name) for d in datasets}


def _monitoring(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.internal:5000")
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path))
    return example_spec(
        name="lin_m",
        deployment={"target": "local", "challenger": {}},
        feedback={"uri": "${MLOPS_LANDING}/lin_m/labels.csv", "key_columns": ["record_id"], "delay_days": 2},
    )


def test_the_monitoring_steps_hand_over_by_name_to_the_policy_and_the_verdict(tmp_path, monkeypatch):
    """score (day T) -> performance (day T + delay) -> drift policy and challenger_verdict, and
    drift_check -> drift policy; the verdict reads the alias deploy named and moves champion."""
    from mlops_airflow.operators.deploy import ChallengerVerdictOperator
    from mlops_airflow.operators.monitor import (
        BatchScoreOperator,
        DriftCheckOperator,
        DriftPolicyOperator,
        PerformanceOperator,
    )
    from mlops_core.base import settings
    from mlops_core.data import storage

    spec = _monitoring(tmp_path, monkeypatch)
    lake = settings.lake_root()
    day = {"partition_date": "2026-02-03", "pipeline": spec}
    batch = {"uri": storage.partition_uri(lake, "lin_m", "monitor", "2026-02-01"), "version": 1}
    scored = BatchScoreOperator(
        task_id="score", pipeline=spec, partition_date="2026-02-01", data=batch, stage="monitor_predictions"
    )._operator_lineage(_context(), None)
    perf = PerformanceOperator(task_id="performance", **day)
    history = storage.partition_uri(lake, "lin_m", "performance_history", "2026-02-01")
    judged = perf._operator_lineage(_context(), {"history_uri": history})
    assert _names(scored.outputs) <= _names(judged.inputs)  # the predictions of 2 days before
    labels = Path(settings.landing_root().removeprefix("file://")) / "lin_m" / "labels.csv"
    assert ("file", str(labels)) in _names(judged.inputs)
    assert _names(judged.outputs) == {("file", history.removeprefix("file://"))}

    drift = {"history_uri": storage.partition_uri(lake, "lin_m", "drift_history", "2026-02-03")}
    check = DriftCheckOperator(task_id="drift_check", data=batch, **day)._operator_lineage(_context(), drift)
    policy = DriftPolicyOperator(task_id="drift_policy", drift=drift, **day)._operator_lineage(_context(), {})
    assert _names(policy.inputs) == _names(check.outputs) | _names(judged.outputs) and not policy.outputs

    live = lineage.endpoint_dataset(
        "http://mlflow.internal:5000",
        {"target": "local", "endpoint": "models:/lin_m@live_challenger"},
        "local",
    )  # what deploy names when the gated version goes live beside the champion
    verdict = ChallengerVerdictOperator(task_id="challenger_verdict", **day)
    promoted = verdict._operator_lineage(
        _context(), {"status": "promote", "acted": True, "challenger_version": "2"}
    )
    assert {(live.namespace, live.name)} | _names(judged.outputs) <= _names(promoted.inputs)
    ((champion),) = promoted.outputs
    assert (champion.name, champion.facets["version"].datasetVersion) == ("models/lin_m@champion", "2")
    rolled = verdict._operator_lineage(_context(), {"status": "rollback", "acted": True})
    assert _names(rolled.outputs) == {(live.namespace, live.name)}
    for quiet in ({"status": "continue", "acted": True}, {"status": "promote", "acted": False}, None):
        assert verdict._operator_lineage(_context(), quiet).outputs == []  # watching, a backfill, START
    for op_lineage in (judged, policy, promoted):
        assert openlineage_schema.violations(_event(op_lineage, "COMPLETE")) == []


def test_a_failed_step_names_what_it_was_to_read_and_write_with_no_version(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path))
    from mlops_airflow.operators.data import IngestOperator

    op = IngestOperator(task_id="ingest", pipeline=example_spec(name="lin_f"), partition_date="2026-01-31")
    op.returned = {"uri": "file:///elsewhere", "version": 9}  # a previous try's: never on a FAIL
    failed = op.get_openlineage_facets_on_failure(SimpleNamespace(get_template_context=_context))
    assert [d.name.rsplit("/", 3)[-3:] for d in failed.outputs] == [["lin_f", "raw", "ds=2026-01-31"]]
    assert failed.inputs[0].name.endswith("breast_cancer.csv")
    assert all(not d.facets for d in [*failed.inputs, *failed.outputs])


def test_managed_ingestion_lands_the_file_ingest_reads(monkeypatch):
    monkeypatch.setenv("MLOPS_LANDING", "file:///landing")
    from mlops_airflow.operators.ingestion.glue import GlueIngestionOperator

    spec = example_spec(
        name="orders",
        source={
            "uri": "${MLOPS_LANDING}/orders/{ds}.csv",
            "partition": {"mode": "files", "lookback_days": 3},
        },
        ingestion={
            "glue": {"job_name": "orders-export", "arguments": {"--output": "${MLOPS_LANDING}/orders/"}}
        },
    )
    op = GlueIngestionOperator(task_id="managed_ingestion", pipeline=spec, partition_date="2026-01-31")
    landed = op._operator_lineage(_context(), None)
    assert landed.inputs == [] and _names(landed.outputs) == {("file", "/landing/orders/2026-01-31.csv")}
    from mlops_core.base import settings

    assert _names(landed.outputs) < _names(lineage.source_datasets(spec, "2026-01-31", settings.expand))


def test_an_azure_ml_job_names_the_data_its_resource_declares():
    from mlops_airflow.operators.azureml import AzureMLCommandJobOperator

    body = {
        "properties": {
            "jobType": "Command",
            "inputs": {
                "train": {
                    "jobInputType": "uri_folder",
                    "uri": "abfss://lake@acct.dfs.core.windows.net/p/raw",
                },
                "epochs": {"jobInputType": "literal", "value": "3"},
            },
            "outputs": {
                "model": {"jobOutputType": "mlflow_model", "uri": "azureml://datastores/models/paths/p/"},
                "logs": {"jobOutputType": "uri_folder"},  # the default datastore: no name of ours
            },
        }
    }
    op = AzureMLCommandJobOperator(task_id="job", job_name="j", body=body)
    got = op.get_openlineage_facets_on_start()
    assert _names(got.inputs) == {("abfss://lake@acct.dfs.core.windows.net", "p/raw")}
    assert _names(got.outputs) == {("azureml://datastores", "models/paths/p/")}
    assert _names(op.get_openlineage_facets_on_complete(None).outputs) == _names(got.outputs)


def test_a_dvc_source_file_carries_the_md5_the_manifest_recorded(monkeypatch):
    monkeypatch.setenv("MLOPS_LANDING", "file:///landing")
    from mlops_core.base import settings

    spec = example_spec(
        source={
            "uri": "dvc://data/{ds}.csv",
            "dvc": {"repo": "${MLOPS_LANDING}/repo", "rev": "v2"},
            "partition": {"mode": "files", "lookback_days": 2},
        }
    )
    named = lineage.source_datasets(spec, "2026-01-31", settings.expand)
    assert [(d.namespace, d.name) for d in named] == [
        ("dvc+file:///landing/repo", "data/2026-01-31.csv"),
        ("dvc+file:///landing/repo", "data/2026-01-30.csv"),
    ]
    extra = {
        "dvc": {"commit": "c" * 40, "files": [{"path": "data/2026-01-31.csv", "md5": "ab12", "size": 3}]}
    }
    versions = [d.version for d in lineage.with_source_versions(named, extra)]
    assert versions == ["ab12", None]  # the day with no file in the commit claims no version
    plain = lineage.source_datasets(example_spec(), "2026-01-31", settings.expand)
    assert lineage.with_source_versions(plain, {"source_uri": "x"}) == plain  # nothing recorded, none claimed


def test_a_smoke_test_beside_the_champion_claims_no_champion_move(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path))
    from mlops_airflow.operators.deploy import SmokeTestOperator

    for extra, moved in (({"challenger": True}, False), ({"shadow": True}, False), ({}, True)):
        dep = {"target": "local", "endpoint": "models:/lin_s@live_challenger", "version": "2", "extra": extra}
        op = SmokeTestOperator(
            task_id="smoke_test",
            pipeline=example_spec(name="lin_s"),
            deployment=dep,
            trained={},
            evaluation={},
        )
        done = op._operator_lineage(_context(), {"deployment": dep})
        assert _names(done.outputs) == ({("mlflow://localhost", "models/lin_s@champion")} if moved else set())
