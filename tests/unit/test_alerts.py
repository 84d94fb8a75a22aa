"""Alerts by e-mail, end to end on a real SMTP server: each event raised by the code path that raises it.

An aiosmtpd server runs as its own process on loopback and stores what it receives in a Maildir;
``smtp_default`` reaches it through ``AIRFLOW_CONN_SMTP_DEFAULT``, as a deployment's connection
would reach the team's relay. Each test drives the operator (or callback) where the event
happens and parses the message that arrived: envelope and header recipients, subject, the HTML
body with its evidence, and the escaping of hostile values. SNS and the CloudWatch alarm are in
tests/emulators/test_alerts_aws.py (moto).
"""

from __future__ import annotations

import email.policy
import json
import logging
import mailbox
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from email.parser import BytesParser
from importlib.metadata import version
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest
from airflow.sdk.exceptions import AirflowFailException
from packaging.version import Version

from mlops_airflow.notifications import alerts as notifiers
from mlops_airflow.operators import deploy as operators
from mlops_airflow.operators.data import ValidateOperator
from mlops_airflow.operators.deploy import DeployOperator, SmokeTestOperator
from mlops_airflow.operators.model import GateOperator
from mlops_airflow.operators.monitor import EmitDriftEventOperator
from tests.helpers import example_spec

if TYPE_CHECKING:
    from collections.abc import Iterator
    from email.message import EmailMessage
    from pathlib import Path

pytestmark = pytest.mark.unit

DS = "2026-01-31"
TEAM = ["ml-team@example.com", "oncall@example.org"]
SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
HOSTILE_RUN = f"manual__{SCRIPT}"
DEPLOYMENT = {
    "target": "local",
    "model_name": "breast_cancer",
    "version": "3",
    "previous_version": "2",
    "endpoint": "models:/breast_cancer@champion",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _smtp_conn(port: int) -> str:
    return json.dumps(
        {
            "conn_type": "smtp",
            "host": "127.0.0.1",
            "port": port,
            "extra": {
                "from_email": "airflow@mlops.test",
                "disable_tls": True,
                "disable_ssl": True,
                "timeout": 5,
                "retry_limit": 0,
            },
        }
    )


@pytest.fixture(scope="module")
def smtp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """``python -m aiosmtpd`` on a free loopback port, storing every message in a Maildir."""
    maildir = tmp_path_factory.mktemp("smtp") / "Maildir"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}"]
        + ["-c", "aiosmtpd.handlers.Mailbox", str(maildir)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"aiosmtpd exited: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("aiosmtpd did not listen within 30 s") from None
            time.sleep(0.1)
    yield port, maildir
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


class Inbox:
    def __init__(self, maildir: Path):
        self.box = mailbox.Maildir(maildir)

    def clear(self) -> None:
        self.box.clear()

    def messages(self) -> list[EmailMessage]:
        parser = BytesParser(policy=email.policy.default)
        return [parser.parsebytes(self.box.get_bytes(key)) for key in sorted(self.box.keys())]

    def one(self) -> EmailMessage:
        found = self.messages()
        assert len(found) == 1, [m["Subject"] for m in found]
        return found[0]


@pytest.fixture
def inbox(smtp_server: tuple[int, Path], monkeypatch: pytest.MonkeyPatch) -> Inbox:
    port, maildir = smtp_server
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_conn(port))
    box = Inbox(maildir)
    box.clear()
    return box


@pytest.fixture
def airflow_test(monkeypatch: pytest.MonkeyPatch) -> str:
    """``[api] base_url`` of the fake task instances' log links: the package links only its own URLs."""
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "http://airflow.test")
    return "http://airflow.test"


def _html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return str(part.get_content())


def _spec(**alerts: Any) -> Any:
    return example_spec(alerts={"email": TEAM, **alerts})


def _context(task_id: str, *, run_id: str = "manual__2026-01-31", try_number: int = 1) -> Any:
    ti = SimpleNamespace(
        dag_id="breast_cancer_training",
        run_id=run_id,
        task_id=task_id,
        try_number=try_number,
        map_index=-1,
        log_url=f"http://airflow.test/dags/breast_cancer_training/runs/r1/tasks/{task_id}?try_number={try_number}",
    )
    moment = datetime(2026, 1, 31, tzinfo=UTC)
    run = SimpleNamespace(
        run_type="manual", triggering_user_name="tester", run_after=moment, data_interval_end=None
    )
    return {
        "ti": ti,
        "task_instance": ti,
        "dag_run": run,
        "logical_date": moment,
        "triggering_asset_events": {},
        "outlet_events": {},
    }


