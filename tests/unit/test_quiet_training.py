"""Training in an Airflow process logs no warning storm.

Importing ``skops.io`` probes an attribute of every loaded module; each probe of a deprecated
``airflow.*`` name warns, about 1,160 log lines (seconds) per training task. A fresh interpreter
with Airflow imported, as a task process has it, must see none of them.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PROBE = """
import warnings
import airflow.sdk  # what every task process has loaded
from sklearn.linear_model import LogisticRegression
from mlops_core.model.training import _serialization
shown = []
warnings.showwarning = lambda message, category, *a, **k: shown.append(category.__name__)
warnings.simplefilter("always")
model = LogisticRegression().fit([[0.0], [1.0], [0.0], [1.0]], [0, 1, 0, 1])
assert _serialization(model)["serialization_format"] == "skops"
print("WARNINGS", len(shown), sorted(set(shown)))
"""


def test_saving_a_model_with_skops_in_an_airflow_process_warns_nothing():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip().splitlines()[-1] == "WARNINGS 0 []"
