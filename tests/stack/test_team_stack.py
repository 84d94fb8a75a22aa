"""The team topology without Docker: Airflow on PostgreSQL with the CeleryExecutor (Redis broker,
a Celery worker process), scheduler, dag-processor, triggerer, api-server, and an MLflow tracking
server on PostgreSQL serving the artifacts. Started once for this module, checked through the
REST API, the Celery result backend and the MLflow server.
"""

from __future__ import annotations

import shutil
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from mlops_airflow.localstack import AirflowStack
from mlops_core import datasets, settings
from tests.helpers import REPO, example_data, pipeline_folder

pytestmark = pytest.mark.stack

NAME = "team"
APPROVAL = "team_apr"
BACKFILL = [date(2026, 2, d) for d in (1, 2, 3)]
SCREENSHOTS = REPO / ".local" / "screenshots"


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("team")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(root / "local"))
        dags = pipeline_folder(
            root / "dags",
            NAME,
            schedule=None,
            monitoring={"enabled": False},
            scoring={"schedule": "@daily", "lookback_days": 7},
        )
        # a pipeline whose promotion a person approves in the UI (the Required Actions page)
        approval = example_data(
            name=APPROVAL,
            schedule=None,
            monitoring={"enabled": False},
            scoring={"schedule": None},
            deployment={"approval": {"assigned_users": ["admin"], "timeout_minutes": 60}},
        )
        (dags / "pipelines" / f"{APPROVAL}.yaml").write_text(yaml.safe_dump(approval, sort_keys=False))
        landing = settings.landing_root()
        datasets.materialize("breast_cancer", landing)
        yesterday = datetime.now(UTC).date() - timedelta(days=1)
        for day in [*BACKFILL, yesterday]:  # scoring input for the backfill and for the scheduled run
            datasets.append("breast_cancer", landing, datasets.daily_batch("breast_cancer", day))
        stack = AirflowStack(
            home=root / "airflow",
            dags_folder=dags,
            executor="CeleryExecutor",
            mlflow_server=True,
            services=("scheduler", "dag-processor", "triggerer", "api-server", "celery-worker"),
            extra_env={"MLOPS_LOCAL_DIR": str(root / "local")},
        )
        stack.start()
        mp.setenv("MLFLOW_TRACKING_URI", stack.mlflow_url)
        try:
            for dag_id in (f"{NAME}_training", f"{NAME}_batch_scoring"):
                stack.wait_for_dag(dag_id)
            yield stack
        finally:
            stack.stop()


def celery_results(stack: AirflowStack) -> list[tuple[str, str]]:
    """(task name, status) rows of the Celery result backend: proof the worker ran them."""
    import psycopg2

    conn = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname=stack.db_name)
    with conn, conn.cursor() as cur:
        cur.execute("SELECT name, status FROM celery_taskmeta")
        rows = cur.fetchall()
    conn.close()
    return [(str(n), str(s)) for n, s in rows]


def test_rest_trigger_with_params_runs_on_the_celery_worker(stack):
    stack.unpause(f"{NAME}_training")
    body = {
        "logical_date": datetime.now(UTC).isoformat(),  # what the UI's form sends by default
        "conf": {"force_promote": False, "reason": "", "partition_date": "2026-01-31"},
        "note": "triggered by the team-stack test",
    }
    created = stack.api("POST", f"/dags/{NAME}_training/dagRuns", body)
    assert created["conf"]["partition_date"] == "2026-01-31"
    (run,) = stack.wait_runs(f"{NAME}_training", 1)
    tasks = stack.tasks(f"{NAME}_training", run["dag_run_id"])
    assert run["state"] == "success", {t: v["state"] for t, v in tasks.items()}
    assert {t["state"] for t in tasks.values()} == {"success"}, (run, tasks)
    assert all(t["queue"] == "default" and t["hostname"] for t in tasks.values())
    # The worker writes a task's Celery result after its Airflow state (the supervisor reports the
    # state, then the Celery task returns), so the last task's row may lag the run's success.
    deadline = time.monotonic() + 60
    while True:
        results = celery_results(stack)
        if sum(status == "SUCCESS" for _, status in results) >= len(tasks) or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert sum(status == "SUCCESS" for _, status in results) >= len(tasks), results
    assert stack.procs["celery-worker"].poll() is None


