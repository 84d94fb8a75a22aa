"""Parse-time benchmark: pipeline YAMLs through the loader vs hand-written DAGs and a peer, dag-factory.

Four sets, each giving ``2 n`` DAGs of the same shape (per pipeline an 8-task training DAG and a
3-task scoring DAG):

- ``yaml``: ``n`` pipeline YAMLs + the loader (what this package ships);
- ``trivial``: ``n`` DAG files of EmptyOperators with no Params (Airflow's own floor);
- ``equivalent``: ``n`` hand-written DAG files with this package's operators and the same Params
  form, no YAML: isolates what the YAML + pydantic + builder layer itself costs;
- ``dagfactory``: the same DAGs (operators, Params, dependencies, XCom through templates) from
  ``n`` dag-factory 1.x YAML files and its ``load_yaml_dags`` loader (a development dependency).

Each set is parsed by Airflow's DagBag in a fresh interpreter (so import caches favour none),
in turn, ``--repeats`` times; medians are compared. Then the ``yaml`` set is parsed at each size
of ``--scale`` (default 50, 100, 250, 500 pipelines) to show how parse time grows, and the time
of the largest is set against ``[core] dagbag_import_timeout``: every pipeline is built by the one
loader file, so that file's import must finish within the timeout.

    .venv/bin/python benchmarks/parse.py [--n 50] [--repeats 5] [--scale 50,100,250,500]
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

from mlops_airflow.operators.data import IngestOperator, ValidateOperator
from mlops_airflow.operators.deploy import DeployOperator, SmokeTestOperator
from mlops_airflow.operators.model import EvaluateOperator, GateOperator, RegisterOperator, TrainOperator
from mlops_airflow.operators.monitor import BatchScoreOperator

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

DAGFACTORY_LOADER = """# airflow DAG file: dag-factory builds the DAGs (DagBag's safe mode needs both words)
from __future__ import annotations

from pathlib import Path

from dagfactory import load_yaml_dags

