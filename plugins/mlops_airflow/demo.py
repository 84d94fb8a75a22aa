"""``make demo``: the example pipeline from raw data to a deployed champion, through real Airflow.

1. writes the example datasets (shipped inside scikit-learn) to the landing zone;
2. migrates the embedded Airflow metadata DB (SQLite) under ``.local/airflow``;
3. runs ``airflow dags test breast_cancer_training <date>``: every task of the DAG runs through
   Airflow's task runner, talking to a real MLflow store and Great Expectations;
4. reads the result back from Airflow's metadata DB and MLflow, and prints where to look.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

PIPELINE = "breast_cancer"
DATE = "2026-01-31"


def _airflow(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).with_name("airflow")), *args]
    print(f"$ airflow {' '.join(args)}", flush=True)
    proc = subprocess.run(cmd, text=True, capture_output=True, env=os.environ.copy(), check=False)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout[-5000:] + proc.stderr[-5000:])
        raise SystemExit(f"airflow {' '.join(args)} failed with exit code {proc.returncode}")
    return proc


def run_state(dag_id: str) -> str:
    out = _airflow("dags", "list-runs", dag_id, "-o", "json").stdout
    lines = [line for line in out.splitlines() if line.startswith("[")]
    runs = json.loads(lines[-1]) if lines else []
    return str(runs[0]["state"]) if runs else "none"


def main() -> int:
    from mlops_core import datasets, lifecycle, settings
    from mlops_core.spec import load_spec

    home = settings.home()
    for name in datasets.EXAMPLES:
        uri = datasets.materialize(name, settings.landing_root())
        print(f"landing: {uri}")
    _airflow("db", "migrate")
    dag_id = f"{PIPELINE}_training"
    proc = _airflow("dags", "test", dag_id, DATE, check=False)
    state = run_state(dag_id)
    spec = load_spec(home / "dags" / "pipelines" / f"{PIPELINE}.yaml")
    result = lifecycle.summary(spec)
    if state != "success" or result["champion"] is None:
        sys.stderr.write(proc.stdout[-8000:] + proc.stderr[-8000:])
        print(f"\n{dag_id} ended in state {state!r}; see the log above", file=sys.stderr)
        return 1
    metrics = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result["metrics"].items()))
    local = settings.local_dir()
    decision = result["latest_decision"] or {"outcome": "?", "reasons": []}
    reasons = "\n".join(f"  - {r}" for r in decision["reasons"])
    print(f"""
=== {dag_id} for {DATE}: {state} ===
champion model : models:/{result["model"]}@champion -> version {result["champion"]} (previous: {result["previous_champion"]})
holdout metrics: {metrics}
gate decision of this run: {decision["outcome"]}
{reasons}

where to look
  lake           : {settings.lake_root()}/{PIPELINE}/  (raw/, validation/ (GX HTML), holdout/, evaluation/)
  MLflow UI      : make mlflow-ui   -> http://localhost:5000  (store: {settings.tracking_uri()})
  Airflow UI     : make airflow     -> http://localhost:8080  (AIRFLOW_HOME={local / "airflow"})
  run it again   : .venv/bin/airflow dags test {dag_id} {DATE}
""")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
