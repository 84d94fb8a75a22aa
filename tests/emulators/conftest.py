"""Cloud emulators, each started once per test session: moto server (AWS), gcp-storage-emulator
(GCS) and Azurite (Azure Blob / ADLS). Each fixture also exports the Airflow connection a cloud
profile uses (``AIRFLOW_CONN_*``), so the code under test reaches the emulator exactly as it
would reach the cloud: through the connection, never through test-only switches.

moto and gcp-storage-emulator come from the lock (requirements.txt); Azurite from npm, installed
once under ``.local/azurite`` (``make emulators``, or on first use here; needs Node.js 20 + npm).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parents[2]
AZURITE_PREFIX = ROOT / ".local" / "azurite"
AZURITE_PACKAGE = "azurite@3.37.0"
BUCKET = "mlops-lake"
# Azurite's well-known development account (public, documented by Microsoft; not a secret)
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes] | None, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


def _set_env(values: dict[str, str]) -> dict[str, str | None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    return old


def _restore_env(old: dict[str, str | None]) -> None:
    for key, value in old.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto server (S3, SageMaker, CloudWatch, IAM) and the ``aws_default`` connection to it."""
    port = _free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port, proc, "moto_server")
    endpoint = f"http://127.0.0.1:{port}"
    conn = {
        "conn_type": "aws",
        "login": "testing",
        "password": "testing",
        "extra": {"endpoint_url": endpoint, "region_name": "eu-west-1"},
    }
    old = _set_env({"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn), "AWS_DEFAULT_REGION": "eu-west-1"})
    import boto3

    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="testing", aws_secret_access_key="testing"
    ).create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": "eu-west-1"})
    yield endpoint
    _restore_env(old)
    _stop(proc)


@pytest.fixture(scope="session")
def gcs_endpoint() -> Iterator[str]:
    """gcp-storage-emulator (in memory, bucket created) and ``google_cloud_default`` pointing at it."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("gcp-storage-emulator")),
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
            "--default-bucket",
            BUCKET,
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port, proc, "gcp-storage-emulator")
    endpoint = f"http://127.0.0.1:{port}"
    conn = {
        "conn_type": "google_cloud_platform",
        "extra": {"is_anonymous": True, "project": "mlops-test", "gcs.endpoint": endpoint},
    }
    old = _set_env({"AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(conn)})
    yield endpoint
    _restore_env(old)
    _stop(proc)


def _azurite_bin() -> Path:
    exe = AZURITE_PREFIX / "node_modules" / ".bin" / "azurite-blob"
    if not exe.exists():
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(
                f"npm is needed once to install {AZURITE_PACKAGE} into {AZURITE_PREFIX} (Node.js 20 + npm)"
            )
        cmd = [npm, "install", "--prefix", str(AZURITE_PREFIX), "--no-audit", "--no-fund", AZURITE_PACKAGE]
        subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return exe


@pytest.fixture(scope="session")
def azurite_connection_string(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Azurite's blob service (in memory, container created) and ``azure_data_lake_default`` to it."""
    port = _free_port()
    workdir = tmp_path_factory.mktemp("azurite")
    proc = subprocess.Popen(
        [
            str(_azurite_bin()),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--inMemoryPersistence",
            "--skipApiVersionCheck",
            "--loose",
        ],
        cwd=workdir,  # Azurite writes its debug/extent files (none in memory mode) beside it
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_port(port, proc, "azurite-blob")
    conn_str = (
        f"DefaultEndpointsProtocol=http;AccountName={AZURITE_ACCOUNT};AccountKey={AZURITE_KEY};"
        f"BlobEndpoint=http://127.0.0.1:{port}/{AZURITE_ACCOUNT};"
    )
    conn = {"conn_type": "adls", "extra": {"connection_string": conn_str}}
    old = _set_env({"AIRFLOW_CONN_AZURE_DATA_LAKE_DEFAULT": json.dumps(conn)})
    from azure.storage.blob import BlobServiceClient

    BlobServiceClient.from_connection_string(conn_str).create_container(BUCKET)
    yield conn_str
    _restore_env(old)
    _stop(proc)


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One MLflow server for the tier (remote training needs one its jobs can reach)."""
    home = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("mlflow")),
            "server",
            "--backend-store-uri",
            f"sqlite:///{home / 'mlflow.db'}",
            "--default-artifact-root",
            (home / "artifacts").as_uri(),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    # a deadline, not a pace: on a loaded 2-core machine (load 20+) its start alone took over 120 s
    _wait_port(port, proc, "mlflow server", timeout=300)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=5):
                break
        except OSError:
            time.sleep(0.5)
    yield url
    _stop(proc)