def _check_envelope(message: EmailMessage, event: str) -> None:
    assert sorted(message["X-RcptTo"].split(", ")) == sorted(TEAM)  # the server's envelope
    assert sorted(a.strip() for a in message["To"].split(",")) == sorted(TEAM)
    assert message["From"] == "airflow@mlops.test"
    assert message["Subject"].startswith(f"[mlops] breast_cancer: {event} - ")
    assert message["X-Mlops-Event"] == event


# -- each event from where it happens ---------------------------------------------------------------


def test_gate_rejection_mails_the_reasons(inbox: Inbox, local_dir: Path, airflow_test: str) -> None:
    import mlflow

    from mlops_core.runs import tracking

    tracking.configure()
    with mlflow.start_run() as run:
        run_id = run.info.run_id
    step = GateOperator(
        task_id="gate",
        pipeline=_spec(),
        trained={"run_id": run_id},
        evaluation={"challenger": {"roc_auc": 0.91, "recall": 0.7}, "champion": None, "bootstrap": None},
    )
    decision = step.execute(_context("gate", run_id=HOSTILE_RUN))
    assert decision["outcome"] == "reject"  # the step's own result is untouched

    message = inbox.one()
    _check_envelope(message, "gate_rejected")
    assert "challenger rejected (roc_auc 0.9100), champion none stays" in message["Subject"]
    page = _html(message)
    assert "floor roc_auc &gt;= 0.95: 0.9100 FAILS" in page and "floor recall &gt;= 0.8: 0.7000 FAILS" in page
    assert "<script>" not in page and ESCAPED in page  # the run id a user chose, escaped
    assert "Content-Security-Policy" in page  # a page that runs no script, whatever it holds
    assert (
        '<a href="http://airflow.test/dags/breast_cancer_training/runs/r1/tasks/gate?try_number=1">' in page
    )


def test_validation_failure_mails_each_failed_expectation_once(inbox: Inbox, landing: str) -> None:
    from mlops_core.base import settings
    from mlops_core.data import storage
    from mlops_dev import datasets

    spec = _spec()
    bad = datasets.load_example("breast_cancer")
    bad.loc[:9, "mean_radius"] = -1.0
    bad.loc[:2, "diagnosis"] = SCRIPT
    m = storage.write_partition({"data": bad}, settings.lake_root(), spec.name, "raw", DS)
    context = _context("validate")
    step = ValidateOperator(task_id="validate", pipeline=spec, data=m.uri, partition_date=DS)
    with pytest.raises(AirflowFailException, match="data validation failed") as failed:
        step.execute(context)

    message = inbox.one()
    _check_envelope(message, "validation_failed")
    assert "2 failed expectation(s)" in message["Subject"]
    page = _html(message)
    assert "expect_column_values_to_be_between(column=&#x27;mean_radius&#x27;" in page
    assert "10 unexpected value(s)" in page
    assert "expect_column_values_to_be_in_set(column=&#x27;diagnosis&#x27;" in page
    assert "<script>" not in page and ESCAPED in page  # a data value, escaped
    assert f"validation/ds={DS}" in page  # the report's URI

    # the task's failure callback then runs in the same try: no second message for it
    notifiers.failure_callback(spec)({**context, "exception": failed.value})
    assert len(inbox.messages()) == 1


def test_the_record_of_a_sent_alert_belongs_to_its_try(inbox: Inbox) -> None:
    """The try that sent its own alert is not mailed again as task_failed; a later try is, even
    through the same task instance object (the record is the try's, not the process's)."""
    spec = _spec(events=["gate_rejected", "task_failed"])
    first = _context("gate")
    assert notifiers.notify(spec, "gate_rejected", "rejected", "body", first) == ["email (smtp_default)"]
    notifiers.failure_callback(spec)({**first, "exception": ValueError("x")})
    assert len(inbox.messages()) == 1

    notifiers.failure_callback(spec)({**_context("gate", try_number=2), "exception": ValueError("x")})
    first["ti"].try_number = 3
    notifiers.failure_callback(spec)({**first, "exception": ValueError("x")})
    assert sorted(m["Subject"] for m in inbox.messages()) == [
        "[mlops] breast_cancer: gate_rejected - rejected",
        "[mlops] breast_cancer: task_failed - gate failed (try 2)",
        "[mlops] breast_cancer: task_failed - gate failed (try 3)",
    ]


