"""DagBag integrity: every pipeline parses, carries tags/owner/retries, and parsing stays light."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

from tests.helpers import REPO

if TYPE_CHECKING:
    from pathlib import Path

pytestmark = pytest.mark.dags

HEAVY = ("pandas", "numpy", "sklearn", "mlflow", "great_expectations", "evidently", "scipy", "pyarrow", "dvc")

PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=sys.argv[1])
dags = {
    d: {
        "tags": sorted(bag.dags[d].tags),
        "owner": bag.dags[d].owner,
        "retries": bag.dags[d].default_args.get("retries"),
        "max_active_runs": bag.dags[d].max_active_runs,
        "params": sorted(bag.dags[d].params.keys()),
        "edges": {t.task_id: sorted(t.downstream_task_ids) for t in bag.dags[d].tasks},
        "timeouts": {
            t.task_id: t.execution_timeout.total_seconds() if t.execution_timeout else None
            for t in bag.dags[d].tasks
        },
        "one_at_a_time": {t.task_id: t.max_active_tis_per_dag for t in bag.dags[d].tasks},
        "timetable": type(bag.dags[d].timetable).__name__,
    }
    for d in bag.dag_ids
}
heavy = [m for m in HEAVY_LIST if m in sys.modules]
print("RESULT" + json.dumps({"dags": dags, "errors": bag.import_errors, "heavy": heavy}))
"""


def parse(folder: Path) -> dict:
    """Parse a DAG folder in a fresh interpreter, so sys.modules shows exactly what parsing imported."""
    code = PROBE.replace("HEAVY_LIST", repr(HEAVY))
    out = subprocess.run(
        [sys.executable, "-c", code, str(folder)],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        check=True,
    )
    line = next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))
    return json.loads(line.removeprefix("RESULT"))


@pytest.fixture(scope="module")
def bag() -> dict:
    return parse(REPO / "dags")


def test_no_import_errors(bag):
    assert bag["errors"] == {}


def test_every_pipeline_yields_its_dags(bag):
    names = [p.stem for p in (REPO / "dags" / "pipelines").glob("*.yaml")]
    for name in names:
        assert f"{name}_training" in bag["dags"] and f"{name}_batch_scoring" in bag["dags"]
    assert "example_handwritten_diabetes" in bag["dags"]


def test_every_dag_has_tags_owner_retries(bag):
    for dag_id, info in bag["dags"].items():
        assert info["tags"], dag_id
        assert info["owner"] and info["owner"] != "airflow", dag_id
        assert info["retries"] is not None and info["retries"] >= 1, dag_id
        assert info["max_active_runs"] == 1, dag_id


def test_every_pipeline_task_has_a_timeout_and_runs_one_at_a_time(bag):
    """No step can hang forever, and no step of a pipeline runs twice at once (backfills included)."""
    for dag_id, info in bag["dags"].items():
        if not dag_id.startswith(("breast_cancer_", "diabetes_")):
            continue
        for task_id, seconds in info["timeouts"].items():
            assert seconds and seconds > 0, (dag_id, task_id)
            assert info["one_at_a_time"][task_id] == 1, (dag_id, task_id)
    timeouts = bag["dags"]["breast_cancer_training"]["timeouts"]
    # train honours training.timeout_minutes (120) on top of the step timeout (60)
    assert timeouts["train"] == (120 + 60) * 60
    assert timeouts["ingest"] == (180 + 60) * 60  # source.wait_minutes + step


def test_cron_schedules_have_data_intervals(bag):
    """The run for day D has logical date D and starts once D is over (not a CronTriggerTimetable)."""
    assert bag["dags"]["breast_cancer_monitoring"]["timetable"] == "CronDataIntervalTimetable"
    assert bag["dags"]["breast_cancer_batch_scoring"]["timetable"] == "CronDataIntervalTimetable"
    assert bag["dags"]["breast_cancer_training"]["timetable"] == "AssetOrTimeSchedule"


def test_training_dag_shape_and_params(bag):
    info = bag["dags"]["breast_cancer_training"]
    assert set(info["params"]) >= {"force_promote", "reason", "partition_date"}
    assert "training" in info["tags"] and "pipeline:breast_cancer" in info["tags"]
    order = ["ingest", "validate", "train", "evaluate", "gate", "register", "deploy", "smoke_test"]
    assert set(info["edges"]) == set(order)
    for upstream, downstream in zip(order, order[1:], strict=False):
        assert downstream in info["edges"][upstream]


def test_parsing_imports_no_heavy_library(bag):
    assert bag["heavy"] == []


def test_broken_yamls_are_import_errors_naming_the_field(tmp_path):
    folder = tmp_path / "dags"
    shutil.copytree(REPO / "dags", folder, ignore=shutil.ignore_patterns("__pycache__"))
    good = (folder / "pipelines" / "diabetes.yaml").read_text()
    (folder / "pipelines" / "unknown_key.yaml").write_text(
        good.replace("name: diabetes", "name: unknown_key") + "\nevaluation_window: 30\n"
    )
    (folder / "pipelines" / "wrong_type.yaml").write_text(
        good.replace("name: diabetes", "name: wrong_type").replace("seed: 0", "seed: forty-two")
    )
    result = parse(folder)
    assert len(result["errors"]) == 1
    ((path, message),) = result["errors"].items()
    assert path.endswith("mlops_pipelines.py")
    assert "unknown_key.yaml is not a valid pipeline spec" in message
    assert "evaluation_window: unknown field" in message
    assert "wrong_type.yaml is not a valid pipeline spec" in message
    assert "model.seed: Input should be a valid integer" in message and "'forty-two'" in message
    # every valid pipeline still loads
    assert {"breast_cancer_training", "diabetes_training", "breast_cancer_batch_scoring"} <= set(
        result["dags"]
    )
    assert not any(d.startswith(("unknown_key", "wrong_type")) for d in result["dags"])
