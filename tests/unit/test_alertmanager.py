"""The package's alert rules deliver through a real Alertmanager (issue 24): the package's steps
push to a real Pushgateway (with the stack's basic auth), Prometheus scrapes it with the stack's
config and evaluates the stack's rules, sends to a real Alertmanager (Debian's
``prometheus-alertmanager``), which notifies a webhook receiver on loopback.

Only the rules' ``for:`` waits are shortened (5 min -> 1 s) in the copy Prometheus loads: the
waits themselves are unit-tested by ``promtool test rules`` (rules_test.yml). Expressions, labels
and annotations are the stack's own, checked equal below. The expected names and severities are
docs/monitoring.md's table of alerts, not read from the rules file.
"""

from __future__ import annotations

import json
import urllib.request
from contextlib import ExitStack
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import pytest
import yaml

from mlops_core.monitor import prometheus
from tests import promstack
from tests.helpers import wait_until

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.unit

USER, PASSWORD = "mlops", "pw-Hc4mR8xTq2Lv7Nz1"
# docs/monitoring.md, "The alerts": alert -> severity
SEVERITY = {"MlopsModelDecay": "critical", "MlopsRollbackFailed": "critical", "MlopsDriftDetected": "warning"}
WAIT = 60.0  # seconds: scrape (1 s) + two evaluations (1 s) + Alertmanager's group wait (0.1 s), under load


@dataclass
class Alerting:
    gateway: str
    prometheus: str
    receiver: promstack.WebhookReceiver


def fast_rules(workdir: Path) -> Path:
    """The stack's rules.yml with each non-zero ``for:`` shortened to 1 s (nothing else changed)."""
    groups = yaml.safe_load((promstack.CONFIG / "rules.yml").read_text())
    for group in groups["groups"]:
        for rule in group["rules"]:
            if rule.get("for", "0m") not in ("0m", "0s"):
                rule["for"] = "1s"
    path = workdir / "rules.yml"
    path.write_text(yaml.safe_dump(groups))
    return path


@pytest.fixture(scope="module")
def alerting(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alerting]:
    root = tmp_path_factory.mktemp("alerting")
    receiver = promstack.WebhookReceiver()
    try:
        with ExitStack() as servers:
            gateway = servers.enter_context(promstack.pushgateway(root, auth=(USER, PASSWORD)))
            manager = servers.enter_context(promstack.alertmanager(root, receiver.url))
            prom = servers.enter_context(
                promstack.prometheus(
                    root,
                    gateway,
                    pushgateway_password_file=root / "pushgateway_password",
                    alertmanager_url=manager,
                    rule_files=[fast_rules(root)],
                )
            )
            yield Alerting(gateway, prom, receiver)
    finally:
        receiver.close()


@pytest.fixture(scope="module")
def pushing(alerting: Alerting, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Alerting]:
    """The package's steps push to the test's gateway as the stack's tasks do (user + password);
    push_deploy counts on a registry of this module's own (empty: counters 0, no champion)."""
    from mlops_core.runs import tracking

    with pytest.MonkeyPatch.context() as env:
        env.setenv("MLOPS_LOCAL_DIR", str(tmp_path_factory.mktemp("alerting-local")))
        env.setenv(prometheus.ENV, alerting.gateway)
        env.setenv(prometheus.USER_ENV, USER)
        env.setenv(prometheus.PASSWORD_ENV, PASSWORD)
        env.delenv(prometheus.PASSWORD_FILE_ENV, raising=False)
        tracking.configure()  # once: MLflow's store takes seconds to create
        yield alerting


def received(alerting: Alerting, pipeline: str, status: str = "firing") -> dict[str, dict[str, Any]]:
    """alertname -> the last alert of ``pipeline`` with ``status`` the webhook received."""
    return {
        a["labels"]["alertname"]: a
        for a in alerting.receiver.alerts()
        if a["labels"].get("pipeline") == pipeline and a["status"] == status
    }


