"""Parse-time benchmark: 50 pipeline YAMLs through the loader vs hand-written DAG files.

Three sets, each giving 100 DAGs of the same shape (per pipeline an 8-task training DAG and a
3-task scoring DAG):

- ``yaml``: 50 pipeline YAMLs + the loader (what this package ships);
- ``trivial``: 50 DAG files of EmptyOperators with no Params (the issue's baseline);
- ``equivalent``: 50 hand-written DAG files with this package's operators and the same Params
  form, no YAML: isolates what the YAML + pydantic + builder layer itself costs.

Each set is parsed by Airflow's DagBag in a fresh interpreter (so import caches favour none),
in turn, ``--repeats`` times; medians are compared. Goal: yaml/trivial <= 1.5.

    .venv/bin/python benchmarks/parse.py [--n 50] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TRIVIAL = """from __future__ import annotations

from datetime import datetime

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, chain

with DAG(dag_id="p{i}_training", schedule="@weekly", start_date=datetime(2026, 1, 1), catchup=False,
         tags=["bench"], default_args={{"owner": "bench", "retries": 2}}):
    chain(*[EmptyOperator(task_id=t) for t in
            ["ingest", "validate", "train", "evaluate", "gate", "register", "deploy", "smoke_test"]])

with DAG(dag_id="p{i}_batch_scoring", schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False,
         tags=["bench"], default_args={{"owner": "bench", "retries": 2}}):
    chain(*[EmptyOperator(task_id=t) for t in ["ingest", "validate", "score"]])
"""

EQUIVALENT = """from __future__ import annotations

from datetime import datetime, timedelta

from airflow.sdk import DAG, Param, chain

from mlops_airflow.operators import (
    BatchScoreOperator, DeployOperator, EvaluateOperator, GateOperator, IngestOperator,
    RegisterOperator, SmokeTestOperator, TrainOperator, ValidateOperator,
)

Y = "{yaml}"
P = "{{{{ params.partition_date or ds }}}}"
ARGS = {{"owner": "bench", "retries": 2, "retry_delay": timedelta(minutes=1)}}
DATE = Param(None, type=["null", "string"], format="date", title="Partition date")

with DAG(dag_id="p{i}_training", schedule="@weekly", start_date=datetime(2026, 1, 1), catchup=False,
         max_active_runs=1, tags=["bench"], default_args=ARGS, render_template_as_native_obj=True,
         params={{"force_promote": Param(False, type="boolean"), "reason": Param("", type="string", maxLength=500),
                 "partition_date": DATE}}):
    ingest = IngestOperator(task_id="ingest", pipeline=Y, partition_date=P)
    validate = ValidateOperator(task_id="validate", pipeline=Y, data=ingest.output, partition_date=P)
    train = TrainOperator(task_id="train", pipeline=Y, data=ingest.output, partition_date=P)
    evaluate = EvaluateOperator(task_id="evaluate", pipeline=Y, trained=train.output, partition_date=P)
    gate = GateOperator(task_id="gate", pipeline=Y, trained=train.output, evaluation=evaluate.output,
                        force_promote="{{{{ params.force_promote }}}}", reason="{{{{ params.reason }}}}")
    register = RegisterOperator(task_id="register", pipeline=Y, trained=train.output, decision=gate.output)
    deploy = DeployOperator(task_id="deploy", pipeline=Y, registered=register.output)
    smoke = SmokeTestOperator(task_id="smoke_test", pipeline=Y, deployment=deploy.output, trained=train.output,
                              evaluation=evaluate.output)
    chain(ingest, validate, train, evaluate, gate, register, deploy, smoke)

with DAG(dag_id="p{i}_batch_scoring", schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False,
         max_active_runs=1, tags=["bench"], default_args=ARGS, render_template_as_native_obj=True,
         params={{"partition_date": DATE}}):
    ingest = IngestOperator(task_id="ingest", pipeline=Y, stage="batch", partition_date=P)
    validate = ValidateOperator(task_id="validate", pipeline=Y, data=ingest.output, with_target=False, partition_date=P)
    chain(ingest, validate, BatchScoreOperator(task_id="score", pipeline=Y, data=ingest.output, partition_date=P))
"""

PROBE = """
import sys, time, json
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - start
heavy = [m for m in ("pandas", "numpy", "sklearn", "mlflow", "great_expectations", "evidently") if m in sys.modules]
print("RESULT" + json.dumps({"seconds": elapsed, "dags": len(bag.dags), "errors": len(bag.import_errors), "heavy": heavy}))
"""


def make_sets(root: Path, n: int) -> dict[str, Path]:
    yaml_dir, py_dir, eq_dir = root / "yaml_set", root / "py_set", root / "eq_set"
    (yaml_dir / "pipelines").mkdir(parents=True)
    py_dir.mkdir()
    eq_dir.mkdir()
    shutil.copy(REPO / "dags" / "mlops_pipelines.py", yaml_dir)
    import yaml

    # training + scoring only, like the hand-written sets (the monitoring DAG has its own shape)
    data = yaml.safe_load((REPO / "dags" / "pipelines" / "breast_cancer.yaml").read_text())
    data["monitoring"] = {"enabled": False}
    for i in range(n):
        (yaml_dir / "pipelines" / f"p{i}.yaml").write_text(
            yaml.safe_dump({**data, "name": f"p{i}"}, sort_keys=False)
        )
        (py_dir / f"p{i}_dags.py").write_text(TRIVIAL.format(i=i))
        (eq_dir / f"p{i}_dags.py").write_text(
            EQUIVALENT.format(i=i, yaml=yaml_dir / "pipelines" / f"p{i}.yaml")
        )
    return {"yaml": yaml_dir, "trivial": py_dir, "equivalent": eq_dir}


def parse(folder: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))[6:])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    with tempfile.TemporaryDirectory() as tmp:
        sets = make_sets(Path(tmp), args.n)
        times: dict[str, list[float]] = {name: [] for name in sets}
        for _ in range(args.repeats):
            for name, folder in sets.items():
                res = parse(folder)
                if res["errors"] or res["dags"] != 2 * args.n or res["heavy"]:
                    raise SystemExit(f"{name} set parsed badly: {res}")
                times[name].append(res["seconds"])
    y, p, e = (statistics.median(times[k]) for k in ("yaml", "trivial", "equivalent"))
    runs = f"median of {args.repeats}; {2 * args.n} DAGs each"
    print(f"{args.n} pipeline YAMLs via the loader      : {y * 1000:8.1f} ms  ({runs})")
    print(f"{args.n} trivial DAG files (EmptyOperator)  : {p * 1000:8.1f} ms")
    print(
        f"{args.n} equivalent hand-written DAG files  : {e * 1000:8.1f} ms  (same operators and Params, no YAML)"
    )
    print(f"ratio yaml/trivial                       : {y / p:8.2f}   (goal <= 1.5)")
    print(
        f"ratio yaml/equivalent                    : {y / e:8.2f}   (the YAML + pydantic + builder layer alone)"
    )
    print("heavy modules imported while parsing     : none (pandas, numpy, sklearn, mlflow, GX, evidently)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
