"""``mlops-airflow run NAME --date D`` from a fresh AIRFLOW_HOME: no hidden step (#25 trap 2).

``airflow dags test`` on a fresh home fails (no metadata database); the command prepares it, runs
the training DAG and reaches a champion. A second run finds the database ready and does not
migrate again.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mlops_dev import datasets
from tests.helpers import pipeline_folder

pytestmark = pytest.mark.integration


def _cli(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("mlops-airflow")), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def test_run_prepares_a_fresh_airflow_home_then_reaches_a_champion(tmp_path: Path) -> None:
    home, local = tmp_path / "airflow", tmp_path / "local"
    dags = pipeline_folder(tmp_path / "dags", "cli_run")
    datasets.materialize("breast_cancer", str(local / "landing"))
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "MLOPS_LOCAL_DIR": str(local),
    }
    assert not home.exists()

    first = _cli(["run", "cli_run", "--date", "2026-01-31"], env)
    out = first.stdout + first.stderr
    assert first.returncode == 0, out[-4000:]
    assert "preparing Airflow's metadata database" in out
    assert (home / "airflow.db").exists()
    champion = subprocess.run(
        [
            sys.executable,
            "-c",
            "from mlops_core.runs import tracking, registry; tracking.configure(); "
            "print(registry.client().get_model_version_by_alias('cli_run', 'champion').version)",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert champion.returncode == 0 and champion.stdout.strip() == "1", champion.stderr[-2000:]

    bad = _cli(["run", "cli_run", "--date", "31/01/2026"], env)
    assert bad.returncode == 2 and "is not YYYY-MM-DD" in bad.stderr
    again = _cli(["run", "cli_run", "--date", "2026-02-01", "--dag", "monitoring"], env)
    assert "preparing Airflow's metadata database" not in again.stdout + again.stderr
