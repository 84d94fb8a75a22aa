"""``make demo``: the example pipeline from raw data to a monitored, self-retraining deployment.

Everything runs through a real Airflow (scheduler, dag-processor, triggerer, api-server with the
LocalExecutor on the embedded SQLite DB under ``.local/airflow``), real MLflow (SQLite store),
Great Expectations and Evidently:

1. the example data (shipped inside scikit-learn) lands in ``.local/landing``: January 2026 for
   training, three stable days (Feb 1-3) and one drifted day (Feb 4: 12 of 30 features shifted by
   +1 standard deviation, seeded; see ``mlops_dev.datasets.daily_batch``);
2. ``breast_cancer_training`` is triggered for 2026-01-31 through the REST API;
3. ``airflow backfill create`` monitors Feb 1-3: drift history fills, nothing retrains;
4. the monitoring run for Feb 4 finds drift and emits the pipeline's drift Asset event, and the
   scheduler starts ``breast_cancer_training`` by itself;
5. the champion, the gate decisions and where to look are printed.

The demo starts from a clean ``.local`` each time, so it is repeatable. It runs the repo's DAGs
from a copy under ``.local/demo/dags`` whose example pipelines get ``end_date: 2026-03-31`` (the
data's range), so the scheduler does not start cron runs for today, which has no data.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from datetime import date
from typing import TYPE_CHECKING

from mlops_dev.localstack import AirflowStack

if TYPE_CHECKING:
    from pathlib import Path

PIPELINE = "breast_cancer"
TRAIN_DAY = date(2026, 1, 31)
STABLE = [date(2026, 2, d) for d in (1, 2, 3)]
DRIFT_DAY = date(2026, 2, 4)


_STARTED = time.monotonic()


def _say(text: str) -> None:
    print(f"\n>>> [+{time.monotonic() - _STARTED:.0f} s] {text}", flush=True)


def demo_dags(target: Path) -> Path:
    """The repo's DAGs with the example pipelines bounded to their data (``end_date``).

    The example data covers January-February 2026. Unpaused with ``catchup=False``, the cron
    schedules would otherwise start one run for today, which has no data and would fail.
    """
    from mlops_core.base import settings

    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(settings.home() / "dags", target, ignore=shutil.ignore_patterns("__pycache__"))
    for path in (target / "pipelines").glob("*.yaml"):
        path.write_text(
            path.read_text().replace(
                "\nstart_date: 2026-01-01\n", "\nstart_date: 2026-01-01\nend_date: 2026-03-31\n"
            )
        )
    return target


def prepare_data() -> None:
    from mlops_core.base import settings
    from mlops_dev import datasets

    landing = settings.landing_root()
    datasets.materialize(PIPELINE, landing)
    datasets.materialize("diabetes", landing)
    for day in STABLE:
        datasets.append(PIPELINE, landing, datasets.daily_batch(PIPELINE, day))
    datasets.append(PIPELINE, landing, datasets.daily_batch(PIPELINE, DRIFT_DAY, drift=True))
    print(f"landing zone: {landing}/ (January + {len(STABLE)} stable days + drifted {DRIFT_DAY})")


def backfill_create(stack: AirflowStack, dag_id: str, start: str, end: str) -> None:
    """``airflow backfill create`` beside the running services.

    On SQLite the command can lose a lock race to the scheduler: SQLITE_BUSY on a lock upgrade,
    which the busy timeout does not cover. Airflow then deletes the partial backfill, so the command
    runs again, unless the backfill landed after all (the REST API lists it).
    """
    args = ("backfill", "create", "--dag-id", dag_id, "--from-date", start, "--to-date", end)
    for attempt in range(4):
        try:
            stack.cli(*args)
            return
        except RuntimeError as err:
            if "database is locked" not in str(err) or attempt == 3:
                raise
            if stack.api("GET", f"/backfills?dag_id={dag_id}").get("total_entries"):
                return
            print(f"airflow backfill create lost a SQLite lock race (try {attempt + 1}); again", flush=True)
            time.sleep(2)


def _fmt_metrics(metrics: dict[str, float]) -> str:
    keys = ("roc_auc", "average_precision", "recall", "precision", "f1", "accuracy")
    return ", ".join(f"{k}={metrics[k]:.4f}" for k in keys if k in metrics)


def run(stack: AirflowStack) -> int:
    from mlops_core import lifecycle
    from mlops_core.base import settings
    from mlops_core.monitor import monitoring
    from mlops_core.spec import load_spec

    spec = load_spec(stack.dags_folder / "pipelines" / f"{PIPELINE}.yaml")
    assert spec.end_date is not None, "the demo bounds the example to its data"
    training, monitor = f"{PIPELINE}_training", f"{PIPELINE}_monitoring"
    for dag_id in (training, monitor):
        stack.wait_for_dag(dag_id)
        stack.unpause(dag_id)

    _say(f"{training} for {TRAIN_DAY} (REST API trigger, what the UI's Trigger button sends)")
    stack.trigger(training, f"{TRAIN_DAY}T00:00:00Z")
    (first,) = stack.wait_runs(training, 1, run_type="manual")
    if first["state"] != "success":
        print(stack.tasks(training, first["dag_run_id"]), file=sys.stderr)
        return 1
    initial = lifecycle.summary(spec)
    decision = initial["latest_decision"]
    print(
        f"champion: models:/{PIPELINE}@champion -> v{initial['champion']}  ({_fmt_metrics(initial['metrics'])})"
    )
    print(f"gate: {decision['outcome']}\n  - " + "\n  - ".join(decision["reasons"]))

    _say(f"airflow backfill create --dag-id {monitor} --from-date {STABLE[0]} --to-date {STABLE[-1]}")
    backfill_create(stack, monitor, STABLE[0].isoformat(), STABLE[-1].isoformat())
    backfill = stack.wait_runs(monitor, len(STABLE), run_type="backfill")
    for row in monitoring.history(spec, settings.lake_root()).itertuples():
        print(
            f"  {row.ds}: drift share {row.drift_share:.2f} ({row.n_drifted} columns), {row.rows} rows, {row.run_type}"
        )
    print(
        f"backfill runs: {[r['state'] for r in backfill]}; training runs so far: {len(stack.runs(training))} (no retraining)"
    )

    _say(f"{monitor} for {DRIFT_DAY} (the drifted day)")
    stack.trigger(monitor, f"{DRIFT_DAY}T00:00:00Z")
    (mon,) = stack.wait_runs(monitor, 1, run_type="manual")
    report = f"{settings.lake_root()}/{PIPELINE}/reports/drift/ds={DRIFT_DAY}/report.html"
    today = monitoring.history(spec, settings.lake_root()).iloc[-1]
    print(
        f"drift share {today['drift_share']:.2f} ({today['n_drifted']} of {today['n_columns']} columns) -> policy fired: "
        f"{stack.tasks(monitor, mon['dag_run_id'])['emit_drift_event']['state'] == 'success'}"
    )
    print(f"Evidently report: {report}")

    _say(f"waiting for the scheduler to start {training} from the drift Asset event")
    (retrain,) = stack.wait_runs(training, 1, run_type="asset_triggered")
    final = lifecycle.summary(spec)
    decision = final["latest_decision"]
    print(f"{training} run {retrain['dag_run_id']}: {retrain['state']} (run_type asset_triggered)")
    print(f"gate: {decision['outcome']}\n  - " + "\n  - ".join(decision["reasons"]))
    moved = final["champion"] != initial["champion"]
    print(
        f"champion: models:/{PIPELINE}@champion -> v{final['champion']} "
        f"({'new, was v' + str(initial['champion']) if moved else 'unchanged: the gate kept it'}); {_fmt_metrics(final['metrics'])}"
    )
    # Left unpaused, the cron schedules would start runs for today (the data ends in February 2026)
    # the moment `make airflow` starts the scheduler: the UI would open on red runs nobody asked for.
    for dag_id in (training, monitor):
        stack.pause(dag_id)
    local = settings.local_dir()
    print(f"""
