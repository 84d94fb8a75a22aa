"""The two locks: what runs (requirements.txt) carries no development tool, and every package both
locks hold is pinned to the same version (the dev lock is compiled with the runtime one as constraints)."""

from __future__ import annotations

import re

import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.unit

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([^\s;]+)", re.M)
DEV_ONLY = (
    "pytest",
    "pytest-timeout",
    "playwright",
    "ruff",
    "mypy",
    "moto",
    "gcp-storage-emulator",
    "aiosmtpd",
    "azure-ai-ml",
    "dag-factory",
    "types-pyyaml",
)


def _pins(name: str) -> dict[str, str]:
    return {m[0].lower().replace("_", "-"): m[1] for m in PIN.findall((REPO / name).read_text())}


def test_the_runtime_lock_carries_no_development_tool():
    runtime = _pins("requirements.txt")
    assert [p for p in DEV_ONLY if p in runtime] == []
    assert {"apache-airflow", "mlflow", "great-expectations", "evidently", "fairlearn"} <= set(runtime)


def test_the_dev_lock_pins_every_runtime_package_the_same():
    runtime, dev = _pins("requirements.txt"), _pins("requirements-dev.txt")
    assert {k: (v, dev.get(k)) for k, v in runtime.items() if dev.get(k) != v} == {}
    assert set(DEV_ONLY) <= set(dev)


def test_the_image_installs_the_runtime_lock_only():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile and "requirements-dev" not in dockerfile
