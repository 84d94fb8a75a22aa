"""OpenLineage from a real training DAG run: the Airflow OpenLineage provider's HTTP transport
pointed at a loopback endpoint this test starts; every event is held to OpenLineage's JSON Schema.

The DAG runs through ``dag.test()`` in a child Python: the provider reads its transport and
registers its listener once per process (at plugin load), so the configuration must be in the
environment before Airflow starts, which this test's own process cannot promise. The scheduler
tier receives the events of a real scheduler's runs, drift and retraining included
(``tests/stack/test_scheduler.py``); this one checks one training run's names exactly, in minutes less, and, in the same child
process, a run of a pipeline whose source file is missing: its ``ingest`` fails (in seconds, the
rest of the run never starts) and sends FAIL with its datasets named and the error attached.
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
from tests.emulators.openlineage import lineage_endpoint, of_run, task_runs, transport_env
from tests.helpers import REPO, install_pipeline

pytestmark = pytest.mark.integration

RUN = textwrap.dedent(
    """
    import json, sys
    from datetime import UTC, datetime
    from mlops_airflow.builder import build_training_dag
    from mlops_core.spec import load_spec

    for path in sys.argv[1:]:
        dag = build_training_dag(load_spec(path))
        dr = dag.test(logical_date=datetime(2026, 1, 31, tzinfo=UTC))
        print("RESULT", json.dumps({"state": str(dr.state), "tasks": {t.task_id: str(t.state) for t in dr.get_task_instances()}}))
    """
)


def test_training_run_sends_start_and_complete_per_task_naming_its_datasets(airflow_db, landing):
    spec = install_pipeline("it_lineage")
    # a second pipeline whose source file is missing: its run fails at ingest, in seconds
    missing = install_pipeline("it_lineage_missing", source={"uri": "${MLOPS_LANDING}/absent/none.csv"})
    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "pipelines"
    with lineage_endpoint() as api:
        env = {
            **os.environ,
            # not the repository's root: `make install` leaves airflow_mlops.egg-info there, and a
            # second copy of the package's metadata loads its Airflow plugin twice, which stops
            # the task listeners (OpenLineage's among them) from being registered
            "PYTHONPATH": os.pathsep.join(str(REPO / p) for p in ("include", "plugins", "tools")),
            **transport_env(api, "mlops-tests"),
        }
        out = subprocess.run(
            [sys.executable, "-c", RUN, *(str(folder / f"{s.name}.yaml") for s in (spec, missing))],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert out.returncode == 0, out.stderr[-4000:]
        run, failed = (
            json.loads(ln.removeprefix("RESULT "))
            for ln in out.stdout.splitlines()
            if ln.startswith("RESULT ")
        )
        assert run["state"] == "success", run
        assert failed["state"] == "failed" and failed["tasks"]["ingest"] == "failed", failed
        assert api.violations == []  # every event met the schema (a refused one is recorded here)
        events: list[dict[str, Any]] = api.events  # type: ignore[attr-defined]

    # START and COMPLETE for every task of the run, under the provider's job name <dag>.<task>
    tasks = of_run(task_runs(events), f"{spec.name}_training")
    assert set(tasks) == set(run["tasks"]), (tasks, run["tasks"])
    for task, seen in tasks.items():
        assert sorted(seen.types) == ["COMPLETE", "START"], (task, seen.types)
    inputs = {task: seen.inputs for task, seen in tasks.items()}
    outputs = {task: seen.outputs for task, seen in tasks.items()}
    versions = {k: v for seen in tasks.values() for k, v in seen.versions.items()}
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

    # the failed run: its ingest sent START and FAIL, naming the missing source file and the partition
    # it was to write, with the error as the provider's errorMessage run facet (held to its schema)
    root = Path(settings.landing_root().removeprefix("file://"))
    (ingest,) = of_run(task_runs(events), f"{missing.name}_training").values()  # the others never ran
    assert ingest.types == ["START", "FAIL"], ingest.types
    assert ingest.inputs == {("file", str(root / "absent" / "none.csv"))}
    planned = storage.partition_uri(settings.lake_root(), missing.name, "raw", "2026-01-31")
    assert ingest.outputs == {("file", planned.removeprefix("file://"))}
    (fail,) = [
        ev
        for ev in events
        if ev["eventType"] == "FAIL" and ev["job"]["name"] == f"{missing.name}_training.ingest"
    ]
    error = fail["run"]["facets"]["errorMessage"]
    assert "none.csv" in error["message"] and "does not wait" in error["message"], error["message"]
    assert error["programmingLanguage"] == "python"
    assert any("ErrorMessageRunFacet" in url for url in openlineage_schema.checked_facets(fail))
