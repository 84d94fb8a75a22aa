"""Two tasks open a new embedded MLflow store at the same moment (a fresh install, a first run).

MLflow creates its SQLite tables with alembic on the first open in each process; concurrent
first opens left a half-migrated store that every later open refused, so the gate failed closed
on every retry. Six real processes released together by a start file must all get a usable store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.faults

CHILD = r"""
import os, sys, time
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
from mlops_core import registry, tracking
client = tracking.configure()
client.search_experiments(max_results=1)
print("champion", registry.alias_version("race", registry.CHAMPION))
"""


def test_concurrent_first_opens_of_a_new_store_all_succeed(tmp_path):
    go = tmp_path / "go"
    env = {**os.environ, "MLOPS_LOCAL_DIR": str(tmp_path / "local")}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(go)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(6)
    ]
    time.sleep(6)  # every child has imported and waits for the start file
    go.touch()
    results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    failed = [err.strip().splitlines()[-1][:300] for code, _, err in results if code]
    assert failed == []
    assert [out.strip().splitlines()[-1] for _, out, _ in results] == ["champion None"] * 6
