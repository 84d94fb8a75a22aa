"""#25 trap 5: a run printed about 420 log lines, 209 of them Great Expectations' own
"Skipping registering function" at import. The package quiets GX's import-time bookkeeping."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

PROBE = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
{first}
import great_expectations, great_expectations.expectations
logging.getLogger("mlops_core.data.validation").info("validation ran")
"""


def _log(first: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", PROBE.format(first=first)], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout + out.stderr


def test_great_expectations_import_noise_is_filtered() -> None:
    quiet = _log("import mlops_core.data.validation")
    assert "Skipping registering function" not in quiet
    assert "Multiple declarations of metric" not in quiet
    assert "validation ran" in quiet  # the package's own INFO lines still show


def test_without_the_filter_the_noise_is_there() -> None:
    """The control: the same import without the package first is noisy, so the test above can fail."""
    assert _log("").count("Skipping registering function") > 20
