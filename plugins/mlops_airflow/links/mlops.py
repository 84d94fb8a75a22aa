"""Operator extra links: the MLflow run and model version, the GX validation page and the drift report.

Airflow 3 computes an operator's links in the worker when the task ends and stores each as an
XCom (``_link_<class>``); the UI shows them as buttons on the task instance page. Each step
records its URLs on the operator while it runs (:func:`remember`), so a link never queries
anything at the end of the task and a step that did not get that far shows no link.

MLflow links need the UI's address as people reach it: ``MLOPS_MLFLOW_UI_URL``, else the
tracking URI when it is http(s). Lake reports (GX result.html, Evidently report.html) are served
by the package's own view under the api-server (:mod:`mlops_airflow.views.models`), which checks the
user's access to the pipeline's DAGs and serves only those files of that pipeline's lake prefix.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from airflow.sdk import BaseOperatorLink

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

ATTRIBUTE = "_mlops_links"
VIEW_PREFIX = "/mlops"


def remember(operator: Any, name: str, url: str | None) -> None:
    """Record ``url`` as the operator's link ``name`` (stored by Airflow when the task ends)."""
    if url:
        links = getattr(operator, ATTRIBUTE, None) or {}
        links[name] = url
        setattr(operator, ATTRIBUTE, links)


def mlflow_ui() -> str | None:
    """Base URL of the MLflow UI, or None when it cannot be reached by URL (a local SQLite store)."""
    url = os.environ.get("MLOPS_MLFLOW_UI_URL", "").strip()
    if not url:
        tracking = os.environ.get("MLFLOW_TRACKING_URI", "")
        url = tracking if tracking.startswith(("http://", "https://")) else ""
    return url.rstrip("/") or None


def run_url(experiment_id: str | None, run_id: str | None) -> str | None:
    base = mlflow_ui()
    if base is None or not run_id or not experiment_id:
        return None
    return f"{base}/#/experiments/{quote(str(experiment_id))}/runs/{quote(str(run_id))}"


def version_url(model_name: str, version: str | None) -> str | None:
    base = mlflow_ui()
    if base is None or not version:
        return None
    return f"{base}/#/models/{quote(model_name)}/versions/{quote(str(version))}"


def api_base() -> str:
    """Path prefix of the api-server (``[api] base_url``), so links work behind a proxy path."""
    from urllib.parse import urlparse

    from airflow.configuration import conf

    return urlparse(conf.get("api", "base_url", fallback="") or "").path.rstrip("/")


def report_url(pipeline: str, lake_uri: str | None, lake_root: str) -> str | None:
    """Link to a lake report through the package's view (``None`` when it is not under the pipeline)."""
    if not lake_uri:
        return None
    prefix = f"{lake_root.rstrip('/')}/{pipeline}/"
    if not lake_uri.startswith(prefix):
        return None
    return (
        f"{api_base()}{VIEW_PREFIX}/reports/{quote(pipeline)}?{urlencode({'path': lake_uri[len(prefix) :]})}"
    )


class _Remembered(BaseOperatorLink):
    """A link whose URL the step recorded while it ran (empty: the button is not shown)."""

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return str((getattr(operator, ATTRIBUTE, None) or {}).get(self.name, ""))


class MLflowRunLink(_Remembered):
    name = "MLflow run"


class MLflowModelVersionLink(_Remembered):
    name = "MLflow model version"


class ValidationReportLink(_Remembered):
    name = "GX validation report"


class DriftReportLink(_Remembered):
    name = "Evidently drift report"
