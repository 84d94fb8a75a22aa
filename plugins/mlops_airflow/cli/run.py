"""``mlops-airflow run NAME --date D``: one pipeline's training DAG for one data day, with no hidden step.

A fresh ``AIRFLOW_HOME`` has no metadata database, and ``airflow dags test`` fails on it; this
command prepares the database first (``airflow db migrate``, only when ``airflow db
check-migrations`` says it is needed), then runs ``airflow dags test NAME_training D`` in the same
environment (``AIRFLOW_HOME``, ``AIRFLOW__CORE__DAGS_FOLDER``...). The run needs no scheduler.
Its exit status is the DAG run's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path


def _airflow() -> list[str]:
    """The ``airflow`` next to this interpreter (a venv's), else the one on PATH."""
    beside = Path(sys.executable).with_name("airflow")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("airflow")
    if found is None:
        raise FileNotFoundError("no airflow command next to this Python or on PATH: install apache-airflow")
    return [found]


def prepare_database(env: dict[str, str] | None = None) -> bool:
    """Migrate the metadata database if it is not at the installed Airflow's head; True if it was."""
    env = dict(os.environ if env is None else env)
    check = subprocess.run(
        [*_airflow(), "db", "check-migrations", "-t", "0"], env=env, capture_output=True, text=True
    )
    if check.returncode == 0:
        return False
    home = env.get("AIRFLOW_HOME", "~/airflow")
    print(f"preparing Airflow's metadata database (airflow db migrate; AIRFLOW_HOME={home})", flush=True)
    migrate = subprocess.run([*_airflow(), "db", "migrate"], env=env, capture_output=True, text=True)
    if migrate.returncode != 0:
        raise RuntimeError(f"airflow db migrate failed:\n{(migrate.stdout + migrate.stderr)[-3000:]}")
    return True


def run(name: str, day: str, *, dag: str = "training") -> int:
    """Run ``<name>_<dag>`` for the data day ``day`` (``YYYY-MM-DD``); the DAG run's exit status."""
    try:
        date.fromisoformat(day)
    except ValueError:
        print(f"mlops-airflow run: --date {day!r} is not YYYY-MM-DD", file=sys.stderr)
        return 2
    try:
        prepare_database()
    except (RuntimeError, FileNotFoundError) as err:
        print(f"mlops-airflow run: {err}", file=sys.stderr)
        return 1
    dag_id = f"{name}_{dag}"
    print(f"airflow dags test {dag_id} {day}", flush=True)
    return subprocess.run([*_airflow(), "dags", "test", dag_id, day]).returncode
