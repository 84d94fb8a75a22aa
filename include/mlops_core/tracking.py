"""MLflow set-up shared by every step: tracking URI, experiment with a known artifact root, code version."""

from __future__ import annotations

import os
import subprocess
from functools import lru_cache
from typing import Any

from mlops_core import __version__, settings


def configure() -> Any:
    """Point MLflow at the configured store and return an ``MlflowClient``."""
    import mlflow
    from mlflow import MlflowClient

    uri = settings.tracking_uri()
    if uri.startswith("sqlite:///"):
        from pathlib import Path

        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(pipeline: str) -> str:
    """The pipeline's experiment (``mlops/<pipeline>``), created with an explicit artifact location."""
    client = configure()
    name = f"mlops/{pipeline}"
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return str(exp.experiment_id)
    from mlflow.exceptions import MlflowException

    # A tracking server (http) decides where artifacts go unless MLOPS_ARTIFACTS says otherwise.
    served = settings.tracking_uri().startswith(("http://", "https://")) and not os.environ.get(
        "MLOPS_ARTIFACTS"
    )
    location = None if served else f"{settings.artifact_root().rstrip('/')}/{pipeline}"
    try:
        return str(client.create_experiment(name, artifact_location=location))
    except MlflowException:  # created concurrently by another task
        exp = client.get_experiment_by_name(name)
        assert exp is not None
        return str(exp.experiment_id)


@lru_cache(maxsize=1)
def code_version() -> str:
    """Git commit of the project when available, else the package version."""
    try:
        out = subprocess.run(
            ["git", "-C", str(settings.home()), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return f"v{__version__}"
