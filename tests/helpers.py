"""Helpers shared by test modules."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
PIPELINES = REPO / "dags" / "pipelines"


def wait_until(predicate: Callable[[], T], timeout: float, what: str = "", interval: float = 0.01) -> T:
    """Poll ``predicate`` until it returns something truthy (returned); fail after ``timeout`` seconds.

    The way a test synchronises: on a condition it can observe, never on a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {what or predicate}")
        time.sleep(interval)


async def async_wait_until(
    predicate: Callable[[], T], timeout: float, what: str = "", interval: float = 0.01
) -> T:
    """:func:`wait_until` for a coroutine: the event loop keeps running while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout} s: {what or predicate}")
        await asyncio.sleep(interval)


def example_data(example: str = "breast_cancer", **changes: Any) -> dict[str, Any]:
    """The example pipeline's YAML as a dict, changed (nested dicts are merged one level deep)."""
    import yaml

    data = yaml.safe_load((PIPELINES / f"{example}.yaml").read_text())
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return data


def example_spec(example: str = "breast_cancer", **changes: Any) -> Any:
    from mlops_core.spec import parse_spec

    return parse_spec(example_data(example, **changes))


def install_pipeline(name: str, example: str = "breast_cancer", **changes: Any) -> Any:
    """Write ``<name>.yaml`` (the example, renamed and changed) into the session's DAG folder; return its spec."""
    import os

    import yaml

    from mlops_core.spec import load_spec

    folder = Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"]) / "pipelines"
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(example_data(example, name=name, **changes), sort_keys=False))
    return load_spec(path)


def pipeline_folder(dags: Path, name: str, example: str = "breast_cancer", **changes: Any) -> Path:
    """A DAG folder holding only the loader and ``<name>.yaml`` (the example, renamed and changed)."""
    import shutil

    import yaml

    (dags / "pipelines").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "mlops_pipelines.py", dags)
    data = example_data(example, name=name, **changes)
    (dags / "pipelines" / f"{name}.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return dags


def load_as_serving_container(uri: str) -> Any:
    """Load a model the way MLflow's serving container does (``mlflow.pyfunc.load_model`` in a
    process of its own, MLflow's defaults). The stand-ins for the serving images (SageMaker,
    Vertex AI, Azure ML, KServe) run inside the test process, where the package has switched
    MLflow's own loaders off (``tracking.forbid_mlflow_unpickling``): only they use this."""
    import os
    from unittest import mock

    import mlflow

    with mock.patch.dict(os.environ, {"MLFLOW_ALLOW_PICKLE_DESERIALIZATION": "true"}):
        return mlflow.pyfunc.load_model(uri)
