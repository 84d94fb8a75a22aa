"""mlops_core: the engine behind the Airflow MLOps package.

Pure Python: no Airflow import anywhere in this package (``tests/unit/test_layers.py`` proves
it), so a notebook or a plain script can call every step. Heavy libraries (pandas, scikit-learn,
MLflow, Great Expectations, Evidently) are imported inside the functions that need them, which
keeps ``import mlops_core.spec`` cheap enough for DAG parsing.
"""

from __future__ import annotations

__version__ = "0.1.0"
