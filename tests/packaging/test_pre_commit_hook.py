"""The pre-commit hook this repository provides (``.pre-commit-hooks.yaml``), installed as a pipeline
repository's pre-commit would: from a git repository holding the package, into pre-commit's own
environment, then run on a valid and on a broken pipeline YAML.

It sits in the packaging tier (beside the wheel's clean-venv installs): building the hook's
environment is an install of the package with its declared dependencies, mostly disk and network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path  # noqa: TC003 - used at run time
from typing import Any

import pytest
import yaml

from tests.helpers import REPO

pytestmark = pytest.mark.packaging


def broken_copy(folder: Path, edit: Any) -> Path:
    data = yaml.safe_load((REPO / "dags" / "pipelines" / "breast_cancer.yaml").read_text())
    edit(data)
    path = folder / "breast_cancer.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_the_pre_commit_hook_installs_and_runs(tmp_path: Path) -> None:
    """pre-commit builds the hook's own environment from this package (as a user's repo would)."""
    from pre_commit.clientlib import load_manifest

    (hook,) = load_manifest(str(REPO / ".pre-commit-hooks.yaml"))
    pins = dict(
        line.split("==", 1) for line in (REPO / "requirements.txt").read_text().splitlines() if "==" in line
    )
    for dep in hook["additional_dependencies"]:
        name, version = dep.split("==")
        assert pins[name] == version, f"{dep}: the hook must pin what requirements.txt pins ({pins[name]})"
    hook_repo = tmp_path / "hook-repo"
    for part in ("pyproject.toml", "README.md", ".pre-commit-hooks.yaml"):
        shutil.copy(REPO / part, hook_repo / part if hook_repo.exists() else _mkdir(hook_repo) / part)
    shutil.copytree(REPO / "include" / "mlops_core", hook_repo / "include" / "mlops_core")
    shutil.copytree(REPO / "plugins" / "mlops_airflow", hook_repo / "plugins" / "mlops_airflow")
    git(hook_repo, "init", "-q")
    git(hook_repo, "add", "-A")
    git(hook_repo, "commit", "-qm", "hook")
    user = _mkdir(tmp_path / "pipelines-repo" / "dags" / "pipelines").parents[1]
    shutil.copy(REPO / "dags" / "pipelines" / "breast_cancer.yaml", user / "dags" / "pipelines")
    git(user, "init", "-q")
    git(user, "add", "-A")
    # pre-commit-uv (dev lock) builds the hook's environment with uv; the lock as constraints makes
    # it the versions `make install` already cached (a user's first install resolves the newest)
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(tmp_path / "pre-commit-home"),
        "UV_CONSTRAINT": str(REPO / "requirements.txt"),
    }
    pre_commit = [
        sys.executable,
        "-m",
        "pre_commit",
        "try-repo",
        str(hook_repo),
        "mlops-validate",
        "--all-files",
    ]
    ok = subprocess.run(pre_commit, cwd=user, capture_output=True, text=True, env=env, timeout=600)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken_copy(user / "dags" / "pipelines", lambda d: d["evaluation"].update(primary_metric="rmse"))
    git(user, "add", "-A")
    bad = subprocess.run(pre_commit, cwd=user, capture_output=True, text=True, env=env, timeout=600)
    assert bad.returncode == 1
    assert "evaluation.primary_metric: 'rmse' is not a binary metric" in bad.stdout


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def git(cwd: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    subprocess.run(["git", *args], cwd=cwd, check=True, env=env, capture_output=True)
