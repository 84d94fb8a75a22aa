"""Warm workers: the heavy libraries the steps use, imported once, before any task is forked.

Under the LocalExecutor every task is a fresh process forked by an executor worker, and each one
imports pandas, scikit-learn, MLflow, Great Expectations or Evidently again (seconds per task on
a small machine). Airflow 3.3 can start the executor's workers from a ``forkserver`` that has
imported modules up front; the workers, and the tasks they fork, inherit them copy-on-write:

.. code-block:: ini

    [scheduler]
    mp_start_method = forkserver
    mp_forkserver_preload = mlops_airflow.warm

(``AIRFLOW__SCHEDULER__MP_START_METHOD`` / ``AIRFLOW__SCHEDULER__MP_FORKSERVER_PRELOAD``). Only the
forkserver process imports this module, never the scheduler itself nor a DAG file, so parsing
stays light. ``benchmarks/lifecycle.py`` measures the effect (the ``b-warm`` rows) and the README
gives the figures and the memory it costs.
"""

from __future__ import annotations

import importlib
import logging
import time

log = logging.getLogger(__name__)

# What the lifecycle steps import (mlops_core imports each inside the function that needs it).
MODULES = (
    "numpy",
    "pandas",
    "pyarrow.parquet",
    "pyarrow.dataset",
    "fsspec",
    "scipy.stats",
    "sklearn.compose",
    "sklearn.ensemble",
    "sklearn.impute",
    "sklearn.inspection",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.model_selection",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "skops.io",
    "mlflow",
    "mlflow.sklearn",
    "mlflow.models",
    "mlops_core.data.validation",  # before great_expectations: it quiets GX's import-time INFO lines
    "great_expectations",
    "great_expectations.expectations",
    "evidently",
    "evidently.presets",
    "mlops_core.lifecycle",
    "mlops_core.data.validation",
    "mlops_core.monitor.monitoring",
    "mlops_airflow.operators.data",
    "mlops_airflow.operators.model",
    "mlops_airflow.operators.deploy",
    "mlops_airflow.operators.monitor",
)


def preload(modules: tuple[str, ...] = MODULES) -> dict[str, float]:
    """Import ``modules``; return the seconds each took (a missing optional one is skipped, said in the log)."""
    import warnings

    took: dict[str, float] = {}
    for name in modules:
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():  # skops.io probes every module (see training._serialization)
                warnings.simplefilter("ignore")
                importlib.import_module(name)
        except ImportError as err:
            log.warning("warm workers: %s not preloaded (%s)", name, err)
            continue
        took[name] = round(time.perf_counter() - start, 3)
    return took


IMPORTED = preload()
