"""The distribution: what `pip install airflow-mlops` gives a team that already runs Airflow 3.

Builds the sdist and the wheel from a copy of the working tree (the wheel is built from the sdist,
so a file the sdist forgets fails here), checks them with twine, reads what the wheel holds, then
installs the wheel into clean venvs *without this repository's lock*, once next to the lowest
Airflow 3 release the package supports and once next to the newest, one of them on Python 3.12.
In each venv a user's folder holding only the loader DAG and one pipeline YAML (plus the CSV the
YAML reads) must reach a champion with ``airflow db migrate`` + ``airflow dags test``.

The lowest Airflow is installed as its own constraints file would have it: every package as of
that release's day (``uv --exclude-newer``). Airflow's constraint files cannot be fetched here, and
without them an old Airflow meets libraries released after it (Airflow 3.2.x does not run tasks
with pydantic 2.14: "Model 'TITerminalStatePayload' needs a discriminator field").

uv's cache (``$UV_CACHE_DIR`` or uv's default) makes a re-run fast; each step's time is printed.
Python interpreters: ``$MLOPS_PACKAGING_PY311`` / ``$MLOPS_PACKAGING_PY312`` (default: what uv
finds for 3.11 / 3.12; pyenv's 3.12.1 when present).
"""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from packaging.specifiers import SpecifierSet

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.packaging

REPO = Path(__file__).resolve().parents[2]
PRODUCT = {"mlops_core", "mlops_airflow"}
# Development tooling: the local server stacks, the demo driver and the example datasets.
DEV_ONLY = ("localstack", "demo", "datasets")

# The lowest Airflow 3 the package supports and the newest it is tested with. The lowest is
# installed with every package as of its release day (what its constraints file pinned).
# Airflow 3.0.x and 3.1.x fail at DAG parse: their airflow.sdk has no AssetOrTimeSchedule.
LOWEST = ("3.2.0", "2026-04-08T00:00:00Z")
NEWEST = "3.3.2"
# Packages no Airflow constraints file pins (not Airflow's dependencies), whose floor came out after
# that day: a team on the lowest Airflow gets them at their newest, as the install here does.
# skops >= 0.14: older ones do not trust scikit-learn's gradient-boosting losses (docs/install.md).
UNPINNED_NEWER = ("skops",)

_CSV_SCRIPT = """
import sys
from datetime import date, timedelta

import numpy as np
from sklearn import datasets

frame = datasets.load_breast_cancer(as_frame=True).frame.rename(columns=lambda c: c.replace(" ", "_"))
frame["diagnosis"] = np.where(frame.pop("target") == 0, "malignant", "benign")
offsets = np.random.default_rng(0).integers(0, 31, size=len(frame))
frame.insert(0, "event_date", [(date(2026, 1, 31) - timedelta(days=int(o))).isoformat() for o in offsets])
frame.insert(0, "record_id", [f"bc-{i:05d}" for i in range(len(frame))])
frame.to_csv(sys.argv[1], index=False)
"""

_CHAMPION_SCRIPT = """
import sys
from pathlib import Path

import mlflow
import mlops_core

print("mlops_core", mlops_core.__file__)
client = mlflow.MlflowClient(tracking_uri=sys.argv[1])
version = client.get_model_version_by_alias("breast_cancer", "champion")
print("champion", version.version, version.run_id)
"""


_TIMES: list[str] = []


