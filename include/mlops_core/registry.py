"""MLflow 3 model registry: idempotent registration, lineage tags and the three aliases.

``challenger``: the latest version that passed the gate and was registered.
``champion``: what is deployed (for the local target, *the* deployment).
``previous_champion``: what ``champion`` pointed to before the last promotion (the rollback target).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from mlops_core import tracking

if TYPE_CHECKING:
    from mlflow import MlflowClient

log = logging.getLogger(__name__)

CHALLENGER, CHAMPION, PREVIOUS = "challenger", "champion", "previous_champion"
RUN_KEY_TAG = "mlops.airflow_run"


def client() -> MlflowClient:
    return tracking.configure()


def alias_version(name: str, alias: str) -> str | None:
    """Version number an alias points to, or None (no model, or no such alias)."""
    from mlflow.exceptions import MlflowException

    try:
        return str(client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def find_version(name: str, run_key: str) -> str | None:
    """The version already registered for an Airflow run (``dag_id/run_id``), if any."""
    from mlflow.exceptions import MlflowException

    try:
        found = client().search_model_versions(f"name = '{name}' and tags.`{RUN_KEY_TAG}` = '{run_key}'")
    except MlflowException:
        return None
    return str(max(int(v.version) for v in found)) if found else None


def register(name: str, model_uri: str, run_id: str, run_key: str, tags: dict[str, str]) -> tuple[str, bool]:
    """Register ``model_uri`` as a new version of ``name`` once per Airflow run; returns (version, created).

    A retried task finds the version it made before through the run-key tag and reuses it.
    """
    from mlflow.exceptions import MlflowException

    existing = find_version(name, run_key)
    c = client()
    if existing is not None:
        log.info("model %s already has version %s for %s; reusing it", name, existing, run_key)
        version, created = existing, False
    else:
        try:
            c.create_registered_model(name, tags={"mlops.pipeline": name})
        except MlflowException:
            pass  # already exists
        import mlflow

        # mlflow.register_model resolves an MLflow 3 logged model (models:/m-...) to its model_id,
        # which a tracking server requires; the client call alone only works on a local store.
        mv = mlflow.register_model(
            model_uri, name, tags={RUN_KEY_TAG: run_key, "mlops.run_id": run_id, **tags}
        )
        version, created = str(mv.version), True
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, value)
    c.set_registered_model_alias(name, CHALLENGER, version)
    return version, created


def set_tags(name: str, version: str, tags: dict[str, Any]) -> None:
    c = client()
    for key, value in tags.items():
        c.set_model_version_tag(name, version, key, str(value))


def promote(name: str, version: str) -> str | None:
    """Point ``champion`` at ``version`` and ``previous_champion`` at the old champion; return the old one.

    Idempotent: when ``champion`` already points at ``version`` nothing moves (a retried deploy
    must not make the new version its own previous champion).
    """
    c = client()
    current = alias_version(name, CHAMPION)
    if current == version:
        return alias_version(name, PREVIOUS)
    if current is not None:
        c.set_registered_model_alias(name, PREVIOUS, current)
    c.set_registered_model_alias(name, CHAMPION, version)
    return current


def restore(name: str, failed_version: str, previous: str | None) -> None:
    """Undo :func:`promote`: champion back to ``previous`` (or no champion at all on a first deploy)."""
    c = client()
    if previous is not None:
        c.set_registered_model_alias(name, CHAMPION, previous)
    elif alias_version(name, CHAMPION) == failed_version:
        c.delete_registered_model_alias(name, CHAMPION)
    c.set_model_version_tag(name, failed_version, "mlops.rolled_back", "true")
