"""Model metrics pushed to a real Pushgateway (Debian's binary), read back in Prometheus' format.

What the Grafana dashboard and the alert rules query must arrive with the documented names,
labels, types and values; a push replaces only its own ``{pipeline, stage}`` group; counters come
from the registry's tags (a retried task cannot count twice); a dead gateway never fails a step.
"""

from __future__ import annotations

import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mlops_core.monitor import prometheus
from tests import promstack

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with promstack.pushgateway(tmp_path_factory.mktemp("pushgateway")) as url:
        yield url


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], tuple[str, float]]:
    """``(name, labels) -> (type, value)`` of the mlops job's samples on the gateway."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            labels = dict(s.labels)
            if labels.get("job") != "mlops" or s.name.endswith("_created"):
                continue
            labels.pop("instance", None)
            out[(s.name, tuple(sorted(labels.items())))] = (family.type, s.value)
    return out


def key(name: str, pipeline: str, stage: str, **extra: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, tuple(sorted({"job": "mlops", "pipeline": pipeline, "stage": stage, **extra}.items()))


def test_steps_push_the_documented_series(gateway: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(prometheus.ENV, gateway)
    assert prometheus.push_evaluation("churn", {"roc_auc": 0.91, "recall": 0.8, "log_loss": float("nan")})
    assert prometheus.push_drift("churn", {"drift_share": 0.4, "n_drifted": 4, "drifted": True, "rows": 900})
    day = {"metric": "roc_auc", "value": 0.71, "low": 0.65, "high": 0.77, "rows": 412, "decayed": True}
    assert prometheus.push_performance("churn", day, floor=0.8)
    got = scrape(gateway)
    assert got[key("mlops_holdout_metric", "churn", "evaluation", metric="roc_auc")] == ("gauge", 0.91)
    assert got[key("mlops_holdout_metric", "churn", "evaluation", metric="recall")] == ("gauge", 0.8)
    assert key("mlops_holdout_metric", "churn", "evaluation", metric="log_loss") not in got  # NaN: not sent
    assert got[key("mlops_drift_share", "churn", "monitoring")] == ("gauge", 0.4)
    assert got[key("mlops_drifted_columns", "churn", "monitoring")] == ("gauge", 4.0)
    assert got[key("mlops_drift_detected", "churn", "monitoring")] == ("gauge", 1.0)
    assert got[key("mlops_realized_metric", "churn", "performance", metric="roc_auc")] == ("gauge", 0.71)
    assert got[key("mlops_realized_metric_upper", "churn", "performance", metric="roc_auc")] == (
        "gauge",
        0.77,
    )
    assert got[key("mlops_realized_metric_floor", "churn", "performance", metric="roc_auc")] == ("gauge", 0.8)
    assert got[key("mlops_labelled_rows", "churn", "performance")] == ("gauge", 412.0)
    assert got[key("mlops_decay_detected", "churn", "performance")] == ("gauge", 1.0)
    names = {name for name, _ in got}
    assert names <= set(prometheus.METRICS) | {"push_time_seconds", "push_failure_time_seconds"}

    # the next day replaces the monitoring group only; other pipelines and stages are untouched
    assert prometheus.push_drift("churn", {"drift_share": 0.0, "n_drifted": 0, "drifted": False})
    assert prometheus.push_drift("fraud", {"drift_share": 0.2, "n_drifted": 1, "drifted": False})
    got = scrape(gateway)
    assert got[key("mlops_drift_share", "churn", "monitoring")] == ("gauge", 0.0)
    assert got[key("mlops_drift_detected", "churn", "monitoring")] == ("gauge", 0.0)
    assert got[key("mlops_drift_share", "fraud", "monitoring")] == ("gauge", 0.2)
    assert got[key("mlops_holdout_metric", "churn", "evaluation", metric="roc_auc")] == ("gauge", 0.91)


def register(name: str, tags: dict[str, str]) -> str:
    from mlops_core.runs import registry

    c = registry.client()
    try:
        c.create_registered_model(name)
    except Exception:
        pass
    return str(c.create_model_version(name, "file:///nowhere/model", tags=tags).version)


def test_counters_come_from_the_registry_so_retries_never_double_count(
    gateway: str, local_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlops_core.runs import registry, tracking

    monkeypatch.setenv(prometheus.ENV, gateway)
    tracking.configure()
    register("loans", {registry.GATE_TAG: "promote", "mlops.promoted": "true"})
    register("loans", {registry.GATE_TAG: "reject"})
    register("loans", {registry.GATE_TAG: "promote", "mlops.rolled_back": "true"})
    v4 = register("loans", {registry.GATE_TAG: "forced", "mlops.promoted": "true"})
    register(
        "loans", {registry.GATE_TAG: "promote", registry.SUPERSEDED_TAG: "6"}
    )  # a cleared train: still counted
    registry.client().set_registered_model_alias("loans", registry.CHAMPION, v4)
    for _ in range(3):  # a task retried three times pushes the same totals
        assert prometheus.push_gate("loans", "loans", promote=True)
        assert prometheus.push_deploy("loans", "loans", rollback_failed=False)
    got = scrape(gateway)
    assert got[key("mlops_gate_accepted", "loans", "gate")] == ("gauge", 1.0)
    assert got[key("mlops_gate_decisions_total", "loans", "gate", decision="promote")] == ("counter", 3.0)
    assert got[key("mlops_gate_decisions_total", "loans", "gate", decision="reject")] == ("counter", 1.0)
    assert got[key("mlops_gate_decisions_total", "loans", "gate", decision="forced")] == ("counter", 1.0)
    assert got[key("mlops_champion_version", "loans", "deploy")] == ("gauge", float(v4))
    assert got[key("mlops_deployments_total", "loans", "deploy")] == ("counter", 2.0)
    assert got[key("mlops_rollbacks_total", "loans", "deploy")] == ("counter", 1.0)
    assert got[key("mlops_rollback_failed", "loans", "deploy")] == ("gauge", 0.0)
    assert prometheus.push_deploy("loans", "loans", rollback_failed=True)
    assert scrape(gateway)[key("mlops_rollback_failed", "loans", "deploy")] == ("gauge", 1.0)


def test_off_unreachable_or_broken_never_fails_a_step(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv(prometheus.ENV, raising=False)
    assert prometheus.push_drift("churn", {"drift_share": 0.1}) is False  # off: nothing sent
    monkeypatch.setenv(prometheus.ENV, f"http://127.0.0.1:{promstack.free_port()}")
    assert prometheus.push_drift("churn", {"drift_share": 0.1, "n_drifted": 1}) is False
    assert "could not push" in caplog.text

    def broken(name: str) -> Any:
        raise RuntimeError("registry down")

    monkeypatch.setattr(prometheus, "registry_samples", broken)
    assert prometheus.push_deploy("churn", "churn", rollback_failed=False) is False
    assert "could not collect the deploy metrics of churn: registry down" in caplog.text
