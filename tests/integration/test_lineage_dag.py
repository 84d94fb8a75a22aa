"""OpenLineage from a real training DAG run: the Airflow OpenLineage provider's HTTP transport
pointed at a loopback endpoint this test starts; every event is held to OpenLineage's JSON Schema.

The DAG runs through ``dag.test()`` in a child Python: the provider reads its transport and
registers its listener once per process (at plugin load), so the configuration must be in the
environment before Airflow starts, which this test's own process cannot promise. The stack tier
(a scheduler) is not used: the listener is the same code in a worker, and a training run there
takes minutes more.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from mlops_core.base import settings
from mlops_core.data import storage
from tests.contract import openlineage_schema
from tests.emulators.loopback import Invalid, LoopbackAPI, Request
from tests.helpers import REPO, install_pipeline

pytestmark = pytest.mark.integration

RUN = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from mlops_airflow.builder import build_training_dag
    from mlops_core.spec import load_spec

    dag = build_training_dag(load_spec(sys.argv[1]))
    dr = dag.test(logical_date=datetime(2026, 1, 31, tzinfo=UTC))
    print("RESULT", json.dumps({"state": str(dr.state), "tasks": {t.task_id: str(t.state) for t in dr.get_task_instances()}}))
    """
)


def lineage_endpoint() -> LoopbackAPI:
    api = LoopbackAPI("openlineage")
    api.events = []  # type: ignore[attr-defined]

    @api.route("POST", "/api/v1/lineage")
    def receive(req: Request) -> tuple[int, Any]:
        errors = openlineage_schema.violations(req.body)
        if errors:
            raise Invalid("; ".join(errors[:5]))
        api.events.append(req.body)  # type: ignore[attr-defined]
        return 201, None

    return api


def names(datasets: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in datasets}


def test_training_run_sends_start_and_complete_per_task_naming_its_datasets(airflow_db, landing):
    spec = install_pipeline("it_lineage")
    path = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "pipelines" / "it_lineage.yaml"
    with lineage_endpoint() as api:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("include", "plugins", "tools", "")),
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "http", "url": api.url}),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": "mlops-tests",
        }
        out = subprocess.run(
            [sys.executable, "-c", RUN, str(path)], env=env, capture_output=True, text=True, timeout=600
        )
        assert out.returncode == 0, out.stderr[-4000:]
        (line,) = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
        run = json.loads(line.removeprefix("RESULT "))
        assert run["state"] == "success", run
        assert api.violations == []  # every event met the schema (a refused one is recorded here)
        events: list[dict[str, Any]] = api.events  # type: ignore[attr-defined]

    # START and COMPLETE for every task of the run, under the provider's job name <dag>.<task>
    dag_id = f"{spec.name}_training"
    per_task: dict[str, list[str]] = {}
    outputs: dict[str, set[tuple[str, str]]] = {}
    inputs: dict[str, set[tuple[str, str]]] = {}
    versions: dict[tuple[str, str], str] = {}
    for ev in events:
        job = ev["job"]["name"]
        if not job.startswith(f"{dag_id}."):
            continue  # the DAG run's own events
        task = job.split(".", 1)[1]
        per_task.setdefault(task, []).append(ev["eventType"])
        if ev["eventType"] == "COMPLETE":
            inputs[task] = names(ev.get("inputs") or [])
            outputs[task] = names(ev.get("outputs") or [])
            for d in [*(ev.get("inputs") or []), *(ev.get("outputs") or [])]:
                if "version" in (d.get("facets") or {}):
                    versions[(d["namespace"], d["name"])] = d["facets"]["version"]["datasetVersion"]
    assert set(per_task) == set(run["tasks"]), (per_task, run["tasks"])
    for task, types in per_task.items():
        assert sorted(types) == ["COMPLETE", "START"], (task, types)
    checked = [url for ev in events for url in openlineage_schema.checked_facets(ev)]
    assert any("DatasetVersionDatasetFacet" in url for url in checked)  # the facet schema was applied

    # a reader follows source file -> partition -> logged model -> model version -> endpoint by
    # matching each step's outputs to the next step's inputs
    source = Path(settings.landing_root().removeprefix("file://")) / "breast_cancer" / "breast_cancer.csv"
    assert inputs["ingest"] == {("file", str(source))}
    raw = storage.read_manifest(storage.partition_uri(settings.lake_root(), spec.name, "raw", "2026-01-31"))
    (partition,) = outputs["ingest"]
    assert partition == ("file", raw.uri.removeprefix("file://")) and versions[partition] == str(raw.version)
    assert partition in inputs["train"]
    (model,) = outputs["train"]
    assert model[0] == "mlflow://localhost" and model in inputs["register"]
    (version,) = outputs["register"]
    assert (
        version == ("mlflow://localhost", f"models/{spec.registered_model_name}/1")
        and versions[version] == "1"
    )
    assert version in inputs["deploy"]
    (endpoint,) = outputs["deploy"]
    assert endpoint == ("mlflow://localhost", f"models/{spec.registered_model_name}@champion")
    assert endpoint in inputs["smoke_test"]
