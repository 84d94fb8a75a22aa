"""Test session set-up: every test runs against throw-away Airflow, MLflow and lake directories.

The environment is set here, before anything imports Airflow, so no test can touch the
developer's ``.local`` (the demo's state) and CI starts from nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SESSION_DIR = Path(tempfile.mkdtemp(prefix="mlops-tests-"))
# dag.test() runs what the DAG folder holds, so tests add their pipelines to a copy of dags/.
DAGS_DIR = SESSION_DIR / "dags"
shutil.copytree(REPO / "dags", DAGS_DIR, ignore=shutil.ignore_patterns("__pycache__"))

os.environ.update(
    {
        "MLOPS_HOME": str(REPO),
        "MLOPS_LOCAL_DIR": str(SESSION_DIR / "local"),
        "AIRFLOW_HOME": str(SESSION_DIR / "airflow"),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_DIR),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{SESSION_DIR / 'airflow' / 'airflow.db'}",
        # gcsfs's experimental bucket-type probe speaks gRPC to the Storage Control API, which the
        # GCS emulator does not serve (each probe waits 60 s); plain JSON-API gcsfs is what we test.
        "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false",
        # every `mlflow server` the tests start would also start MLflow's GenAI job runner (a runner
        # and four huey consumers, each a Python importing MLflow): nothing here submits jobs
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
)
for var in ("MLFLOW_TRACKING_URI", "MLOPS_LAKE", "MLOPS_LANDING", "MLOPS_ARTIFACTS"):
    os.environ.pop(var, None)


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated Airflow metadata DB (SQLite), once per session."""
    (SESSION_DIR / "airflow").mkdir(parents=True, exist_ok=True)
    airflow = Path(sys.executable).with_name("airflow")
    subprocess.run([str(airflow), "db", "migrate"], check=True, capture_output=True, env=os.environ.copy())
    return SESSION_DIR / "airflow"


@pytest.fixture
def local_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh lake, landing zone and MLflow store for one test."""
    monkeypatch.setenv("MLOPS_LOCAL_DIR", str(tmp_path / "local"))
    return tmp_path / "local"


@pytest.fixture
def landing(local_dir: Path) -> str:
    """The breast cancer example written to this test's landing zone."""
    from mlops_core.base import settings
    from mlops_dev import datasets

    datasets.materialize("breast_cancer", settings.landing_root())
    return settings.landing_root()


# Per-tier wall time, printed at the end of every session (CI reads it to keep the budget).
_TIERS = (
    "dags",
    "unit",
    "integration",
    "contract",
    "emulator",
    "faults",
    "scheduler",
    "stack",
    "packaging",
    "dev",
)
_tier_seconds: dict[str, float] = {}


# The server tiers' longest files, longest first (about 530, 365 and 340 s of a worker's time in
# CI): `make test` runs them a file per worker in collection order (--no-loadscope-reorder), so
# the team stack starts at once instead of after the files with more tests (xdist's default order),
# and short files fill in at the end. Within a file the order is the file's.
LONGEST_FIRST = (
    "tests/stack/test_team_stack.py",
    "tests/stack/test_scheduler.py",
    "tests/emulators/test_lake_on_clouds.py",
)


def _rank(item: pytest.Item) -> int:
    path = item.nodeid.split("::", 1)[0]
    return LONGEST_FIRST.index(path) if path in LONGEST_FIRST else len(LONGEST_FIRST)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test carries one tier marker: `make test` selects its two runs by marker, so a test
    without one would silently leave the parallel run (or, with a typo, every run). Then the
    longest files go first (a stable sort: every other test keeps its place)."""
    unmarked = [i.nodeid for i in items if not any(m.name in _TIERS for m in i.iter_markers())]
    if unmarked:
        raise pytest.UsageError(f"tests without a tier marker ({', '.join(_TIERS)}): {unmarked[:10]}")
    items.sort(key=_rank)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    tier = next((t for t in _TIERS if t in report.keywords), "other")
    _tier_seconds[tier] = _tier_seconds.get(tier, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if _tier_seconds:
        shown = ", ".join(f"{t} {s:.0f} s" for t, s in sorted(_tier_seconds.items(), key=lambda x: -x[1]))
        terminalreporter.write_line(f"tier durations (setup + call + teardown): {shown}")
