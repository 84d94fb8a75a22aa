"""One-shot: give the Airflow workers their own, non-admin MLflow user.

The MLflow server runs behind its basic-auth app (see ``mlflow-server.sh``). The bootstrap admin
stays with the server and this job; the workers log in as ``MLFLOW_WORKER_USERNAME`` (default
``airflow``), which may create experiments and registered models (and manage what it creates) and
read the rest, but cannot manage users or permissions. Idempotent: an existing user gets the
password of the secret again, so rotating ``mlflow_airflow_password`` is a re-run.
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


def main() -> int:
    admin = os.environ.get("MLFLOW_ADMIN_USERNAME", "admin")
    user = os.environ.get("MLFLOW_WORKER_USERNAME", "airflow")
    token = base64.b64encode(f"{admin}:{_secret('mlflow_admin_password')}".encode()).decode()
    password = _secret("mlflow_airflow_password")
    query = urllib.parse.urlencode({"username": user})
    for attempt in range(30):  # the server may still be bootstrapping its auth store
        try:
            exists = _call("GET", f"{USERS}/get?{query}", token) == 200
            break
        except urllib.error.URLError:
            time.sleep(min(2**attempt, 10))
    else:
        raise SystemExit(f"MLflow at {SERVER} did not answer")
    if exists:
        _call("PATCH", f"{USERS}/update-password", token, {"username": user, "password": password})
        print(f"MLflow user {user!r} exists; password set from the secret")
    else:
        _call("POST", f"{USERS}/create", token, {"username": user, "password": password})
        print(f"MLflow user {user!r} created")
    return 0


if __name__ == "__main__":
    sys.exit(main())
