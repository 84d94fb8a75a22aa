"""The team topology without Docker: Airflow on PostgreSQL with the CeleryExecutor (Redis broker,
a Celery worker process for the default queue and one for the ``release`` queue), scheduler,
dag-processor, triggerer, api-server, an MLflow tracking server on PostgreSQL serving the
artifacts behind its basic-auth app (compose's two users: the ordinary workers' and the release
worker's, created by compose's own mlflow_users.py), and Prometheus scraping a Pushgateway
(Debian's binaries, the compose stack's config and alert rules). Started once for this module,
checked through the REST API, the Celery result backend, the MLflow server, PromQL and the browser.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from mlops_core.base import settings
from mlops_dev import datasets
from mlops_dev.localstack import AirflowStack
from tests import promstack
from tests.helpers import REPO, example_data, load_as_serving_container, pipeline_folder, wait_until

pytestmark = pytest.mark.stack

NAME = "team"
APPROVAL = "team_apr"
BACKFILL = [date(2026, 2, d) for d in (1, 2, 3)]
SCREENSHOTS = REPO / ".local" / "screenshots"
PROBE = "release_probe"

# Separation of duties, run by the real workers: the ordinary worker logs a run, the release
# worker registers it and moves an alias, then the ordinary worker tries the forgeries of issue 23
# (a gate tag on the version, the champion alias) and reports what MLflow answered.
PROBE_DAG = f"""
from __future__ import annotations

import sys
from datetime import datetime

from airflow.sdk import dag, task

MODEL = "{PROBE}_model"


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