load_yaml_dags(globals_dict=globals(), dags_folder=str(Path(__file__).parent / "configs"), suffix=[".yml"])
"""

# where each operator class lives (mlops_airflow.operators.<module>)
OPERATOR_MODULES = {
    "IngestOperator": "data",
    "ValidateOperator": "data",
    "TrainOperator": "model",
    "EvaluateOperator": "model",
    "GateOperator": "model",
    "RegisterOperator": "model",
    "DeployOperator": "deploy",
    "SmokeTestOperator": "deploy",
    "BatchScoreOperator": "monitor",
    "DriftCheckOperator": "monitor",
    "DriftPolicyOperator": "monitor",
    "EmitDriftEventOperator": "monitor",
    "PerformanceOperator": "monitor",
}


def dagfactory_config(i: int, yaml_path: Path) -> dict:
    """dag-factory 1.x YAML for pipeline ``i``'s two DAGs: the same operators, Params and wiring.

    dag-factory passes XCom to classic operators through templates (``ti.xcom_pull``), rendered
    as native objects, so the tasks receive the same dicts the builder's ``.output`` gives.
    """
    y = str(yaml_path)
    part = "{{ params.partition_date or '' }}"

    def pull(task: str) -> str:
        return "{{ ti.xcom_pull(task_ids='" + task + "') }}"

    common = {
        "schedule": "@weekly",
        "start_date": "2026-01-01",
        "catchup": False,
        "max_active_runs": 1,
        "render_template_as_native_obj": True,
        "tags": ["bench"],
        "default_args": {"owner": "bench", "retries": 2, "retry_delay_sec": 60},
    }

    def task(task_id: str, op: str, deps: list[str], **kwargs: object) -> dict:
        return {
            "task_id": task_id,
            "operator": f"mlops_airflow.operators.{OPERATOR_MODULES[op]}.{op}",
            "pipeline": y,
            **kwargs,
            "dependencies": deps,
        }

    training = [
        task("ingest", "IngestOperator", [], partition_date=part),
        task("validate", "ValidateOperator", ["ingest"], data=pull("ingest"), partition_date=part),
        task("train", "TrainOperator", ["validate"], data=pull("ingest"), partition_date=part),
        task("evaluate", "EvaluateOperator", ["train"], trained=pull("train"), partition_date=part),
        task(
            "gate",
            "GateOperator",
            ["evaluate"],
            trained=pull("train"),
            evaluation=pull("evaluate"),
            force_promote="{{ params.force_promote }}",
            reason="{{ params.reason }}",
        ),
        task("register", "RegisterOperator", ["gate"], trained=pull("train"), decision=pull("gate")),
        task("deploy", "DeployOperator", ["register"], registered=pull("register"), decision=pull("gate")),
        task(
            "smoke_test",
            "SmokeTestOperator",
            ["deploy"],
            deployment=pull("deploy"),
            trained=pull("train"),
            evaluation=pull("evaluate"),
        ),
    ]
    scoring = [
        task("ingest", "IngestOperator", [], stage="batch", partition_date=part),
        task(
            "validate",
            "ValidateOperator",
            ["ingest"],
            data=pull("ingest"),
            with_target=False,
            partition_date=part,
        ),
        task("score", "BatchScoreOperator", ["validate"], data=pull("ingest"), partition_date=part),
    ]
    return {
        f"p{i}_training": {
            **common,
            "params": {"force_promote": False, "reason": None, "partition_date": None},
            "tasks": training,
        },
        f"p{i}_batch_scoring": {
            **common,
            "schedule": "@daily",
            "params": {"partition_date": None},
            "tasks": scoring,
        },
    }


PROBE = """
import sys, time, json
from airflow.dag_processing.dagbag import DagBag
start = time.perf_counter()
bag = DagBag(dag_folder=sys.argv[1])
elapsed = time.perf_counter() - start
heavy = [m for m in ("pandas", "numpy", "sklearn", "mlflow", "great_expectations", "evidently") if m in sys.modules]
print("RESULT" + json.dumps({"seconds": elapsed, "dags": len(bag.dags), "errors": len(bag.import_errors), "heavy": heavy}))
"""


def yaml_set(folder: Path, n: int) -> Path:
    """``n`` pipeline YAMLs (the example, training + scoring only) and the package's loader."""
    import yaml

    (folder / "pipelines").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "mlops_pipelines.py", folder)
    # training + scoring only, like the hand-written sets (the monitoring DAG has its own shape)
    data = yaml.safe_load((REPO / "dags" / "pipelines" / "breast_cancer.yaml").read_text())
    data["monitoring"] = {"enabled": False}
    for i in range(n):
        (folder / "pipelines" / f"p{i}.yaml").write_text(
            yaml.safe_dump({**data, "name": f"p{i}"}, sort_keys=False)
        )
    return folder


def make_sets(root: Path, n: int) -> dict[str, Path]:
    import yaml

    yaml_dir = yaml_set(root / "yaml_set", n)
    py_dir, eq_dir, df_dir = root / "py_set", root / "eq_set", root / "df_set"
    py_dir.mkdir()
    eq_dir.mkdir()
    (df_dir / "configs").mkdir(parents=True)
    (df_dir / "dagfactory_dags.py").write_text(DAGFACTORY_LOADER)
    for i in range(n):
        spec_path = yaml_dir / "pipelines" / f"p{i}.yaml"
        (py_dir / f"p{i}_dags.py").write_text(TRIVIAL.format(i=i))
        (eq_dir / f"p{i}_dags.py").write_text(EQUIVALENT.format(i=i, yaml=spec_path))
        (df_dir / "configs" / f"p{i}.yml").write_text(
            yaml.safe_dump(dagfactory_config(i, spec_path), sort_keys=False)
        )
    return {"yaml": yaml_dir, "trivial": py_dir, "equivalent": eq_dir, "dagfactory": df_dir}


