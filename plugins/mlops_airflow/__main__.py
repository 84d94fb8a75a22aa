"""``python -m mlops_airflow``: the same as the ``mlops-airflow`` console script (:mod:`mlops_airflow.cli.commands`)."""

from __future__ import annotations

import sys

from mlops_airflow.cli.commands import main

sys.exit(main())