@dag(dag_id="{PROBE}", schedule=None, start_date=datetime(2026, 1, 1), catchup=False)
def probe():
    @task
    def log_run() -> str:
        import mlflow

        mlflow.set_experiment("{PROBE}")
        with mlflow.start_run() as run:
            mlflow.log_text("x", "model/x.txt")
        return run.info.run_id

    @task(queue="release")
    def register(mlflow_run: str) -> str:
        client = _client()
        try:
            client.create_registered_model(MODEL)
        except Exception as err:
            if getattr(err, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(MODEL, f"runs:/{{mlflow_run}}/model", mlflow_run).version
        client.set_model_version_tag(MODEL, version, "mlops.gate", "reject")
        client.set_registered_model_alias(MODEL, "challenger", version)
        return str(version)

    @task
    def forge(version: str) -> dict:
        client, answers = _client(), {{}}
        for name, call in (
            ("tag", lambda: client.set_model_version_tag(MODEL, version, "mlops.gate", "promote")),
            ("alias", lambda: client.set_registered_model_alias(MODEL, "champion", version)),
            ("approval", lambda: client.set_model_version_tag(MODEL, version, "mlops.approval", "approved")),
        ):
            try:
                call()
                answers[name] = "written"
            except Exception as err:
                answers[name] = f"{{getattr(err, 'error_code', type(err).__name__)}}: {{str(err)[:200]}}"
        answers["read"] = _client().get_model_version(MODEL, version).tags.get("mlops.gate")
        # forked from a warm worker: the heavy libraries imported before the pool forked
        answers["warm"] = "mlops_airflow.warm" in sys.modules and "sklearn" in sys.modules
        return answers

    @task(queue="release")
    def release_moves(version: str) -> dict:
        client = _client()
        client.set_model_version_tag(MODEL, version, "mlops.probe", "release")
        client.set_registered_model_alias(MODEL, "champion", version)
        mv = client.get_model_version(MODEL, version)
        return {{"gate": mv.tags.get("mlops.gate"), "champion": client.get_registered_model(MODEL).aliases.get("champion")}}

    version = register(log_run())
    forge(version) >> release_moves(version)


probe()
"""


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    root = tmp_path_factory.mktemp("team")
    with pytest.MonkeyPatch.context() as mp, contextlib.ExitStack() as servers:
        gateway = servers.enter_context(promstack.pushgateway(root))
        prom = servers.enter_context(promstack.prometheus(root, gateway))
        statsd = promstack.StatsdReceiver()
        servers.callback(statsd.close)
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
        (dags / f"{PROBE}.py").write_text(PROBE_DAG)
        landing = settings.landing_root()
        datasets.materialize("breast_cancer", landing)
        # scoring input for the backfill and for the scheduled run: the scheduler (the real clock)
        # picks the last complete day, yesterday, or today if the module runs across midnight UTC
        today = datetime.now(UTC).date()
        for day in [*BACKFILL, today - timedelta(days=1), today]:
            datasets.append("breast_cancer", landing, datasets.daily_batch("breast_cancer", day))
        stack = AirflowStack(
            home=root / "airflow",
            dags_folder=dags,
            executor="CeleryExecutor",
            mlflow_server=True,
            mlflow_auth=True,
            release_worker=True,
            services=("scheduler", "dag-processor", "triggerer", "api-server", "celery-worker"),
            extra_env={
                "MLOPS_LOCAL_DIR": str(root / "local"),
                "MLOPS_PROMETHEUS_PUSHGATEWAY": gateway,
                # what docker-compose.yaml sets: Airflow's own metrics over StatsD
                "AIRFLOW__METRICS__STATSD_ON": "True",
                "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
                "AIRFLOW__METRICS__STATSD_PORT": str(statsd.port),
                "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
            },
        )
        stack.prometheus_url = prom
        stack.statsd = statsd
        stack.start()
        mp.setenv("MLFLOW_TRACKING_URI", stack.mlflow_url)
        for key, value in stack.mlflow_login("admin").items():  # this test reads everything
            mp.setenv(key, value)
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


@pytest.fixture(scope="module")
def approval_started(stack) -> str:
    """``team_apr``'s training run triggered (not awaited): it trains, then waits for a person.
    ``trained`` asks for it first, so both training runs share the Celery worker's two slots instead
    of running one after the other (the approval's wait is deferred: it holds no slot)."""
    dag_id = f"{APPROVAL}_training"
    stack.wait_for_dag(dag_id)
    stack.unpause(dag_id)
    stack.trigger(dag_id, "2026-01-31T00:00:00Z")
    return dag_id


@pytest.fixture(scope="module")
def trained(stack, approval_started) -> dict:
    """The training DAG triggered once through the REST API, as the UI's form does; its finished
    run and the created one. Every test that needs the champion (v1) asks for this fixture, so
    each test stands alone and the order of the module's tests does not matter."""
    stack.unpause(f"{NAME}_training")
    body = {
        "logical_date": datetime.now(UTC).isoformat(),  # what the UI's form sends by default
        "conf": {"force_promote": False, "reason": "", "partition_date": "2026-01-31"},
        "note": "triggered by the team-stack test",
    }
    created = stack.api("POST", f"/dags/{NAME}_training/dagRuns", body)
    (run,) = stack.wait_runs(f"{NAME}_training", 1)
    return {"created": created, "run": run}


def test_rest_trigger_with_params_runs_on_the_celery_worker(stack, trained):
    assert trained["created"]["conf"]["partition_date"] == "2026-01-31"
    run = trained["run"]
    tasks = stack.tasks(f"{NAME}_training", run["dag_run_id"])
    assert run["state"] == "success", {t: v["state"] for t, v in tasks.items()}
    assert {t["state"] for t in tasks.values()} == {"success"}, (run, tasks)
    released = {"gate", "register", "deploy", "smoke_test"}  # the release queue's worker (README)
    assert {t for t, v in tasks.items() if v["queue"] == "release"} == released, tasks
    assert all(t["queue"] == "default" and t["hostname"] for n, t in tasks.items() if n not in released)
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


def test_only_the_release_queue_may_tag_or_alias_a_model_version(stack):
    """Issue 23 item 3 on the real MLflow server: an ordinary worker's task is refused (403) when it
    writes a gate or approval tag or moves an alias; the release worker's task does both."""
    stack.wait_for_dag(PROBE)
    stack.unpause(PROBE)
    stack.api("POST", f"/dags/{PROBE}/dagRuns", {"logical_date": None})
    (run,) = stack.wait_runs(PROBE, 1, timeout=600)
    tasks = stack.tasks(PROBE, run["dag_run_id"])
    failed = {
        t: stack.task_log(PROBE, run["dag_run_id"], t)[-8000:]
        for t, v in tasks.items()
        if v["state"] == "failed"
    }
    if run["state"] != "success":
        pytest.fail(f"{ {t: v['state'] for t, v in tasks.items()} }\n" + "\n".join(failed.values()))
    assert {t: v["queue"] for t, v in tasks.items()} == {
        "log_run": "default", "register": "release", "forge": "default", "release_moves": "release",
    }  # fmt: skip
    forged = stack.xcom(PROBE, run["dag_run_id"], "forge")
    for attempt in ("tag", "alias", "approval"):
        assert forged[attempt].startswith("PERMISSION_DENIED") and "403" in forged[attempt], forged
    assert forged["read"] == "reject"  # it may read the registry, not change it
    # the Celery worker preloaded the heavy libraries (mlops_airflow.celery_config, as in compose)
    assert forged["warm"] is True, forged
    moved = stack.xcom(PROBE, run["dag_run_id"], "release_moves")
    version = stack.xcom(PROBE, run["dag_run_id"], "register")
    # the release worker moved the alias; the forged tag never landed
    assert moved["gate"] == "reject" and str(moved["champion"]) == str(version), (moved, version)


def test_mlflow_server_holds_the_model_and_champion(stack, trained):
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
    model = load_as_serving_container(f"models:/{NAME}@champion")
    assert len(model.predict(datasets.load_example("breast_cancer").head(3))) == 3


def test_scheduler_creates_a_scheduled_run_by_itself(stack, trained):
    stack.unpause(f"{NAME}_batch_scoring")
    (run,) = stack.wait_runs(f"{NAME}_batch_scoring", 1, run_type="scheduled", timeout=600)
    assert run["state"] == "success", stack.why_failed(f"{NAME}_batch_scoring", run["dag_run_id"])


def test_cli_backfill_of_three_dates(stack, trained):
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


def _chromium() -> str:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Debian's chromium is not installed: run `make browser` (apt-get install chromium)")
    return chromium


def _awaiting_input(stack: AirflowStack, dag_id: str) -> dict | None:
    for candidate in stack.runs(dag_id):
        if stack.tasks(dag_id, candidate["dag_run_id"]).get("approval", {}).get("state") == "awaiting_input":
            return candidate
    return None


@pytest.fixture(scope="module")
def approved(stack, approval_started) -> dict:
    """A person approves ``team_apr``'s promotion in the browser, once for the module: what the
    page showed and the finished run (the approval test and the models view both need it)."""
    chromium = _chromium()
    from tests.stack.ui import approve_in_the_required_actions_page

    dag_id = approval_started
    run = wait_until(lambda: _awaiting_input(stack, dag_id), 600, f"{dag_id} waits for input", interval=3)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seen = approve_in_the_required_actions_page(stack, chromium, dag_id, run["dag_run_id"], SCREENSHOTS)
    (done,) = stack.wait_runs(dag_id, 1, timeout=600)
    return {"seen": seen, "run": done}


def test_a_person_approves_the_promotion_on_the_required_actions_page(stack, approved):
    """The approval task waits; headless Chromium opens its Required Actions page (the evidence in
    Markdown), saves a screenshot (docs/approval_page.png) and presses Approve; deploy then runs."""
    from mlflow import MlflowClient

    seen, done = approved["seen"], approved["run"]
    assert seen["approve_enabled"] and "Holdout metrics" in seen["text"] and "Gate reasons" in seen["text"]
    assert f"Promote {APPROVAL} v1 to champion?" in seen["text"]
    assert 200 <= seen["answer_status"] < 300, seen["answer_status"]
    tasks = stack.tasks(f"{APPROVAL}_training", done["dag_run_id"])
    assert (done["state"], tasks["deploy"]["state"], tasks["smoke_test"]["state"]) == ("success",) * 3, tasks
    tags = MlflowClient(tracking_uri=stack.mlflow_url).get_model_version(APPROVAL, "1").tags
    assert (tags["mlops.approval"], tags["mlops.approved_by"]) == ("approved", "admin")
    assert tags["mlops.approval_comment"] == "approved in the browser"


def promql(stack: AirflowStack, expr: str) -> list[dict]:
    url = f"{stack.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as reply:
        answer = json.loads(reply.read())
    assert answer["status"] == "success", answer
    return answer["data"]["result"]


def wait_promql(stack: AirflowStack, expr: str, timeout: float = 90) -> float:
    """The single value of ``expr`` once Prometheus has scraped it (pushes land within a scrape)."""
    deadline = time.monotonic() + timeout
    while True:
        result = promql(stack, expr)
        if result or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(result) == 1, (expr, result)
    return float(result[0]["value"][1])


def test_model_metrics_reach_prometheus_and_the_alert_rules_load(stack, trained):
    """The training run's evaluate, gate and promote steps pushed to the Pushgateway (from the
    Celery worker); real Prometheus scraped them, with the compose stack's alert rules loaded."""
    team = f'pipeline="{NAME}",job="mlops"'
    auc = wait_promql(stack, f'mlops_holdout_metric{{{team},metric="roc_auc",stage="evaluation"}}')
    assert 0.9 < auc <= 1.0
    assert wait_promql(stack, f'mlops_gate_accepted{{{team},stage="gate"}}') == 1.0
    assert wait_promql(stack, f'mlops_gate_decisions_total{{{team},decision="promote"}}') >= 1.0
    assert wait_promql(stack, f'mlops_champion_version{{{team},stage="deploy"}}') == 1.0
    assert wait_promql(stack, f"mlops_deployments_total{{{team}}}") == 1.0
    assert wait_promql(stack, f"mlops_rollback_failed{{{team}}}") == 0.0
    with urllib.request.urlopen(f"{stack.prometheus_url}/api/v1/rules", timeout=10) as reply:
        groups = json.loads(reply.read())["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert {"MlopsModelDecay", "MlopsRollbackFailed"} <= set(rules), sorted(rules)
    assert all(r["health"] == "ok" for r in rules.values()), rules
    assert rules["MlopsRollbackFailed"]["state"] == "inactive", rules["MlopsRollbackFailed"]["alerts"]


def get(stack: AirflowStack, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urllib.request.Request(f"{stack.url}{path}", headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=60) as reply:
            return reply.status, {k.lower(): v for k, v in reply.headers.items()}, reply.read()
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_extra_links_open_the_mlflow_run_the_version_and_the_gx_report(stack, trained):
    run = trained["run"]
    assert run["state"] == "success", run
    base = f"/dags/{NAME}_training/dagRuns/{urllib.parse.quote(run['dag_run_id'])}/taskInstances"
    train = stack.api("GET", f"{base}/train/links")["extra_links"]
    register = stack.api("GET", f"{base}/register/links")["extra_links"]
    validate = stack.api("GET", f"{base}/validate/links")["extra_links"]
    from mlflow import MlflowClient

    version = MlflowClient(tracking_uri=stack.mlflow_url).get_model_version(NAME, "1")
    experiment = MlflowClient(tracking_uri=stack.mlflow_url).get_run(version.run_id).info.experiment_id
    assert train["MLflow run"] == f"{stack.mlflow_url}/#/experiments/{experiment}/runs/{version.run_id}"
    assert register["MLflow model version"] == f"{stack.mlflow_url}/#/models/{NAME}/versions/1"
    report = validate["GX validation report"]
    assert report.startswith(f"/mlops/reports/{NAME}?path=validation%2Fds%3D2026-01-31%2F"), report
    status, headers, body = get(stack, report, stack.token)
    assert status == 200 and b"<html" in body.lower() and b"expect_column_values_to_be_in_set" in body
    assert headers["content-security-policy"].startswith("sandbox allow-scripts")
    # the view serves reports only to a signed-in user, and only report files of that pipeline
    assert get(stack, report)[0] == 401
    for bad in (
        "../team_apr/validation/x/result.html",
        "validation/ds=2026-01-31/data.parquet",
        "/etc/passwd",
    ):
        code, _, _ = get(
            stack, f"/mlops/reports/{NAME}?" + urllib.parse.urlencode({"path": bad}), stack.token
        )
        assert code == 400, bad
    assert get(stack, "/mlops/reports/not_a_pipeline?path=validation/result.html", stack.token)[0] == 404


def test_the_models_view_shows_champion_history_and_charts(stack, trained, approved):
    status, headers, body = get(stack, "/mlops/models", stack.token)
    page = body.decode()
    assert status == 200 and headers["cache-control"] == "no-store"
    assert f'<section id="{NAME}">' in page and "champion v1" in page
    assert 'aria-label="holdout roc_auc by version"' in page and "<polyline" in page
    assert "promote" in page and "approved by admin" in page  # the approval pipeline's decision
    assert get(stack, "/mlops/models")[0] == 401
    plugins = stack.api("GET", "/plugins")["plugins"]
    (mlops,) = [p for p in plugins if p["name"] == "mlops"]
    assert mlops["external_views"][0]["href"] == "/mlops/models"
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    from tests.stack.ui import models_view_screenshot

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    seen = models_view_screenshot(stack, chromium, SCREENSHOTS)
    # Airflow's page for the external view (/plugin/<url_route>) embeds ours: its text is the iframe's
    assert "Browse" in seen["nav"] and seen["text"].startswith("Models") and "champion v1" in seen["text"], (
        seen
    )
    assert (SCREENSHOTS / "models_view.png").stat().st_size > 10_000


def test_airflow_statsd_metrics_map_to_the_dashboards_series(stack, trained):
    """Every Airflow service sent StatsD; the compose stack's statsd_exporter mapping turns the
    real names into the labelled series the Grafana dashboard queries."""
    from tests.unit.test_observability_config import statsd_map

    seen = stack.statsd.seen()
    mapped = {name: statsd_map(name, kind) for name, kind in seen.items()}

    def series(name: str, **labels: str) -> bool:
        want = set(labels.items())
        return any(m is not None and m.name == name and want <= set(m.labels) for m in mapped.values())

    assert series("airflow_dagrun_duration_seconds", dag_id=f"{NAME}_training", status="success"), sorted(
        seen
    )
    assert series("airflow_ti_finish_total", dag_id=f"{NAME}_training", task_id="train", state="success")
    for heartbeat in ("scheduler", "triggerer", "dag_processor"):
        assert series(f"airflow_{heartbeat}_heartbeat_total"), sorted(seen)[:200]