def test_mlflow_server_holds_the_model_and_champion(stack):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=stack.mlflow_url, registry_uri=stack.mlflow_url)
    champion = client.get_model_version_by_alias(NAME, "champion")
    assert champion.version == "1"
    assert champion.tags["airflow.dag_id"] == f"{NAME}_training" and champion.tags["mlops.gate"] == "promote"
    run = client.get_run(champion.run_id)
    assert run.data.tags["mlops.ds"] == "2026-01-31" and "holdout_roc_auc" in run.data.metrics
    # the artifacts are served by the MLflow server, not read from a shared disk
    import mlflow

    # both: earlier tests in the session point the process-wide registry URI at local stores
    mlflow.set_tracking_uri(stack.mlflow_url)
    mlflow.set_registry_uri(stack.mlflow_url)
    model = mlflow.pyfunc.load_model(f"models:/{NAME}@champion")
    assert len(model.predict(datasets.load_example("breast_cancer").head(3))) == 3


def test_scheduler_creates_a_scheduled_run_by_itself(stack):
    stack.unpause(f"{NAME}_batch_scoring")
    (run,) = stack.wait_runs(f"{NAME}_batch_scoring", 1, run_type="scheduled", timeout=600)
    assert run["state"] == "success", stack.tasks(f"{NAME}_batch_scoring", run["dag_run_id"])


def test_cli_backfill_of_three_dates(stack):
    stack.cli(
        "backfill",
        "create",
        "--dag-id",
        f"{NAME}_batch_scoring",
        "--from-date",
        BACKFILL[0].isoformat(),
        "--to-date",
        BACKFILL[-1].isoformat(),
    )
    runs = stack.wait_runs(f"{NAME}_batch_scoring", 3, run_type="backfill")
    assert sorted(r["logical_date"][:10] for r in runs) == [d.isoformat() for d in BACKFILL]
    assert [r["state"] for r in runs] == ["success"] * 3


def test_browser_sees_dags_docs_and_the_trigger_form_params(stack):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Debian's chromium is not installed: run `make browser` (apt-get install chromium)")
    from tests.stack.ui import trigger_form_screenshot

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seen = trigger_form_screenshot(stack, chromium, f"{NAME}_training", SCREENSHOTS)
    assert seen["login"] and seen["dag_list_has_tag"] and seen["docs"]
    assert seen["trigger_enabled"], (
        "the form's defaults must be a valid trigger (no required field left empty)"
    )
    # the Params form, by the titles the spec's Params carry
    for title in ("Run Parameters", "Force promote", "Reason", "Partition date"):
        assert title in seen["form_text"], seen["form_text"][:2000]
    assert (SCREENSHOTS / "trigger_form.png").stat().st_size > 10_000


def test_a_person_approves_the_promotion_on_the_required_actions_page(stack):
    """The approval task waits; headless Chromium opens its Required Actions page (the evidence in
    Markdown), saves a screenshot (docs/approval_page.png) and presses Approve; deploy then runs."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Debian's chromium is not installed: run `make browser` (apt-get install chromium)")
    from mlflow import MlflowClient

    from tests.stack.ui import approve_in_the_required_actions_page

    dag_id = f"{APPROVAL}_training"
    stack.wait_for_dag(dag_id)
    stack.unpause(dag_id)
    stack.trigger(dag_id, "2026-01-31T00:00:00Z")
    deadline = time.monotonic() + 600
    run = None
    while time.monotonic() < deadline and run is None:
        for candidate in stack.runs(dag_id):
            if (
                stack.tasks(dag_id, candidate["dag_run_id"]).get("approval", {}).get("state")
                == "awaiting_input"
            ):
                run = candidate
        time.sleep(3)
    assert run is not None, stack.runs(dag_id)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seen = approve_in_the_required_actions_page(stack, chromium, dag_id, run["dag_run_id"], SCREENSHOTS)
    assert seen["approve_enabled"] and "Holdout metrics" in seen["text"] and "Gate reasons" in seen["text"]
    assert f"Promote {APPROVAL} v1 to champion?" in seen["text"]
    (done,) = stack.wait_runs(dag_id, 1, timeout=600)
    tasks = stack.tasks(dag_id, done["dag_run_id"])
    assert (done["state"], tasks["deploy"]["state"], tasks["smoke_test"]["state"]) == ("success",) * 3, tasks
    tags = MlflowClient(tracking_uri=stack.mlflow_url).get_model_version(APPROVAL, "1").tags
    assert (tags["mlops.approval"], tags["mlops.approved_by"]) == ("approved", "admin")
    assert tags["mlops.approval_comment"] == "approved in the browser"
