"""Discover ``dags/pipelines/*.yaml`` and build their DAGs, isolating broken files.

A broken YAML cannot stop the others. Its DAGs are left out and one :class:`BrokenPipelines`
placeholder carries every file's errors: Airflow's DagBag validates each DAG it collects and
records the placeholder's failure as an *import error* of the loader file (shown in the UI under
"DAG Import Errors", and by ``airflow dags list-import-errors``), naming each YAML and field, while
the valid DAGs of the same file are bagged as usual.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airflow.sdk import DAG

from mlops_core.spec import SpecError, load_spec

if TYPE_CHECKING:
    from collections.abc import Iterable

log = logging.getLogger(__name__)


class InvalidPipelines(ValueError):
    """One or more pipeline YAMLs are invalid; the message lists every file and field."""


class BrokenPipelines(DAG):
    """Placeholder that fails DagBag validation with the collected spec errors (it is never scheduled)."""

    def validate(self) -> None:
        raise InvalidPipelines(self.description or "invalid pipeline spec")


def _message(path: Path, error: Exception) -> str:
    if isinstance(error, SpecError):
        return str(error)
    return f"{path} could not be built: {type(error).__name__}: {error}"


def pipeline_files(directory: str | Path) -> list[Path]:
    """The pipeline YAMLs of a folder, in the order they are built."""
    return sorted(Path(directory).glob("*.y*ml"))


def build_files(paths: Iterable[Path]) -> tuple[dict[str, Any], list[str]]:
    """``(dag_id -> DAG, errors)`` for ``paths``: each error names a file and each bad field.

    The one rule for the DAG folder and for ``mlops-airflow validate`` (so a CI check and the
    import errors say the same thing): a file whose spec is invalid, whose DAGs cannot be built or
    whose dag_ids clash with an earlier file's is reported and left out.
    """
    from mlops_airflow.builder import build_dags

    found: dict[str, Any] = {}
    errors: list[str] = []
    for path in paths:
        try:
            dags = build_dags(load_spec(path))
            clash = [d.dag_id for d in dags if d.dag_id in found]
            if clash:
                raise ValueError(f"dag_id(s) {clash} already defined by another pipeline file")
        except Exception as err:  # any failure of one file must not hide the others
            errors.append(_message(path, err))
            continue
        found.update({d.dag_id: d for d in dags})
    return found, errors


def load_dags(directory: str | Path) -> dict[str, Any]:
    """``dag_id -> DAG`` for every ``*.yaml``/``*.yml`` in ``directory``; invalid files are reported, not built."""
    found, errors = build_files(pipeline_files(directory))
    for error in errors:
        log.error("%s", error)
    if errors:
        summary = f"{len(errors)} pipeline file(s) invalid; the other pipelines loaded.\n" + "\n".join(errors)
        found["mlops__invalid_pipelines"] = BrokenPipelines(
            dag_id="mlops__invalid_pipelines", schedule=None, description=summary
        )
    return found
