"""What a new user sees right after ``make demo``: ``make airflow`` from a plain shell, then the UI.

This test needs the demo's state (``.local`` of this clone), so ``.ci/run`` runs it after
``make demo`` with ``MLOPS_AFTER_DEMO=1`` (``make after-demo``); inside ``make test`` it is
skipped, since the demo has not run yet there.

It starts ``make airflow`` the way a person would, with nothing but a plain PATH (no venv
activated: the target must find its own ``airflow`` subprocesses), waits for every service,
signs in with the password standalone generated, and checks that the DAG list, the runs, the
Models view and the asset page tell the demo's story with no failure the user did not cause.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.stack.ui import CHROMIUM_ARGS, login, open_page

pytestmark = [
    pytest.mark.stack,
    pytest.mark.skipif(
        os.environ.get("MLOPS_AFTER_DEMO") != "1",
        reason="runs after `make demo` on its state (.ci/run: make after-demo)",
    ),
]

REPO = Path(__file__).resolve().parents[2]
LOCAL = REPO / ".local"
PIPELINES = ("breast_cancer_training", "breast_cancer_monitoring")


def wait_until(predicate: Any, timeout: float, message: Any = "condition never held") -> None:
    """Poll ``predicate`` until it holds; fail after ``timeout`` seconds with ``message``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(message() if callable(message) else message)
        time.sleep(1)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _plain_shell_make(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """``make ARGS`` as a person starts it in a plain shell: no venv on PATH, none of this test
    session's Airflow or MLflow variables; its own process group (stopped whole by the test)."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}
    with log.open("wb") as out:
        return subprocess.Popen(
            ["make", "--no-print-directory", *args],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _get(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _healthy(url: str) -> bool:
    try:
        health = _get(f"{url}/api/v2/monitor/health")
    except OSError:
        return False
    parts = ("metadatabase", "scheduler", "triggerer", "dag_processor")
    return all(health.get(p, {}).get("status") == "healthy" for p in parts)


def _token(url: str, password: str) -> str:
    body = json.dumps({"username": "admin", "password": password}).encode()
    request = urllib.request.Request(
        f"{url}/auth/token", data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(json.loads(response.read())["access_token"])


@pytest.fixture(scope="module")
def make_airflow(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if not (LOCAL / "airflow" / "airflow.db").exists():
        pytest.fail(f"no demo state under {LOCAL}: run `make demo` first")
    port = _free_port()
    log = tmp_path_factory.mktemp("make-airflow") / "make-airflow.log"
    started = time.time()
    proc = _plain_shell_make("airflow", f"AIRFLOW_PORT={port}", log=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: proc.poll() is None and _healthy(url),
            timeout=300,
            message=lambda: f"make airflow never became healthy:\n{log.read_text()[-4000:]}",
        )
        yield {"url": url, "port": port, "log": log, "started": started, "session": proc.pid}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _password() -> str:
    generated = LOCAL / "airflow" / "simple_auth_manager_passwords.json.generated"
    return str(json.loads(generated.read_text())["admin"])


def _session_processes(session: int) -> list[tuple[str, str]]:
    """(pid, full command line) of every process in `session`, read from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # the process ended while we looked
            continue
        # the fields after the command name, which may itself hold spaces or parentheses:
        # state, ppid, pgrp, session, ...
        if int(stat.rsplit(")", 1)[1].split()[3]) == session:
            found.append((entry.name, cmdline.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


def test_make_airflow_serves_on_loopback_with_a_sized_executor(make_airflow: dict[str, Any]) -> None:
    import socket

    log = make_airflow["log"].read_text()
    assert "FileNotFoundError" not in log, log[-3000:]
    # loopback only: the port answers on 127.0.0.1 and on no other address of this machine
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)} - {
        "127.0.0.1",
        "127.0.1.1",
    }
    for address in addresses:
        with socket.socket() as s:
            s.settimeout(2)
            assert s.connect_ex((address, make_airflow["port"])) != 0, f"the UI answers on {address}"
    # The LocalExecutor: two workers per core, not Airflow's default of 32, forked from a forkserver
    # that preloaded the heavy libraries (warm workers). Forkserver workers start on demand, so the
    # scheduler's own environment is what shows the sizing; the workers running now (only this
    # `make airflow`'s: its session; CI runs other Airflow stacks beside it) are at most that many.
    # /proc, not `ps`: ps cuts its last column to $COLUMNS, which a CI runner may set
    ours = _session_processes(make_airflow["session"])
    # `airflow scheduler` (run through the venv's python; its log server is a fork with its args)
    schedulers = [pid for pid, args in ours if args.split()[-1:] == ["scheduler"] and "airflow" in args]
    assert schedulers, ours
    scheduler = schedulers[0]
    environ = dict(
        item.split("=", 1)
        for item in Path(f"/proc/{scheduler}/environ").read_bytes().decode().split("\0")
        if "=" in item
    )
    assert environ["AIRFLOW__CORE__PARALLELISM"] == str(2 * (os.cpu_count() or 1)), environ
    assert environ["AIRFLOW__SCHEDULER__MP_START_METHOD"] == "forkserver"
    assert environ["AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD"] == "mlops_airflow.warm"
    workers = sum(1 for _, args in ours if args.startswith("airflow worker -- LocalExecutor"))
    assert workers <= 2 * (os.cpu_count() or 1), f"{workers} LocalExecutor workers"


def test_the_ui_tells_the_demo_story_with_no_failure(make_airflow: dict[str, Any], tmp_path: Path) -> None:
    url, password = make_airflow["url"], _password()
    token = _token(url, password)

    def parsed_since_start() -> bool:
        dags = {d["dag_id"]: d for d in _get(f"{url}/api/v2/dags?limit=100", token)["dags"]}
        return all(p in dags and dags[p]["last_parsed_time"] for p in PIPELINES)

    wait_until(parsed_since_start, timeout=180, message="the example DAGs were never parsed")
    # the scheduler has looked at the DAGs since it started (its heartbeat is after our start)
    wait_until(
        lambda: _get(f"{url}/api/v2/monitor/health")["scheduler"]["latest_scheduler_heartbeat"] is not None,
        timeout=60,
    )
    dags = {d["dag_id"]: d for d in _get(f"{url}/api/v2/dags?limit=100", token)["dags"]}
    for dag_id in PIPELINES:
        assert dags[dag_id]["is_paused"], f"{dag_id} left unpaused: its cron would run for today"
    runs = {
        dag_id: _get(f"{url}/api/v2/dags/{dag_id}/dagRuns?limit=100", token)["dag_runs"] for dag_id in dags
    }
    failed = [(d, r["dag_run_id"]) for d, rs in runs.items() for r in rs if r["state"] != "success"]
    assert not failed, f"runs the user did not cause are not green: {failed}"
    kinds = {r["run_type"] for r in runs["breast_cancer_training"]}
    assert {"manual", "asset_triggered"} <= kinds, kinds
    assert {r["run_type"] for r in runs["breast_cancer_monitoring"]} >= {"backfill", "manual"}

    chromium = shutil.which("chromium")
    if chromium is None:
        pytest.fail("Debian's chromium is missing: make browser")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = open_page(browser, 1400, 1100)
        login(page, url, password)

        page.goto(f"{url}/dags", wait_until="networkidle")
        for dag_id in PIPELINES:
            page.get_by_text(dag_id, exact=True).first.wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "dag_list.png"), full_page=True)

        page.goto(f"{url}/plugin/mlops-models", wait_until="networkidle")
        frame = page.frame_locator("iframe").first
        frame.locator("h1").first.wait_for(timeout=60_000)
        models = frame.locator("body").inner_text()
        assert "breast_cancer" in models and "champion" in models.lower(), models[:2000]
        page.screenshot(path=str(tmp_path / "models_view.png"), full_page=True)

        page.goto(f"{url}/assets", wait_until="networkidle")
        page.get_by_text("breast_cancer", exact=False).first.wait_for(timeout=60_000)
        page.screenshot(path=str(tmp_path / "assets.png"), full_page=True)
        browser.close()


def test_make_mlflow_ui_shows_the_demo_champion_from_a_plain_shell(tmp_path: Path) -> None:
    port = _free_port()
    log = tmp_path / "make-mlflow-ui.log"
    proc = _plain_shell_make("mlflow-ui", f"MLFLOW_PORT={port}", log=log)
    url = f"http://127.0.0.1:{port}/api/2.0/mlflow/registered-models/get?name=breast_cancer"

    def champion() -> Any:
        try:
            model = _get(url)["registered_model"]
        except OSError:
            return None
        return {a["alias"]: a["version"] for a in model.get("aliases", [])}.get("champion")

    try:
        wait_until(
            lambda: proc.poll() is None and champion() is not None,
            timeout=180,
            message=lambda: f"make mlflow-ui never served the demo's model:\n{log.read_text()[-3000:]}",
        )
        assert str(champion()).isdigit()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
