"""One-shot: give the Airflow workers their own, non-admin MLflow users.

The MLflow server runs behind its basic-auth app (see ``mlflow-server.sh``, default permission
READ). The bootstrap admin stays with the server and this job. Two users:

- ``MLFLOW_WORKER_USERNAME`` (default ``airflow``), the ordinary Celery workers: creates its
  experiments and logs runs in them (a creator manages what it creates), reads every registered
  model, and cannot tag a model version or move an alias of a model it did not create (403);
- ``MLFLOW_RELEASE_USERNAME`` (default ``release``), the worker of the ``release`` queue only:
  EDIT on every experiment (the gate records its decision on the training run) and MANAGE on
  every registered model (register, approval, aliases), through wildcard grants.

Neither may manage users or permissions. Idempotent: an existing user gets the password of the
secret again (rotating a password is a re-run), and the grants are set again.
Standard library only.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

SECRETS = Path(os.environ.get("SECRETS_DIR", "/run/secrets"))
SERVER = os.environ.get("MLFLOW_TRACKING_URI", "http://mlflow:5000").rstrip("/")
USERS = f"{SERVER}/api/2.0/mlflow/users"
GRANT = f"{SERVER}/api/3.0/mlflow/users/permissions/grant"
# What the release identity may do everywhere (resource type, resource id pattern, permission).
RELEASE_GRANTS = (("experiment", "*", "EDIT"), ("registered_model", "*", "MANAGE"))


def _secret(name: str) -> str:
    return (SECRETS / name).read_text().strip()


def _call(method: str, url: str, auth: str, body: dict[str, str] | None = None) -> int:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Authorization", f"Basic {auth}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 (fixed http URL)
            return int(resp.status)
    except urllib.error.HTTPError as err:
        if err.code == 404:
            return 404
        detail = err.read().decode(errors="replace")[:300]
        raise SystemExit(f"{method} {url} failed: HTTP {err.code} {detail}") from err


def _ensure_user(token: str, user: str, password: str) -> None:
    query = urllib.parse.urlencode({"username": user})
    if _call("GET", f"{USERS}/get?{query}", token) == 200:
        _call("PATCH", f"{USERS}/update-password", token, {"username": user, "password": password})
        print(f"MLflow user {user!r} exists; password set from the secret")
    else:
        _call("POST", f"{USERS}/create", token, {"username": user, "password": password})
        print(f"MLflow user {user!r} created")


def _wait(token: str) -> None:
    for attempt in range(30):  # the server may still be bootstrapping its auth store
        try:
            _call("GET", f"{USERS}/get?username=admin", token)
            return
        except urllib.error.URLError:
            time.sleep(min(2**attempt, 10))
    raise SystemExit(f"MLflow at {SERVER} did not answer")


def main() -> int:
    admin = os.environ.get("MLFLOW_ADMIN_USERNAME", "admin")
    worker = os.environ.get("MLFLOW_WORKER_USERNAME", "airflow")
    releaser = os.environ.get("MLFLOW_RELEASE_USERNAME", "release")
    if releaser == worker:
        raise SystemExit("MLFLOW_RELEASE_USERNAME must differ from MLFLOW_WORKER_USERNAME")
    token = base64.b64encode(f"{admin}:{_secret('mlflow_admin_password')}".encode()).decode()
    _wait(token)
    _ensure_user(token, worker, _secret("mlflow_airflow_password"))
    _ensure_user(token, releaser, _secret("mlflow_release_password"))
    for resource_type, pattern, permission in RELEASE_GRANTS:
        body = {
            "username": releaser,
            "resource_type": resource_type,
            "resource_id": pattern,
            "permission": permission,
        }
        _call("POST", GRANT, token, body)
        print(f"MLflow user {releaser!r}: {permission} on {resource_type} {pattern}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
