"""Warm Celery workers: Airflow's Celery settings, plus :mod:`mlops_airflow.warm` in ``imports``.

.. code-block:: ini

    [celery]
    celery_config_options = mlops_airflow.celery_config.CONFIG

(``AIRFLOW__CELERY__CELERY_CONFIG_OPTIONS``). A Celery worker imports the modules of its
``imports`` setting in its main process, before its prefork pool forks the processes that take
tasks, and Airflow's supervisor forks each task from one of those: a task starts with pandas,
scikit-learn, MLflow, GX and Evidently imported, as under warm LocalExecutor workers. The scheduler
reads this dict too (the CeleryExecutor queues with it) but only a worker imports the list.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.celery.executors.default_celery import DEFAULT_CELERY_CONFIG

CONFIG: dict[str, Any] = {
    **DEFAULT_CELERY_CONFIG,
    "imports": (*DEFAULT_CELERY_CONFIG.get("imports", ()), "mlops_airflow.warm"),
}
