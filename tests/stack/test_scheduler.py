"""Training and monitoring on a running scheduler, the training DAG on "its cron OR the drift
asset" (``AssetOrTimeSchedule``): the scheduler's own cron run trains the first model, its own
daily monitoring run reads the day that has just ended, a CLI backfill reads exactly its dates
without retraining, then drift -> Asset event -> the scheduler starts the training DAG by itself ->
a new model version, with the evidence on the event and on the new run. Every step of every run
sends its OpenLineage events (the provider's HTTP transport) to a loopback endpoint the module
starts, and the last test follows the names from the source file to the retrained version.

Real Airflow services (scheduler, dag-processor, triggerer, api-server, LocalExecutor) on the
machine's PostgreSQL, started once for this module. Assertions use the REST API, the lake and MLflow.

The dates are relative to today, so the scheduler's "latest complete interval" is what the
module needs. The scheduler reads the real clock (a subprocess: no clock of the test's reaches it),
so every date here derives from one instant, ``STARTED``, taken once at import, and the one
assertion that depends on the scheduler's own "now" (the @daily run's day) accepts either day a
run across midnight UTC can see: the day the run names is the scheduler's yesterday at the time it
queued the run, and the rows of the day after it have landed too, so it still shows that the run
reads its own day only. The training cron is monthly on the day after ``TRAIN_DAY``: its last complete
interval ends at 00:00 of that day, so the scheduled run's data day is ``TRAIN_DAY`` (the last
whole day of its interval), ten days ago. A ``@daily`` training cron would train on yesterday, and
a model trained on yesterday's data puts every earlier drifted day inside ``cooldown_days``: the
drift hand-off could then only be shown by a second scheduled training after it.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from mlops_core.base import settings
from mlops_core.data import filesystems, storage
from mlops_core.monitor import monitoring
from mlops_core.runs import registry
from mlops_core.spec import load_spec
from mlops_dev import datasets
from mlops_dev.localstack import AirflowStack
from tests.emulators import openlineage
from tests.helpers import example_data, pipeline_folder, wait_until
from tests.integration.test_training_dag import assert_lineage

pytestmark = pytest.mark.scheduler

NAME = "stk"
STARTED = datetime.now(UTC)  # the one reading of the clock: every date below derives from it
TODAY = STARTED.date()
# The DAGs have no end date and catchup off: once unpaused, the scheduler creates each DAG's run
# for its last complete interval. For monitoring (@daily) that is [yesterday, today), by the
# scheduler's clock: [TODAY - 1, TODAY), or [TODAY, TODAY + 1) if midnight UTC passed meanwhile.
YESTERDAY = TODAY - timedelta(days=1)
DAILY_RUN_DAYS = (YESTERDAY, TODAY)
TRAIN_DAY = TODAY - timedelta(days=10)  # the data day of the scheduled training run
TRAINING_CRON = f"0 0 {(TRAIN_DAY + timedelta(days=1)).day} * *"  # monthly, the day after TRAIN_DAY
START = TRAIN_DAY - timedelta(days=92)  # before the interval that ends after TRAIN_DAY (<= 2 months)
STABLE = [TRAIN_DAY + timedelta(days=d) for d in range(1, 6)]
# pipelines with deployment.approval: one rejected, one never answered (an approval, answered on the
# Required Actions page with the same REST call, deploys in the browser tier: tests/stack/test_team_stack.py)
APPROVALS = {"apr_no": 60, "apr_late": 1}
DRIFT_DAY = TRAIN_DAY + timedelta(days=6)  # > cooldown_days after TRAIN_DAY
OL_NAMESPACE = "mlops-stack"  # the OpenLineage namespace of the module's jobs


@pytest.fixture(scope="module")
def lineage():
    """The OpenLineage endpoint every Airflow service of the module's stack sends its events to."""
    with openlineage.lineage_endpoint() as api:
        yield api


