"""Builds every pipeline in dags/pipelines/*.yaml into its Airflow DAGs.

Wiring only: the spec and the builder import no pandas, scikit-learn, MLflow or Great Expectations,
so parsing stays fast. A broken YAML shows up as an import error of this file naming the YAML and
the field; the other pipelines still load.
"""

from __future__ import annotations

from pathlib import Path

from mlops_airflow.loader import load_dags

globals().update(load_dags(Path(__file__).parent / "pipelines"))