def prometheus_alerts(alerting: Alerting) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{alerting.prometheus}/api/v1/alerts", timeout=10) as reply:
        return list(json.loads(reply.read())["data"]["alerts"])


def query(alerting: Alerting, promql: str) -> list[float]:
    url = f"{alerting.prometheus}/api/v1/query?{urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return [float(r["value"][1]) for r in json.loads(reply.read())["data"]["result"]]


def test_the_copy_prometheus_loads_differs_from_the_stacks_rules_only_in_for(tmp_path: Path) -> None:
    stack = yaml.safe_load((promstack.CONFIG / "rules.yml").read_text())
    fast = yaml.safe_load(fast_rules(tmp_path).read_text())
    strip = [{k: v for k, v in r.items() if k != "for"} for g in stack["groups"] for r in g["rules"]]
    assert strip == [{k: v for k, v in r.items() if k != "for"} for g in fast["groups"] for r in g["rules"]]


def test_decay_drift_and_a_failed_rollback_reach_the_receiver_a_healthy_pipeline_does_not(pushing):
    # the healthy pipeline first: any scrape that has churn's series has its series too
    healthy = {"metric": "roc_auc", "value": 0.9, "low": 0.86, "high": 0.93, "rows": 500, "decayed": False}
    assert prometheus.push_performance("steady", healthy, floor=0.8)
    assert prometheus.push_drift("steady", {"drift_share": 0.1, "n_drifted": 1, "drifted": False})
    assert prometheus.push_deploy("steady", "steady", rollback_failed=False)
    day = {"metric": "roc_auc", "value": 0.71, "low": 0.65, "high": 0.77, "rows": 412, "decayed": True}
    assert prometheus.push_performance("churn", day, floor=0.8)
    assert prometheus.push_drift("churn", {"drift_share": 0.6, "n_drifted": 6, "drifted": True})
    assert prometheus.push_deploy("churn", "churn", rollback_failed=True)

    def all_three() -> dict[str, dict[str, Any]]:
        got = received(pushing, "churn")
        return got if set(SEVERITY) <= set(got) else {}

    got = wait_until(
        all_three,
        WAIT,
        "Alertmanager notified decay, drift and the failed rollback of churn",
        interval=0.2,
    )
    for name, severity in SEVERITY.items():
        # grouped `by (pipeline)`: the alert carries its name, the pipeline and its severity only
        assert got[name]["labels"] == {"alertname": name, "pipeline": "churn", "severity": severity}
        assert "churn" in got[name]["annotations"]["summary"], got[name]
        # this Prometheus sent it (its URL names the host, not 127.0.0.1)
        assert urlsplit(got[name]["generatorURL"]).port == urlsplit(pushing.prometheus).port
    assert got["MlopsDriftDetected"]["annotations"]["description"].startswith("60% of the monitored columns")
    # the healthy pipeline was scraped and evaluated with churn, and nothing of it is even pending
    assert query(pushing, 'mlops_rollback_failed{pipeline="steady"}') == [0.0]
    assert not received(pushing, "steady")
    assert not [a for a in prometheus_alerts(pushing) if a["labels"].get("pipeline") == "steady"]


def test_a_repaired_rollback_sends_resolved(pushing):
    assert prometheus.push_deploy("loans", "loans", rollback_failed=True)
    wait_until(lambda: "MlopsRollbackFailed" in received(pushing, "loans"), WAIT, "firing", interval=0.2)
    assert not received(pushing, "loans", "resolved")
    assert prometheus.push_deploy("loans", "loans", rollback_failed=False)
    done = wait_until(
        lambda: received(pushing, "loans", "resolved").get("MlopsRollbackFailed", {}),
        WAIT,
        "resolved",
        interval=0.2,
    )
    assert done["labels"] == {"alertname": "MlopsRollbackFailed", "pipeline": "loans", "severity": "critical"}
    assert done["endsAt"] > done["startsAt"]
