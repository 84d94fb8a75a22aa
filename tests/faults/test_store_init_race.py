"""Two tasks open a new embedded MLflow store at the same moment (a fresh install, a first run).

MLflow creates its SQLite tables with alembic on the first open in each process; concurrent
first opens left a half-migrated store that every later open refused, so the gate failed closed
on every retry. Six real processes, each ready (imports done) before a start file releases them
together, must all get a usable store; the test checks that their first opens did overlap.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import wait_until

pytestmark = pytest.mark.faults

CHILD = r"""
import os, sys, time
from pathlib import Path
from mlops_core.runs import registry, tracking
import mlflow  # the heavy imports happen before the start, not during the race
Path(sys.argv[2]).touch()
while not os.path.exists(sys.argv[1]):
    time.sleep(0.001)
opened = time.monotonic()
client = tracking.configure()
client.search_experiments(max_results=1)
done = time.monotonic()
print("champion", registry.alias_version("race", registry.CHAMPION))
print("window", opened, done)
"""


def test_concurrent_first_opens_of_a_new_store_all_succeed(tmp_path):
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{i}" for i in range(6)]
    env = {**os.environ, "MLOPS_LOCAL_DIR": str(tmp_path / "local")}
    env.pop("MLFLOW_TRACKING_URI", None)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(go), str(flag)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for flag in ready
    ]
    try:
        wait_until(
            lambda: all(f.exists() for f in ready) or any(p.poll() is not None for p in procs),
            300,
            "every child imported and waits for the start file",
        )
        go.touch()
        results = [(p.wait(timeout=300), *p.communicate()) for p in procs]
    finally:
        for p in procs:
            p.kill()
    failed = [err.strip().splitlines()[-1][:300] for code, _, err in results if code]
    assert failed == []
    lines = [out.strip().splitlines() for _, out, _ in results]
    assert [out[-2] for out in lines] == ["champion None"] * 6
    # The race was run: opens that started before the first one finished met a store in creation.
    windows = [tuple(map(float, out[-1].split()[1:])) for out in lines]
    first_done = min(done for _, done in windows)
    racing = sum(opened < first_done for opened, _ in windows)
    assert racing >= 2, f"the first opens did not overlap ({windows}): nothing raced"