class FakeTarget:
    """A deployment target whose smoke test fails; its rollback works or keeps failing."""

    name = "local"

    def __init__(self, *, rollback_works: bool):
        self.rollback_works = rollback_works
        self.rolled_back: list[str] = []

    def smoke_test(self, spec: Any, dep: Any, holdout_uri: str, expected_uri: str) -> Any:
        from mlops_core.deploy import SmokeResult

        return SmokeResult(False, 50, 3, 1.0, "3 of 50 served predictions differ from the offline ones")

    def rollback(self, spec: Any, dep: Any) -> None:
        if not self.rollback_works:
            raise ConnectionError("the platform does not answer")
        self.rolled_back.append(dep.version)


def _smoke(spec: Any) -> SmokeTestOperator:
    return SmokeTestOperator(
        task_id="smoke_test",
        pipeline=spec,
        deployment=dict(DEPLOYMENT),
        trained={"holdout_uri": "file:///nowhere/holdout"},
        evaluation={"predictions_uri": "file:///nowhere/predictions"},
    )


def test_failed_smoke_test_mails_the_rollback(inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTarget(rollback_works=True)
    monkeypatch.setattr(operators, "target", lambda step: fake)
    with pytest.raises(AirflowFailException, match="rolled back to v2"):
        _smoke(_spec()).execute(_context("smoke_test"))
    assert fake.rolled_back == ["3"]

    message = inbox.one()
    _check_envelope(message, "rolled_back")
    assert "v3 rolled back, champion restored to v2" in message["Subject"]
    page = _html(message)
    assert "3 of 50 served predictions differ from the offline ones" in page
    assert "<th>rollback</th><td><code>done</code>" in page


def test_a_failed_rollback_says_a_person_must_act(
    inbox: Inbox, local_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_core import rollout

    monkeypatch.setattr(rollout, "ROLLBACK_BACKOFF_SECONDS", 0.0)
    monkeypatch.setattr(operators, "target", lambda step: FakeTarget(rollback_works=False))
    with pytest.raises(AirflowFailException, match="ROLLBACK FAILED"):
        _smoke(_spec()).execute(_context("smoke_test"))

    message = inbox.one()
    assert "ROLLBACK FAILED for v3: a person must act" in message["Subject"]
    page = _html(message)
    assert "<th>rollback</th><td><code>FAILED</code>" in page
    assert "ConnectionError: the platform does not answer" in page and "It should be v2" in page


def test_a_platform_failed_deploy_mails_its_rollback(inbox: Inbox, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeTarget(rollback_works=True)
    monkeypatch.setattr(operators, "target", lambda step: fake)
    step = DeployOperator(task_id="deploy", pipeline=_spec(), registered={"version": "3"})
    event = {"status": "error", "reason": "failed", "message": "Failed: bad image", "deployment": DEPLOYMENT}
    with pytest.raises(AirflowFailException, match="rolled back"):
        step.deploy_complete(_context("deploy"), event)
    page = _html(inbox.one())
    assert "deploy failed and was rolled back: Failed: bad image" in page


def _fired(columns: list[str]) -> dict[str, Any]:
    return {
        "fire": True,
        "ds": "2026-02-04",
        "reasons": ["2026-02-04: drift share 0.40 >= 0.3, 200 rows >= min_rows 100"],
        "drift": {
            "drift_share": 0.4,
            "drifted_columns": columns,
            "rows": 200,
            "report_uri": "file:///lake/breast_cancer/reports/drift/ds=2026-02-04/report.html",
            "mlflow_run_id": "0123abc",
        },
    }


def test_drift_policy_fired_mails_the_evidence(inbox: Inbox) -> None:
    step = EmitDriftEventOperator(
        task_id="emit_drift_event", pipeline=_spec(), decision=_fired(["mean_radius", SCRIPT])
    )
    extra = step.execute(_context("emit_drift_event"))
    assert extra["ds"] == "2026-02-04"

    message = inbox.one()
    _check_envelope(message, "policy_fired")
    assert (
        "drift policy fired on 2026-02-04 (drift share 0.40): breast_cancer_training starts"
        in (message["Subject"])
    )
    page = _html(message)
    assert "drift share 0.40 &gt;= 0.3, 200 rows &gt;= min_rows 100" in page
    assert "<li>mean_radius</li>" in page and f"<li>{ESCAPED}</li>" in page and "<script>" not in page
    assert "reports/drift/ds=2026-02-04/report.html" in page


def test_approval_waiting_links_the_decision_page(inbox: Inbox, airflow_test: str) -> None:
    url = "http://airflow.test/dags/breast_cancer_training/runs/r1/tasks/approve/required_actions"
    assert notifiers.notify_approval_waiting(_spec(), _context("approve"), "7", url) == [
        "email (smtp_default)"
    ]
    message = inbox.one()
    _check_envelope(message, "approval_waiting")
    assert message["Subject"] == "[mlops] breast_cancer: approval_waiting - v7 waits for approval"
    assert f'<a href="{url}">' in _html(message)


def test_a_subject_cannot_inject_headers(inbox: Inbox) -> None:
    notifiers.notify_approval_waiting(_spec(), _context("approve"), "7\r\nBcc: evil@example.net", "x")
    message = inbox.one()
    assert message["Bcc"] is None and "evil" not in message["X-RcptTo"]
    assert (
        message["Subject"]
        == "[mlops] breast_cancer: approval_waiting - v7 Bcc: evil@example.net waits for approval"
    )


def test_metric_below_floor_mails_the_interval(inbox: Inbox) -> None:
    evidence = {
        "ds": "2026-02-01",
        "metric": "roc_auc",
        "value": 0.91,
        "low": 0.89,
        "high": 0.93,
        "floor": 0.95,
        "rows": 480,
        "decayed": True,
        "reasons": ["2026-02-01: roc_auc 0.9100 [0.8900, 0.9300] is below the floor 0.95"],
    }
    notifiers.notify_metric_below_floor(_spec(), _context("performance"), evidence)
    message = inbox.one()
    _check_envelope(message, "metric_below_floor")
    assert "realized roc_auc 0.9100 [0.8900, 0.9300] below floor 0.9500 on 2026-02-01" in message["Subject"]
    page = _html(message)
    assert "<th>rows</th><td><code>480</code>" in page and "is below the floor 0.95" in page


def test_labels_unmatched_mails_the_share_and_the_key_columns(inbox: Inbox) -> None:
    spec = _spec()
    spec = spec.model_copy(
        update={
            "feedback": example_spec(
                feedback={"uri": "${MLOPS_LANDING}/x.csv", "key_columns": ["record_id"]}
            ).feedback
        }
    )
    evidence = {
        "ds": "2026-02-01",
        "evaluated_on": "2026-02-04",
        "labels": 800,
        "rows": 0,
        "unmatched_labels": 800,
        "orphan_labels": 790,
        "orphan_share": 0.9875,
    }
    notifiers.notify_labels_unmatched(spec, _context("performance"), evidence)
    message = inbox.one()
    _check_envelope(message, "labels_unmatched")
    assert "790 of 800 labels (98.8%) match no prediction" in message["Subject"]
    page = _html(message)
    assert "feedback.max_unmatched_share 0.5" in page and "record_id" in page


def test_a_failed_task_mails_the_try_the_error_and_the_log(inbox: Inbox, airflow_test: str) -> None:
    context = {**_context("train", try_number=3), "exception": ValueError(f"column {SCRIPT} broke")}
    notifiers.failure_callback(_spec())(context)
    message = inbox.one()
    _check_envelope(message, "task_failed")
    assert message["Subject"] == "[mlops] breast_cancer: task_failed - train failed (try 3)"
    page = _html(message)
    assert f"ValueError: column {ESCAPED} broke" in page and "<script>" not in page
    assert "<th>try_number</th><td><code>3</code>" in page
    assert (
        '<a href="http://airflow.test/dags/breast_cancer_training/runs/r1/tasks/train?try_number=3">' in page
    )


# -- what is not sent, and what a dead server does -------------------------------------------------


def test_an_event_not_listed_sends_nothing(inbox: Inbox) -> None:
    spec = _spec(events=["gate_rejected"])
    step = EmitDriftEventOperator(task_id="emit_drift_event", pipeline=spec, decision=_fired(["mean_radius"]))
    step.execute(_context("emit_drift_event"))
    notifiers.failure_callback(spec)({**_context("train"), "exception": ValueError("x")})
    assert inbox.messages() == []


def test_a_dead_smtp_server_does_not_fail_the_step(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", _smtp_conn(_free_port()))  # nothing listens there
    step = EmitDriftEventOperator(
        task_id="emit_drift_event", pipeline=_spec(), decision=_fired(["mean_radius"])
    )
    with caplog.at_level(logging.WARNING, logger="mlops_airflow.notifications.alerts"):
        extra = step.execute(_context("emit_drift_event"))
    assert extra["ds"] == "2026-02-04" and extra["drift_share"] == 0.4  # the step's result, unchanged
    (warning,) = [r for r in caplog.records if r.name == "mlops_airflow.notifications.alerts"]
    assert warning.levelno == logging.WARNING
    assert (
        "ALERT NOT SENT: policy_fired of breast_cancer via email (smtp_default) failed"
        in warning.getMessage()
    )
    assert "ConnectionRefusedError" in warning.getMessage()


def test_a_missing_connection_does_not_fail_the_callback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SMTP_DEFAULT", raising=False)
    spec = _spec(smtp_conn_id="smtp_nowhere")
    with caplog.at_level(logging.WARNING, logger="mlops_airflow.notifications.alerts"):
        notifiers.failure_callback(spec)({**_context("train"), "exception": ValueError("x")})
    assert any("ALERT NOT SENT: task_failed" in r.getMessage() for r in caplog.records)


# -- the builder -------------------------------------------------------------------------------------


def test_the_failure_callback_is_on_every_task_only_when_task_failed_is_listed() -> None:
    from airflow.serialization.serialized_objects import DagSerialization

    from mlops_airflow.builder import build_training_dag

    with_alerts = build_training_dag(_spec())
    for task in with_alerts.tasks:
        callbacks: Any = task.on_failure_callback
        (callback,) = callbacks
        assert callback.__name__ == "mlops_alert_breast_cancer"
    serialized = DagSerialization.from_dict(json.loads(json.dumps(DagSerialization.to_dict(with_alerts))))
    assert all(task.has_on_failure_callback for task in serialized.tasks)
    for spec in (example_spec(), _spec(events=["gate_rejected", "rolled_back"])):
        assert all(not task.on_failure_callback for task in build_training_dag(spec).tasks)


def test_a_task_failing_in_the_task_runner_mails_its_log_link(
    inbox: Inbox, airflow_db: Path, local_dir: Path
) -> None:
    """dag.test() runs a pipeline's task and its on_failure_callback as a worker does: the real
    context, task instance and log link. Here ingest fails: the day's source file never came."""
    from mlops_airflow.builder import build_training_dag
    from tests.helpers import install_pipeline

    spec = install_pipeline("alerts_dagtest", alerts={"email": TEAM, "events": ["task_failed"]})
    run = build_training_dag(spec).test(logical_date=datetime(2026, 1, 31, tzinfo=UTC))
    assert run.state == "failed"

    message = inbox.one()  # ingest only: the tasks after it never ran
    assert sorted(message["X-RcptTo"].split(", ")) == sorted(TEAM)
    assert message["Subject"] == "[mlops] alerts_dagtest: task_failed - ingest failed (try 1)"
    page = _html(message)
    if Version(version("apache-airflow-task-sdk")) >= Version("1.3"):
        assert "AirflowFailException: " in page and "source.wait_minutes" in page
    else:
        # Airflow 3.2's in-process runner (dag.test) calls the failure callback without
        # context["exception"] (a worker sets it; the Task SDK sets it in both from 1.3): the mail
        # says so instead of inventing one.
        assert "<th>exception</th><td><code>unknown</code></td>" in page
    assert '<a href="http://localhost:8080/dags/alerts_dagtest_training/runs/' in page
    assert "/tasks/ingest?try_number=1" in page


def test_slack_gets_the_event_through_its_webhook_connection_and_no_value_makes_a_link(
    inbox: Inbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real HTTP receiver on loopback stands in for Slack's incoming webhook; the URL lives in the
    ``slack_alerts`` connection (type slackwebhook), as a deployment's secret would."""
    import json as _json

    from tests.emulators.loopback import LoopbackAPI

    api = LoopbackAPI("slack").start()
    posts: list[dict] = []

    @api.route("POST", r"/services/T000/B000/secret")
    def receive(request: Any) -> tuple[int, Any]:
        posts.append(request.body)
        return 200, None

    try:
        conn = {"conn_type": "slackwebhook", "password": f"{api.url}/services/T000/B000/secret"}
        monkeypatch.setenv("AIRFLOW_CONN_SLACK_ALERTS", _json.dumps(conn))
        spec = _spec(slack_conn_id="slack_alerts")
        step = EmitDriftEventOperator(
            task_id="emit_drift_event",
            pipeline=spec,
            decision=_fired(["mean_radius", "<!channel> <http://x|y>"]),
        )
        step.execute(_context("emit_drift_event"))
    finally:
        api.stop()
    assert api.violations == [] and len(posts) == 1
    text = posts[0]["text"]
    assert text.startswith("[mlops] breast_cancer: policy_fired - drift policy fired on 2026-02-04")
    assert "&lt;!channel&gt; &lt;http://x|y&gt;" in text and "<!channel>" not in text
    assert posts[0]["unfurl_links"] is False
    assert inbox.one()["Subject"].startswith("[mlops] breast_cancer: policy_fired")  # e-mail too