where to look
  lake           : {settings.lake_root()}/{PIPELINE}/   raw/ validation/ holdout/ evaluation/ reports/drift/ drift_history/
  drift report   : {report}
  MLflow UI      : make mlflow-ui  -> http://127.0.0.1:5000   (experiments mlops/{PIPELINE} and mlops/{PIPELINE}/monitoring)
  Airflow UI     : make airflow    -> http://127.0.0.1:8080   (AIRFLOW_HOME={local / "airflow"}; the Models view: /mlops/models)

{training} and {monitor} are left paused: their data ends in February 2026, so a scheduled run
for today would have nothing to read. The runs above, the champion history and the drift asset
events are all in the UI; unpause a pipeline once its landing zone receives current data.
""")
    return 0 if retrain["state"] == "success" and backfill and mon["state"] == "success" else 1


def main() -> int:
    from mlops_core.base import settings

    local = settings.local_dir()
    for sub in ("lake", "landing", "mlflow", "airflow", "demo"):
        shutil.rmtree(local / sub, ignore_errors=True)
    # A fresh clone's venv holds no bytecode yet, and the four services would all compile at once.
    # What the warm workers preload (MLflow, GX, Evidently, scikit-learn...) compiles here instead,
    # on the core that the data and `airflow db migrate` (one process each) leave idle.
    compile_ahead = subprocess.Popen(
        [sys.executable, "-c", "import mlops_airflow.warm"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    prepare_data()
    stack = AirflowStack(home=local / "airflow", dags_folder=demo_dags(local / "demo" / "dags"), sqlite=True)
    _say("starting Airflow: scheduler, dag-processor, triggerer, api-server (SQLite + LocalExecutor)")
    try:
        # inside: a start that times out still stops the services it started
        stack.start(before_services=compile_ahead.wait)
        code = run(stack)
        print(f"the demo took {time.monotonic() - _STARTED:.0f} s", flush=True)
        return code
    except Exception:
        for name in stack.services:
            print(f"--- {name} log tail ---\n{stack.log_tail(name, 3000)}", file=sys.stderr)
        raise
    finally:
        compile_ahead.kill()
        compile_ahead.wait()
        stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
