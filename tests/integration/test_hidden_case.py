"""A dataset the package has never seen, a YAML written from the README alone, and every malformed
variant of its file, through ``dag.test()``.

The data is the UCI Wine recognition table that ships inside scikit-learn (178 rows, 13
measurements, 3 cultivars): not one of the examples. The pipeline has **no user-written
expectations**: the good file trains a champion, and each bad variant must fail with the message
the README quotes, register nothing and leave the champion untouched.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta

import pytest
import yaml

from mlops_core.base import settings
from mlops_core.data import storage
from mlops_core.runs import registry

pytestmark = pytest.mark.integration

NAME = "hidden_wine"
YAML = """
name: hidden_wine
owner: data-science
description: Which of three cultivars a wine comes from, from its chemical analysis.
schedule: null
source:
  uri: "${MLOPS_LANDING}/wine/wine.csv"
  format: csv
  partition: {mode: column, column: sampled_on, lookback_days: 60}
target: cultivar
problem_type: multiclass
features:
  id_columns: [sample_id]
model:
  family: random_forest
  params: {n_estimators: 100, max_depth: 5}
evaluation:
  primary_metric: f1_macro
  floors: {f1_macro: 0.8}
monitoring: {enabled: false}
"""
GOOD_DAY = datetime(2026, 1, 31, tzinfo=UTC)


def _wine():
    import numpy as np
    from sklearn import datasets

    frame = datasets.load_wine(as_frame=True).frame.rename(columns={"target": "cultivar"})
    frame["cultivar"] = frame["cultivar"].map({0: "barolo", 1: "grignolino", 2: "barbera"})
    rng = np.random.default_rng(3)
    days = [(date(2026, 1, 31) - timedelta(days=int(d))).isoformat() for d in rng.integers(0, 30, len(frame))]
    frame.insert(0, "sampled_on", days)
    frame.insert(0, "sample_id", [f"w{i:04d}" for i in range(len(frame))])
    return frame


def _land(text: bytes | str, name: str = "wine.csv") -> None:
    from pathlib import Path
    from urllib.parse import urlparse

    folder = Path(urlparse(settings.landing_root()).path) / "wine"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(text.encode() if isinstance(text, str) else text)


def _lines() -> list[str]:
    return _wine().to_csv(index=False).splitlines(keepends=True)


def _variants() -> dict[str, tuple[str, str, str]]:
    """name -> (file text, failing task, message the README quotes)."""
    lines = _lines()
    extra = lines[:17] + [lines[17].rstrip("\n") + ",9.9\n"] + lines[18:]
    na = list(lines)
    cells = na[42].split(",")
    cells[3] = "n/a"  # malic_acid
    na[42] = ",".join(cells)
    truncated = "".join(lines[:-1]) + ",".join(lines[-1].split(",")[:3])
    empty_col = _wine()
    empty_col["magnesium"] = None
    return {
        "extra_field": ("".join(extra), "ingest", "line 18: 17 fields, header has 16"),
        "n/a_in_numbers": ("".join(na), "ingest", "line 43: column 'malic_acid' = 'n/a' is not a number"),
        "truncated_last_line": (truncated, "ingest", "truncated (3 of 16 fields)"),
        "header_only": (lines[0], "ingest", "has a header but no rows"),
        "empty_file": ("", "ingest", "wine.csv is empty"),
        "empty_column": (empty_col.to_csv(index=False), "validate", "contract: column 'magnesium'"),
    }


@pytest.fixture(scope="module")
def pipeline(airflow_db, tmp_path_factory):
    """The YAML written into the DAG folder and a champion trained on the good file."""
    from mlops_airflow.builder import build_training_dag
    from mlops_core.spec import load_spec

    local = tmp_path_factory.mktemp("hidden")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(local))
        path = os.path.join(os.environ["AIRFLOW__CORE__DAGS_FOLDER"], "pipelines", f"{NAME}.yaml")
        with open(path, "w") as fh:
            fh.write(YAML)
        spec = load_spec(path)
        assert spec.expectations == [] and yaml.safe_load(YAML)["name"] == NAME
        _land(_wine().to_csv(index=False))
        dag = build_training_dag(spec)
        dr = dag.test(logical_date=GOOD_DAY)
        states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
        assert str(dr.state) == "success", states
        assert registry.alias_version(NAME, registry.CHAMPION) == "1"
        yield spec, dag
        os.remove(path)


@pytest.mark.parametrize("variant", list(_variants()))
def test_each_malformed_variant_fails_naming_the_problem_and_changes_nothing(pipeline, variant, capfd):
    spec, dag = pipeline
    text, failing, message = _variants()[variant]
    _land(text)
    day = GOOD_DAY + timedelta(days=1 + list(_variants()).index(variant))
    before = sorted(int(v.version) for v in registry.client().search_model_versions(f"name = '{NAME}'"))
    capfd.readouterr()
    dr = dag.test(logical_date=day)
    states = {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}
    assert str(dr.state) == "failed" and states[failing] == "failed", states
    assert {states[t] for t in ("train", "register", "deploy")} == {"upstream_failed"}, states
    out, err = capfd.readouterr()  # the task's log (dag.test runs it in this process)
    assert message in out + err, (variant, message)
    after = sorted(int(v.version) for v in registry.client().search_model_versions(f"name = '{NAME}'"))
    assert after == before  # nothing registered
    assert registry.alias_version(NAME, registry.CHAMPION) == "1"  # the champion untouched
    if failing == "ingest":  # no raw partition for that day
        with pytest.raises(FileNotFoundError):
            storage.read_manifest(storage.partition_uri(settings.lake_root(), NAME, "raw", day.date()))
