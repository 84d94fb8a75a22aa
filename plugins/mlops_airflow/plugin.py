"""The package's AirflowPlugin: the "Models" view (a FastAPI app under ``/mlops``) in the nav.

Registered through the ``airflow.plugins`` entry point (pyproject.toml), not the plugins folder
(see ``plugins/.airflowignore``). Every process that loads plugins imports this module, workers
included, so it stays light: the FastAPI app and what it reads are built on first access to
``fastapi_apps``, which only the api-server makes. Extra links need no registration here: Airflow
3 stores each link's URL as an XCom when the task ends (:mod:`mlops_airflow.links.mlops`).
"""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/mlops"


class _App:
    """``fastapi_apps``, built once when the api-server first asks for it."""

    def __init__(self) -> None:
        self._apps: list[dict[str, Any]] | None = None

    def __get__(self, obj: Any, owner: Any) -> list[dict[str, Any]]:
        if self._apps is None:
            from mlops_airflow.views.models import create_app

            self._apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "MLOps models"}]
        return self._apps


class MlopsPlugin(AirflowPlugin):
    name = "mlops"
    fastapi_apps = _App()
    external_views = [
        {
            "name": "Models",
            "href": f"{URL_PREFIX}/models",
            "url_route": "mlops-models",
            "destination": "nav",
            "category": "browse",
        }
    ]
