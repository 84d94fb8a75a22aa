"""Development only, never in the wheel or the image: the local server stacks the tests start
(:mod:`mlops_dev.localstack`), the demo driver (:mod:`mlops_dev.demo`) and the example datasets
(:mod:`mlops_dev.datasets`). ``make install`` installs it into the dev venv (tools/pyproject.toml)."""

from __future__ import annotations