@pytest.fixture(scope="module")
def stack(tmp_path_factory, lineage):
    root = tmp_path_factory.mktemp("scheduler")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(root / "local"))
        # the pipeline: the example, training on its cron OR the drift asset, daily monitoring
        dags = pipeline_folder(
            root / "dags",
            NAME,
            schedule=TRAINING_CRON,
            start_date=START.isoformat(),
            monitoring={"schedule": "@daily", "consecutive_days": 1, "cooldown_days": 3, "min_rows": 100},
        )
        # three pipelines whose promotions a person answers: approve, reject, and no answer at all
        for name, minutes in APPROVALS.items():
            data = example_data(
                name=name,
                schedule=None,
                start_date=START.isoformat(),
                monitoring={"enabled": False},
                deployment={"approval": {"assigned_users": ["admin"], "timeout_minutes": minutes}},
            )
            (dags / "pipelines" / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        # the month up to TRAIN_DAY for training; five stable days; one day with the documented shift
        landing = settings.landing_root()
        datasets.materialize(
            "breast_cancer", landing, frame=datasets.load_example("breast_cancer", end=TRAIN_DAY)
        )
        for day in STABLE:
            datasets.append("breast_cancer", landing, datasets.daily_batch("breast_cancer", day))
        datasets.append(
            "breast_cancer", landing, datasets.daily_batch("breast_cancer", DRIFT_DAY, drift=True)
        )
        # the days the @daily run may name, and the day after each: rows its interval must not read
        for day in (*DAILY_RUN_DAYS, TODAY + timedelta(days=1)):
            datasets.append("breast_cancer", landing, datasets.daily_batch("breast_cancer", day))
        env = {"MLOPS_LOCAL_DIR": str(root / "local"), **openlineage.transport_env(lineage, OL_NAMESPACE)}
        stack = AirflowStack(home=root / "airflow", dags_folder=dags, extra_env=env)
        stack.start()
        try:
            for dag_id in (f"{NAME}_training", f"{NAME}_monitoring"):
                stack.wait_for_dag(dag_id)
            stack.unpause(f"{NAME}_training")  # its cron run trains; monitoring waits for a champion
            yield stack
        finally:
            stack.stop()


@pytest.fixture(scope="module")
def spec(stack):
    return load_spec(stack.dags_folder / "pipelines" / f"{NAME}.yaml")


def test_the_training_dag_is_on_its_cron_or_the_drift_asset(stack, spec):
    details = stack.api("GET", f"/dags/{NAME}_training/details")
    assert details["timetable_summary"] == f"Asset or {TRAINING_CRON}"
    assert details["timetable_description"].startswith("Triggered by assets or At 00:00")
    assert spec.drift_asset_uri in json.dumps(details["asset_expression"])
    assert details["timetable_periodic"] is True and details["catchup"] is False


def test_the_schedulers_own_cron_run_trains_the_first_model(stack, spec):
    """Unpaused, the scheduler creates the training run of the last complete monthly interval by
    itself; it reads the interval's last whole day (the landed month up to TRAIN_DAY)."""
    (run,) = stack.wait_runs(f"{NAME}_training", 1, run_type="scheduled")
    assert run["state"] == "success", stack.why_failed(f"{NAME}_training", run["dag_run_id"])
    assert run["data_interval_end"][:10] == (TRAIN_DAY + timedelta(days=1)).isoformat()
    assert registry.alias_version(NAME, registry.CHAMPION) == "1"
    tags = assert_lineage(
        NAME,
        "1",
        dag_id=f"{NAME}_training",
        run_id=run["dag_run_id"],
        logical_date=datetime.fromisoformat(run["logical_date"]),
        ds=TRAIN_DAY.isoformat(),
        lake=settings.lake_root(),
        gate="promote",
        evaluated_against="none",
        run_type="scheduled",
    )
    raw = storage.read_manifest(tags["mlops.raw_uri"])
    assert raw.rows == len(datasets.load_example("breast_cancer"))  # the month, none of the later days
    details = stack.api("GET", f"/dags/{NAME}_training/details")  # the cron's next run is next month
    assert details["next_dagrun_data_interval_start"][:10] == (TRAIN_DAY + timedelta(days=1)).isoformat()


def test_the_schedulers_own_run_reads_the_day_that_has_just_ended(stack, spec):
    """Unpaused, the scheduler creates the @daily run for yesterday (logical date = yesterday,
    started after yesterday ended) and it reads yesterday's rows: not today's, which have landed
    too (a late upload, or a clock ahead: they are not the run's interval)."""
    stack.unpause(f"{NAME}_monitoring")
    (run,) = stack.wait_runs(f"{NAME}_monitoring", 1, run_type="scheduled")
    assert run["state"] == "success", stack.why_failed(f"{NAME}_monitoring", run["dag_run_id"])
    day = datetime.fromisoformat(run["logical_date"]).date()
    # "yesterday" by the scheduler's clock when it queued the run: YESTERDAY unless midnight passed
    assert day == datetime.fromisoformat(run["queued_at"]).astimezone(UTC).date() - timedelta(days=1)
    assert day in DAILY_RUN_DAYS, (day, DAILY_RUN_DAYS)
    assert run["data_interval_end"][:10] == (day + timedelta(days=1)).isoformat()
    history = monitoring.history(spec, settings.lake_root())
    assert list(history["ds"]) == [day.isoformat()]
    assert int(history["rows"].iloc[0]) == 200  # the day's batch, and only it


def test_backfill_fills_history_and_never_retrains(stack, spec):
    stack.cli(
        "backfill",
        "create",
        "--dag-id",
        f"{NAME}_monitoring",
        "--from-date",
        STABLE[0].isoformat(),
        "--to-date",
        STABLE[-1].isoformat(),
    )
    runs = stack.wait_runs(f"{NAME}_monitoring", 5, run_type="backfill")
    assert [r["state"] for r in runs] == ["success"] * 5
    assert sorted(r["logical_date"][:10] for r in runs) == [d.isoformat() for d in STABLE]
    for run in runs:
        tasks = stack.tasks(f"{NAME}_monitoring", run["dag_run_id"])
        assert tasks["drift_check"]["state"] == "success"
        assert tasks["emit_drift_event"]["state"] == "skipped"
    # each backfill run read exactly the day it names
    history = monitoring.history(spec, settings.lake_root())
    backfilled = history[history["run_type"] == "backfill"]
    assert list(backfilled["ds"]) == [d.isoformat() for d in STABLE]
    assert list(backfilled["rows"]) == [200] * len(STABLE)
    assert (history["drift_share"] < spec.monitoring.drift_share).all()
    # no training run other than the first, scheduled one
    assert [r["run_type"] for r in stack.runs(f"{NAME}_training")] == ["scheduled"]


def test_drifted_day_fires_asset_and_scheduler_retrains(stack, spec):
    stack.api(
        "POST", f"/dags/{NAME}_monitoring/dagRuns", {"logical_date": f"{DRIFT_DAY}T00:00:00Z", "conf": {}}
    )
    (mon,) = stack.wait_runs(f"{NAME}_monitoring", 1, run_type="manual")
    tasks = stack.tasks(f"{NAME}_monitoring", mon["dag_run_id"])
    assert mon["state"] == "success" and tasks["emit_drift_event"]["state"] == "success", stack.why_failed(
        f"{NAME}_monitoring", mon["dag_run_id"]
    )
    # the asset event carries the evidence, each item as the drift check recorded it
    events = stack.api("GET", "/assets/events?limit=50")["asset_events"]
    drift_events = [e for e in events if e["uri"] == spec.drift_asset_uri]
    assert len(drift_events) == 1
    event = drift_events[0]
    extra = event["extra"]
    lake = settings.lake_root()
    (day,) = monitoring.history(spec, lake).query(f"ds == '{DRIFT_DAY}'").to_dict("records")
    columns = storage.read_frame(storage.partition_uri(lake, NAME, monitoring.HISTORY, DRIFT_DAY))
    drifted = sorted(columns.loc[columns["drifted"], "column"])
    report = filesystems.join(storage.partition_uri(lake, NAME, "reports/drift", DRIFT_DAY), "report.html")
    assert (extra["mlops_trigger"], extra["pipeline"], extra["ds"]) == ("drift", NAME, DRIFT_DAY.isoformat())
    assert extra["drift_share"] == day["drift_share"] >= spec.monitoring.drift_share
    assert sorted(extra["drifted_columns"]) == drifted and len(drifted) == day["n_drifted"]
    assert set(drifted) <= set(datasets.DRIFT_COLUMNS["breast_cancer"])
    assert extra["rows"] == day["rows"] == 200
    assert extra["report_uri"] == report and "<html" in storage.read_file(report).decode()[:2000].lower()
    assert extra["monitoring_run_id"] == mon["dag_run_id"]
    day_run = registry.client().get_run(extra["mlflow_run_id"])
    assert day_run.data.metrics["drift_share"] == pytest.approx(extra["drift_share"])
    assert any(r.startswith(f"{DRIFT_DAY}: drift share") for r in extra["reasons"]), extra["reasons"]
    # ... and the scheduler started the training DAG by itself, on that event
    (retrain,) = stack.wait_runs(f"{NAME}_training", 1, run_type="asset_triggered")
    assert retrain["state"] == "success", stack.why_failed(f"{NAME}_training", retrain["dag_run_id"])
    consumed = stack.api("GET", f"/dags/{NAME}_training/dagRuns/{retrain['dag_run_id']}/upstreamAssetEvents")
    assert [e["id"] for e in consumed["asset_events"]] == [event["id"]]
    assert [r["run_type"] for r in stack.runs(f"{NAME}_training")] == ["scheduled", "asset_triggered"]
    versions = sorted(int(v.version) for v in registry.client().search_model_versions(f"name = '{NAME}'"))
    assert versions == [1, 2]
    tags = assert_lineage(
        NAME,
        "2",
        dag_id=f"{NAME}_training",
        run_id=retrain["dag_run_id"],
        logical_date=datetime.fromisoformat(retrain["logical_date"]) if retrain["logical_date"] else None,
        ds=DRIFT_DAY.isoformat(),  # trained on data up to the drifted day
        lake=lake,
        gate=None,  # promote or reject on the merits: the tags must say what the gate recorded
        evaluated_against="1",
        run_type="asset_triggered",
    )
    run_tags = registry.client().get_run(tags[registry.RUN_ID_TAG]).data.tags
    assert {k: run_tags.get(k) for k in DRIFT_TAGS} == {
        "mlops.trigger": "drift",
        "mlops.drift_ds": DRIFT_DAY.isoformat(),
        "mlops.drift_share": str(extra["drift_share"]),
        "mlops.drifted_columns": ",".join(extra["drifted_columns"]),
        "mlops.monitoring_run_id": mon["dag_run_id"],
        "mlops.drift_report": report,
    }


def _task_instances(stack) -> dict[tuple[str, str, str], dict]:
    """Every task instance of every finished run of any DAG, by (dag_id, run_id, task_id)."""
    found = {}
    for dag in stack.api("GET", "/dags?limit=100")["dags"]:
        for run in stack.runs(dag["dag_id"]):
            if run["state"] not in ("success", "failed"):
                continue  # a @daily run the scheduler started after midnight UTC: not finished
            for task_id, ti in stack.tasks(dag["dag_id"], run["dag_run_id"]).items():
                found[(dag["dag_id"], run["dag_run_id"], task_id)] = ti
    return found


def _ran(instances: dict[tuple[str, str, str], dict]) -> dict[tuple[str, str, str], dict]:
    """The task instances that ran (queued at least once, finished). A task the scheduler skipped
    before it was queued (try_number 0) never ran: the provider sends nothing for it."""
    return {
        key: ti
        for key, ti in instances.items()
        if (ti.get("try_number") or 0) >= 1 and ti["state"] in ("success", "failed", "skipped")
    }


def _missing(ran: dict, received: dict) -> list[tuple[str, str, str]]:
    """The task instances of ``ran`` whose last try's START or terminal event has not arrived."""
    return [
        key
        for key, ti in ran.items()
        if not (
            key in received
            and "START" in received[key].tries.get(ti["try_number"], [])
            and set(received[key].tries.get(ti["try_number"], [])) & set(openlineage.TERMINAL)
        )
    ]


DRIFT_TAGS = (
    "mlops.trigger",
    "mlops.drift_ds",
    "mlops.drift_share",
    "mlops.drifted_columns",
    "mlops.monitoring_run_id",
    "mlops.drift_report",
)


def _awaiting(stack, dag_id: str, timeout: float = 600) -> dict:
    """The run of ``dag_id`` once its approval task waits for a person (Airflow 3.3's awaiting_input)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for run in stack.runs(dag_id):
            task = stack.tasks(dag_id, run["dag_run_id"]).get("approval", {})
            if task.get("state") == "awaiting_input":
                return run
            if run["state"] == "failed":
                raise AssertionError(stack.tasks(dag_id, run["dag_run_id"]))
        time.sleep(3)
    raise TimeoutError(f"{dag_id}: the approval task never waited for input\n{stack.log_tail('scheduler')}")


def _wait_pause_reported(stack, dag_id: str, run_id: str, timeout: float = 300) -> None:
    """Until the scheduler has processed the executor's report of the approval task's pause."""
    line = f"TaskInstance Finished: dag_id={dag_id}, task_id=approval, run_id={run_id},"
    wait_until(
        lambda: any(
            line in row and "state=awaiting_input" in row
            for row in stack.log_tail("scheduler", chars=10**9).splitlines()
        ),
        timeout,
        f"the scheduler processed the executor's report of {dag_id}'s pause\n{stack.log_tail('scheduler')}",
        interval=0.5,
    )


def test_a_person_rejects_or_does_not_answer_through_the_rest_api(stack):
    """The approval task waits with the evidence on its page; the REST answer (what the Required
    Actions page sends) skips deploy, and the scheduler's timeout sweep rejects an unanswered one.
    Each outcome, who and when is on the model version (an approval: the browser tier)."""
    for name in APPROVALS:
        stack.wait_for_dag(f"{name}_training")
        stack.unpause(f"{name}_training")
        stack.trigger(f"{name}_training", f"{TRAIN_DAY}T00:00:00Z")
    runs = {name: _awaiting(stack, f"{name}_training") for name in APPROVALS}
    details = {
        d["task_instance"]["dag_id"]: d
        for d in stack.api("GET", "/dags/~/dagRuns/~/hitlDetails?limit=50")["hitl_details"]
        if d["task_instance"]["dag_id"].startswith("apr_")
    }
    page = details["apr_no_training"]
    assert page["subject"] == "Promote apr_no v1 to champion?" and page["options"] == ["Approve", "Reject"]
    assert "**Holdout metrics**" in page["body"] and "| roc_auc |" in page["body"], page["body"]
    assert page["assigned_users"] == [{"id": "admin", "name": "admin"}] and page["defaults"] == ["Reject"]
    assert registry.client().get_model_version("apr_no", "1").tags["mlops.approval"] == "pending"
    # Airflow 3.3 loses an answer that lands before the executor has reported the task's pause
    # (the scheduler sees the resumed try "changed externally" and fails it); a person never
    # answers that fast, so the test answers once the scheduler has processed that report
    for name in ("apr_no",):
        _wait_pause_reported(stack, f"{name}_training", runs[name]["dag_run_id"])
    for name, answer in (("apr_no", "Reject"),):
        run_id = runs[name]["dag_run_id"]
        stack.api(
            "PATCH",
            f"/dags/{name}_training/dagRuns/{run_id}/taskInstances/approval/-1/hitlDetails",
            {"chosen_options": [answer], "params_input": {"comment": f"{answer} from the test"}},
        )
    outcomes = {}
    for name in APPROVALS:
        (done,) = stack.wait_runs(f"{name}_training", 1, timeout=600)
        tasks = stack.tasks(f"{name}_training", done["dag_run_id"])
        tags = registry.client().get_model_version(name, "1").tags
        outcomes[name] = (
            done["state"],
            tasks["approval"]["state"],
            tasks["deploy"]["state"],
            tasks["smoke_test"]["state"],
            tags["mlops.approval"],
            tags["mlops.approved_by"],
            tags["mlops.approval_comment"],
            registry.alias_version(name, registry.CHAMPION),
        )
        approved_at = datetime.fromisoformat(tags["mlops.approved_at"])
        assert STARTED <= approved_at.replace(tzinfo=approved_at.tzinfo or UTC) <= datetime.now(UTC)
    assert outcomes == {
        "apr_no": (
            "success",
            "success",
            "skipped",
            "skipped",
            "rejected",
            "admin",
            "Reject from the test",
            None,
        ),
        "apr_late": ("success", "success", "skipped", "skipped", "timed_out", "", "", None),
    }


def test_every_step_sent_openlineage_events_a_reader_follows_from_source_to_retrained_version(stack, lineage):
    """The provider's listener in the scheduler's workers sent, for every task of every run of the
    module (scheduled, backfill, manual, asset-triggered, the approvals), a START and a COMPLETE
    (FAIL for a failed one; COMPLETE for a step that skipped itself) to the loopback endpoint,
    each held to OpenLineage's schema; and the names chain the runs: source file -> partition ->
    logged model -> model version -> endpoint (the champion alias) -> drift event -> the
    asset-triggered run's train -> its model version."""
    instances = _task_instances(stack)
    ran = _ran(instances)
    events: list = lineage.events
    try:
        wait_until(
            lambda: not _missing(ran, openlineage.task_runs(list(events))),
            180,
            "the OpenLineage events of every task that ran",
            interval=1,
        )
    finally:  # for a reader of a failure: what arrived, next to the services' logs
        dump = {"ran": [[*k, v["state"], v["try_number"]] for k, v in ran.items()], "events": events}
        (stack.home / "openlineage.json").write_text(json.dumps(dump, default=str))
    assert lineage.violations == []  # every event met the schema (a refused one is recorded here)
    received = openlineage.task_runs(list(events))
    assert {ev["job"]["namespace"] for ev in events} == {OL_NAMESPACE}
    finished = {key[:2] for key in instances}
    of_finished = {key for key in received if key[:2] in finished}  # not a run started meanwhile
    assert of_finished == set(ran), of_finished ^ set(ran)  # and none for a task that never ran
    for key, ti in ran.items():
        seen = received[key]
        assert set(seen.tries) == set(range(1, ti["try_number"] + 1)), (key, seen.tries)
        for types in seen.tries.values():  # a deferred step sends START again when it resumes
            assert types[0] == "START" and sum(t in openlineage.TERMINAL for t in types) == 1, (key, types)
            assert types[-1] in openlineage.TERMINAL, (key, types)
        last = seen.tries[ti["try_number"]][-1]
        assert last == ("FAIL" if ti["state"] == "failed" else "COMPLETE"), (key, ti["state"], seen.tries)
    assert {d for d, _, _ in ran} == {
        f"{NAME}_training",
        f"{NAME}_monitoring",
        *(f"{a}_training" for a in APPROVALS),
    }

    # the chain, by matching one step's output (namespace, name) to the next step's input
    training, monitoring_runs = stack.runs(f"{NAME}_training"), stack.runs(f"{NAME}_monitoring")
    (first,) = [r for r in training if r["run_type"] == "scheduled"]
    (retrain,) = [r for r in training if r["run_type"] == "asset_triggered"]
    (drifted,) = [r for r in monitoring_runs if r["run_type"] == "manual"]
    trained = openlineage.of_run(received, f"{NAME}_training", first["dag_run_id"])
    monitored = openlineage.of_run(received, f"{NAME}_monitoring", drifted["dag_run_id"])
    retrained = openlineage.of_run(received, f"{NAME}_training", retrain["dag_run_id"])
    mlflow_ns = "mlflow://localhost"  # the module's MLflow: a local store

    source = Path(settings.landing_root().removeprefix("file://")) / "breast_cancer" / "breast_cancer.csv"
    assert trained["ingest"].inputs == {("file", str(source))}
    partition = openlineage.handed_over(trained["ingest"], trained["train"], "ingest -> train")
    raw = storage.read_manifest(
        storage.partition_uri(settings.lake_root(), NAME, "raw", TRAIN_DAY.isoformat())
    )
    assert partition == ("file", raw.uri.removeprefix("file://"))
    assert trained["ingest"].versions[partition] == trained["train"].versions[partition] == str(raw.version)
    model = openlineage.handed_over(trained["train"], trained["register"], "train -> register")
    version = openlineage.handed_over(trained["register"], trained["deploy"], "register -> deploy")
    assert version == (mlflow_ns, f"models/{NAME}/1") and trained["register"].versions[version] == "1"
    endpoint = openlineage.handed_over(trained["deploy"], monitored["emit_drift_event"], "deploy -> drift")
    assert endpoint == (mlflow_ns, f"models/{NAME}@champion")
    drift = openlineage.handed_over(monitored["emit_drift_event"], retrained["train"], "drift -> retrain")
    assert drift == (f"mlops://{NAME}", "drift")
    assert (
        monitored["emit_drift_event"].versions[drift]
        == retrained["train"].versions[drift]
        == DRIFT_DAY.isoformat()
    )
    new_model = openlineage.handed_over(retrained["train"], retrained["register"], "retrain -> register")
    assert new_model != model and model[0] == new_model[0] == mlflow_ns
    assert retrained["register"].outputs == {(mlflow_ns, f"models/{NAME}/2")}
    assert retrained["register"].versions[(mlflow_ns, f"models/{NAME}/2")] == "2"
