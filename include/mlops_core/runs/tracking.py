"""MLflow set-up shared by every step: tracking URI, experiment with a known artifact root, code version."""

from __future__ import annotations

import os
import subprocess
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from mlops_core import __version__
from mlops_core.base import settings

if TYPE_CHECKING:
    from collections.abc import Iterator


def configure() -> Any:
    """Point MLflow at the configured store and return an ``MlflowClient``."""
    import os

    import mlflow
    from mlflow import MlflowClient

    # the package downloads models to verify them: no progress bar per file in task logs
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    forbid_mlflow_unpickling()
    uri = settings.tracking_uri()
    if uri.startswith("sqlite:///"):
        _init_sqlite_store(uri)
    user_set = os.environ.get("MLFLOW_TRACKING_URI") == uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if not user_set:
        # mlflow.set_tracking_uri exports its argument for subprocesses; a store this package
        # derived (from MLOPS_LOCAL_DIR) must not become every later subprocess's "user" setting
        # (the Airflow services a test or the demo starts, with their own MLOPS_LOCAL_DIR)
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


_PICKLE_ENV = "MLFLOW_ALLOW_PICKLE_DESERIALIZATION"


def forbid_mlflow_unpickling() -> None:
    """Switch MLflow's own model deserialisation off in this process.

    MLflow's loaders (``mlflow.sklearn``/``pyfunc.load_model`` and others) unpickle, or pass the
    artifact's own ``skops_trusted_types`` to skops. The package never calls them to load a model
    (:func:`mlops_core.runs.run_artifacts.load_model`), so nothing it runs may: with this variable
    false MLflow refuses.
    Called by :func:`configure`, which every step runs.
    """
    os.environ[_PICKLE_ENV] = "false"


@contextmanager
def own_fresh_model() -> Iterator[None]:
    """Allow MLflow to load, only inside this block, the model training has just saved from the
    object it holds (``log_model`` loads its local copy to check the input example serves).
    Nothing outside has touched that copy; afterwards the switch is off again, whatever it was."""
    os.environ[_PICKLE_ENV] = "true"
    try:
        yield
    finally:
        forbid_mlflow_unpickling()


@lru_cache(maxsize=32)
def _init_sqlite_store(uri: str) -> None:
    """Create (or migrate) a SQLite MLflow store under an exclusive file lock, once per process.

    MLflow builds its tables with alembic the first time a process opens a store. Two processes
    doing that at once on a new file (two tasks starting together on a fresh install) leave a
    half-migrated store that every later open refuses ("table _alembic_tmp_experiments already
    exists"): the embedded default would then fail closed for good. Under the lock one process
    migrates and the others find the tables made.
    """
    import fcntl
    from pathlib import Path

    from mlflow import MlflowClient

    db = Path(uri.removeprefix("sqlite:///").split("?", 1)[0])
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.init-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments(max_results=1)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


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
