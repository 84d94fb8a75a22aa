"""Airflow glue for mlops_core: operators, the DAG builder and the YAML loader.

Operators are thin: they resolve templated fields and connections, call one
:mod:`mlops_core.lifecycle` step and push its small JSON result to XCom.
"""

from __future__ import annotations