def parse(folder: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    return json.loads(next(line for line in out.stdout.splitlines() if line.startswith("RESULT"))[6:])


def check(name: str, res: dict, dags: int) -> None:
    if res["errors"] or res["dags"] != dags or res["heavy"]:
        raise SystemExit(
            f"ERROR: {name} set parsed badly (expected {dags} DAGs, no errors, no heavy import): {res}"
        )


def import_timeout() -> float:
    from airflow.configuration import conf

    return conf.getfloat("core", "dagbag_import_timeout")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--scale", default="50,100,250,500", help="pipeline counts for the growth test")
    args = ap.parse_args()
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    # dag-factory phones home at parse unless told not to (this machine has no internet anyway)
    os.environ.setdefault("AIRFLOW__DAG_FACTORY__ENABLE_TELEMETRY", "False")
    os.environ.setdefault("SCARF_NO_ANALYTICS", "true")
    with tempfile.TemporaryDirectory() as tmp:
        sets = make_sets(Path(tmp), args.n)
        times: dict[str, list[float]] = {name: [] for name in sets}
        for _ in range(args.repeats):
            for name, folder in sets.items():
                res = parse(folder)
                check(name, res, 2 * args.n)
                times[name].append(res["seconds"])
        growth: list[tuple[int, float]] = []
        for size in (int(x) for x in args.scale.split(",")):
            folder = yaml_set(Path(tmp) / f"scale_{size}", size)
            runs = []
            for _ in range(max(1, min(args.repeats, 3))):
                res = parse(folder)
                check(f"yaml x{size}", res, 2 * size)
                runs.append(res["seconds"])
            growth.append((size, statistics.median(runs)))
    y, p, e, f = (statistics.median(times[k]) for k in ("yaml", "trivial", "equivalent", "dagfactory"))
    runs_note = f"median of {args.repeats}; {2 * args.n} DAGs each"
    print(f"{args.n} pipeline YAMLs via the loader      : {y * 1000:8.1f} ms  ({runs_note})")
    print(f"{args.n} trivial DAG files (EmptyOperator)  : {p * 1000:8.1f} ms")
    print(
        f"{args.n} equivalent hand-written DAG files  : {e * 1000:8.1f} ms  (same operators and Params, no YAML)"
    )
    print(
        f"{args.n} dag-factory 1.x YAML files         : {f * 1000:8.1f} ms  (same operators, Params and wiring)"
    )
    print(f"ratio yaml/trivial                       : {y / p:8.2f}   (goal <= 1.5)")
    print(
        f"ratio yaml/equivalent                    : {y / e:8.2f}   (the YAML + pydantic + builder layer alone)"
    )
    print(f"ratio yaml/dag-factory                   : {y / f:8.2f}   (goal < 1: ahead of the peer)")
    print("heavy modules imported while parsing     : none (pandas, numpy, sklearn, mlflow, GX, evidently)")
    print("growth (one loader file builds every pipeline):")
    base_n, base_t = growth[0]
    for size, t in growth:
        per = t / size * 1000
        print(
            f"  {size:4d} pipelines ({2 * size:4d} DAGs): {t * 1000:8.1f} ms  {per:6.2f} ms/pipeline  "
            f"x{t / base_t:5.2f} for x{size / base_n:.0f} the pipelines"
        )
    size, t = growth[-1]
    timeout = import_timeout()
    per = (t - base_t) / max(size - base_n, 1) if size > base_n else t / size
    print(
        f"dagbag_import_timeout {timeout:.0f} s: {size} pipelines take {t:.2f} s ({timeout / t:.1f}x headroom); "
        f"at {per * 1000:.2f} ms per extra pipeline the loader reaches the timeout near {int(size + (timeout - t) / per)} pipelines"
    )
    if f <= y:
        print("  NOTE: dag-factory parsed faster than the loader in this run")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