@pytest.fixture(scope="module", autouse=True)
def step_timings(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each step's time, written to the terminal (past pytest's capture) when the module ends."""
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled():  # a teardown's output is captured otherwise
        print("\n" + "\n".join(_TIMES))


def _log(step: str, seconds: float) -> None:
    _TIMES.append(f"[packaging] {step}: {seconds:.1f} s")


def _run(cmd: list[str], step: str, *, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, timeout=1800)
    _log(step, time.monotonic() - start)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{step} failed ({proc.returncode}): {' '.join(cmd)}\n{output[-6000:]}"
    return output


def _uv() -> str:
    beside = Path(sys.executable).with_name("uv")
    found = str(beside) if beside.exists() else shutil.which("uv")
    assert found, "uv is needed (make install puts it in .venv)"
    return found


def _python(version: str) -> str:
    env = os.environ.get(f"MLOPS_PACKAGING_PY{version.replace('.', '')}")
    if env:
        return env
    pyenv = Path.home() / ".pyenv" / "versions"
    found = sorted(pyenv.glob(f"{version}.*/bin/python"))
    return str(found[-1]) if found else version


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    """The sdist and the wheel, built from a copy of the working tree (never writes into it)."""
    src = tmp_path_factory.mktemp("src") / "airflow-mlops"
    ignore = shutil.ignore_patterns(
        ".git", ".venv", ".local", "build", "dist", "site", "*.egg-info", "__pycache__", ".*_cache"
    )
    shutil.copytree(REPO, src, ignore=ignore, symlinks=True)
    out = tmp_path_factory.mktemp("dist")
    _run([_uv(), "build", "--quiet", "-o", str(out), str(src)], "uv build (sdist, then the wheel from it)")
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return Dists(wheel=wheel, sdist=sdist)


def test_twine_check(dists: Dists) -> None:
    out = _run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists.wheel), str(dists.sdist)],
        "twine check",
    )
    assert out.count("PASSED") == 2, out


def _metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as zf:
        (name,) = [n for n in zf.namelist() if n.endswith(".dist-info/METADATA")]
        return email.message_from_bytes(zf.read(name))


def test_wheel_holds_only_the_product(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as zf:
        names = zf.namelist()
        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        entry = zf.read(entry_points).decode()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops - {n.split("/", 1)[0] for n in names if ".dist-info/" in n} == PRODUCT, sorted(tops)
    assert "mlops_core/pipeline.schema.json" in names
    assert "mlops_core/clouds.yaml" in names  # the default profiles an installed package reads
    assert "mlops_core/spec/__init__.py" in names and "mlops_airflow/loader.py" in names
    assert "mlops_core/clouds/aws/deploy.py" in names and "mlops_airflow/operators/model.py" in names
    for line in (
        "mlops-airflow = mlops_airflow.cli.commands:main",
        "mlops = mlops_airflow.plugin:MlopsPlugin",
        "provider_info = mlops_airflow.provider:get_provider_info",
    ):
        assert line in entry, entry
    dev = [n for n in names if Path(n).stem in DEV_ONLY or any(f"/{d}/" in n for d in DEV_ONLY)]
    assert not dev, f"development tooling in the wheel: {dev}"
    assert not [n for n in names if n.startswith(("tests/", "include/", "dags/", "benchmarks/"))]


def test_metadata_declares_ranges(dists: Dists) -> None:
    meta = _metadata(dists.wheel)
    assert SpecifierSet(meta["Requires-Python"]) == SpecifierSet(">=3.11,<3.13"), meta["Requires-Python"]
    requires = meta.get_all("Requires-Dist") or []
    airflow = [r for r in requires if re.match(r"apache-airflow\s*[<>=!~]", r)]
    assert airflow and "==" not in airflow[0] and "<4" in airflow[0], airflow
    assert f">={LOWEST[0]}" in airflow[0], f"the tested lowest Airflow is not the declared floor: {airflow}"
    for name in ("mlflow", "great-expectations", "evidently", "scikit-learn", "pandas"):
        (req,) = [r for r in requires if re.match(rf"{name}\s*[<>=!~]", r, re.I) and "extra ==" not in r]
        assert ">=" in req and "==" not in req, req
    extras = set(meta.get_all("Provides-Extra") or [])
    assert {"aws", "gcp", "azure", "kserve", "all"} <= extras, extras


def _clean_env(venv: Path, airflow_home: Path, landing: Path) -> dict[str, str]:
    """The environment of a user's shell: nothing of this repository's test session leaks in."""
    keep = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG", "LC_ALL", "TMPDIR", "UV_CACHE_DIR")}
    return {
        **keep,
        "PATH": f"{venv / 'bin'}:/usr/local/bin:/usr/bin:/bin",
        "VIRTUAL_ENV": str(venv),
        "AIRFLOW_HOME": str(airflow_home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(airflow_home.parent / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # the documented landing zone of the embedded default; the lake and the MLflow store take
        # the installed package's default: $AIRFLOW_HOME/.local
        "MLOPS_LANDING": str(landing),
    }


# An install, a migration and a whole training run: about 2 minutes on a quiet machine (a warm uv
# cache), far more on a loaded one; the suite's default of 900 s is too tight for that.
@pytest.mark.timeout(2400)
@pytest.mark.parametrize(
    ("airflow", "python", "exclude_newer"),
    [
        pytest.param(LOWEST[0], "3.11", LOWEST[1], id=f"airflow-{LOWEST[0]}-py3.11"),
        pytest.param(NEWEST, "3.12", None, id=f"airflow-{NEWEST}-py3.12"),
    ],
)
def test_wheel_reaches_a_champion_next_to_airflow(
    dists: Dists, tmp_path: Path, airflow: str, python: str, exclude_newer: str | None
) -> None:
    venv = tmp_path / "venv"
    tag = f"airflow {airflow}, python {python}"
    _run([_uv(), "venv", "--quiet", "-p", _python(python), str(venv)], f"[{tag}] uv venv")
    install = [_uv(), "pip", "install", "--quiet", "-p", str(venv / "bin" / "python")]
    if exclude_newer:
        install += ["--exclude-newer", exclude_newer]
        for package in UNPINNED_NEWER:
            install += ["--exclude-newer-package", f"{package}=2100-01-01T00:00:00Z"]
    _run(
        [*install, str(dists.wheel), f"apache-airflow=={airflow}"], f"[{tag}] uv pip install wheel + Airflow"
    )

    # The user's folder: the loader DAG and one pipeline YAML, nothing else of this repository.
    user = tmp_path / "user"
    (user / "dags" / "pipelines").mkdir(parents=True)
    shutil.copy(REPO / "dags" / "mlops_pipelines.py", user / "dags")
    spec = (REPO / "dags" / "pipelines" / "breast_cancer.yaml").read_text()
    # A failure should show at once, not after the example's two retries a minute apart.
    (user / "dags" / "pipelines" / "breast_cancer.yaml").write_text(
        re.sub(r"(?m)^retries: \d+", "retries: 0", spec)
    )
    landing = user / "landing"
    (landing / "breast_cancer").mkdir(parents=True)
    airflow_home = user / "airflow"
    env = _clean_env(venv, airflow_home, landing)
    py = str(venv / "bin" / "python")
    script = tmp_path / "write_csv.py"
    script.write_text(_CSV_SCRIPT)
    _run(
        [py, str(script), str(landing / "breast_cancer" / "breast_cancer.csv")],
        f"[{tag}] write the CSV",
        env=env,
    )

    bin_ = venv / "bin"
    if exclude_newer:  # the lowest Airflow: the two Airflow commands a user types
        _run([str(bin_ / "airflow"), "db", "migrate"], f"[{tag}] airflow db migrate", env=env, cwd=user)
        out = _run(
            [str(bin_ / "airflow"), "dags", "test", "breast_cancer_training", "2026-01-31"],
            f"[{tag}] airflow dags test breast_cancer_training",
            env=env,
            cwd=user,
        )
    else:  # the newest: `mlops-airflow run` on the fresh AIRFLOW_HOME, no hidden step (#25 trap 2)
        assert not (airflow_home / "airflow.db").exists()
        out = _run(
            [str(bin_ / "mlops-airflow"), "run", "breast_cancer", "--date", "2026-01-31"],
            f"[{tag}] mlops-airflow run breast_cancer --date 2026-01-31 (fresh AIRFLOW_HOME)",
            env=env,
            cwd=user,
        )
        assert "preparing Airflow's metadata database" in out, out[-6000:]
        _the_run_command_refuses_a_bad_date_and_migrates_only_once(bin_, env, user)
    assert "DagRun Finished" in out and "state=success" in out, out[-6000:]

    check = tmp_path / "champion.py"
    check.write_text(_CHAMPION_SCRIPT)
    store = f"sqlite:///{airflow_home / '.local' / 'mlflow' / 'mlflow.db'}"
    found = _run([py, str(check), store], f"[{tag}] champion in the venv's MLflow store", env=env)
    assert f"mlops_core {venv}" in found, found  # the installed wheel ran, not this checkout
    assert re.search(r"^champion \d+ [0-9a-f]{32}$", found, re.M), found


def _the_run_command_refuses_a_bad_date_and_migrates_only_once(
    bin_: Path, env: dict[str, str], user: Path
) -> None:
    bad = subprocess.run(
        [str(bin_ / "mlops-airflow"), "run", "breast_cancer", "--date", "31/01/2026"],
        capture_output=True,
        text=True,
        env=env,
        cwd=user,
        timeout=300,
    )
    assert bad.returncode == 2 and "is not YYYY-MM-DD" in bad.stderr, bad.stdout + bad.stderr
    again = _run(
        [
            str(bin_ / "python"),
            "-c",
            "from mlops_airflow.cli.run import prepare_database; print('migrated', prepare_database())",
        ],
        "prepare_database on the migrated AIRFLOW_HOME",
        env=env,
        cwd=user,
    )
    assert "migrated False" in again and "preparing" not in again, again
