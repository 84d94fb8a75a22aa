"""The registry's promises against a real MLflow tracking server that is stopped, restarted and raced.

One ``mlflow server`` (SQLite store) runs for the module. The tests share its registry and run in
file order: a champion is made first, then the server is stopped to show the gate fails closed,
then restarted on the same store.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mlops_core import lifecycle, rollout
from mlops_core.base import settings
from mlops_core.model import training
from mlops_core.runs import registry
from mlops_dev import datasets
from tests.helpers import example_spec

DS = "2026-01-31"
SPEC = example_spec(evaluation={"bootstrap": {"n_resamples": 100}})  # the gate is not under test here
NAME = SPEC.registered_model_name


class Server:
    """``mlflow server`` on a SQLite store under ``root``; stop() and start() keep the store."""

    def __init__(self, root: Path):
        self.root = root
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        mlflow = Path(sys.executable).with_name("mlflow")
        self.proc = subprocess.Popen(
            [
                str(mlflow),
                "server",
                "--backend-store-uri",
                f"sqlite:///{self.root / 'mlflow.db'}",
                "--default-artifact-root",
                str(self.root / "artifacts"),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=open(self.root / "server.log", "ab"),  # noqa: SIM115 - closed with the process
            start_new_session=True,  # its own process group: stop() ends the workers too
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, (self.root / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise TimeoutError("mlflow server did not start in 60 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    root = tmp_path_factory.mktemp("mlflow-server")
    srv = Server(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLOPS_LOCAL_DIR", str(root / "local"))
        mp.setenv("MLFLOW_TRACKING_URI", srv.uri)
        # fail fast when the server is down (MLflow's default retries for minutes)
        mp.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
        mp.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")
        mp.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
        srv.start()
        try:
            datasets.materialize("breast_cancer", settings.landing_root())
            yield srv
        finally:
            srv.stop()


@pytest.fixture(scope="module")
def raw_uri(server: Server) -> str:
    return str(lifecycle.ingest(SPEC, DS, settings.lake_root())["uri"])


def _train(raw_uri: str, run_key: str) -> dict[str, Any]:
    return training.train(SPEC, raw_uri, settings.lake_root(), DS, {"airflow.run_id": run_key}).to_dict()


def _gate(trained: dict[str, Any], *, force: bool = False, reject: bool = False) -> dict[str, Any]:
    evaluated = lifecycle.evaluate(SPEC, trained, settings.lake_root(), DS)
    if reject:  # a challenger below the floors
        evaluated["challenger"] = {**evaluated["challenger"], "roc_auc": 0.5}
    return lifecycle.gate(
        SPEC, evaluated, trained["run_id"], force=force, forced_by="test", force_reason="fault test"
    ).to_dict()


def _versions() -> list[int]:
    return sorted(int(v.version) for v in registry.client().search_model_versions(f"name = '{NAME}'"))


def _tags(version: str) -> dict[str, str]:
    return dict(registry.client().get_model_version(NAME, version).tags)


@pytest.fixture(scope="module")
def champion(raw_uri: str) -> str:
    trained = _train(raw_uri, "dag/first")
    decision = _gate(trained)
    assert decision["outcome"] == "promote" and decision["champion_version"] is None
    version = lifecycle.register(SPEC, trained, decision, "dag/first", {})["version"]
    rollout.deploy(SPEC, version)
    assert registry.alias_version(NAME, registry.CHAMPION) == version
    assert _tags(version)[registry.AGAINST_TAG] == "none"
    return str(version)


def test_gate_fails_closed_while_mlflow_is_down_and_the_retry_succeeds(server, raw_uri, champion):
    trained = _train(raw_uri, "dag/outage")
    before = _versions()
    server.stop()
    try:
        # the champion lookup is an error, never "no champion"
        with pytest.raises(registry.RegistryUnavailable, match="failing closed") as info:
            registry.alias_version(NAME, registry.CHAMPION)
        assert server.uri in str(info.value)
        with pytest.raises(registry.RegistryUnavailable):
            lifecycle._load_champion(SPEC)
        # evaluate's first MLflow call (what the challenger's run recorded about its model) fails
        # closed: the server is down, the error names it and says nothing is registered or deployed
        with pytest.raises(
            registry.RegistryUnavailable,
            match=rf"MLflow registry at {re.escape(server.uri)} failed .* failing closed",
        ) as down:
            lifecycle.evaluate(SPEC, trained, settings.lake_root(), DS)
        assert "Connection refused" in str(down.value) or "Max retries exceeded" in str(down.value), (
            down.value
        )
        # a lookup error must not lead to a (duplicate) registration
        with pytest.raises(registry.RegistryUnavailable):
            registry.find_version(NAME, "dag/outage", trained["run_id"])
        with pytest.raises(registry.RegistryUnavailable):
            lifecycle.register(SPEC, trained, {"outcome": "promote", "reasons": []}, "dag/outage", {})
    finally:
        server.start()
    assert _versions() == before  # nothing was registered
    assert registry.alias_version(NAME, registry.CHAMPION) == champion
    # the retry, with MLflow back, judges against the champion
    decision = _gate(trained, force=True)
    assert decision["champion_version"] == champion
    version = lifecycle.register(SPEC, trained, decision, "dag/outage", {})["version"]
    assert _tags(version)[registry.AGAINST_TAG] == champion


def test_cleared_train_registers_the_new_model_and_binds_the_decision_to_it(raw_uri, champion):
    first = _train(raw_uri, "dag/cleared")
    reg1 = lifecycle.register(SPEC, first, _gate(first, reject=True), "dag/cleared", {})
    # `train` cleared and re-run in the same Airflow run: a new MLflow model
    second = _train(raw_uri, "dag/cleared")
    decision = _gate(second, force=True)
    reg2 = lifecycle.register(SPEC, second, decision, "dag/cleared", {})
    assert reg2["created"] and reg2["version"] != reg1["version"]
    new, old = _tags(reg2["version"]), _tags(reg1["version"])
    assert new[registry.RUN_ID_TAG] == second["run_id"] and new[registry.MODEL_URI_TAG] == second["model_uri"]
    assert new[registry.GATE_TAG] == "forced" and old[registry.GATE_TAG] == "reject"
    assert len(new[registry.DIGEST_TAG]) == 64
    assert old[registry.SUPERSEDED_TAG] == reg2["version"]
    assert registry.alias_version(NAME, registry.CHALLENGER) == reg2["version"]
    # a retried register of that try reuses its version
    again = lifecycle.register(SPEC, second, decision, "dag/cleared", {})
    assert not again["created"] and again["version"] == reg2["version"]
    # the decision of the first try cannot be stamped on the second model
    with pytest.raises(registry.DecisionRefused, match="not bound to this model"):
        lifecycle.register(SPEC, second, {"outcome": "reject", "reasons": []}, "dag/cleared", {})


def test_forged_promote_decision_is_refused_at_deploy(raw_uri, champion):
    from airflow.sdk.exceptions import AirflowFailException

    from mlops_airflow.operators.deploy import DeployOperator

    trained = _train(raw_uri, "dag/forged")
    decision = _gate(trained, reject=True)
    assert decision["outcome"] == "reject"
    registered = lifecycle.register(SPEC, trained, decision, "dag/forged", {})
    forged = {**decision, "promote": True, "outcome": "promote"}
    with pytest.raises(registry.DecisionRefused, match="not bound to this model"):
        lifecycle.register(SPEC, trained, forged, "dag/forged", {})
    op = DeployOperator(task_id="deploy", pipeline=SPEC, registered=registered, decision=forged)
    with pytest.raises(AirflowFailException, match="gate decision is 'reject'"):
        op.execute({})  # type: ignore[arg-type]
    assert registry.alias_version(NAME, registry.CHAMPION) == champion
    with pytest.raises(registry.DecisionRefused):
        rollout.deploy(SPEC, registered["version"])
    assert registry.alias_version(NAME, registry.CHAMPION) == champion


def test_two_racing_deploys_leave_one_champion_and_one_clean_failure(raw_uri):
    start = registry.alias_version(NAME, registry.CHAMPION)
    versions = []
    for key in ("dag/race-a", "dag/race-b"):
        trained = _train(raw_uri, key)
        decision = _gate(trained, force=True)
        assert decision["champion_version"] == start
        versions.append(lifecycle.register(SPEC, trained, decision, key, {})["version"])
    barrier = threading.Barrier(2)
    results: dict[str, Any] = {}

    def deploy(version: str) -> None:
        barrier.wait()
        try:
            results[version] = rollout.deploy(SPEC, version)
        except Exception as err:
            results[version] = err

    threads = [threading.Thread(target=deploy, args=(v,)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    won = [v for v, r in results.items() if isinstance(r, dict)]
    lost = [r for r in results.values() if not isinstance(r, dict)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0], registry.ChampionMoved), lost[0]
    assert registry.alias_version(NAME, registry.CHAMPION) == won[0]
    assert registry.alias_version(NAME, registry.PREVIOUS) == start
    # the loser's retry finds a champion it was not evaluated against: refused, nothing moves
    loser = next(v for v in versions if v != won[0])
    with pytest.raises(registry.ChampionMoved, match="Re-run the training DAG"):
        rollout.deploy(SPEC, loser)
    assert registry.alias_version(NAME, registry.CHAMPION) == won[0]
