"""A real Airflow deployment as subprocesses: scheduler, dag-processor, triggerer and api-server
(plus Celery workers when asked), on SQLite (the embedded default) or a fresh PostgreSQL database.

Used by ``make demo`` (to show the scheduler reacting to a drift Asset event) and by the
scheduler test tier. Everything is checked through the REST API (what the UI uses).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

PG_HOST = os.environ.get("MLOPS_TEST_PG_HOST", "127.0.0.1")
PG_PORT = int(os.environ.get("MLOPS_TEST_PG_PORT", "5432"))
PG_USER = os.environ.get("MLOPS_TEST_PG_USER", "postgres")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def create_database(name: str) -> str:
    """Create a fresh PostgreSQL database; return its SQLAlchemy URL."""
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cur.execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return f"postgresql+psycopg2://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"


def drop_database(name: str) -> None:
    import psycopg2

    conn = psycopg2.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, dbname="postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@dataclass
class AirflowStack:
    """Airflow services on PostgreSQL with the given executor; ``env`` is shared by every process."""

    home: Path
    dags_folder: Path
    executor: str = "LocalExecutor"
    sqlite: bool = False
    # LocalExecutor workers forked from a forkserver that preloaded the heavy libraries
    # (mlops_airflow.warm): a task starts without importing them (docs/benchmarks.md, warm workers)
    warm: bool = True
    extra_env: dict[str, str] = field(default_factory=dict)
    services: tuple[str, ...] = ("scheduler", "dag-processor", "triggerer", "api-server")
    port: int = field(default_factory=free_port)
    db_name: str = field(default_factory=lambda: f"mlops_stack_{secrets.token_hex(4)}")
    mlflow_server: bool = False
    # MLflow behind its basic-auth app with the compose stack's two users (mlflow_users.py): every
    # process logs in as the ordinary workers' user, the ``release_worker`` as the release user
    mlflow_auth: bool = False
    # a second Celery worker on the release queue (``-q release``) with the release user and key
    release_worker: bool = False
    redis_url: str = "redis://127.0.0.1:6379"
    mlflow_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def mlflow_url(self) -> str:
        return f"http://127.0.0.1:{self.mlflow_port}"

    def environment(self, db_url: str) -> dict[str, str]:
        env = os.environ.copy()
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": self.executor,
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": db_url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(self.home / "passwords.json"),
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "2",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "600",
                "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
                # the log servers (8793, 8794 by default) of their own: stacks may run side by side
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
            }
        )
        if self.executor == "CeleryExecutor":
            # a Redis DB index of its own, so parallel stacks never share a queue
            env["AIRFLOW__CELERY__BROKER_URL"] = f"{self.redis_url}/{1 + secrets.randbelow(15)}"
            env["AIRFLOW__CELERY__RESULT_BACKEND"] = "db+" + db_url.replace("+psycopg2", "")
            env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] = "2"
            # warm workers, as docker-compose.yaml runs them (mlops_airflow.celery_config)
            env["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] = "mlops_airflow.celery_config.CONFIG"
        if self.executor == "LocalExecutor":
            env["AIRFLOW__SCHEDULER__MP_START_METHOD"] = "forkserver" if self.warm else "fork"
            if self.warm:
                env["AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD"] = "mlops_airflow.warm"
        if self.mlflow_server:
            env["MLFLOW_TRACKING_URI"] = self.mlflow_url
        env.update(self.extra_env)
        return env

    @property
    def secrets_dir(self) -> Path:
        return self.home / "secrets"

    def mlflow_login(self, user: str) -> dict[str, str]:
        """``MLFLOW_TRACKING_USERNAME``/``PASSWORD`` of ``admin``, ``airflow`` (ordinary) or ``release``."""
        password = (self.secrets_dir / f"mlflow_{user}_password").read_text()
        return {"MLFLOW_TRACKING_USERNAME": user, "MLFLOW_TRACKING_PASSWORD": password}

    def _auth_env(self) -> dict[str, str]:
        """The basic-auth app's config (users in SQLite next to the stack), and random passwords."""
        self.secrets_dir.mkdir(parents=True, exist_ok=True)
        for name in ("mlflow_admin_password", "mlflow_airflow_password", "mlflow_release_password"):
            (self.secrets_dir / name).write_text(secrets.token_urlsafe(24))
        ini = self.home / "mlflow_auth.ini"
        ini.write_text(
            "[mlflow]\ndefault_permission = READ\n"
            f"database_uri = sqlite:///{self.home / 'mlflow_auth.db'}\n"
            "admin_username = admin\n"
            f"admin_password = {(self.secrets_dir / 'mlflow_admin_password').read_text()}\n"
            "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        )
        ini.chmod(0o600)
        return {"MLFLOW_AUTH_CONFIG_PATH": str(ini), "MLFLOW_FLASK_SERVER_SECRET_KEY": secrets.token_hex(32)}

    def _create_mlflow_users(self) -> None:
        """What compose's mlflow-init runs: include/compose/mlflow_users.py, for real."""
        script = Path(__file__).resolve().parents[2] / "include" / "compose" / "mlflow_users.py"
        env = {**self.env, "SECRETS_DIR": str(self.secrets_dir), "MLFLOW_TRACKING_URI": self.mlflow_url}
        subprocess.run([sys.executable, str(script)], env=env, check=True, capture_output=True, timeout=120)

    def _start_mlflow(self) -> None:
        """An MLflow tracking server on its own PostgreSQL database, serving artifacts from a local folder."""
        store = create_database(f"{self.db_name}_mlflow").replace("+psycopg2", "")
        log = open(self.home / "mlflow.log", "wb")  # noqa: SIM115 - closed with the process
        mlflow = str(Path(sys.executable).with_name("mlflow"))
        args = [
            mlflow,
            "server",
            *(["--app-name", "basic-auth"] if self.mlflow_auth else []),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.mlflow_port),
            "--backend-store-uri",
            store,
            "--serve-artifacts",
            "--artifacts-destination",
            (self.home / "mlflow-artifacts").as_uri(),
            "--workers",
            "1",
        ]
        env = {**self.env, **(self._auth_env() if self.mlflow_auth else {})}
        self.procs["mlflow"] = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.time() + 120
        while time.time() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.mlflow_url}/health", timeout=5):
                    break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(1)
        else:
            raise TimeoutError("MLflow server did not start:\n" + self.log_tail("mlflow"))
        if self.mlflow_auth:
            self._create_mlflow_users()
            self.env.update(self.mlflow_login("airflow"))  # every process but the release worker

    def _release_worker(self, airflow: str) -> tuple[list[str], dict[str, str]]:
        """``airflow celery worker -q release`` with the release user and key (and a log server port of its own)."""
        env = {
            **self.env,
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
            "MLOPS_RELEASE_KEY": secrets.token_hex(32),
        }
        if self.mlflow_auth:
            env.update(self.mlflow_login("release"))
        # two slots: a second pipeline's release step does not queue behind the first's
        args = [airflow, "celery", "worker", "-q", "release", "--concurrency", "2"]
        # a hostname and pid file of its own: the default worker's are taken on this machine
        args += [
            "--celery-hostname",
            f"release@{socket.gethostname()}",
            "--pid",
            str(self.home / "release-worker.pid"),
        ]
        return args, env

    def start(self, migrate: bool = True, before_services: Callable[[], object] | None = None) -> None:
        """Start the services; ``migrate=False`` skips ``airflow db migrate`` (a restart of the same DB).
        ``before_services`` is called once the database is ready, before any service starts."""
        self.home.mkdir(parents=True, exist_ok=True)
        # SQLite: wait up to 60 s for a lock instead of failing (scheduler, API and CLI share the file)
        db_url = (
            f"sqlite:///{self.home / 'airflow.db'}?timeout=60"
            if self.sqlite
            else create_database(self.db_name)
        )
        self.env = self.environment(db_url)
        airflow = str(Path(sys.executable).with_name("airflow"))
        if migrate:
            subprocess.run([airflow, "db", "migrate"], env=self.env, check=True, capture_output=True)
        if before_services is not None:
            before_services()
        if self.mlflow_server:
            self._start_mlflow()
        for name in self.services:
            log = open(self.home / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
            args = (
                [airflow, name]
                if name != "celery-worker"
                else [airflow, "celery", "worker", "--concurrency", "2"]
            )
            self.procs[name] = subprocess.Popen(
                args, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        if self.release_worker:
            args, env = self._release_worker(airflow)
            log = open(self.home / "celery-release-worker.log", "wb")  # noqa: SIM115 - closed with the process
            self.procs["celery-release-worker"] = subprocess.Popen(
                args, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.wait_healthy()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.time() + 30
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        if not self.sqlite:
            for name in (self.db_name, f"{self.db_name}_mlflow"):
                try:
                    drop_database(name)
                except Exception:  # noqa: BLE001 - best effort at teardown
                    pass

    def log_tail(self, name: str, chars: int = 4000) -> str:
        path = self.home / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def check_alive(self) -> None:
        dead = {n: p.returncode for n, p in self.procs.items() if p.poll() is not None}
        if dead:
            raise RuntimeError(f"Airflow services died: {dead}\n" + "\n".join(self.log_tail(n) for n in dead))

    # --- REST API ------------------------------------------------------------------------

    def wait_healthy(self, timeout: float = 180) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.check_alive()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as resp:
                    health = json.loads(resp.read())
                if health.get("scheduler", {}).get("status") == "healthy":
                    self.login()
                    return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(2)
        raise TimeoutError(
            "Airflow did not become healthy:\n" + self.log_tail("api-server") + self.log_tail("scheduler")
        )

    def login(self) -> None:
        passwords = json.loads((self.home / "passwords.json").read_text())
        body = json.dumps({"username": "admin", "password": passwords["admin"]}).encode()
        req = urllib.request.Request(
            f"{self.url}/auth/token", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            self.token = json.loads(resp.read())["access_token"]

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            f"{self.url}/api/v2{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
        except urllib.error.HTTPError as err:
            raise RuntimeError(f"{method} {path} -> {err.code}: {err.read()[:2000]!r}") from err
        return json.loads(raw) if raw else None

    def trigger(self, dag_id: str, logical_date: str, conf: dict[str, Any] | None = None) -> None:
        """POST a DAG run; on SQLite a write can lose a lock race, so retry unless the run exists."""
        for attempt in range(5):
            try:
                self.api(
                    "POST", f"/dags/{dag_id}/dagRuns", {"logical_date": logical_date, "conf": conf or {}}
                )
                return
            except RuntimeError:
                if any(r["logical_date"][:19] == logical_date[:19] for r in self.runs(dag_id)):
                    return
                if attempt == 4:
                    raise
                time.sleep(2)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        airflow = str(Path(sys.executable).with_name("airflow"))
        proc = subprocess.run([airflow, *args], env=self.env, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(
                f"airflow {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            )
        return proc

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.check_alive()
            try:
                return dict(self.api("GET", f"/dags/{dag_id}"))
            except RuntimeError:
                time.sleep(2)
        raise TimeoutError(f"{dag_id} never appeared; import errors: {self.api('GET', '/importErrors')}")

    def unpause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": False})

    def pause(self, dag_id: str) -> None:
        self.api("PATCH", f"/dags/{dag_id}", {"is_paused": True})

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        return list(self.api("GET", f"/dags/{dag_id}/dagRuns?limit=100&order_by=run_after")["dag_runs"])

    def tasks(self, dag_id: str, run_id: str) -> dict[str, dict[str, Any]]:
        from urllib.parse import quote

        found = self.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances")[
            "task_instances"
        ]
        return {t["task_id"]: t for t in found}

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """A task's XCom value as the REST API returns it (deserialized)."""
        from urllib.parse import quote

        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/xcomEntries/{key}"
        return self.api("GET", path + "?deserialize=true")["value"]

    def task_log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """A task try's log text as the REST API serves it (for failure messages)."""
        from urllib.parse import quote

        path = f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}/taskInstances/{task_id}/logs/{try_number}"
        try:
            content = self.api("GET", path + "?full_content=true").get("content") or []
        except RuntimeError as err:
            return str(err)
        return "\n".join(json.dumps(line, default=str)[:4000] for line in content)

    def why_failed(self, dag_id: str, run_id: str) -> str:
        """For an assertion message: each task's state, then the log tail of every task that did not succeed."""
        tasks = self.tasks(dag_id, run_id)
        states = ", ".join(f"{task_id}={ti.get('state')}" for task_id, ti in tasks.items())
        logs = [
            f"--- {task_id} (try {ti.get('try_number') or 1}) ---\n"
            + self.task_log(dag_id, run_id, task_id, ti.get("try_number") or 1)[-3000:]
            for task_id, ti in tasks.items()
            if ti.get("state") in ("failed", "upstream_failed", "up_for_retry")
        ]
        return "\n".join([f"{dag_id} {run_id}: {states}", *logs])

    def wait_runs(self, dag_id: str, count: int, timeout: float = 900, **match: Any) -> list[dict[str, Any]]:
        """Wait until ``count`` runs matching ``match`` (e.g. run_type) reached a final state."""
        deadline = time.time() + timeout
        done: list[dict[str, Any]] = []
        while time.time() < deadline:
            self.check_alive()
            runs = [r for r in self.runs(dag_id) if all(r.get(k) == v for k, v in match.items())]
            done = [r for r in runs if r["state"] in ("success", "failed")]
            if len(done) >= count:
                return done
            time.sleep(3)
        raise TimeoutError(
            f"{dag_id}: {len(done)}/{count} runs {match} finished; runs: {self.runs(dag_id)}\n{self.log_tail('scheduler')}"
        )
